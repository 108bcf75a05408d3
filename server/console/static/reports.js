// Reports (supervisors, admins): transit times per route, alarms by type, route and day,
// and the gate auto-release rate, for a range of calendar days in the officer's time zone;
// charts drawn as inline SVG, each report downloadable as CSV.
import { api, ApiError } from "./api.js";
import { configuredZone, formatTime, t, translatePage } from "./i18n.js";
import { barChart, columnChart, legend } from "./reports.charts.js";
import { el, setStatus, showError, runPage, startPage } from "./shell.js";

const REPORTS = ["transit-times", "alarms-by-type", "alarms-by-route", "alarms-by-day", "gate-release"];
const SEVERITIES = ["critical", "major", "minor", "warning"];
const GATE_PARTS = [["auto_open", "reports.auto_open"], ["held", "reports.held"], ["overridden", "reports.overridden"]];
const state = { data: {}, query: null };

// ---- calendar days in the officer's zone --------------------------------------------------

// Today's date in `zone` as YYYY-MM-DD.
export function today(zone, now = new Date()) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(now);
}

export function addDays(day, n) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

// The zone's offset ("+08:00") at the local midnight starting `day`.
export function midnightOffset(zone, day) {
  let offset = "+00:00";
  for (let i = 0; i < 2; i += 1) {  // a second pass settles zones whose offset changes that day
    const guess = new Date(Date.parse(`${day}T00:00:00${offset}`));
    const name = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" })
      .formatToParts(guess).find((p) => p.type === "timeZoneName")?.value ?? "GMT";
    offset = name === "GMT" ? "+00:00" : name.slice(3);
  }
  return offset;
}

// The query of a range of days, both included: [from 00:00, the day after `to` 00:00).
export function windowQuery(fromDay, toDay, zone) {
  const end = addDays(toDay, 1);
  return new URLSearchParams({
    from: `${fromDay}T00:00:00${midnightOffset(zone, fromDay)}`,
    to: `${end}T00:00:00${midnightOffset(zone, end)}`,
    tz: zone,
  });
}

// ---- formatting ---------------------------------------------------------------------------

