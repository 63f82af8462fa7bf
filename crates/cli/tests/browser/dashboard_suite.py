"""The dashboard in a real browser: Debian's headless Chromium driven through chromedriver.

Run by `crates/cli/tests/browser.rs` against `goodhart demo` (simulated organisation, live
traffic): signs in, visits every page (the providers' bills against the meter too), checks what
the page shows against the JSON API, clicks confirm, dismiss and revoke, signs in again with a
team's viewer token and each role's, has an engineer make, use and revoke their own key and
ingest token, has the admin give and take back a person's role on the People page, checks
a phone-sized window, and saves a screenshot of each step in the artifacts directory.

    GOODHART_DEMO_DB=DEMO_DATABASE python dashboard_suite.py URL ADMIN_TOKEN ARTIFACTS_DIR

The demo's SQLite database is written once: to record a person in the people directory as a
single sign-on sign-in would (the demo has no identity provider).
"""

import json
import os
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import openai
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECS = 20

URL, ADMIN, ARTIFACTS = sys.argv[1].rstrip("/"), sys.argv[2], Path(sys.argv[3])
ARTIFACTS.mkdir(parents=True, exist_ok=True)
DEMO_DB = os.environ["GOODHART_DEMO_DB"]


def api(path, token=ADMIN, method="GET", body=None):
    request = urllib.request.Request(
        URL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def api_status(path, token):
    try:
        api(path, token)
        return 200
    except urllib.error.HTTPError as error:
        return error.code


def usd(value):
    """What the page shows for an amount: `$1,234.57`."""
    return f"${float(value):,.2f}"


def count(value):
    return f"{int(value):,}"


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths are given, so Selenium never looks for (or downloads) a browser or driver.
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


class Suite:
    def __init__(self, driver):
        self.driver = driver
        self.wait = WebDriverWait(driver, WAIT_SECS)
        self.shots = 0

    def shot(self, name):
        self.shots += 1
        self.driver.save_screenshot(str(ARTIFACTS / f"{self.shots:02d}-{name}.png"))

    def visit(self, route):
        self.driver.get(f"{URL}/#/{route}")

    def testid(self, testid):
        return self.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, f"[data-testid='{testid}']")))

    def card(self, testid):
        return self.testid(testid).find_element(By.CLASS_NAME, "value").text

    def heading(self, text):
        self.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#page h1"), text))

    def rows(self):
        return self.driver.find_elements(By.CSS_SELECTOR, "#page table tbody tr")

    def no_errors_logged(self, where):
        # A page without the dashboard (see sign_in) makes the browser ask for a favicon.
        severe = [
            e for e in self.driver.get_log("browser") if e["level"] == "SEVERE" and "/favicon.ico" not in e["message"]
        ]
        assert not severe, f"{where}: console errors {severe}"

    def sign_in(self, token):
        # Forget the last token on a page of the origin without the dashboard, so no page is
        # left rendering with a token cleared under it (its requests would be refused).
        self.driver.get(URL + "/healthz")
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.get(URL + "/")
        field = self.wait.until(ec.visibility_of_element_located((By.ID, "token")))
        field.clear()
        field.send_keys(token)
        self.driver.find_element(By.CSS_SELECTOR, "#sign-in button[type=submit]").click()
        self.wait.until(ec.visibility_of_element_located((By.ID, "nav")))

    def accept_dialog(self, text=None):
        dialog = self.wait.until(ec.alert_is_present())
        if text is not None:
            dialog.send_keys(text)
        dialog.accept()


def refused_token(suite):
    suite.driver.get(URL + "/")
    field = suite.wait.until(ec.visibility_of_element_located((By.ID, "token")))
    field.send_keys("not-a-token")
    suite.driver.find_element(By.CSS_SELECTOR, "#sign-in button[type=submit]").click()
    suite.wait.until(ec.text_to_be_present_in_element((By.ID, "sign-in-error"), "refused"))
    suite.shot("sign-in-refused")
    suite.driver.get_log("browser")  # the refused request's 401 is expected: drain it


def overview(suite, token=ADMIN, name="overview"):
    suite.visit("overview")
    summary = api("/api/v1/usage/summary?from=30d", token)["totals"]
    findings = api("/api/v1/findings?from=30d", token)["totals"]
    suite.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=spend] .value"), "$"))
    assert suite.card("spend") == usd(summary["cost_usd"]), (suite.card("spend"), summary)
    assert suite.card("requests") == count(summary["requests"])
    assert suite.card("tokens") == count(summary["total_tokens"])
    assert suite.card("waste") == usd(findings["wasted_usd"])
    canvas = suite.driver.find_element(By.CSS_SELECTOR, "#page canvas")
    assert canvas.size["width"] > 200 and canvas.size["height"] > 100, "the spend chart is drawn"
    budgets = api("/api/v1/budgets", token)["budgets"]
    budget_rows = suite.driver.find_elements(By.XPATH, "//h2[text()='Budgets']/following-sibling::*[1]//tbody/tr")
    assert len(budget_rows) == len(budgets), (len(budget_rows), budgets)
    suite.shot(name)
    suite.no_errors_logged(name)
    return summary


