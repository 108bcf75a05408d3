// One trip: its timeline (gate passages with their decisions and reasons, alarms and their
// history, officers' actions from the audit log, lock events) and its track played back on the map over the route corridor. While the
// page is open the live stream extends the track (the trip's truck only) and a change of
// one of its alarms or a passage of its truck reads the timeline again.
import { api } from "./api.js";
import { actionLabel, formatTime, objectLabel, t, translatePage } from "./i18n.js";
import { reasonItems } from "./reasons.js";
import { el, setStatus, showError, runPage, startPage } from "./shell.js";
import { LiveSource, timed } from "./datasource.js";
import { evidenceStrip } from "./evidence.js";

const L = window.L;
//: Changes of the trip's alarms or passages within this time are read in one go.
const RELOAD_AFTER_MS = 500;
const state = {
  ctx: null, map: null, data: null, points: [], times: [], index: 0, marker: null, playing: false,
  raf: null, clock: 0, source: null, tripId: null, reloadTimer: null,
};

const SAME_TIME_ORDER = { passage: 0, lock: 1, trip: 2, alarm: 3, audit: 4 };

// Timeline entries, oldest first: { at, kind, key, params, actor, ref }.
export function timelineEntries(data) {
  const items = [];
  const trip = data.trip;
  items.push({ at: trip.created_at, kind: "trip", key: "timeline.declared", actor: null, ref: "declared" });
  if (trip.started_at) items.push({ at: trip.started_at, kind: "trip", key: "timeline.started", actor: null, ref: "started" });
  if (trip.ended_at) items.push({ at: trip.ended_at, kind: "trip", key: "timeline.ended", actor: null, ref: "ended" });
  for (const alarm of data.alarms) {
    for (const h of alarm.history ?? []) {
      if (h.actor !== "system") continue; // officers' actions come from the audit log
      items.push({ at: h.at, kind: "alarm", key: "timeline.alarm_" + h.action, actor: null,
        params: { type: t("alarm.type." + alarm.type), id: alarm.id, severity: t("severity." + alarm.severity) },
        note: h.detail, ref: alarm.id, severity: alarm.severity });
    }
  }
  for (const entry of data.audit) {
    // The server's own steps on alarms (escalation) are in the alarms' history already,
    // and its gate decisions are the passages' own entries.
    if (entry.actor === "system" && ["alarm", "passage"].includes(entry.object_type)) continue;
    items.push({ at: entry.at, kind: "audit", key: "timeline.audit",
      actor: entry.actor === "system" ? t("actor.system") : entry.actor,
      params: { action: actionLabel(entry.action), object: objectLabel(entry.object_type, entry.object_id) },
      note: entry.details?.comment ?? null, ref: entry.seq, action: entry.action });
  }
  for (const p of data.passages ?? []) {
    items.push({ at: p.ts, kind: "passage", key: "timeline.passage", actor: null, passage: p,
      decision: p.decision,
      params: { gate: p.gate_id ?? p.gate_node, lane: p.lane, direction: t("gates.direction." + p.direction),
        decision: t("gates.decision." + p.decision) }, ref: p.passage_id });
  }
  for (const lock of data.locks) {
    items.push({ at: lock.at, kind: "lock", key: "timeline.lock", actor: null,
      params: { lock: lock.lock_id, event: t("lock.event." + lock.event) }, note: lock.battery_pct == null ? null : `${lock.battery_pct}%` });
  }
  // At the same instant a gate's decision comes before what it caused (the trip starting).
  return items.sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || SAME_TIME_ORDER[a.kind] - SAME_TIME_ORDER[b.kind]);
}

function renderSummary() {
  const trip = state.data.trip;
  const rows = [
    ["trip.id", trip.trip_id], ["col.vehicle", trip.vehicle_id], ["trip.route", trip.route_id],
    ["trip.status", t("trip.status." + trip.status)], ["trip.started", formatTime(trip.started_at)],
    ["trip.ended", formatTime(trip.ended_at)], ["trip.limit", String(trip.time_limit_min)],
    ["trip.points", String(trip.track?.length ?? 0)], ["nav.alarms", String(state.data.alarms.length)],
  ];
  document.getElementById("trip-summary").replaceChildren(...rows.flatMap(([key, value]) =>
    [el("dt", { text: t(key) }), el("dd", { text: value, class: "v-" + key.replace(".", "-") })]));
}

