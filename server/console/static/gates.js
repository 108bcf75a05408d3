// Gate lanes: the latest passage per lane, OCR readings with confidence and review flags,
// the decision and its reasons, the images with the text boxes read (evidence.js), and the
// officer's override with a comment.
// Built on CONTRACT.md's passage shape; a server without /passages shows "no passages yet".
// Read over REST, then kept current from the live stream's passages.
import { api } from "./api.js";
import { commentDialog } from "./dialog.js";
import { list } from "./forms.js";
import { formatTime, t, translatePage } from "./i18n.js";
import { reasonItems } from "./reasons.js";
import { applyRoles, el, runPage, startPage } from "./shell.js";
import { LiveSource, timed } from "./datasource.js";
import { evidenceStrip } from "./evidence.js";

//: The override request body (CONTRACT: override with mandatory comment; `action` as in the
//: gate command: open / hold).
export function overrideBody(action, comment) { return { action, comment }; }

//: The correction request body (POST /passages/{id}/correct): every container number the
//: officer reads (separated by spaces or commas), the plate (left out when empty).
export function correctionBody(containersText, plateText, comment) {
  const containers = list(containersText).map((c) => c.toUpperCase());
  const plate = plateText.trim();
  return plate ? { containers, plate, comment } : { containers, comment };
}

// A held passage the server decided itself (not overridden) may have its reading corrected.
export const correctable = (p) => decisionOf(p).effective === "hold" && !decisionOf(p).override;

//: Passages kept and listed (the newest).
const KEEP = 200;
const state = { ctx: null, passages: [], available: true, source: null };

const passageTime = (p) => p.at ?? p.ts ?? p.decided_at ?? p.created_at ?? null;
const laneKey = (p) => `${p.gate_id ?? p.gate_node ?? p.node_id ?? "?"} · ${p.lane ?? "?"}`;

// The decision as { action (the server's), effective (an override's, else the server's),
// reasons, override } whatever way the server nests it.
export function decisionOf(p) {
  const d = p.decision;
  const action = typeof d === "string" ? d : d?.action ?? p.action ?? null;
  const reasons = (typeof d === "object" && d?.reasons) || p.reasons || [];
  const override = p.override ?? (typeof d === "object" ? d?.override : null) ?? null;
  const effective = p.effective ?? override?.action ?? action;
  return { action, effective, reasons, override };
}

const decisionText = (action) => t("gates.decision." + (action ?? "pending"));

// The latest passage of every lane, newest lane activity first.
export function latestPerLane(passages) {
  const lanes = new Map();
  for (const p of passages) {
    const key = laneKey(p);
    const known = lanes.get(key);
    if (!known || Date.parse(passageTime(p)) > Date.parse(passageTime(known))) lanes.set(key, p);
  }
  return [...lanes.entries()].sort((a, b) => Date.parse(passageTime(b[1])) - Date.parse(passageTime(a[1])));
}

function pct(confidence) {
  return confidence == null ? "—" : `${Math.round(confidence * (confidence <= 1 ? 100 : 1))}%`;
}

function reading(text, confidence, review, extra = []) {
  return el("li", { class: review ? "needs-review" : "", "data-review": review ? "1" : "0" },
    el("strong", { "data-raw": "", text: text || "—" }), " ", el("span", { class: "conf", text: pct(confidence) }),
    ...extra, review ? el("span", { class: "badge review", text: t("gates.needs_review") }) : null);
}

function card(key, p) {
  const decision = decisionOf(p);
  const containers = (p.containers ?? []).map((c) => reading(c.number, c.confidence, c.needs_review,
    [c.check_digit_ok === false ? el("span", { class: "badge bad-digit", text: t("gates.check_digit_bad") }) : null,
     c.iso_type ? el("span", { class: "muted", text: ` ${c.iso_type}` }) : null]));
  const plate = p.plate ? reading(p.plate.text, p.plate.confidence, p.plate.needs_review) : el("li", { class: "muted", text: t("gates.no_plate") });
  return el("article", { class: `lane decision-${decision.effective ?? "none"}`, "data-lane": key, "data-passage": p.passage_id, "data-decision": decision.effective ?? "" },
    el("h3", { text: key }),
    el("p", {}, el("time", { text: formatTime(passageTime(p)) }), " · ", t("gates.direction." + (p.direction ?? "in")),
      p.trip_id ? el("span", {}, " · ", el("a", { href: "/trip?id=" + encodeURIComponent(p.trip_id), text: p.trip_id })) : null,
      p.appointment_id ? el("span", { class: "appointment" }, " · ", t("gates.appointment"), " ",
        el("a", { href: "/appointments?id=" + encodeURIComponent(p.appointment_id), text: p.appointment_id })) : null),
    el("h4", { text: t("gates.containers") }), el("ul", { class: "readings" }, ...containers),
    el("h4", { text: t("gates.plate") }), el("ul", { class: "readings" }, plate),
    el("h4", { text: t("gates.decision") }),
    el("p", { class: "decision" }, el("span", { class: "badge decision-" + (decision.effective ?? "none"), text: decisionText(decision.effective) })),
    decision.override ? el("p", { class: "override", "data-by": decision.override.by ?? decision.override.actor ?? "" },
      t("gates.overridden", { who: decision.override.by ?? decision.override.actor ?? "?", server: decisionText(decision.action) }),
      " ", el("q", { "data-raw": "", text: decision.override.comment ?? "" })) : null,
    p.correction ? correctionLine(p.correction) : null,
    el("ul", { class: "reasons" }, ...reasonItems(p, decision.reasons)),
    el("h4", { text: t("evidence.title") }), evidenceStrip(p),
    el("div", { class: "actions", "data-roles": "officer" },
      el("button", { type: "button", class: "override-open", text: t("gates.override"), onclick: () => override(p) }),
      correctable(p) ? el("button", { type: "button", class: "correct-open", text: t("gates.correct"), onclick: () => correct(p) }) : null));
}

