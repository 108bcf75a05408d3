// What every console page shares: the logged-in account, the console settings, the header
// (page links, who, language, time zone, logout), role-gated elements, the status line and
// DOM helpers.
import { api, ApiError, NetworkError, setCsrfToken, toLogin } from "./api.js";
import { languagePicker, setDefaults, t, translatePage } from "./i18n.js";
import { zonePicker } from "./zonepicker.js";

const ROLE_INCLUDES = { supervisor: ["officer"] };

//: The page links of the header: path, label key, the roles that see it ("" = everyone).
export const PAGES = [
  ["/", "nav.map", ""],
  ["/alarms", "nav.alarms", ""],
  ["/trip", "nav.trip", ""],
  ["/gates", "nav.gates", ""],
  ["/appointments", "nav.appointments", ""],
  ["/declarations", "nav.declarations", "supervisor integration"],
  ["/audit", "nav.audit", "supervisor admin"],
  ["/reports", "nav.reports", "supervisor admin"],
];

export function holds(role, wanted) {
  return wanted.includes(role) || (ROLE_INCLUDES[role] ?? []).some((r) => wanted.includes(r));
}

// Elements with data-roles="admin supervisor" exist only for accounts holding those roles.
export function applyRoles(role, root = document) {
  for (const node of root.querySelectorAll("[data-roles]")) {
    const allowed = holds(role, node.dataset.roles.split(" "));
    node.hidden = !allowed;
    if (!allowed) node.setAttribute("aria-hidden", "true");
    else node.removeAttribute("aria-hidden");
  }
}

export function renderPageNav() {
  const nav = document.getElementById("pages");
  if (!nav) return;
  nav.replaceChildren(...PAGES.map(([path, key, roles]) => {
    const a = el("a", { href: path, "data-i18n": key, text: t(key) });
    if (roles) a.dataset.roles = roles;
    if (location.pathname === path) a.setAttribute("aria-current", "page");
    return a;
  }));
}

// el("td", { class: "x", text: "…", "data-id": 3 }, child, …)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const statusLine = { key: null, detail: "" };

function renderStatus() {
  const node = document.getElementById("status");
  if (!node || statusLine.key === null) return;
  node.textContent = t(statusLine.key) + (statusLine.detail ? ` — ${statusLine.detail}` : "");
}

// The header's status line (the page's own text from now on, in the officer's language).
// ok: true when the page is live, false when it is not, null while it is still starting.
export function setStatus(key, ok, detail = "") {
  const node = document.getElementById("status");
  if (!node) return;
  if (statusLine.key === null) document.addEventListener("languagechange", renderStatus);
  delete node.dataset.i18n; // "connecting…" until the page says more
  statusLine.key = key;
  statusLine.detail = detail;
  renderStatus();
  node.className = ok === null ? "status" : "status " + (ok ? "ok" : "bad");
  node.dataset.state = ok === null ? "connecting" : ok ? "live" : "down";
}

const START_TRIES = "bondwatch.start-tries";
const START_RETRY_FIRST_S = 2;
const START_RETRY_MAX_S = 30;

// Starts a page. A page whose start could not reach the server (restarting, or the
// network down) loads itself again after a growing wait (2 s, doubling up to 30 s) rather
// than stay half-built; any other failure is shown, and left to the officer.
export function runPage(start) {
  start().then(() => forgetTries(), (err) => {
    if (!unreachable(err)) { showError(err); return; }
    console.warn("console: the server could not be reached; the page will load again", err);
    const tries = startTries();
    const waitS = Math.min(START_RETRY_MAX_S, START_RETRY_FIRST_S * 2 ** tries);
    try { sessionStorage.setItem(START_TRIES, String(tries + 1)); } catch { /* storage off */ }
    const until = Date.now() + waitS * 1000;
    const show = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setStatus("status.disconnected", false, t("conn.reconnecting") + " " + t("conn.retry_in", { s: left }));
    };
    show();
    setInterval(show, 1000);
    setTimeout(() => location.reload(), waitS * 1000);
  });
}

function unreachable(err) {
  return err instanceof NetworkError || (err instanceof ApiError && [502, 503, 504].includes(err.status));
}

function startTries() {
  try { return Number(sessionStorage.getItem(START_TRIES)) || 0; } catch { return 0; }
}

function forgetTries() {
  try { sessionStorage.removeItem(START_TRIES); } catch { /* storage off */ }
}

export function showError(err) {
  console.error("console:", err?.stack || err);
  if (err instanceof ApiError && err.status === 403) setStatus("error.forbidden", false, err.message);
  else setStatus("status.disconnected", false, err?.message ?? String(err));
}

// Log in check, settings, header. Resolves to { me, account, settings }, or null when the
// browser is being sent to the login page.
export async function startPage() {
  let me;
  try {
    me = await api("/auth/me");
  } catch (err) {
    if (unreachable(err)) throw err; // runPage() loads the page again
    if (err.status !== 401) setStatus("status.disconnected", false, err.message);
    return null;
  }
  setCsrfToken(me.csrf_token);
  const settings = await api("/console/config");
  // Times in the officer's own zone (its account's, else the console's).
  setDefaults({ defaultLanguage: settings.default_language, zone: me.time_zone ?? settings.time_zone });
  languagePicker(document.getElementById("lang"));
  zonePicker(document.getElementById("lang"), me, settings.time_zone);
  renderPageNav();
  const who = document.getElementById("who");
  const showWho = () => { who.textContent = `${me.account.display_name} · ${t("role." + me.account.role)}`; };
  showWho();
  who.dataset.role = me.account.role;
  who.dataset.username = me.account.username;
  applyRoles(me.account.role);
  translatePage();
  document.addEventListener("languagechange", showWho);
  document.getElementById("logout").addEventListener("click", async () => {
    await api("/auth/logout", { method: "POST" }).catch(() => null);
    toLogin();
  });
  return { me, account: me.account, settings };
}
