"""Single sign-on in a real browser: Debian's headless Chromium driven through chromedriver.

Run by `crates/server/tests/it/oidc.rs` against a Goodhart whose `[auth.oidc]` is a real
`oidc-provider` (tests/oidc/provider.mjs): clicks "Sign in with …" on the dashboard's sign-in
page, fills the provider's login and consent forms as alice (an admin), lands back on the
dashboard signed in, creates a key through the page's form (the page sends the CSRF token),
checks that a write without the token is refused and that scripts cannot read the cookie, then
signs out (here, then at the provider's confirmation page) and checks that the session is over
at both: signing in again asks for the provider's login form.

    python sso_browser.py GOODHART_URL ARTIFACTS_DIR
"""

import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

URL, ARTIFACTS = sys.argv[1].rstrip("/"), Path(sys.argv[2])
ARTIFACTS.mkdir(parents=True, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900"):
    options.add_argument(argument)
driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 20)
shots = 0


def shot(name):
    global shots
    shots += 1
    driver.save_screenshot(str(ARTIFACTS / f"{shots:02d}-{name}.png"))


def fetch_status(method, path, headers="{}"):
    """The status of a fetch made by the page itself (so with its cookies)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch({path!r}, {{method: {method!r}, credentials: 'same-origin', headers: Object.assign({{'content-type': 'application/json'}}, {headers}), body: {method!r} === 'GET' ? undefined : JSON.stringify({{user: 'no-csrf'}})}})"
        ".then(r => done(r.status)).catch(e => done(String(e)));"
    )


try:
    driver.get(URL + "/")
    sso = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=sso]")))
    assert sso.text.startswith("Sign in with "), sso.text
    shot("sign-in-page")
    sso.click()

    # The provider's login form (any password), then its consent form.
    login = wait.until(ec.visibility_of_element_located((By.NAME, "login")))
    login.send_keys("alice")
    driver.find_element(By.NAME, "password").send_keys("anything")
    shot("provider-login")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[value=consent]")))
    shot("provider-consent")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    # Back on the dashboard, signed in as alice, an admin.
    wait.until(lambda d: d.current_url.startswith(URL))
    who = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=who]")))
    wait.until(lambda d: "alice@example.com" in who.text)
    assert who.text == "admin (alice@example.com)", who.text
    shot("signed-in")
    assert "goodhart_session" not in driver.execute_script("return document.cookie"), "the cookie is HttpOnly"

    # The page's own form creates a key (it sends the CSRF token); a bare fetch may not.
    driver.get(URL + "/#/keys")
    form = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=new-key]")))
    form.find_element(By.NAME, "user").send_keys("browser-user")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    created = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=created-key]")))
    assert "created" in created.text, created.text
    shot("key-created")
    assert fetch_status("POST", "/api/v1/keys") == 403, "a write without the CSRF token"
    assert fetch_status("GET", "/api/v1/me") == 200

    # Signing out ends the session at the server, then at the provider (its confirmation
    # page), which sends the browser back to the dashboard's sign-in page.
    driver.find_element(By.ID, "sign-out").click()
    confirm = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[name=logout][value=yes]")))
    shot("provider-logout")
    confirm.click()
    wait.until(lambda d: d.current_url.startswith(URL))
    wait.until(ec.visibility_of_element_located((By.ID, "sign-in")))
    wait.until(lambda d: fetch_status("GET", "/api/v1/me") == 401)
    driver.get(URL + "/")
    sso = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=sso]")))
    shot("signed-out")
    # Signed out at the provider too: signing in again asks for the login form.
    sso.click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[name=login]")))
    shot("provider-login-again")
    print("single sign-on browser suite: ok")
except Exception:
    shot("failure")
    (ARTIFACTS / "page.html").write_text(driver.page_source)
    raise
finally:
    driver.quit()
