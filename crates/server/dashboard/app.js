// Goodhart's dashboard: a client of the JSON API (the same queries as the CLI), no build step.
// Every piece of data reaches the page through textContent, never as markup.
"use strict";

const TOKEN_KEY = "goodhart.token";
const page = document.getElementById("page");
const charts = [];
// Who signed in (`GET /api/v1/me`): the admin, or a viewer limited to `team` when it has one.
// Signed in through single sign-on, the page has no token: the session cookie goes with every
// request, and `me.csrf_token` with every request that changes something.
let me = { role: "viewer" };
const token = () => sessionStorage.getItem(TOKEN_KEY);
// What the signed-in role may do (`/api/v1/me`): read, spend (budgets, keys, bills), decide
// (findings), own_keys (an engineer's own keys), administer (tokens and the rest).
const may = (duty) => (me.may || []).includes(duty);
// Whether the caller is one person with their own page: the admin may every duty but is no one.
const onePerson = () => may("own_keys") && Boolean(me.user);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  // `field`: the request field the API named as wrong, if any.
  constructor(status, message, field = null) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

async function api(path, options = {}) {
  const credentials = token()
    ? { authorization: `Bearer ${token()}` }
    : (options.method || "GET") !== "GET" && me.csrf_token
      ? { "x-csrf-token": me.csrf_token }
      : {};
  const response = await fetch(path, {
    ...options,
    credentials: "same-origin",
    headers: {
      ...credentials,
      "content-type": "application/json",
      ...(options.headers || {}),
    },
  });
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    signOut(token() ? "Your token was refused: sign in again." : "Your session ended: sign in again.");
    throw new ApiError(401, "unauthorized");
  }
  if (!response.ok) {
    throw new ApiError(response.status, body?.error?.message || `HTTP ${response.status}`, body?.error?.field ?? null);
  }
  return body;
}

const usd = (n) =>
  `$${Number(n).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
const count = (n) => Number(n).toLocaleString("en-US");
const day = (rfc3339) => (rfc3339 ? rfc3339.slice(0, 10) : "");

function table(columns, rows, empty = "Nothing in this window.") {
  if (rows.length === 0) return el("p", { class: "empty" }, empty);
  return el(
    "div",
    { class: "scroll" },
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : "" }, c.title)))),
      el(
        "tbody",
        {},
        rows.map((row) =>
          el("tr", {}, columns.map((c) => el("td", { class: c.num ? "num" : "" }, c.cell(row))))
        )
      )
    )
  );
}

// A link to a user's, team's or agent's page.
function subjectLink(by, name, text = name) {
  if (name === null || name === undefined) return text ?? "(none)";
  const query = new URLSearchParams({ by, name });
  return el("a", { href: `#/subject?${query}`, "data-testid": `subject-${by}-${name}` }, text);
}