def leaderboard(suite):
    suite.visit("leaderboard")
    board = api("/api/v1/leaderboard?from=30d&by=user&metric=value")
    suite.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=board-label]"), "value"))
    rows = suite.rows()
    assert len(rows) == len(board["rows"]), (len(rows), len(board["rows"]))
    first = rows[0].find_elements(By.TAG_NAME, "td")
    assert first[1].text == board["rows"][0]["subject"]
    suite.shot("leaderboard-value")

    suite.testid("metric-volume").click()
    volume = api("/api/v1/leaderboard?from=30d&by=user&metric=volume")
    label = suite.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=board-label].label-volume")))
    assert label.text == volume["label"] and "consumption, not value" in label.text, label.text
    suite.wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#page tbody tr td:nth-child(2)")[0].text == volume["rows"][0]["subject"]
    )
    burner = volume["rows"][0]
    value_rank = next(r["rank"] for r in board["rows"] if r["subject"] == burner["subject"])
    assert value_rank > len(board["rows"]) // 2, f"the top token burner ranks #{value_rank} by value"
    suite.shot("leaderboard-volume")

    suite.testid("by-team").click()
    teams = api("/api/v1/leaderboard?from=30d&by=team&metric=volume")
    suite.wait.until(lambda d: len(suite.rows()) == max(len(teams["rows"]), 1))
    suite.no_errors_logged("leaderboard")
    return board, burner


def subject_pages(suite, board, burner):
    # From the leaderboard to the burner's page.
    suite.visit("leaderboard?by=user&metric=volume&from=30d")
    suite.testid(f"subject-user-{burner['subject']}").click()
    suite.heading(f"user {burner['subject']}")
    page = api(f"/api/v1/subjects/user/{urllib.parse.quote(burner['subject'])}?from=30d")
    suite.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=subject-spend] .value"), "$"))
    assert suite.card("subject-spend") == usd(page["usage"]["cost_usd"])
    assert suite.card("subject-requests") == count(page["usage"]["requests"])
    assert suite.card("subject-rank") == f"#{page['board']['rank']} of {page['board_size']}"
    assert suite.card("subject-waste") == usd(page["board"]["waste_usd"])
    assert page["findings"], "the burner has findings"
    # Vendor-reported activity beside the outcomes, labelled as activity, never value.
    activity = page["activity"]
    assert activity["claude_code"] and activity["copilot"], activity
    section = suite.testid("subject-activity")
    assert section.find_element(By.TAG_NAME, "h2").text == "Activity (vendor-reported — not value)"
    assert "never counted as value" in section.text
    assert count(activity["claude_code"]["sessions"]) in section.text
    assert count(activity["copilot"]["acceptances"]) in section.text
    assert usd(activity["claude_code"]["estimated_cost_usd"]) in section.text
    suite.shot("user-page")

    team = api("/api/v1/leaderboard?from=30d&by=team&metric=value")["rows"][0]["subject"]
    agent = api("/api/v1/leaderboard?from=30d&by=agent&metric=value")["rows"][0]["subject"]
    for by, name in (("team", team), ("agent", agent)):
        suite.visit(f"subject?{urllib.parse.urlencode({'by': by, 'name': name})}")
        suite.heading(f"{by} {name}")
        page = api(f"/api/v1/subjects/{by}/{urllib.parse.quote(name)}?from=30d")
        suite.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=subject-spend] .value"), "$"))
        assert suite.card("subject-spend") == usd(page["usage"]["cost_usd"]), (by, name)
        assert page["activity"] is None and not suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid=subject-activity]"), (
            "activity is per person"
        )
        suite.shot(f"{by}-page")
    suite.no_errors_logged("subject pages")
    return team


def findings(suite):
    suite.visit("findings?status=open")
    document = api("/api/v1/findings?from=30d&status=open")
    listed = document["findings"]
    assert len(listed) >= 2, "the demo's burners leave findings to decide"
    suite.heading("Waste findings")
    assert suite.card("findings-count") == count(document["totals"]["findings"])
    suite.shot("findings")
    dismissed, confirmed = listed[0]["id"], listed[1]["id"]

    suite.testid(f"dismiss-{dismissed}").click()
    suite.accept_dialog("load test we asked for")
    suite.wait.until(lambda d: all(f["id"] != dismissed for f in api("/api/v1/findings?from=30d&status=open")["findings"]))
    suite.testid(f"confirm-{confirmed}").click()
    suite.accept_dialog("")
    suite.wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, f"[data-testid='confirm-{confirmed}']")) == 0)

    decided = {f["id"]: f for f in api("/api/v1/findings?from=30d")["findings"]}
    assert decided[dismissed]["status"] == "dismissed" and decided[dismissed]["note"] == "load test we asked for"
    assert decided[confirmed]["status"] == "confirmed"
    suite.visit("findings?status=dismissed")
    status = suite.testid(f"status-{dismissed}")
    assert status.text.startswith("dismissed — load test we asked for"), status.text
    suite.shot("findings-decided")
    suite.no_errors_logged("findings")