// The officer's correction beside the OCR reading (which the card shows above it).
function correctionLine(c) {
  const read = [...(c.containers ?? []).map((x) => x.number), c.plate?.text].filter(Boolean).join(" · ");
  return el("p", { class: "correction", "data-by": c.by ?? "" },
    t("gates.corrected", { who: c.by ?? "?", server: decisionText(c.previous_decision) }), " ",
    el("q", { "data-raw": "", text: c.comment ?? "" }), " ", t("gates.corrected_reading"), " ",
    el("strong", { class: "corrected-reading", "data-raw": "", text: read || "—" }));
}

async function correct(p) {
  const now = p.correction ?? p;
  const containers = el("input", { name: "containers", id: "correct-containers", autocomplete: "off",
    value: (now.containers ?? []).map((c) => c.number).join(" ") });
  const plate = el("input", { name: "plate", id: "correct-plate", autocomplete: "off", value: now.plate?.text ?? "" });
  const done = await commentDialog({
    title: t("gates.correct_title", { lane: laneKey(p) }),
    fields: [
      el("label", {}, el("span", { text: t("gates.correct_containers") }), containers),
      el("label", {}, el("span", { text: t("gates.correct_plate") }), plate),
      el("p", { class: "muted", text: t("gates.correct_hint") }),
    ],
    submit: (comment, form) => api(`/passages/${encodeURIComponent(p.passage_id)}/correct`, {
      method: "POST", body: correctionBody(form.containers.value, form.plate.value, comment),
    }),
  });
  if (done) await load();
}

async function override(p) {
  const current = decisionOf(p).effective;
  const select = el("select", { name: "override_action", id: "override-action" },
    ...["open", "hold"].map((a) => el("option", { value: a, text: decisionText(a), selected: a !== current })));
  const done = await commentDialog({
    title: `${t("gates.override")} · ${laneKey(p)}`,
    fields: [el("label", {}, el("span", { text: t("gates.decision") }), select)],
    submit: (comment, form) => api(`/passages/${encodeURIComponent(p.passage_id)}/override`, {
      method: "POST", body: overrideBody(form.override_action.value, comment),
    }),
  });
  if (done) await load();
}

function render() {
  const stateLine = document.getElementById("passages-state");
  const lanes = document.getElementById("lanes");
  const body = document.querySelector("#passages-table tbody");
  if (!state.available || state.passages.length === 0) {
    stateLine.textContent = t(state.available ? "gates.none" : "gates.unavailable");
    stateLine.dataset.state = state.available ? "empty" : "unavailable";
    lanes.replaceChildren(); body.replaceChildren();
    return;
  }
  stateLine.textContent = ""; stateLine.dataset.state = "ok";
  lanes.replaceChildren(...latestPerLane(state.passages).map(([key, p]) => card(key, p)));
  body.replaceChildren(...state.passages.slice(0, 100).map((p) => {
    const decision = decisionOf(p);
    return el("tr", { "data-passage": p.passage_id, "data-decision": decision.effective ?? "" },
      el("td", { text: formatTime(passageTime(p)) }), el("td", { text: laneKey(p) }),
      el("td", { text: t("gates.direction." + (p.direction ?? "in")) }),
      el("td", { text: (p.containers ?? []).map((c) => `${c.number} ${pct(c.confidence)}${c.needs_review ? " ⚑" : ""}`).join(", ") || "—" }),
      el("td", { text: p.plate ? `${p.plate.text} ${pct(p.plate.confidence)}${p.plate.needs_review ? " ⚑" : ""}` : "—" }),
      el("td", { class: "decision" }, decisionText(decision.effective),
        decision.override ? el("span", { class: "muted", text: " " + t("gates.overridden_short", { server: decisionText(decision.action) }) }) : null,
        decision.reasons.length ? el("ul", { class: "reasons" }, ...reasonItems(p, decision.reasons)) : null));
  }));
  applyRoles(state.ctx.account.role, lanes);
}

async function readPassages() {
  if (!state.available) return [];
  try {
    return await api(`/passages?limit=${KEEP}`);
  } catch (err) {
    if (err.status !== 404) throw err;
    state.available = false; // this server has no gate passages (yet)
    return [];
  }
}

const newestFirst = (a, b) => Date.parse(passageTime(b)) - Date.parse(passageTime(a));

function onUpdate(update) {
  if (update.kind === "snapshot") {
    state.passages = [...update.data].sort(newestFirst);
  } else if (update.kind === "batch" && update.passages.length) {
    timed("gates.update", () => {
      const byId = new Map(state.passages.map((p) => [p.passage_id, p]));
      for (const p of update.passages) byId.set(p.passage_id, p); // a decision or override replaces
      state.passages = [...byId.values()].sort(newestFirst).slice(0, KEEP);
    });
  } else {
    return;
  }
  render();
  document.getElementById("lanes").dataset.loaded = "1";
}

async function load() {
  state.source?.resync();
}

async function start() {
  state.ctx = await startPage();
  if (!state.ctx) return;
  translatePage();
  document.addEventListener("languagechange", render);
  state.source = new LiveSource({ settings: state.ctx.settings, kinds: ["passage"], load: readPassages });
  state.source.subscribe(onUpdate);
  state.source.start();
}

runPage(start);