function card(label, value, testid) {
  return el("div", { class: "card", "data-testid": testid }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

function chart(canvas, config) {
  charts.push(new window.Chart(canvas, config));
}

// Each budget's current window: spent, reserved by calls in flight, forecast, limit, reset.
function budgetsTable(budgets) {
  return table(
    [
      {
        title: "scope",
        cell: (b) =>
          ["user", "team", "agent"].includes(b.scope) ? [`${b.scope} `, subjectLink(b.scope, b.name)] : b.name ? `${b.scope} ${b.name}` : b.scope,
      },
      { title: "period", cell: (b) => `${b.period} (${b.action})` },
      { title: "spent", num: true, cell: (b) => usd(b.spent_usd) },
      { title: "reserved", num: true, cell: (b) => (b.reserved_usd == null ? "" : usd(b.reserved_usd)) },
      { title: "forecast", num: true, cell: (b) => (b.forecast_usd == null ? "" : usd(b.forecast_usd)) },
      { title: "limit", num: true, cell: (b) => usd(b.limit_usd) },
      { title: "resets", cell: (b) => b.resets_at ?? "never" },
    ],
    budgets,
    "No budgets."
  );
}

// ---- pages ---------------------------------------------------------------------------------

async function overview() {
  const [byDayTeam, byModel, budgets, findings] = await Promise.all([
    api("/api/v1/usage/summary?from=30d&group_by=day,team"),
    api("/api/v1/usage/summary?from=30d&group_by=model"),
    api("/api/v1/budgets"),
    api("/api/v1/findings?from=30d"),
  ]);
  const totals = byDayTeam.totals;
  const days = [...new Set(byDayTeam.rows.map((r) => r.day))].sort();
  const teams = [...new Set(byDayTeam.rows.map((r) => r.team ?? "(no team)"))].sort();
  const spend = new Map(byDayTeam.rows.map((r) => [`${r.day}|${r.team ?? "(no team)"}`, Number(r.cost_usd)]));
  const canvas = el("canvas", { "aria-label": "Spend per day by team", role: "img" });
  page.replaceChildren(
    el("h1", {}, "Overview — last 30 days"),
    el(
      "div",
      { class: "cards" },
      card("spend", usd(totals.cost_usd), "spend"),
      card("requests", count(totals.requests), "requests"),
      card("tokens", count(totals.total_tokens), "tokens"),
      card("flagged as waste", usd(findings.totals.wasted_usd), "waste"),
    ),
    totals.unpriced_requests > 0 || totals.estimated_requests > 0
      ? el(
          "p",
          { class: "notice", "data-testid": "callout" },
          `${count(totals.unpriced_requests)} requests have no price yet (not counted as $0: add a price and reprice); `,
          `${count(totals.estimated_requests)} requests have estimated token counts.`
        )
      : "",
    el("div", { class: "panel" }, el("h2", {}, "Spend per day by team"), el("div", { class: "chart" }, canvas)),
    el("h2", {}, "Budgets"),
    budgetsTable(budgets.budgets),
    el("h2", {}, "Top models"),
    table(
      [
        { title: "model", cell: (r) => r.model },
        { title: "requests", num: true, cell: (r) => count(r.requests) },
        { title: "tokens", num: true, cell: (r) => count(r.total_tokens) },
        { title: "spend", num: true, cell: (r) => usd(r.cost_usd) },
        { title: "unpriced", num: true, cell: (r) => count(r.unpriced_requests) },
      ],
      byModel.rows.slice(0, 10)
    )
  );
  chart(canvas, {
    type: "bar",
    data: {
      labels: days,
      datasets: teams.map((team) => ({ label: team, data: days.map((d) => spend.get(`${d}|${team}`) ?? 0) })),
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: { x: { stacked: true }, y: { stacked: true, ticks: { callback: (v) => usd(v) } } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${usd(c.parsed.y)}` } } },
    },
  });
}

async function leaderboard(params) {
  const by = params.get("by") || "user";
  const metric = params.get("metric") || "value";
  const from = params.get("from") || "30d";
  const board = await api(`/api/v1/leaderboard?from=${encodeURIComponent(from)}&by=${by}&metric=${metric}`);
  const link = (changes) => {
    const next = new URLSearchParams({ by, metric, from, ...changes });
    return `#/leaderboard?${next}`;
  };
  const choice = (name, values) =>
    el(
      "span",
      {},
      `${name}: `,
      values.map((v) => {
        const current = { by, metric, from }[name] === v;
        return el("a", { href: link({ [name]: v }), class: current ? "active" : "", "data-testid": `${name}-${v}` }, v, " ");
      })
    );
  page.replaceChildren(
    el("h1", {}, "Leaderboard"),
    el("div", { class: "controls" }, choice("by", ["user", "team", "agent"]), choice("metric", ["value", "efficiency", "volume"]), choice("from", ["7d", "30d", "90d"])),
    el("p", { class: metric === "volume" ? "label-volume" : "", "data-testid": "board-label" }, board.label),
    table(
      [
        { title: "#", num: true, cell: (r) => r.rank },
        { title: by, cell: (r) => subjectLink(by, r.subject) },
        { title: "value / person-week", num: true, cell: (r) => Number(r.value).toFixed(2) },
        { title: "value / $", num: true, cell: (r) => Number(r.efficiency).toFixed(3) },
        { title: "outcomes", num: true, cell: (r) => count(r.outcomes) },
        { title: "spend", num: true, cell: (r) => usd(r.cost_usd) },
        { title: "waste", num: true, cell: (r) => usd(r.waste_usd) },
        { title: "tokens", num: true, cell: (r) => count(r.tokens) },
        { title: "flags", cell: (r) => r.flags.map((f) => el("span", { class: "flag" }, f)) },
      ],
      board.rows
    )
  );
}

// A finding's sampled calls (never their text), to look up in the provider's logs.
function sampledCalls(finding) {
  if (!finding.samples || finding.samples.length === 0) return "";
  return el(
    "details",
    { class: "samples" },
    el("summary", {}, `${finding.samples.length} sampled calls · signals: ${finding.signals.join(", ")}`),
    el(
      "ul",
      {},
      ...finding.samples.map((s) =>
        el(
          "li",
          {},
          `${s.at.replace("T", " ").slice(0, 19)} ${s.model}${s.session ? ` session ${s.session}` : ""}: ` +
            `${count(s.input_tokens)} in, ${count(s.cache_read_tokens)} cached, ${count(s.output_tokens)} out, ${usd(s.cost_usd)}`
        )
      )
    )
  );
}

// Findings with their evidence; the admin can confirm or dismiss each (with a note).
function findingsTable(list, afterDecision) {
  const decide = (finding, decision) => async () => {
    const note = window.prompt(`Why ${decision} this finding? (optional)`) ?? "";
    await api(`/api/v1/findings/${encodeURIComponent(finding.id)}/${decision}`, {
      method: "POST",
      body: JSON.stringify(note ? { note } : {}),
    });
    await afterDecision();
  };
  const columns = [
    { title: "day", cell: (f) => day(f.from) },
    {
      title: "subject",
      cell: (f) =>
        f.subject_kind === "user"
          ? subjectLink("user", f.subject)
          : [`${f.subject_kind} `, subjectLink(f.subject_kind, f.subject), " (", subjectLink("user", f.user), ")"],
    },
    { title: "detector", cell: (f) => f.detector },
    { title: "wasted", num: true, cell: (f) => usd(f.wasted_usd) },
    { title: "confidence", num: true, cell: (f) => Number(f.confidence).toFixed(2) },
    { title: "evidence", cell: (f) => [f.evidence, sampledCalls(f)] },
    { title: "status", cell: (f) => el("span", { class: `status-${f.status}`, "data-testid": `status-${f.id}` }, f.status, f.note ? ` — ${f.note}` : "") },
  ];
  if (may("decide")) {
    columns.push({
      title: "",
      cell: (f) => [
        el("button", { type: "button", onclick: decide(f, "confirm"), "data-testid": `confirm-${f.id}` }, "Confirm"),
        " ",
        el("button", { type: "button", onclick: decide(f, "dismiss"), "data-testid": `dismiss-${f.id}` }, "Dismiss"),
      ],
    });
  }
  return table(columns, list, "No findings in this window.");
}

async function findings(params) {
  const status = params.get("status") || "";
  const query = new URLSearchParams({ from: "30d" });
  if (status) query.set("status", status);
  const doc = await api(`/api/v1/findings?${query}`);
  page.replaceChildren(
    el("h1", {}, "Waste findings — last 30 days"),
    el(
      "div",
      { class: "cards" },
      card("findings", count(doc.totals.findings), "findings-count"),
      card("open", count(doc.totals.open), "findings-open"),
      card("wasted (not dismissed)", usd(doc.totals.wasted_usd), "findings-wasted")
    ),
    el(
      "div",
      { class: "controls" },
      "show: ",
      ["", "open", "confirmed", "dismissed"].map((s) =>
        el("a", { href: s ? `#/findings?status=${s}` : "#/findings", class: s === status ? "active" : "" }, s || "all", " ")
      )
    ),
    findingsTable(doc.findings, render)
  );
}

// One user's, team's or agent's page: spend and outcomes day by day, where the spend went,
// its place on the value board, and its findings.
async function subject(params) {
  const by = params.get("by") || "user";
  const name = params.get("name") || "";
  const from = params.get("from") || "30d";
  const doc = await api(`/api/v1/subjects/${encodeURIComponent(by)}/${encodeURIComponent(name)}?from=${encodeURIComponent(from)}`);
  const row = doc.board;
  const canvas = el("canvas", { "aria-label": `Spend and outcomes per day of ${by} ${name}`, role: "img" });
  const windows = ["7d", "30d", "90d"].map((w) =>
    el("a", { href: `#/subject?${new URLSearchParams({ by, name, from: w })}`, class: w === from ? "active" : "" }, w, " ")
  );
  const other = doc.related_by;
  page.replaceChildren(
    el("h1", {}, `${by} ${name}`),
    el("div", { class: "controls" }, "window: ", windows),
    el(
      "div",
      { class: "cards" },
      card("spend", usd(doc.usage.cost_usd), "subject-spend"),
      card("requests", count(doc.usage.requests), "subject-requests"),
      card("outcomes", row ? count(row.outcomes) : "0", "subject-outcomes"),
      card("value / person-week", row ? Number(row.value).toFixed(2) : "—", "subject-value"),
      card("value rank", row ? `#${row.rank} of ${doc.board_size}` : "not ranked", "subject-rank"),
      card("flagged as waste", row ? usd(row.waste_usd) : usd(0), "subject-waste")
    ),
    row && row.flags.length ? el("p", { class: "notice" }, "Look twice: ", row.flags.map((f) => el("span", { class: "flag" }, f))) : "",
    el("div", { class: "panel" }, el("h2", {}, "Spend and outcomes per day"), el("div", { class: "chart" }, canvas)),
    activitySection(doc.activity),
    el("h2", {}, other === "agent" ? "Agents used" : "People"),
    table(
      [
        { title: other, cell: (r) => subjectLink(other, r.name) },
        { title: "requests", num: true, cell: (r) => count(r.requests) },
        { title: "tokens", num: true, cell: (r) => count(r.total_tokens) },
        { title: "spend", num: true, cell: (r) => usd(r.cost_usd) },
      ],
      doc.related
    ),
    el("h2", {}, "Models"),
    table(
      [
        { title: "model", cell: (r) => r.name },
        { title: "requests", num: true, cell: (r) => count(r.requests) },
        { title: "tokens", num: true, cell: (r) => count(r.total_tokens) },
        { title: "spend", num: true, cell: (r) => usd(r.cost_usd) },
      ],
      doc.models
    ),
    el("h2", {}, "Waste findings"),
    findingsTable(doc.findings, render)
  );
  chart(canvas, {
    data: {
      labels: doc.daily.map((d) => d.day),
      datasets: [
        { type: "bar", label: "spend", data: doc.daily.map((d) => Number(d.cost_usd)), yAxisID: "y" },
        { type: "line", label: "outcomes", data: doc.daily.map((d) => d.outcomes), yAxisID: "outcomes" },
      ],
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: {
        y: { position: "left", ticks: { callback: (v) => usd(v) } },
        outcomes: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, ticks: { precision: 0 } },
      },
    },
  });
}

// A person's coding-agent activity as the vendors report it, beside the verified outcomes
// above and labelled as activity: it never counts as value.
function activitySection(activity) {
  if (!activity) return "";
  const rows = [];
  const cc = activity.claude_code;
  if (cc) {
    const rate = cc.tool_acceptance_rate === null ? "—" : `${Math.round(cc.tool_acceptance_rate * 100)}%`;
    rows.push(
      ["Claude Code", "days active", count(cc.days)],
      ["Claude Code", "sessions", count(cc.sessions)],
      ["Claude Code", "lines added / removed", `${count(cc.lines_added)} / ${count(cc.lines_removed)}`],
      ["Claude Code", "commits / pull requests", `${count(cc.commits)} / ${count(cc.pull_requests)}`],
      ["Claude Code", "edit tool acceptance", rate],
      ["Claude Code", "estimated cost (Anthropic's estimate)", usd(cc.estimated_cost_usd)]
    );
  }
  const gh = activity.copilot;
  if (gh) {
    rows.push(
      ["Copilot", "days active", count(gh.days)],
      ["Copilot", "interactions", count(gh.interactions)],
      ["Copilot", "acceptances", count(gh.acceptances)],
      ["Copilot", "lines added", count(gh.lines_added)]
    );
  }
  return el(
    "section",
    { class: "panel activity", "data-testid": "subject-activity" },
    el("h2", {}, activity.label),
    el("p", { class: "muted" }, activity.note),
    activity.actors.length
      ? el("p", { class: "muted" }, "As reported for ", activity.actors.join(", "), activity.matched ? "" : " (not matched to a known user)")
      : "",
    table(
      [
        { title: "tool", cell: (r) => r[0] },
        { title: "activity", cell: (r) => r[1] },
        { title: "reported", num: true, cell: (r) => r[2] },
      ],
      rows,
      "No activity reported by Claude Code or Copilot in this window."
    )
  );
}

async function budgetsAndAlerts() {
  const [budgets, alerts] = await Promise.all([api("/api/v1/budgets"), api("/api/v1/alerts")]);
  page.replaceChildren(
    el("h1", {}, "Budgets and alerts"),
    budgetsTable(budgets.budgets),
    el("h2", {}, "Alerts — last 30 days"),
    table(
      [
        { title: "when", cell: (a) => a.created_at },
        { title: "kind", cell: (a) => a.kind },
        { title: "scope", cell: (a) => a.scope },
        { title: "message", cell: (a) => a.message },
        { title: "delivered", cell: (a) => (a.delivered_at ? "yes" : "no") },
      ],
      alerts.alerts,
      "No alerts."
    )
  );
}

// Amounts that can go either way (drift): "+$1.20" or "−$0.35".
const signedUsd = (n) => `${Number(n) < 0 ? "−" : "+"}${usd(Math.abs(Number(n)))}`;
const percentShown = (p) => (p === null || p === undefined ? "—" : `${Number(p).toFixed(1)}%`);

// The providers' bills beside what Goodhart metered (admin): totals, metered against billed per
// day for one provider with the days past the alert threshold marked, the spend that never
// passed the gateway, and every day's model row, the largest drift first. Money arrives as
// exact JSON numbers; the page only rounds them to cents to show them.
async function reconciliation(params) {
  const from = params.get("from") || "30d";
  const query = new URLSearchParams({ from });
  if (params.get("to")) query.set("to", params.get("to"));
  const doc = await api(`/api/v1/reports/reconciliation?${query}`);
  const providers = [...new Set(doc.days.map((d) => d.provider))].sort();
  const provider = providers.includes(params.get("provider")) ? params.get("provider") : providers[0];
  const link = (changes) => `#/reconciliation?${new URLSearchParams({ from, ...(provider ? { provider } : {}), ...changes })}`;
  const choice = (name, values, current) =>
    el(
      "span",
      {},
      `${name}: `,
      values.map((v) => el("a", { href: link({ [name]: v }), class: v === current ? "active" : "", "data-testid": `${name}-${v}` }, v, " "))
    );
  const heading = el("h1", {}, `Bills against the meter — ${from === "7d" || from === "30d" || from === "90d" ? `last ${from.slice(0, -1)} days` : `from ${from}`}`);
  const controls = el("div", { class: "controls" }, choice("from", ["7d", "30d", "90d"], from), providers.length > 1 ? choice("provider", providers, provider) : "");
  if (doc.days.length === 0 && doc.accounts.length === 0) {
    page.replaceChildren(
      heading,
      controls,
      el(
        "div",
        { class: "panel", "data-testid": "bills-empty" },
        el("p", {}, "No provider bills imported in this window yet."),
        el(
          "p",
          {},
          "Import them with ",
          el("code", {}, "goodhart import anthropic-admin"),
          " (admin key in ",
          el("code", {}, "ANTHROPIC_ADMIN_KEY"),
          ") or ",
          el("code", {}, "goodhart import openai-admin"),
          " (",
          el("code", {}, "OPENAI_ADMIN_KEY"),
          "), or set those variables when running ",
          el("code", {}, "goodhart serve"),
          " to import every hour."
        )
      )
    );
    return;
  }
  const shownDays = doc.days.filter((d) => d.provider === provider);
  const alerts = doc.days.filter((d) => d.alert);
  const threshold = `${percentShown(doc.threshold.percent)} and ${usd(doc.threshold.min_usd)}`;
  const canvas = el("canvas", { "aria-label": `Metered against billed per day for ${provider}`, role: "img", "data-testid": "bills-chart" });
  page.replaceChildren(
    heading,
    controls,
    el(
      "div",
      { class: "cards" },
      card("metered", usd(doc.metered_usd), "bills-metered"),
      card("billed", usd(doc.billed_usd), "bills-billed"),
      card("drift (billed − metered)", signedUsd(doc.drift_usd), "bills-drift"),
      card("billed, never metered", usd(doc.unmetered_usd), "bills-unmetered"),
      card("bypassing the gateway (list prices)", doc.bypassing_usd === null ? "not configured" : usd(doc.bypassing_usd), "bills-bypassing")
    ),
    unmeteredCallout(doc),
    Number(doc.not_covered_usd) > 0
      ? el(
          "p",
          { class: "muted", "data-testid": "bills-not-covered" },
          `${usd(doc.not_covered_usd)} metered on days or for providers no imported bill covers is left out of these totals (rows marked "no bill").`
        )
      : "",
    el(
      "div",
      { class: "panel" },
      el("h2", {}, `Metered against billed per day — ${provider}`),
      el("p", { class: "muted" }, `A settled day is marked ⚠ when its drift passes ${threshold}.`),
      el("div", { class: "chart" }, canvas)
    ),
    el("h2", {}, `Days past the threshold (${threshold})`),
    alerts.length
      ? el(
          "ul",
          { "data-testid": "bills-alerts" },
          alerts.map((d) =>
            el(
              "li",
              { "data-testid": `bills-alert-${d.provider}-${d.day}` },
              `${d.day} ${d.provider}: metered ${usd(d.metered_usd)}, billed ${usd(d.billed_usd)}, drift ${signedUsd(d.drift_usd)} (${percentShown(d.drift_percent)})`
            )
          )
        )
      : el("p", { class: "empty", "data-testid": "bills-alerts" }, "No settled day passed the threshold."),
    el("h2", {}, `Days — ${provider}`),
    table(
      [
        { title: "day", cell: (d) => el("span", { "data-testid": `bills-day-${d.day}`, class: d.alert ? "alert-day" : "" }, d.alert ? `⚠ ${d.day}` : d.day) },
        { title: "metered", num: true, cell: (d) => usd(d.metered_usd) },
        { title: "billed", num: true, cell: (d) => usd(d.billed_usd) },
        { title: "drift", num: true, cell: (d) => signedUsd(d.drift_usd) },
        { title: "drift %", num: true, cell: (d) => percentShown(d.drift_percent) },
        { title: "judged", cell: (d) => (d.alert ? "past the threshold" : d.judged ? "within" : "not yet (unsettled or no bill)") },
      ],
      shownDays
    ),
    el("h2", {}, "Per day and model — largest drift first, then what no bill covers"),
    table(
      [
        { title: "day", cell: (r) => r.day },
        { title: "provider", cell: (r) => r.provider },
        {
          title: "model",
          cell: (r) => [
            r.model,
            ...(r.covered && r.unmetered ? [" ", el("span", { class: "badge unmetered", "data-testid": "unmetered-badge" }, "unmetered")] : []),
            ...(r.covered ? [] : [" ", el("span", { class: "badge", "data-testid": "no-bill-badge", title: "no cost report of this provider covers the day" }, "no bill")]),
          ],
        },
        { title: "metered tokens", num: true, cell: (r) => count(r.metered_tokens) },
        { title: "reported tokens", num: true, cell: (r) => count(r.reported_tokens) },
        { title: "metered", num: true, cell: (r) => usd(r.metered_usd) },
        { title: "billed", num: true, cell: (r) => usd(r.billed_usd) },
        { title: "drift", num: true, cell: (r) => signedUsd(r.drift_usd) },
        { title: "drift %", num: true, cell: (r) => percentShown(r.drift_percent) },
        {
          title: "metered by",
          cell: (r) =>
            Object.entries(r.by_source).map(([source, s]) => el("span", { class: "flag", title: `${count(s.tokens)} tokens` }, `${source} ${usd(s.usd)}`)),
        },
      ],
      doc.rows
    )
  );
  const alertColor = "#b3261e";
  chart(canvas, {
    type: "bar",
    data: {
      labels: shownDays.map((d) => (d.alert ? `⚠ ${d.day}` : d.day)),
      datasets: [
        { label: "metered", data: shownDays.map((d) => Number(d.metered_usd)), backgroundColor: "#2a5bd7" },
        { label: "billed", data: shownDays.map((d) => Number(d.billed_usd)), backgroundColor: shownDays.map((d) => (d.alert ? alertColor : "#9aa5b8")) },
      ],
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: { x: { ticks: { color: (c) => (shownDays[c.index]?.alert ? alertColor : undefined) } }, y: { ticks: { callback: (v) => usd(v) } } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${usd(c.parsed.y)}` } } },
    },
  });
}

// Spend the meter never saw: models billed with nothing metered, and keys used straight
// against the provider (with the team that owns each, when configured).
function unmeteredCallout(doc) {
  const bypassing = doc.accounts.filter((a) => a.route === "bypassing");
  const unmetered = doc.rows.filter((r) => r.covered && r.unmetered);
  if (bypassing.length === 0 && unmetered.length === 0 && doc.bypassing_usd !== null) return "";
  return el(
    "div",
    { class: "notice", "data-testid": "bills-callout" },
    el("strong", {}, "Spend that did not pass the gateway. "),
    unmetered.length ? `${usd(doc.unmetered_usd)} billed for ${count(unmetered.length)} day-model row(s) of which nothing was metered. ` : "",
    doc.bypassing_usd === null
      ? el(
          "span",
          {},
          "Which keys bypass the gateway is unknown until ",
          el("code", {}, "[reconciliation] gateway_keys"),
          " lists the gateway's own provider keys."
        )
      : bypassing.length
        ? `${usd(doc.bypassing_usd)} at list prices by ${count(bypassing.length)} key(s) that bypass the gateway:`
        : "No key bypasses the gateway.",
    doc.bypassing_by_team.length
      ? el(
          "ul",
          { "data-testid": "bills-bypassing-teams" },
          doc.bypassing_by_team.map((t) => el("li", {}, t.team ? `team ${t.team}` : "no owner configured", `: ${usd(t.usd)}`))
        )
      : "",
    bypassing.length
      ? table(
          [
            { title: "provider", cell: (a) => a.provider },
            { title: "key", cell: (a) => a.api_key_id ?? "(none)" },
            { title: "workspace", cell: (a) => a.workspace ?? "" },
            { title: "team", cell: (a) => a.team ?? "no owner configured" },
            { title: "requests", num: true, cell: (a) => count(a.requests) },
            { title: "tokens", num: true, cell: (a) => count(a.tokens) },
            { title: "list price", num: true, cell: (a) => usd(a.list_usd) },
          ],
          bypassing
        )
      : ""
  );
}

// A create form: its fields become the JSON body; `shown` receives the created secret. The
// API's refusal (which names the field at fault) shows under the form.
function createForm(testid, inputs, label, create) {
  const refusal = el("p", { class: "error", role: "alert", "data-testid": "form-error" });
  const form = el("form", { class: "controls", "data-testid": testid }, inputs, el("button", { type: "submit", class: "primary" }, label), refusal);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ""));
    refusal.textContent = "";
    try {
      await create(fields);
    } catch (error) {
      if (error.status === 401) return;
      refusal.textContent = error.message;
    }
  });
  return form;
}

function secretShown(testid, what, id, secret) {
  return el(
    "div",
    { "data-testid": testid },
    el("p", {}, `${what} ${id} created. Its secret is shown only now:`),
    el("p", { class: "secret" }, secret)
  );
}

// Virtual keys for clients of the gateway, and viewer tokens for people who only read.
async function keys(created = {}) {
  const administer = may("administer");
  const [list, viewers] = await Promise.all([api("/api/v1/keys"), administer ? api("/api/v1/tokens") : { tokens: [] }]);
  const revoke = (what, path) => async () => {
    if (!window.confirm(`Revoke ${what}? It is refused from now on.`)) return;
    await api(path, { method: "POST" });
    await keys();
  };
  const keyForm = createForm(
    "new-key",
    [
      el("input", { name: "user", placeholder: "user", required: true }),
      el("input", { name: "team", placeholder: "team" }),
      el("input", { name: "agent", placeholder: "agent" }),
      el("input", { name: "name", placeholder: "label" }),
    ],
    "Create key",
    async (fields) => {
      const key = await api("/api/v1/keys", { method: "POST", body: JSON.stringify(fields) });
      await keys({ key: secretShown("created-key", "Key", key.id, key.key) });
    }
  );
  const tokenForm = createForm(
    "new-token",
    [
      el("input", { name: "name", placeholder: "for whom" }),
      el("input", { name: "team", placeholder: "team (empty: every team)" }),
      el(
        "select",
        { name: "role", "aria-label": "role" },
        el("option", { value: "viewer" }, "viewer: reads"),
        el("option", { value: "manager" }, "manager: reads the team, decides its findings"),
        el("option", { value: "finops" }, "finops: reads all, manages budgets and keys")
      ),
    ],
    "Create token",
    async (fields) => {
      const token = await api("/api/v1/tokens", { method: "POST", body: JSON.stringify(fields) });
      await keys({ token: secretShown("created-token", "Viewer token", token.id, token.token) });
    }
  );
  page.replaceChildren(
    el("h1", {}, "Virtual keys"),
    el("p", {}, "Clients of the gateway authenticate with these; every call is metered to the key's user, team and agent."),
    keyForm,
    created.key ?? "",
    table(
      [
        { title: "id", cell: (k) => k.id },
        { title: "user", cell: (k) => subjectLink("user", k.user) },
        { title: "team", cell: (k) => k.team ?? "" },
        { title: "agent", cell: (k) => k.agent ?? "" },
        { title: "label", cell: (k) => k.name ?? "" },
        { title: "status", cell: (k) => el("span", { "data-testid": `key-status-${k.id}` }, k.status) },
        {
          title: "",
          cell: (k) =>
            k.status === "active"
              ? el("button", { type: "button", onclick: revoke(`key ${k.id}`, `/api/v1/keys/${encodeURIComponent(k.id)}/revoke`), "data-testid": `revoke-${k.id}` }, "Revoke")
              : "",
        },
      ],
      list.keys,
      "No keys yet."
    ),
    ...(administer ? tokensSection(tokenForm, created, viewers, revoke) : [])
  );
}

// Tokens for people: viewers read, managers also decide their team's findings, finops also
// manage budgets and keys; a token limited to a team sees only that team.
function tokensSection(tokenForm, created, viewers, revoke) {
  return [
    el("h2", {}, "Tokens for people"),
    el("p", {}, "Sign-in for this dashboard and the API: a viewer reads, a manager also confirms and dismisses the findings of the team's people, finops also manage budgets and keys. A token limited to a team sees only that team."),
    tokenForm,
    created.token ?? "",
    table(
      [
        { title: "id", cell: (t) => t.id },
        { title: "for", cell: (t) => t.name ?? "" },
        { title: "role", cell: (t) => t.role },
        { title: "team", cell: (t) => t.team ?? "every team" },
        { title: "status", cell: (t) => el("span", { "data-testid": `token-status-${t.id}` }, t.status) },
        {
          title: "",
          cell: (t) =>
            t.status === "active"
              ? el("button", { type: "button", onclick: revoke(`viewer token ${t.id}`, `/api/v1/tokens/${encodeURIComponent(t.id)}/revoke`), "data-testid": `revoke-${t.id}` }, "Revoke")
              : "",
        },
      ],
      viewers.tokens,
      "No viewer tokens yet."
    ),
  ];
}

// ---- the signed-in person's own page ------------------------------------------------------

// Their own things, a section each; each section is an async function of what was just created
// (a secret to show once) that returns its element.
const mineSections = [ownKeysSection, ownIngestTokensSection];

async function mine(created = {}) {
  const sections = await Promise.all(mineSections.map((section) => section(created)));
  page.replaceChildren(
    el("h1", {}, "My keys"),
    el("p", {}, `What you use the gateway with, as user ${me.user}: every call with these is metered to you and counts against your budgets.`),
    ...sections
  );
}

// A labelled form field with room beside it for what the API says is wrong with it.
function field(label, input, hint = "") {
  return el(
    "label",
    { class: "field" },
    el("span", { class: "field-label" }, label),
    input,
    hint ? el("span", { class: "muted" }, hint) : "",
    el("span", { class: "error field-error", role: "alert", "data-testid": `error-${input.name}` })
  );
}

// Shows the API's refusal next to the field it names, or under the form when it names none.
function formError(form, error) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  const slot = (error.field && form.querySelector(`[data-testid='error-${error.field}']`)) || form.querySelector("[data-testid=form-error]");
  slot.textContent = error.message;
}

function copyButton(text, testid) {
  const button = el("button", { type: "button", "data-testid": testid }, "Copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      // Without the clipboard API (a page not served over HTTPS), select it for Ctrl-C.
      const range = document.createRange();
      range.selectNodeContents(button.previousElementSibling);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      button.textContent = "Selected: press Ctrl-C";
    }
  });
  return button;
}

// A key just made: its secret (only now), and how to point a client at the gateway with it.
function ownKeyCreated(key) {
  const origin = window.location.origin;
  return el(
    "div",
    { class: "panel created", "data-testid": "created-own-key" },
    el("p", {}, el("strong", {}, `Key ${key.id} created. `), "Copy its secret now: it is shown only this once."),
    el("div", { class: "copyable" }, el("code", { class: "secret" }, key.key), copyButton(key.key, "copy-secret")),
    el("p", {}, "OpenAI SDKs and tools: base URL ", el("code", { "data-testid": "openai-base-url" }, `${origin}/v1`), " with this key as the API key."),
    el(
      "p",
      {},
      "Claude Code and Anthropic SDKs: ",
      el("code", { "data-testid": "anthropic-base-url" }, `ANTHROPIC_BASE_URL=${origin}`),
      " and ",
      el("code", {}, "ANTHROPIC_API_KEY="),
      " this key."
    )
  );
}

const perMinute = (n) => (n == null ? "no limit" : `${count(n)}/min`);

// What [self_service] allows, stated before anyone runs into it.
function ownKeyLimits(limits) {
  return el(
    "ul",
    { class: "muted limits", "data-testid": "own-key-limits" },
    el("li", {}, `At most ${count(limits.max_keys)} active keys at once (keys an admin made for you count too).`),
    el("li", {}, `A key lives at most ${count(limits.max_key_days)} days; that is also how long when you leave "expires in" empty.`),
    el(
      "li",
      {},
      limits.max_requests_per_minute == null
        ? "Requests per minute: no cap (empty: no limit)."
        : `At most ${count(limits.max_requests_per_minute)} requests per minute per key (also the limit when you leave it empty).`
    ),
    el(
      "li",
      {},
      limits.max_tokens_per_minute == null
        ? "Tokens per minute: no cap (empty: no limit)."
        : `At most ${count(limits.max_tokens_per_minute)} tokens per minute per key (also the limit when you leave it empty).`
    )
  );
}

// A revoke button's handler for one of the person's own things: confirm, revoke, show the page
// again (or the API's refusal in the button's place).
function revokeOwn(what, name, users, path) {
  return async (event) => {
    if (!window.confirm(`Revoke ${what}${name ? ` (${name})` : ""}? ${users} is refused from now on.`)) return;
    try {
      await api(path, { method: "POST" });
    } catch (error) {
      if (error.status !== 401) event.target.replaceWith(el("span", { class: "error", role: "alert" }, error.message));
      return;
    }
    await mine();
  };
}

// A section of the person's own things whose self-service is turned off ([self_service]):
// the API's refusal says so, and who to ask.
function ownSectionOff(testid, title, what, error) {
  return el(
    "section",
    { "data-testid": testid },
    el("h2", {}, title),
    el("p", { class: "notice", "data-testid": `${testid}-off` }, el("strong", {}, `You cannot make your own ${what} on this server. `), error.message)
  );
}

// The person's virtual keys: make one within [self_service] (the secret shown once), revoke.
async function ownKeysSection(created) {
  let doc;
  try {
    doc = await api("/api/v1/me/keys");
  } catch (error) {
    if (error.status !== 403) throw error;
    return ownSectionOff("own-keys", "Virtual keys", "keys", error);
  }
  const limits = doc.limits;
  const counts = ["requests_per_minute", "tokens_per_minute"];
  const input = (name, attrs = {}) => el("input", { name, ...attrs });
  const form = el(
    "form",
    { class: "fields", "data-testid": "new-own-key" },
    field("Name", input("name", { placeholder: "laptop" })),
    field("Project", input("project", { placeholder: "optional" })),
    field("Agent", input("agent", { placeholder: "claude-code" })),
    field("Expires in", input("expires_in", { placeholder: `${limits.max_key_days}d` }), `e.g. 30d, 12h, 2w; at most ${limits.max_key_days}d`),
    field(
      "Requests per minute",
      input("requests_per_minute", { type: "number", min: 1, step: 1, placeholder: limits.max_requests_per_minute ?? "no limit" }),
      limits.max_requests_per_minute == null ? "" : `at most ${count(limits.max_requests_per_minute)}`
    ),
    field(
      "Tokens per minute",
      input("tokens_per_minute", { type: "number", min: 1, step: 1, placeholder: limits.max_tokens_per_minute ?? "no limit" }),
      limits.max_tokens_per_minute == null ? "" : `at most ${count(limits.max_tokens_per_minute)}`
    ),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Create key")),
    el("p", { class: "error", role: "alert", "data-testid": "form-error" })
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = Object.fromEntries(
      [...new FormData(form)].filter(([, v]) => v.trim() !== "").map(([k, v]) => [k, counts.includes(k) ? Number(v) : v.trim()])
    );
    let key;
    try {
      key = await api("/api/v1/me/keys", { method: "POST", body: JSON.stringify(fields) });
    } catch (error) {
      if (error.status !== 401) formError(form, error);
      return;
    }
    await mine({ ownKey: ownKeyCreated(key) });
  });
  const revoke = (key) => revokeOwn(`key ${key.id}`, key.name, "Anything using it", `/api/v1/me/keys/${encodeURIComponent(key.id)}/revoke`);
  return el(
    "section",
    { "data-testid": "own-keys" },
    el("h2", {}, "Virtual keys"),
    el("p", {}, "Clients of the gateway authenticate with these. Make one per machine or tool, revoke it when you stop using it."),
    ownKeyLimits(limits),
    form,
    created.ownKey ?? "",
    table(
      [
        { title: "name", cell: (k) => k.name ?? "" },
        { title: "project", cell: (k) => k.project ?? "" },
        { title: "agent", cell: (k) => k.agent ?? "" },
        { title: "prefix", cell: (k) => el("code", {}, `gk-${k.id}-…`) },
        { title: "status", cell: (k) => el("span", { "data-testid": `own-key-status-${k.id}` }, k.status) },
        { title: "expires", cell: (k) => (k.expires_at ? day(k.expires_at) : "never") },
        { title: "limits", cell: (k) => `requests ${perMinute(k.requests_per_minute)}, tokens ${perMinute(k.tokens_per_minute)}` },
        { title: "created", cell: (k) => day(k.created_at) },
        {
          title: "",
          cell: (k) =>
            k.status === "active" ? el("button", { type: "button", onclick: revoke(k), "data-testid": `revoke-own-${k.id}` }, "Revoke") : "",
        },
      ],
      doc.keys,
      "No keys yet: make one above."
    )
  );
}

// An ingest token just made: its secret (only now), and how to send one's local usage with it.
function ownTokenCreated(token) {
  const origin = window.location.origin;
  return el(
    "div",
    { class: "panel created", "data-testid": "created-own-token" },
    el("p", {}, el("strong", {}, `Ingest token ${token.id} created. `), "Copy its secret now: it is shown only this once."),
    el("div", { class: "copyable" }, el("code", { class: "secret" }, token.token), copyButton(token.token, "copy-token-secret")),
    el("p", {}, "Agents' local logs: ", el("code", { "data-testid": "import-command" }, `goodhart import claude-code --server ${origin} --token <this token>`), " (or codex)."),
    el(
      "p",
      {},
      "OpenTelemetry exporters: ",
      el("code", { "data-testid": "otlp-endpoint" }, `OTEL_EXPORTER_OTLP_ENDPOINT=${origin}/otlp`),
      " and ",
      el("code", {}, "OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer <this token>"),
      "."
    )
  );
}

// The person's ingest tokens: what they send with one is theirs, whatever user it names.
async function ownIngestTokensSection(created) {
  let doc;
  try {
    doc = await api("/api/v1/me/ingest-tokens");
  } catch (error) {
    if (error.status !== 403) throw error;
    return ownSectionOff("own-tokens", "Ingest tokens", "ingest tokens", error);
  }
  const form = el(
    "form",
    { class: "fields", "data-testid": "new-own-token" },
    field("Name", el("input", { name: "name", placeholder: "laptop" })),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Create ingest token")),
    el("p", { class: "error", role: "alert", "data-testid": "form-error" })
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = new FormData(form).get("name").trim();
    let token;
    try {
      token = await api("/api/v1/me/ingest-tokens", { method: "POST", body: JSON.stringify(name ? { name } : {}) });
    } catch (error) {
      if (error.status !== 401) formError(form, error);
      return;
    }
    await mine({ ownToken: ownTokenCreated(token) });
  });
  const revoke = (token) =>
    revokeOwn(`ingest token ${token.id}`, token.name, "What sends with it", `/api/v1/me/ingest-tokens/${encodeURIComponent(token.id)}/revoke`);
  return el(
    "section",
    { "data-testid": "own-tokens" },
    el("h2", {}, "Ingest tokens"),
    el(
      "p",
      {},
      `Send the usage your agents logged on your own machine (calls that never passed the gateway). Everything sent with these is yours, as user ${me.user}, whatever user it names; it may only send. `,
      `At most ${count(doc.limits.max_ingest_tokens)} active at once.`
    ),
    form,
    created.ownToken ?? "",
    table(
      [
        { title: "name", cell: (t) => t.name ?? "" },
        { title: "id", cell: (t) => el("code", {}, t.id) },
        { title: "status", cell: (t) => el("span", { "data-testid": `own-token-status-${t.id}` }, t.status) },
        { title: "created", cell: (t) => day(t.created_at) },
        {
          title: "",
          cell: (t) =>
            t.status === "active" ? el("button", { type: "button", onclick: revoke(t), "data-testid": `revoke-own-token-${t.id}` }, "Revoke") : "",
        },
      ],
      doc.tokens,
      "No ingest tokens yet."
    )
  );
}

// The audit log (admin): who did what, to what, from where, newest first, a page at a time.
async function audit(params) {
  const query = new URLSearchParams({ limit: "50" });
  for (const name of ["action", "outcome", "actor", "cursor"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  const doc = await api(`/api/v1/audit?${query}`);
  const link = (changes, text, testid) => {
    const next = new URLSearchParams(params);
    next.delete("cursor");
    for (const [name, value] of Object.entries(changes)) {
      if (value) next.set(name, value);
      else next.delete(name);
    }
    return el("a", { href: `#/audit?${next}`, "data-testid": testid }, text);
  };
  const actor = (a) => [a.kind, a.id, a.name ? `(${a.name})` : null].filter(Boolean).join(" ");
  page.replaceChildren(
    el("h1", {}, "Audit log"),
    el("p", {}, "Every admin action, failed sign-in and refusal, newest first. Entries are never changed or deleted."),
    el(
      "div",
      { class: "controls" },
      "show: ",
      [["", "all"], ["key.", "keys"], ["viewer_token.", "viewer tokens"], ["budget.", "budgets"], ["finding.", "findings"], ["role.", "roles"], ["auth.", "sign-in failures"], ["access.", "refusals"]].flatMap(([prefix, text]) =>
        [Object.assign(link({ action: prefix }, text, `audit-filter-${text}`), { className: (params.get("action") || "") === prefix ? "active" : "" }), " "]
      )
    ),
    table(
      [
        { title: "when", cell: (e) => el("span", { title: e.at }, `${e.at.slice(0, 19).replace("T", " ")}Z`) },
        { title: "who", cell: (e) => actor(e.actor) },
        { title: "action", cell: (e) => el("span", { "data-testid": `audit-action-${e.seq}` }, e.action) },
        { title: "outcome", cell: (e) => e.outcome },
        { title: "target", cell: (e) => (e.target ? `${e.target.kind} ${e.target.id ?? ""}` : "") },
        { title: "from", cell: (e) => e.address ?? "" },
        { title: "count", num: true, cell: (e) => count(e.count) },
        { title: "details", cell: (e) => el("code", {}, JSON.stringify(e.details)) },
      ],
      doc.entries,
      "No entries."
    ),
    doc.next_cursor ? el("p", {}, link({ cursor: doc.next_cursor }, "Older entries →", "audit-older")) : ""
  );
  for (const row of page.querySelectorAll("tbody tr")) row.setAttribute("data-testid", "audit-row");
}

// ---- people and the roles the admin gives them --------------------------------------------

const ROLES = ["engineer", "viewer", "manager", "finops", "admin"];

// A grant as one says it: "manager of payments", "viewer of every team", "finops".
function roleGiven(grant) {
  if (grant.team) return `${grant.role} of ${grant.team}`;
  return grant.role === "viewer" ? "viewer of every team" : grant.role;
}

const minute = (rfc3339) => `${rfc3339.slice(0, 16).replace("T", " ")}Z`;

// Everyone the server knows (admin): the people single sign-on recorded, with their home team,
// merged with the roles the admin gave (to them, or to people yet to sign in); a form to give a
// role, and "Take back" per grant.
async function people() {
  const doc = await api("/api/v1/people");
  const byUser = new Map();
  for (const person of doc.people) byUser.set(person.user, { user: person.user, person, grant: null });
  for (const grant of doc.grants) byUser.set(grant.user, { user: grant.user, person: byUser.get(grant.user)?.person ?? null, grant });
  const rows = [...byUser.values()].sort((a, b) => a.user.localeCompare(b.user));

  const form = el(
    "form",
    { class: "fields", "data-testid": "new-grant" },
    field("Person", el("input", { name: "user", placeholder: "ana", required: true, list: "people-known" }), "the usage user their sign-in names"),
    field(
      "Role",
      el("select", { name: "role" }, ROLES.map((role) => el("option", { value: role }, role))),
      "an engineer has their own usage and keys; a viewer reads; a manager also decides the team's findings; finops also manage budgets and keys; an admin everything"
    ),
    field("Team", el("input", { name: "team", placeholder: "payments" }), "a manager's (required), a viewer's (empty: every team); no other role has one"),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Give role")),
    el("p", { class: "error", role: "alert", "data-testid": "form-error" })
  );
  const known = el("datalist", { id: "people-known" }, rows.map((r) => el("option", { value: r.user })));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, v.trim()]));
    const body = { role: values.role, ...(values.team ? { team: values.team } : {}) };
    try {
      await api(`/api/v1/people/${encodeURIComponent(values.user)}/role`, { method: "PUT", body: JSON.stringify(body) });
    } catch (error) {
      if (error.status !== 401) formError(form, error);
      return;
    }
    await people();
  });
  const takeBack = (grant) => async (event) => {
    const question = `Take back ${roleGiven(grant)} from ${grant.user}? Their groups decide their role again from their next request.`;
    if (!window.confirm(question)) return;
    try {
      await api(`/api/v1/people/${encodeURIComponent(grant.user)}/role`, { method: "DELETE" });
    } catch (error) {
      if (error.status !== 401) event.target.replaceWith(el("span", { class: "error", role: "alert" }, error.message));
      return;
    }
    await people();
  };

  page.replaceChildren(
    el("h1", {}, "People"),
    el(
      "ul",
      { class: "muted limits", "data-testid": "people-explained" },
      el(
        "li",
        {},
        "A person's role comes from their identity provider's groups. A role given here replaces it — raising or lowering it — from their next request on, an open session included; it can be given before their first sign-in. Taking it back lets their groups decide again."
      ),
      el(
        "li",
        {},
        "A person's home team is the team their groups name, recorded at each single sign-on sign-in: usage of theirs that names no team (keys made without one, the ingest API, OTLP, imports) is attributed to it as it is stored."
      )
    ),
    doc.people.length === 0
      ? el(
          "div",
          { class: "notice", "data-testid": "people-empty" },
          el("strong", {}, "No one has signed in through single sign-on yet. "),
          "People appear here after their first single sign-on sign-in, with the home team their groups give. You can give a role to someone before then, by the usage user their sign-in will name."
        )
      : "",
    el("h2", {}, "Give a role"),
    form,
    known,
    el("h2", {}, "Everyone"),
    table(
      [
        { title: "user", cell: (r) => (r.person ? subjectLink("user", r.user) : r.user) },
        { title: "home team", cell: (r) => (r.person?.team ? subjectLink("team", r.person.team) : r.person ? "(none)" : "") },
        { title: "email", cell: (r) => r.person?.email ?? "" },
        { title: "last sign-in", cell: (r) => (r.person ? el("span", { title: r.person.updated_at }, minute(r.person.updated_at)) : "never") },
        {
          title: "role",
          cell: (r) =>
            r.grant
              ? el("span", { "data-testid": `role-${r.user}`, title: `given ${minute(r.grant.granted_at)}` }, roleGiven(r.grant))
              : el("span", { class: "muted", "data-testid": `role-${r.user}` }, "from groups"),
        },
        {
          title: "",
          cell: (r) => (r.grant ? el("button", { type: "button", onclick: takeBack(r.grant), "data-testid": `take-back-${r.user}` }, "Take back") : ""),
        },
      ],
      rows,
      "No people and no roles given yet."
    )
  );
  for (const row of page.querySelectorAll("tbody tr")) row.setAttribute("data-testid", "person-row");
}

// ---- routing and sign-in ---------------------------------------------------------------------

const routes = { overview, leaderboard, findings, budgets: budgetsAndAlerts, reconciliation, keys: () => keys(), mine: () => mine(), people: () => people(), audit, subject };
// Pages a role reaches only when it may do their duty.
const needs = { keys: "spend", reconciliation: "spend", people: "administer", audit: "administer" };
// Pages for one person only (not the admin, who may every duty but is no one).
const personal = new Set(["mine"]);
const reaches = (path) => Boolean(routes[path]) && (!needs[path] || may(needs[path])) && (!personal.has(path) || onePerson());

async function render() {
  while (charts.length) charts.pop().destroy();
  // A person (an engineer) lands on their own page; everyone else on the overview.
  const home = onePerson() ? "mine" : "overview";
  const [path, query] = (location.hash.replace(/^#\/?/, "") || home).split("?");
  const show = reaches(path) ? routes[path] : routes[home];
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === `#/${path}`);
  }
  page.replaceChildren(el("p", {}, "Loading…"));
  try {
    await show(new URLSearchParams(query || ""));
  } catch (error) {
    if (error.status !== 401) page.replaceChildren(el("p", { class: "error", role: "alert" }, error.message));
  }
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  me = { role: "viewer" };
  document.getElementById("nav").hidden = true;
  page.replaceChildren();
  document.getElementById("sign-in").hidden = false;
  document.getElementById("sign-in-error").textContent = message;
  showSingleSignOn();
}

// Offers "Sign in with …" when the server has single sign-on configured.
async function showSingleSignOn() {
  const sso = await fetch("/auth/sso").then((r) => r.json()).catch(() => null);
  const link = document.getElementById("sso");
  if (sso?.enabled) {
    link.textContent = `Sign in with ${sso.name}`;
    link.href = sso.login;
    link.hidden = false;
  }
}

// Ends a single sign-on session at the server (the token of a pasted one is just forgotten),
// then at the identity provider when the server names its end-session URL: the provider signs
// the person out there too and sends the browser back here.
async function logOut() {
  if (!token() && me.csrf_token) {
    const response = await fetch("/auth/logout", { method: "POST", credentials: "same-origin", headers: { "x-csrf-token": me.csrf_token } }).catch(() => null);
    const endSession = response?.ok ? response.headers.get("x-end-session-url") : null;
    if (endSession) {
      window.location.assign(endSession);
      return;
    }
  }
  signOut();
}

// Asks the server who the stored token is, then shows what that role may see.
async function signIn() {
  try {
    me = await api("/api/v1/me");
  } catch (error) {
    if (error.status !== 401) signOut(error.message);
    return;
  }
  document.getElementById("sign-in").hidden = true;
  document.getElementById("nav").hidden = false;
  for (const link of document.querySelectorAll("nav a[data-spend]")) link.hidden = !may("spend");
  for (const link of document.querySelectorAll("nav a[data-admin]")) link.hidden = !may("administer");
  for (const link of document.querySelectorAll("nav a[data-person]")) link.hidden = !onePerson();
  const person = me.identity ? me.identity.email || me.identity.name || me.identity.subject : null;
  const scope = me.user ? `user ${me.user}` : me.team ? `team ${me.team}` : "every team";
  document.getElementById("who").textContent =
    me.role === "admin"
      ? `admin${person ? ` (${person})` : ""}`
      : `${me.role}${person || me.name ? ` (${person || me.name})` : ""} · ${scope}`;
  render();
}

document.getElementById("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  signIn();
});
document.getElementById("sign-out").addEventListener("click", () => logOut());
window.addEventListener("hashchange", render);
// A pasted token, else a live single sign-on session (asked without a 401), else the form.
if (token()) signIn();
else
  fetch("/auth/sso", { credentials: "same-origin" })
    .then((r) => r.json())
    .then((sso) => (sso.signed_in ? signIn() : signOut()))
    .catch(() => signOut());