def budgets_and_alerts(suite):
    suite.visit("budgets")
    suite.heading("Budgets and alerts")
    alerts = api("/api/v1/alerts")["alerts"]
    assert any(a["kind"] == "blocked" for a in alerts), "the runaway agent hit its hard cap"
    alert_rows = suite.driver.find_elements(By.XPATH, "//h2[starts-with(text(), 'Alerts')]/following-sibling::*[1]//tbody/tr")
    assert len(alert_rows) == len(alerts), (len(alert_rows), len(alerts))
    assert any(row.find_elements(By.TAG_NAME, "td")[1].text == "blocked" for row in alert_rows)
    suite.shot("budgets-alerts")
    suite.no_errors_logged("budgets")


def signed_usd(value):
    """What the page shows for a drift: `+$1,234.57` or `−$0.35`."""
    return f"{'−' if float(value) < 0 else '+'}${abs(float(value)):,.2f}"


CHART_DATA = """
const chart = Chart.getChart(document.querySelector("[data-testid=bills-chart]"));
return {labels: chart.data.labels, metered: chart.data.datasets[0].data, billed: chart.data.datasets[1].data,
        colors: chart.data.datasets[1].backgroundColor};
"""


def reconciliation(suite):
    """The providers' bills against the meter: the demo imports them with one drift alert and a
    research notebook's key that bypasses the gateway."""
    bill = api("/api/v1/reports/reconciliation?from=30d")
    alerts = [d for d in bill["days"] if d["alert"]]
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    suite.visit(f"reconciliation?from=30d&provider={alert['provider']}")
    suite.heading("Bills against the meter")
    suite.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=bills-billed] .value"), "$"))
    assert suite.card("bills-metered") == usd(bill["metered_usd"]), (suite.card("bills-metered"), bill["metered_usd"])
    assert suite.card("bills-billed") == usd(bill["billed_usd"])
    assert suite.card("bills-drift") == signed_usd(bill["drift_usd"])
    assert suite.card("bills-unmetered") == usd(bill["unmetered_usd"])
    assert 50 < float(bill["bypassing_usd"]) < 200, bill["bypassing_usd"]
    assert suite.card("bills-bypassing") == usd(bill["bypassing_usd"])

    # The chart: one provider's days, metered and billed as the API has them, the alert day marked.
    days = [d for d in bill["days"] if d["provider"] == alert["provider"]]
    canvas = suite.testid("bills-chart")
    assert canvas.size["width"] > 200 and canvas.size["height"] > 100, "the bills chart is drawn"
    drawn = suite.driver.execute_script(CHART_DATA)
    assert len(drawn["labels"]) == len(days) >= 7, (drawn["labels"], len(days))
    assert drawn["metered"] == [float(d["metered_usd"]) for d in days], drawn["metered"]
    assert drawn["billed"] == [float(d["billed_usd"]) for d in days], drawn["billed"]
    marked = [i for i, label in enumerate(drawn["labels"]) if label.startswith("⚠")]
    assert marked == [days.index(alert)], (marked, drawn["labels"])
    assert len(set(drawn["colors"])) == 2 and drawn["colors"].count(drawn["colors"][marked[0]]) == 1, drawn["colors"]
    listed = suite.testid(f"bills-alert-{alert['provider']}-{alert['day']}")
    assert usd(alert["billed_usd"]) in listed.text and signed_usd(alert["drift_usd"]) in listed.text, listed.text
    assert "alert-day" in suite.testid(f"bills-day-{alert['day']}").get_attribute("class")

    # The spend that never passed the gateway, and whose it is.
    callout = suite.testid("bills-callout")
    assert "apikey_01ResearchNotebook" in callout.text, callout.text
    assert [t["team"] for t in bill["bypassing_by_team"]] == ["research"], bill["bypassing_by_team"]
    teams = suite.testid("bills-bypassing-teams")
    assert teams.text == f"team research: {usd(bill['bypassing_by_team'][0]['usd'])}", teams.text
    notebook = next(r for r in callout.find_elements(By.CSS_SELECTOR, "tbody tr") if "apikey_01ResearchNotebook" in r.text)
    cells = [c.text for c in notebook.find_elements(By.TAG_NAME, "td")]
    assert cells[2:4] == ["wrkspc_01Research", "research"], cells

    # Every day's model row, the largest drift first, with what metered it.
    rows = suite.driver.find_elements(By.XPATH, "//h2[starts-with(text(), 'Per day and model')]/following-sibling::*[1]//tbody/tr")
    assert len(rows) == len(bill["rows"]), (len(rows), len(bill["rows"]))
    first, top = [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")], bill["rows"][0]
    assert first[0] == top["day"] and first[7] == signed_usd(top["drift_usd"]), (first, top)
    for source, metered in top["by_source"].items():
        assert f"{source} {usd(metered['usd'])}" in first[9], (first, top)
    badges = suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid=unmetered-badge]")
    unmetered = [r for r in bill["rows"] if r["unmetered"] and r["covered"]]
    assert len(badges) == len(unmetered) >= 1, (len(badges), unmetered)
    # Rows no imported bill covers are marked, and their spend is said to be left out.
    no_bill = [r for r in bill["rows"] if not r["covered"]]
    assert len(suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid=no-bill-badge]")) == len(no_bill), no_bill
    if no_bill:
        note = suite.driver.find_element(By.CSS_SELECTOR, "[data-testid=bills-not-covered]").text
        assert usd(bill["not_covered_usd"]) in note, note
    assert usd(bill["unmetered_usd"]) in callout.text, callout.text
    suite.shot("reconciliation")

    # Before any bill: how to import them.
    suite.visit("reconciliation?from=2001-01-01&to=2001-01-31")
    empty = suite.testid("bills-empty")
    assert "goodhart import anthropic-admin" in empty.text and "ANTHROPIC_ADMIN_KEY" in empty.text, empty.text
    suite.shot("reconciliation-empty")
    suite.no_errors_logged("reconciliation")


