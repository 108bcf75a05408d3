// The audit log: search (actor, action, object, time range) with paging, and verification
// of the hash chain.
import { apiPage, api } from "./api.js";
import { actionLabel, configuredZone, formatTime, objectLabel, t, translatePage } from "./i18n.js";
import { el, setStatus, showError, runPage, startPage } from "./shell.js";
import { localToRfc3339 } from "./zonetime.js";

const PAGE_SIZE = 50;
const state = { offset: 0, total: 0 };

function query() {
  const form = document.getElementById("audit-filters");
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(state.offset), order: "desc" });
  for (const name of ["actor", "action", "object_type", "object_id"]) {
    const value = form[name].value.trim();
    if (value) params.set(name, value);
  }
  for (const name of ["since", "until"]) {
    const value = localToRfc3339(form[name].value, configuredZone());
    if (value) params.set(name, value);
  }
  return params;
}

function details(entry) {
  const d = entry.details ?? {};
  const parts = [];
  if (d.comment) parts.push(`${t("action.comment")}: ${d.comment}`);
  if (d.from && d.to) parts.push(`${t("alarm.status." + d.from)} → ${t("alarm.status." + d.to)}`);
  if ("assignee" in d) parts.push(`${t("alarms.assignee")}: ${d.assignee ?? "—"}`);
  const rest = Object.fromEntries(Object.entries(d).filter(([k]) => !["comment", "from", "to", "assignee", "previous_assignee"].includes(k)));
  if (Object.keys(rest).length) parts.push(JSON.stringify(rest));
  return parts.join(" · ");
}

async function load() {
  const error = document.getElementById("audit-error");
  error.textContent = "";
  let page;
  try {
    page = await apiPage("/audit?" + query());
  } catch (err) {
    error.textContent = err.message;
    throw err;
  }
  state.total = page.total ?? page.data.length;
  document.querySelector("#audit-table tbody").replaceChildren(...page.data.map((entry) => el("tr", { "data-seq": entry.seq, "data-action": entry.action, "data-actor": entry.actor },
    el("td", { text: String(entry.seq) }), el("td", { text: formatTime(entry.at) }),
    el("td", { class: "actor", text: entry.actor === "system" ? t("actor.system") : entry.actor }),
    el("td", { class: "action", text: actionLabel(entry.action) }),
    el("td", { text: objectLabel(entry.object_type, entry.object_id) }),
    el("td", { class: "details", "data-raw": "", text: details(entry) }))));
  const first = state.total ? state.offset + 1 : 0;
  const last = state.offset + page.data.length;
  document.getElementById("audit-range").textContent = t("page.range", { first, last, total: state.total });
  document.getElementById("audit-prev").disabled = state.offset === 0;
  document.getElementById("audit-next").disabled = last >= state.total;
  document.getElementById("audit-table").dataset.loaded = String(Date.now());
  setStatus("status.live", true);
}

async function verifyChain() {
  const out = document.getElementById("audit-verify-result");
  out.textContent = t("audit.verifying"); out.className = ""; delete out.dataset.ok;
  const result = await api("/audit/verify");
  out.dataset.ok = result.ok ? "1" : "0";
  out.className = result.ok ? "ok verify" : "bad verify";
  out.textContent = result.ok
    ? t("audit.verify_ok", { n: result.entries, at: formatTime(new Date().toISOString()) })
    : t("audit.verify_bad", { n: result.entries, seq: result.first_bad_seq ?? "?", reason: result.reason ?? "" });
}

async function start() {
  const ctx = await startPage();
  if (!ctx) return;
  translatePage();
  const form = document.getElementById("audit-filters");
  const params = new URLSearchParams(location.search);
  for (const name of ["actor", "action", "object_type", "object_id"]) if (params.get(name)) form[name].value = params.get(name);
  form.addEventListener("submit", (event) => { event.preventDefault(); state.offset = 0; load().catch(showError); });
  document.getElementById("audit-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); load().catch(showError); });
  document.getElementById("audit-next").addEventListener("click", () => { state.offset += PAGE_SIZE; load().catch(showError); });
  document.getElementById("audit-verify").addEventListener("click", () => verifyChain().catch(showError));
  document.addEventListener("languagechange", () => load().catch(showError));
  await load();
}

runPage(start);