const minutes = (v) => (v === null || v === undefined ? "—" : v.toFixed(1));
const percent = (rate) => (rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)}%`);
const routeLabel = (r) => (r.route_id === null ? t("reports.no_route") : r.route_name ? `${r.route_id} ${r.route_name}` : r.route_id);
const gateLabel = (g) => (g.gate_name ? `${g.gate_id} ${g.gate_name}` : g.gate_id);
const typeLabel = (type) => {
  const text = t("alarm.type." + type);
  return text === "alarm.type." + type ? type : text;
};

function severitySegments(tally) {
  return SEVERITIES.map((s) => ({
    key: s, cls: "sev-" + s, value: tally.by_severity[s],
    title: t("reports.bar_title", { label: t("severity." + s), n: tally.by_severity[s] }),
  }));
}

function section(name) { return document.getElementById(name); }

// The chart's width in px: its box's, so text keeps its size (at least `min`).
function widthOf(box, min = 360) { return Math.max(min, Math.floor(box.clientWidth || 640)); }

function setTotal(name, total) {
  section(name).querySelector(".total").textContent = total.alarms
    ? t("reports.alarms_total", { n: total.alarms, occ: total.occurrences })
    : t("reports.no_alarms");
}

// ---- the reports --------------------------------------------------------------------------

function renderTransit(report) {
  document.querySelector("#transit-table tbody").replaceChildren(...report.routes.map((r) => {
    const d = r.duration_min ?? {};
    return el("tr", { "data-route": r.route_id, "data-trips": r.trips },
      el("td", { text: routeLabel(r) }), el("td", { class: "num trips", text: String(r.trips) }),
      ...["min", "p50", "p90", "max", "mean"].map((k) => el("td", { class: "num " + k, text: minutes(d[k]) })));
  }));
  const charts = document.getElementById("transit-charts");
  const columns = Math.max(1, Math.floor(widthOf(charts) / 400));
  const width = Math.floor((widthOf(charts) - (columns - 1) * 16) / columns);
  charts.replaceChildren(...report.routes.map((r) => {
    const figure = el("figure", { class: "histogram", "data-route": r.route_id, style: `width: ${width}px` },
      el("figcaption", { text: t("reports.histogram", { route: routeLabel(r), width: report.bucket_min }) }));
    if (!r.trips) {
      figure.append(el("p", { class: "muted", text: t("reports.no_trips") }));
      return figure;
    }
    figure.append(columnChart(r.histogram.map((b) => ({
      key: `${b.from_min}-${b.to_min}`, label: `${b.from_min}–${b.to_min}`, total: b.count,
      segments: [{ key: "trips", cls: "bucket", value: b.count,
        title: t("reports.bucket_trips", { from: b.from_min, to: b.to_min, n: b.count }) }],
    })), { title: routeLabel(r), width, height: 180 }));
    return figure;
  }));
}

function renderByType(report) {
  setTotal("alarms-by-type", report.total);
  const items = report.types.map((row) => ({
    key: row.type, label: typeLabel(row.type), total: row.alarms, segments: severitySegments(row),
  }));
  const box = section("alarms-by-type").querySelector(".chart-box");
  box.replaceChildren(items.length
    ? barChart(items, { title: t("reports.alarms_type"), width: widthOf(box), labelWidth: 150 })
    : el("p", { class: "muted", text: t("reports.no_alarms") }));
}

function renderByRoute(report) {
  setTotal("alarms-by-route", report.total);
  const items = report.routes.map((row) => ({
    key: row.route_id ?? "", label: routeLabel(row), total: row.alarms, segments: severitySegments(row),
  }));
  const box = section("alarms-by-route").querySelector(".chart-box");
  box.replaceChildren(barChart(items, { title: t("reports.alarms_route"), width: widthOf(box) }));
}

function renderByDay(report) {
  setTotal("alarms-by-day", report.total);
  legend(section("alarms-by-day").querySelector(".severity-legend"),
    SEVERITIES.map((s) => ({ cls: "sev-" + s, label: t("severity." + s) })));
  const items = report.days.map((row) => ({
    key: row.day, label: row.day.slice(5), total: row.alarms, segments: severitySegments(row),
  }));
  const box = section("alarms-by-day").querySelector(".chart-box");
  box.replaceChildren(columnChart(items, { title: t("reports.alarms_day"), width: widthOf(box) }));
}

function renderGates(report) {
  const overall = report.overall;
  document.getElementById("overall-rate").textContent = percent(overall.auto_release_rate);
  document.getElementById("overall-detail").textContent = t("reports.overall_detail", {
    n: overall.passages, auto: overall.auto_open, held: overall.held, over: overall.overridden,
  });
  legend(section("gate-release").querySelector(".gate-legend"), GATE_PARTS.map(([k, key]) => ({ cls: "gate-" + k, label: t(key) })));
  const items = report.gates.map((g) => ({
    key: g.gate_id, label: gateLabel(g), total: g.passages,
    text: g.passages ? percent(g.auto_release_rate) : t("reports.no_passages"),
    segments: GATE_PARTS.map(([k, key]) => ({
      key: k, cls: "gate-" + k, value: g.passages ? g[k] / g.passages : 0,
      title: t("reports.bar_title", { label: t(key), n: g[k] }),
    })),
  }));
  const box = section("gate-release").querySelector(".chart-box");
  box.replaceChildren(barChart(items, { title: t("reports.gates"), max: 1, width: widthOf(box), maxLabel: 30, labelWidth: 340 }));
  document.querySelector("#gate-table tbody").replaceChildren(...[...report.gates, overall].map((g) =>
    el("tr", { "data-gate": g.gate_id, class: g.gate_id === "*" ? "total-row" : null },
      el("td", { text: g.gate_id === "*" ? t("reports.overall") : gateLabel(g) }),
      el("td", { class: "num passages", text: String(g.passages) }),
      el("td", { class: "num auto_open", text: String(g.auto_open) }),
      el("td", { class: "num held", text: String(g.held) }),
      el("td", { class: "num overridden", text: String(g.overridden) }),
      el("td", { class: "num corrected", text: String(g.corrected ?? 0) }),
      el("td", { class: "num appointment_open", text: String(g.appointment_open ?? 0) }),
      el("td", { class: "num rate", text: percent(g.auto_release_rate) }))));
}

const RENDER = {
  "transit-times": renderTransit,
  "alarms-by-type": renderByType,
  "alarms-by-route": renderByRoute,
  "alarms-by-day": renderByDay,
  "gate-release": renderGates,
};

function renderAll() {
  for (const name of REPORTS) {
    const report = state.data[name];
    if (!report) continue;
    RENDER[name](report);
    section(name).dataset.state = "loaded";
  }
  const any = state.data[REPORTS[0]];
  if (any) {
    document.getElementById("report-period").textContent = t("reports.period", {
      from: formatTime(any.window.from), to: formatTime(any.window.to), tz: any.window.tz,
    });
  }
  for (const button of document.querySelectorAll("button.last-days")) {
    button.textContent = t("reports.last_days", { n: button.dataset.days });
  }
}

async function load() {
  const form = document.getElementById("report-window");
  const zone = configuredZone();
  const query = windowQuery(form.from.value, form.to.value, zone);
  state.query = query;
  history.replaceState(null, "", `/reports?from=${form.from.value}&to=${form.to.value}`);
  const error = document.getElementById("report-error");
  error.textContent = "";
  for (const name of REPORTS) {
    section(name).dataset.state = "loading";
    section(name).querySelector("a.csv").href = `/api/v1/reports/${name}.csv?${query}`;
  }
  try {
    const answers = await Promise.all(REPORTS.map((name) => api(`/reports/${name}?${query}`)));
    if (state.query !== query) return;  // a newer request is on its way
    state.data = Object.fromEntries(REPORTS.map((name, i) => [name, answers[i]]));
  } catch (err) {
    for (const name of REPORTS) section(name).dataset.state = "error";
    error.textContent = err instanceof ApiError && err.status === 403
      ? t("error.forbidden", { msg: err.message }) : err.message;
    throw err;
  }
  renderAll();
  setStatus("status.live", true);
}

function setRange(fromDay, toDay) {
  const form = document.getElementById("report-window");
  form.from.value = fromDay;
  form.to.value = toDay;
}

async function start() {
  const ctx = await startPage();
  if (!ctx) return;
  translatePage();
  const zone = configuredZone();
  const params = new URLSearchParams(location.search);
  const day = /^\d{4}-\d{2}-\d{2}$/;
  const last = day.test(params.get("to") ?? "") ? params.get("to") : today(zone);
  const first = day.test(params.get("from") ?? "") ? params.get("from") : addDays(last, -29);
  setRange(first, last);
  const form = document.getElementById("report-window");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (form.from.value > form.to.value) setRange(form.to.value, form.from.value);
    load().catch(showError);
  });
  for (const button of document.querySelectorAll("button.last-days")) {
    button.addEventListener("click", () => {
      const end = today(zone);
      setRange(addDays(end, 1 - Number(button.dataset.days)), end);
      load().catch(showError);
    });
  }
  document.addEventListener("languagechange", renderAll);
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(renderAll, 150);
  });
  renderAll();
  await load();
}

runPage(start);