def keys_and_tokens(suite, team):
    suite.visit("keys")
    suite.heading("Virtual keys")
    form = suite.testid("new-key")
    form.find_element(By.NAME, "user").send_keys("browser-test")
    form.find_element(By.NAME, "team").send_keys(team)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    secret = suite.testid("created-key").find_element(By.CLASS_NAME, "secret").text
    assert secret.startswith("gk-"), secret
    key = next(k for k in api("/api/v1/keys")["keys"] if k["user"] == "browser-test")
    assert secret.startswith(f"gk-{key['id']}-")
    suite.shot("key-created")

    suite.testid(f"revoke-{key['id']}").click()
    suite.accept_dialog()
    suite.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"[data-testid='key-status-{key['id']}']"), "revoked"))
    assert next(k for k in api("/api/v1/keys")["keys"] if k["id"] == key["id"])["status"] == "revoked"

    # A refused create says why under the form, and makes nothing.
    form = suite.testid("new-token")
    tokens_before = len(api("/api/v1/tokens")["tokens"])
    Select(form.find_element(By.NAME, "role")).select_by_value("manager")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    refusal = form.find_element(By.CSS_SELECTOR, "[data-testid=form-error]")
    suite.wait.until(lambda d: "needs the team it manages" in refusal.text)
    assert len(api("/api/v1/tokens")["tokens"]) == tokens_before
    suite.driver.get_log("browser")  # the refused request's 400 is expected: drain it
    Select(form.find_element(By.NAME, "role")).select_by_value("viewer")

    form.find_element(By.NAME, "name").send_keys(f"{team} leads")
    form.find_element(By.NAME, "team").send_keys(team)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    token = suite.testid("created-token").find_element(By.CLASS_NAME, "secret").text
    assert token.startswith("gh_view_"), token
    suite.shot("keys-and-tokens")
    suite.no_errors_logged("keys")
    return token


def audit_log(suite):
    suite.visit("audit")
    suite.heading("Audit log")
    entries = api("/api/v1/audit?limit=50")["entries"]
    suite.wait.until(lambda d: len(suite.rows()) == len(entries))
    newest = entries[0]
    assert newest["action"] == "viewer_token.create", newest
    shown = suite.testid(f"audit-action-{newest['seq']}").text
    assert shown == newest["action"], shown
    assert api("/api/v1/audit?action=auth.failure")["entries"], "the refused sign-in is recorded"

    suite.testid("audit-filter-keys").click()
    keys = api("/api/v1/audit?action=key.&limit=50")["entries"]
    assert [e["action"] for e in keys[:2]] == ["key.revoke", "key.create"], keys[:2]
    suite.wait.until(lambda d: len(suite.rows()) == len(keys))
    suite.testid(f"audit-action-{keys[0]['seq']}")
    suite.shot("audit-log")
    suite.no_errors_logged("audit")