function renderTimeline() {
  const list = document.getElementById("timeline");
  list.replaceChildren(...timelineEntries(state.data).map((item) => el("li", {
    class: `tl tl-${item.kind}${item.severity ? " sev-" + item.severity : ""}${item.decision ? " decision-" + item.decision : ""}`,
    "data-kind": item.kind, "data-ref": item.ref ?? null, "data-decision": item.decision ?? null, "data-action": item.action ?? null },
    el("time", { text: formatTime(item.at), datetime: item.at }),
    el("span", { class: "badge kind", text: t("timeline.kind." + item.kind) }),
    el("span", { class: "what", text: t(item.key, item.params ?? {}) }),
    item.actor ? el("span", { class: "actor", text: item.actor }) : null,
    item.note ? el("q", { "data-raw": "", text: item.note }) : null,
    item.passage?.reasons.length ? el("ul", { class: "reasons" }, ...reasonItems(item.passage, item.passage.reasons)) : null,
    item.passage ? evidenceStrip(item.passage) : null)));
}

// ---- playback -------------------------------------------------------------------------

function showPoint(index) {
  if (!state.points.length) return;
  state.index = Math.max(0, Math.min(index, state.points.length - 1));
  const p = state.points[state.index];
  state.marker.setLatLng([p.lat, p.lon]);
  const node = state.marker.getElement();
  if (node) Object.assign(node.dataset, { index: String(state.index), lat: String(p.lat), lon: String(p.lon) });
  document.getElementById("play-slider").value = String(state.index);
  document.getElementById("play-time").textContent = `${formatTime(p.ts)} · ${p.speed_kmh == null ? "—" : p.speed_kmh.toFixed(0)} km/h`;
  document.getElementById("playback").dataset.index = String(state.index);
}

function stop() {
  state.playing = false;
  cancelAnimationFrame(state.raf);
  document.getElementById("play").textContent = t("play.play");
}

// Plays in the fixes' own time, times the chosen speed (×1, ×10, ×60).
function play() {
  if (state.points.length < 2) return;
  if (state.index >= state.points.length - 1) showPoint(0);
  state.playing = true;
  document.getElementById("play").textContent = t("play.pause");
  state.clock = state.times[state.index];
  let last = performance.now();
  const step = (now) => {
    if (!state.playing) return;
    const speed = Number(document.getElementById("play-speed").value);
    state.clock += (now - last) * speed;
    last = now;
    let i = state.index;
    while (i < state.times.length - 1 && state.times[i + 1] <= state.clock) i += 1;
    if (i !== state.index) showPoint(i);
    if (i >= state.points.length - 1) { stop(); return; }
    state.raf = requestAnimationFrame(step);
  };
  state.raf = requestAnimationFrame(step);
}

function setupPlayback(keepPlace = false) {
  const track = state.data.trip.track ?? [];
  const wasAtEnd = state.index >= state.points.length - 1;
  const index = state.index;
  state.points = track;
  state.times = track.map((p) => Date.parse(p.ts));
  const bar = document.getElementById("playback");
  bar.hidden = track.length === 0;
  state.map.showTrack(track);
  if (state.marker) state.marker.remove();
  state.marker = null;
  if (!track.length) return;
  state.marker = L.marker([track[0].lat, track[0].lon], {
    icon: L.divIcon({ className: "", html: '<div class="playback-marker"></div>', iconSize: [16, 16], iconAnchor: [8, 8] }),
    keyboard: false, zIndexOffset: 1000,
  }).addTo(state.map.layers.track);
  const slider = document.getElementById("play-slider");
  slider.max = String(track.length - 1);
  if (keepPlace) { showPoint(wasAtEnd ? track.length - 1 : index); return; }
  showPoint(0);
  const bounds = L.latLngBounds(track.map((p) => [p.lat, p.lon]));
  if (bounds.isValid()) state.map.map.fitBounds(bounds.pad(0.3), { maxZoom: 15, animate: false });
}