def as_team_viewer(suite, token, team, admin_summary):
    suite.sign_in(token)
    who = suite.testid("who")
    assert who.text == f"viewer ({team} leads) · team {team}", who.text
    keys_link = suite.driver.find_element(By.CSS_SELECTOR, "nav a[href='#/keys']")
    assert not keys_link.is_displayed(), "viewers have no keys page"

    summary = overview(suite, token, "viewer-overview")
    assert float(summary["cost_usd"]) < float(admin_summary["cost_usd"]), "one team spends less than all"
    suite.visit("keys")
    suite.heading("Overview")
    bills_link = suite.driver.find_element(By.CSS_SELECTOR, "nav a[href='#/reconciliation']")
    assert not bills_link.is_displayed(), "the bills are the admin's"
    assert api_status("/api/v1/reports/reconciliation", token) == 403
    suite.visit("reconciliation")
    suite.heading("Overview")
    assert not suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid=bills-chart], #page .error")

    suite.visit("leaderboard?by=user&metric=value&from=30d")
    board = api("/api/v1/leaderboard?from=30d&by=user&metric=value", token)
    everyone = api("/api/v1/leaderboard?from=30d&by=user&metric=value")
    suite.wait.until(lambda d: len(suite.rows()) == len(board["rows"]))
    assert 0 < len(board["rows"]) < len(everyone["rows"])
    suite.shot("viewer-leaderboard")

    suite.visit("findings")
    suite.heading("Waste findings")
    assert not suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid^=confirm-], [data-testid^=dismiss-]"), (
        "viewers cannot decide findings"
    )

    suite.no_errors_logged("viewer")
    outsider = next(r["subject"] for r in everyone["rows"] if r["subject"] not in {b["subject"] for b in board["rows"]})
    assert api_status(f"/api/v1/subjects/user/{urllib.parse.quote(outsider)}", token) == 404
    suite.visit(f"subject?{urllib.parse.urlencode({'by': 'user', 'name': outsider})}")
    error = suite.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#page .error")))
    assert outsider in error.text, error.text
    assert api_status("/api/v1/keys", token) == 403
    assert api_status("/api/v1/audit", token) == 403
    audit_link = suite.driver.find_element(By.CSS_SELECTOR, "nav a[href='#/audit']")
    assert not audit_link.is_displayed(), "the audit log is the admin's"
    assert not suite.driver.find_element(By.CSS_SELECTOR, "nav a[href='#/people']").is_displayed(), "so are people's roles"
    suite.shot("viewer-outsider-refused")
    suite.driver.get_log("browser")  # the outsider's 404 is expected: drain it


def as_each_role(suite, team, user):
    """Finops, a team's manager and an engineer each see what their role may do, and no more."""
    def token(body):
        return api("/api/v1/tokens", method="POST", body=body)["token"]

    nav = lambda href: suite.driver.find_element(By.CSS_SELECTOR, f"nav a[href='#/{href}']")
    decisions = "[data-testid^=confirm-], [data-testid^=dismiss-]"

    finops = token({"role": "finops", "name": "finance"})
    suite.sign_in(finops)
    assert suite.testid("who").text == "finops (finance) · every team", suite.testid("who").text
    assert nav("keys").is_displayed() and nav("reconciliation").is_displayed(), "finops manage keys and read bills"
    assert not nav("mine").is_displayed(), "finops are no one person: no own keys"
    assert not nav("people").is_displayed(), "people's roles are the admin's"
    suite.visit("keys")
    suite.heading("Virtual keys")
    suite.testid("new-key")
    assert not suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid=new-token]"), "tokens are the admin's"
    suite.visit("findings")
    suite.heading("Waste findings")
    assert not suite.driver.find_elements(By.CSS_SELECTOR, decisions), "finops decide no findings"
    suite.shot("finops-findings")
    suite.no_errors_logged("finops")

    manager = token({"role": "manager", "team": team})
    suite.sign_in(manager)
    assert suite.testid("who").text == f"manager · team {team}", suite.testid("who").text
    assert not nav("keys").is_displayed() and not nav("reconciliation").is_displayed() and not nav("mine").is_displayed()
    assert not nav("people").is_displayed()
    theirs = api("/api/v1/findings?from=30d", manager)["findings"]
    suite.visit("findings")
    suite.heading("Waste findings")
    if theirs:
        suite.wait.until(lambda d: len(suite.rows()) == len(theirs))
    else:
        suite.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#page p.empty")))
    confirm = suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid^=confirm-]")
    assert len(confirm) == len(theirs), f"a decision per finding of the team: {len(confirm)} of {len(theirs)}"
    suite.shot("manager-findings")
    suite.no_errors_logged("manager")

    engineer = token({"role": "engineer", "user": user})
    suite.sign_in(engineer)
    assert suite.testid("who").text == f"engineer · user {user}", suite.testid("who").text
    assert not nav("keys").is_displayed() and not nav("people").is_displayed()
    suite.heading("My keys")  # an engineer lands on their own page
    assert api_status("/api/v1/people", engineer) == 403
    suite.visit("overview")
    suite.heading("Overview")
    suite.visit("people")
    suite.heading("My keys")  # the People page is the admin's: they land on their own
    mine = overview(suite, engineer, "engineer-overview")
    everyone = api("/api/v1/usage/summary?from=30d&group_by=user")["rows"]
    assert mine["cost_usd"] == next(r["cost_usd"] for r in everyone if r["user"] == user), "their own spend only"
    suite.no_errors_logged("engineer")


def chat(base_url, key):
    """One call through the gateway with the OpenAI SDK, as the person would make it."""
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])


def requests_metered(token):
    return int(api("/api/v1/usage/summary?from=1d", token)["totals"]["requests"])


def my_keys(suite):
    """An engineer makes a key on their own page, sees its secret once, calls the gateway with it
    (metered to them), revokes it; another engineer never sees it; past [self_service] max_keys
    the page shows the API's refusal; the page fits a phone."""
    def token(user):
        return api("/api/v1/tokens", method="POST", body={"role": "engineer", "user": user})["token"]

    nav = lambda testid: suite.driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]")
    assert not nav("nav-mine").is_displayed(), "the admin is no one person: no own keys page"
    kim, lee = token("kim-browser"), token("lee-browser")

    # An engineer lands on their own page.
    suite.sign_in(kim)
    suite.heading("My keys")
    assert nav("nav-mine").is_displayed() and "active" in nav("nav-mine").get_attribute("class")
    limits = api("/api/v1/me/keys", kim)["limits"]
    stated = suite.testid("own-key-limits").text
    assert f"At most {limits['max_keys']} active keys" in stated, stated
    assert f"at most {limits['max_key_days']} days" in stated, stated
    assert suite.testid("own-keys").find_element(By.CSS_SELECTOR, "p.empty").text.startswith("No keys yet")

    # The API's complaint shows next to the field it names, and nothing is made.
    form = suite.testid("new-own-key")
    form.find_element(By.NAME, "expires_in").send_keys(f"{limits['max_key_days'] + 1}d")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = suite.testid("error-expires_in")
    assert f"at most {limits['max_key_days']}d" in error.text, error.text
    assert not api("/api/v1/me/keys", kim)["keys"]
    suite.shot("my-keys-field-error")
    suite.driver.get_log("browser")  # the refused request's 400 is expected: drain it

    form.find_element(By.NAME, "expires_in").clear()
    form.find_element(By.NAME, "expires_in").send_keys("30d")
    form.find_element(By.NAME, "name").send_keys("laptop")
    form.find_element(By.NAME, "agent").send_keys("claude-code")
    form.find_element(By.NAME, "requests_per_minute").send_keys("30")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    created = suite.testid("created-own-key")
    secret = created.find_element(By.CLASS_NAME, "secret").text
    [key] = api("/api/v1/me/keys", kim)["keys"]
    assert secret.startswith(f"gk-{key['id']}-"), (secret, key)
    assert (key["user"], key["name"], key["agent"], key["requests_per_minute"]) == ("kim-browser", "laptop", "claude-code", 30), key
    base_url = suite.testid("openai-base-url").text
    assert base_url == f"{URL}/v1", base_url
    assert suite.testid("anthropic-base-url").text == f"ANTHROPIC_BASE_URL={URL}"
    assert suite.testid(f"own-key-status-{key['id']}").text == "active"
    row = suite.testid(f"own-key-status-{key['id']}").find_element(By.XPATH, "ancestor::tr").text
    assert "laptop" in row and f"gk-{key['id']}-…" in row and "requests 30/min" in row and key["expires_at"][:10] in row, row
    suite.testid("copy-secret").click()
    suite.wait.until(lambda d: suite.testid("copy-secret").text in ("Copied", "Selected: press Ctrl-C"))
    suite.shot("my-keys-created")

    # Shown once: the page again has the key but never its secret.
    suite.visit("mine")
    suite.testid(f"own-key-status-{key['id']}")
    assert not suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid=created-own-key]")
    assert secret not in suite.driver.page_source

    # The key works at the gateway, through the base URL the page gave, metered to its person.
    before = requests_metered(kim)
    reply = chat(base_url, secret)
    assert reply.choices and reply.usage.total_tokens > 0, reply
    deadline = time.monotonic() + WAIT_SECS
    while requests_metered(kim) != before + 1 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert requests_metered(kim) == before + 1, "the call is metered to the engineer"
    everyone = api("/api/v1/usage/summary?from=1d&group_by=user")["rows"]
    assert next(r for r in everyone if r["user"] == "kim-browser")["requests"] == before + 1, everyone

    # Revoked on the page, the key is refused at the gateway.
    suite.testid(f"revoke-own-{key['id']}").click()
    suite.accept_dialog()
    suite.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"[data-testid='own-key-status-{key['id']}']"), "revoked"))
    assert not suite.driver.find_elements(By.CSS_SELECTOR, f"[data-testid='revoke-own-{key['id']}']")
    assert api("/api/v1/me/keys", kim)["keys"][0]["status"] == "revoked"
    try:
        chat(base_url, secret)
        raise AssertionError("a revoked key still calls the gateway")
    except openai.AuthenticationError:
        pass
    suite.shot("my-keys-revoked")
    suite.no_errors_logged("my keys")

    # Another engineer sees only their own keys: none of kim's. On a phone, the page still fits.
    suite.sign_in(lee)
    suite.heading("My keys")
    suite.driver.set_window_size(390, 844)
    try:
        form = suite.testid("new-own-key")
        form.find_element(By.NAME, "name").send_keys("phone")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        suite.testid("created-own-key")
        shown = suite.testid("own-keys").text
        assert key["id"] not in shown and "laptop" not in shown, shown
        assert key["id"] not in {k["id"] for k in api("/api/v1/me/keys", lee)["keys"]}
        overflow = suite.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"my keys scrolls sideways on a phone by {overflow}px"
        suite.shot("phone-my-keys")
    finally:
        suite.driver.set_window_size(1366, 900)

    # Past [self_service] max_keys, the page shows the API's refusal.
    while len([k for k in api("/api/v1/me/keys", lee)["keys"] if k["status"] == "active"]) < limits["max_keys"]:
        api("/api/v1/me/keys", lee, method="POST", body={})
    suite.visit("mine")
    form = suite.testid("new-own-key")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    refusal = suite.testid("form-error")
    assert f"already holds {limits['max_keys']} active keys" in refusal.text, refusal.text
    assert len(api("/api/v1/me/keys", lee)["keys"]) == limits["max_keys"]
    suite.shot("my-keys-at-most")
    suite.driver.get_log("browser")  # the refused request's 409 is expected: drain it