// A new fix of the trip's truck: the track grows; a slider at its end follows it.
function extendTrack(fix) {
  const trip = state.data?.trip;
  if (!trip || !trip.started_at || trip.ended_at) return;
  const at = Date.parse(fix.ts);
  if (at < Date.parse(trip.started_at)) return;
  const last = state.times[state.times.length - 1];
  if (last !== undefined && at <= last) return; // known, or late (the next reading has it)
  const point = { ts: fix.ts, lat: fix.lat, lon: fix.lon, speed_kmh: fix.speed_kmh, course_deg: fix.course_deg, seq: fix.seq };
  const atEnd = state.index >= state.points.length - 1;
  state.points.push(point);
  state.times.push(at);
  trip.track = state.points;
  if (state.points.length === 1) { setupPlayback(); renderSummary(); return; }
  state.map.extendTrack(state.points);
  document.getElementById("play-slider").max = String(state.points.length - 1);
  if (atEnd && !state.playing) showPoint(state.points.length - 1);
  renderSummary();
}

function reloadSoon() {
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(() => state.source?.resync(), RELOAD_AFTER_MS);
}

function onUpdate(update) {
  if (update.kind === "snapshot") {
    const same = state.data?.trip.trip_id === update.data.trip.trip_id;
    if (same && state.playing) stop();
    state.data = update.data;
    renderSummary();
    renderTimeline();
    setupPlayback(same);
    document.getElementById("timeline").dataset.trip = update.data.trip.trip_id;
    return;
  }
  if (update.kind !== "batch" || !state.data) return;
  timed("trip.update", () => {
    const trip = state.data.trip;
    const fix = update.positions.get(trip.vehicle_id);
    if (fix) extendTrack(fix);
    const touched = [...update.alarms.values()].some((a) => a.trip_id === trip.trip_id)
      || update.passages.some((p) => p.trip_id === trip.trip_id);
    if (touched) reloadSoon();
  });
}

// The trip's state comes from the live source's reads (at once, after a reconnection and
// when its alarms change); its truck's fixes from the stream.
function loadTrip(tripId, vehicleId) {
  stop();
  state.tripId = tripId;
  state.data = null;
  const load = () => api(`/console/trips/${encodeURIComponent(tripId)}/timeline`);
  const vehicles = vehicleId ? [vehicleId] : [];
  // Without a known truck, no positions at all (never every truck's).
  const kinds = vehicleId ? ["position", "alarm", "passage"] : ["alarm", "passage"];
  if (state.source) { state.source.kinds = kinds; state.source.restart({ vehicles, load }); return; }
  state.source = new LiveSource({ settings: state.ctx.settings, kinds, vehicles, load });
  state.source.subscribe((update) => {
    if (update.kind === "snapshot" && update.data.trip.trip_id !== state.tripId) return; // an older pick
    onUpdate(update);
  });
  state.source.start();
}

async function start() {
  state.ctx = await startPage();
  if (!state.ctx) return;
  translatePage();
  const picker = document.getElementById("trip-pick");
  const trips = await api("/trips");
  const tripLabel = (trip) => `${trip.trip_id} · ${trip.vehicle_id} · ${t("trip.status." + trip.status)}`;
  const options = trips.map((trip) => el("option", { value: trip.trip_id, text: tripLabel(trip) }));
  picker.append(...options);
  document.addEventListener("languagechange", () => options.forEach((o, i) => { o.textContent = tripLabel(trips[i]); }));
  const vehicleOf = new Map(trips.map((trip) => [trip.trip_id, trip.vehicle_id]));
  const wanted = new URLSearchParams(location.search).get("id");
  if (!L) { setStatus("status.no_assets", false); return; }
  const { LiveMap } = await import("./map.js");
  state.map = new LiveMap(document.getElementById("map"), state.ctx.settings, null);
  const [routes, zones, gates] = await Promise.all([api("/routes"), api("/zones"), api("/gates")]);
  state.map.drawGeography({ routes, zones, gates });
  document.getElementById("map").dataset.ready = "1";
  document.getElementById("play").addEventListener("click", () => (state.playing ? stop() : play()));
  document.getElementById("play-slider").addEventListener("input", (e) => { stop(); showPoint(Number(e.target.value)); });
  picker.addEventListener("change", () => {
    if (!picker.value) return;
    history.replaceState(null, "", "/trip?id=" + encodeURIComponent(picker.value));
    loadTrip(picker.value, vehicleOf.get(picker.value));
  });
  document.addEventListener("languagechange", () => {
    state.map.relabel();
    if (state.data) { renderSummary(); renderTimeline(); showPoint(state.index); }
  });
  if (wanted) { picker.value = wanted; loadTrip(wanted, vehicleOf.get(wanted)); }
  else document.getElementById("timeline").replaceChildren(el("li", { class: "muted", text: t("trip.pick_hint") }));
}

runPage(start);