def my_ingest_tokens(suite):
    """An engineer makes a personal ingest token on their own page (secret shown once, with the
    import command), sends usage naming someone else with it (attributed to them), revokes it on
    the page (refused from then on); another engineer never sees it."""
    kim = api("/api/v1/tokens", method="POST", body={"role": "engineer", "user": "kim-tokens"})["token"]
    suite.sign_in(kim)
    suite.heading("My keys")
    section = suite.testid("own-tokens")
    assert "No ingest tokens yet" in section.text, section.text
    limit = api("/api/v1/me/ingest-tokens", kim)["limits"]["max_ingest_tokens"]
    assert f"At most {limit} active at once" in section.text, section.text

    form = suite.testid("new-own-token")
    form.find_element(By.NAME, "name").send_keys("laptop")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    created = suite.testid("created-own-token")
    secret = created.find_element(By.CLASS_NAME, "secret").text
    [token] = api("/api/v1/me/ingest-tokens", kim)["tokens"]
    assert secret.startswith("gh_ingest_") and (token["name"], token["user"], token["role"]) == ("laptop", "kim-tokens", "ingest"), token
    command = suite.testid("import-command").text
    assert command == f"goodhart import claude-code --server {URL} --token <this token>", command
    assert suite.testid("otlp-endpoint").text == f"OTEL_EXPORTER_OTLP_ENDPOINT={URL}/otlp"
    suite.shot("my-ingest-token-created")
    suite.visit("mine")
    suite.testid(f"own-token-status-{token['id']}")
    assert secret not in suite.driver.page_source, "the secret is shown once"

    # What it sends is the engineer's, whoever the event names.
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    event = {"id": f"laptop-{token['id']}", "timestamp": at, "user": "root", "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 10}
    sent = api("/api/v1/usage", secret, method="POST", body=[event])
    assert (sent["accepted"], sent["attributed_to"], sent["reattributed"]) == (1, "kim-tokens", 1), sent
    assert requests_metered(kim) == 1

    suite.testid(f"revoke-own-token-{token['id']}").click()
    suite.accept_dialog()
    suite.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"[data-testid='own-token-status-{token['id']}']"), "revoked"))
    status = None
    try:
        api("/api/v1/usage", secret, method="POST", body=[dict(event, id="after")])
    except urllib.error.HTTPError as error:
        status = error.code
    assert status == 401, f"a revoked ingest token still sends: {status}"
    suite.no_errors_logged("my ingest tokens")

    lee = api("/api/v1/tokens", method="POST", body={"role": "engineer", "user": "lee-tokens"})["token"]
    suite.sign_in(lee)
    suite.heading("My keys")
    assert token["id"] not in suite.testid("own-tokens").text
    suite.shot("my-ingest-tokens-other-person")


def people(suite, team):
    """The admin gives pat-browser the manager role of a team on the People page (a manager
    without a team is refused under the team field), sees it in the table and the API, sees the
    row join the directory once a sign-in recorded pat-browser, takes the role back; the audit log
    has the grant and its removal once each."""
    person = "pat-browser"
    suite.visit("people")
    suite.heading("People")
    assert suite.testid("nav-people").is_displayed() and "active" in suite.testid("nav-people").get_attribute("class")
    explained = suite.testid("people-explained").text
    assert "replaces it" in explained and "from their next request on" in explained, explained
    assert "usage of theirs that names no team" in explained, explained
    # The demo has no single sign-on: no one is in the directory, and no role is given yet.
    assert api("/api/v1/people") == {"people": [], "grants": []}
    assert "after their first single sign-on sign-in" in suite.testid("people-empty").text
    assert suite.driver.find_element(By.CSS_SELECTOR, "#page p.empty").text == "No people and no roles given yet."
    suite.shot("people-empty")

    # A manager needs a team: the API's refusal shows under the team field, and nothing is given.
    form = suite.testid("new-grant")
    form.find_element(By.NAME, "user").send_keys(person)
    Select(form.find_element(By.NAME, "role")).select_by_value("manager")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = suite.testid("error-team")
    assert error.text == "a manager role needs the team they manage", error.text
    assert suite.driver.find_element(By.CSS_SELECTOR, "[data-testid=new-grant] [data-testid=form-error]").get_attribute("textContent") == ""
    assert api("/api/v1/people")["grants"] == []
    suite.shot("people-field-error")
    suite.driver.get_log("browser")  # the refused request's 400 is expected: drain it

    form.find_element(By.NAME, "team").send_keys(team)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    suite.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"[data-testid='role-{person}']"), f"manager of {team}"))
    [grant] = api("/api/v1/people")["grants"]
    assert (grant["user"], grant["role"], grant["team"]) == (person, "manager", team), grant
    [row] = suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid=person-row]")
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == person and cells[3] == "never" and cells[4] == f"manager of {team}", cells
    suite.shot("people-granted")

    # A sign-in records pat-browser in the directory (written here as single sign-on would: the
    # demo has none); their row joins home team, email and last sign-in to the role given.
    signed_in = time.time() - 3600
    with sqlite3.connect(DEMO_DB, timeout=30) as db:
        db.execute(
            "INSERT INTO directory (user_name, team, email, issuer, subject, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (person, team, f"{person}@example.com", "https://idp.example.com", "sub-pat", int(signed_in * 1_000_000)),
        )
    [member] = api("/api/v1/people")["people"]
    suite.driver.refresh()
    suite.heading("People")
    suite.testid(f"subject-team-{team}")
    assert not suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid=people-empty]"), "someone signed in"
    [row] = suite.driver.find_elements(By.CSS_SELECTOR, "[data-testid=person-row]")
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    last = time.strftime("%Y-%m-%d %H:%MZ", time.gmtime(signed_in))
    assert cells[:5] == [person, team, f"{person}@example.com", last, f"manager of {team}"], (cells, member)
    assert suite.testid(f"subject-user-{person}").get_attribute("href").endswith(f"#/subject?by=user&name={person}")
    suite.shot("people-directory")

    # Taken back on the page: their groups decide again.
    suite.testid(f"take-back-{person}").click()
    suite.accept_dialog()
    suite.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"[data-testid='role-{person}']"), "from groups"))
    assert not suite.driver.find_elements(By.CSS_SELECTOR, f"[data-testid='take-back-{person}']")
    assert api("/api/v1/people")["grants"] == []
    suite.shot("people-taken-back")

    audited = api("/api/v1/audit?action=role.&limit=50")["entries"]
    assert [e["action"] for e in audited] == ["role.revoke", "role.grant"], audited
    for entry in audited:
        assert entry["target"] == {"kind": "person", "id": person} and entry["details"] == {"role": "manager", "team": team}, entry
    suite.visit("audit")
    suite.heading("Audit log")
    suite.testid("audit-filter-roles").click()
    suite.wait.until(lambda d: len(suite.rows()) == 2)
    assert [suite.testid(f"audit-action-{e['seq']}").text for e in audited] == ["role.revoke", "role.grant"]
    suite.shot("audit-log-roles")
    suite.no_errors_logged("people")


def phone(suite):
    suite.sign_in(ADMIN)
    suite.driver.set_window_size(390, 844)
    for route, title in (
        ("overview", "Overview"),
        ("leaderboard", "Leaderboard"),
        ("findings", "Waste findings"),
        ("reconciliation", "Bills against the meter"),
        ("people", "People"),
    ):
        suite.visit(route)
        suite.heading(title)
        overflow = suite.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{route} scrolls sideways on a phone by {overflow}px (tables scroll in their box)"
        suite.shot(f"phone-{route}")


def main():
    driver = browser()
    suite = Suite(driver)
    try:
        refused_token(suite)
        suite.sign_in(ADMIN)
        assert suite.testid("who").text == "admin"
        admin_summary = overview(suite)
        board, burner = leaderboard(suite)
        team = subject_pages(suite, board, burner)
        findings(suite)
        budgets_and_alerts(suite)
        reconciliation(suite)
        token = keys_and_tokens(suite, team)
        audit_log(suite)
        as_team_viewer(suite, token, team, admin_summary)
        as_each_role(suite, team, burner["subject"])
        suite.sign_in(ADMIN)
        people(suite, team)
        my_keys(suite)
        my_ingest_tokens(suite)
        phone(suite)
    except (AssertionError, TimeoutException):
        suite.shot("failure")
        (ARTIFACTS / "failure.html").write_text(driver.page_source)
        raise
    finally:
        driver.quit()
    print(f"browser suite passed: {suite.shots} screenshots in {ARTIFACTS}")


if __name__ == "__main__":
    main()
