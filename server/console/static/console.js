// BondWatch console, first page: the live map of routes, zones, gates and trucks.
// Draws GeoJSON on a canvas with a local equirectangular projection; no request leaves
// the server this page came from.
"use strict";

const API = "/api/v1";
const state = { routes: [], zones: [], gates: [], trucks: [], trails: new Map(), view: null };
const ZONE_STYLE = {
  forbidden: "rgba(220, 38, 38, .35)", stop: "rgba(22, 163, 74, .35)",
  tunnel: "rgba(120, 113, 108, .45)", urban: "rgba(147, 51, 234, .12)",
};

async function getJSON(path) {
  const res = await fetch(API + path, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

function eachCoord(geometry, fn) {
  const walk = (c) => (typeof c[0] === "number" ? fn(c) : c.forEach(walk));
  walk(geometry.coordinates);
}

function fitView(canvas) {
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const f of [...state.routes, ...state.zones, ...state.gates]) {
    eachCoord(f.geometry, ([lon, lat]) => {
      minX = Math.min(minX, lon); maxX = Math.max(maxX, lon);
      minY = Math.min(minY, lat); maxY = Math.max(maxY, lat);
    });
  }
  if (!isFinite(minX)) { minX = 113.2; maxX = 113.7; minY = 22.6; maxY = 23.5; }
  const kx = Math.cos(((minY + maxY) / 2) * Math.PI / 180);
  const pad = 30;
  const scale = Math.min((canvas.width - 2 * pad) / ((maxX - minX) * kx || 1),
                         (canvas.height - 2 * pad) / ((maxY - minY) || 1));
  state.view = { minX, maxY, kx, scale, pad };
}

function project([lon, lat]) {
  const v = state.view;
  return [v.pad + (lon - v.minX) * v.kx * v.scale, v.pad + (v.maxY - lat) * v.scale];
}

function metresToPx(m) { return (m / 111320) * state.view.scale; }

function pathOf(ctx, coords) {
  coords.forEach((c, i) => { const [x, y] = project(c); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
}

function draw() {
  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const rect = canvas.getBoundingClientRect();
  if (canvas.width !== Math.round(rect.width) || canvas.height !== Math.round(rect.height)) {
    canvas.width = Math.round(rect.width); canvas.height = Math.round(rect.height); fitView(canvas);
  }
  if (!state.view) fitView(canvas);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (const f of state.zones) {
    if (f.geometry.type !== "Polygon") continue;
    ctx.beginPath(); pathOf(ctx, f.geometry.coordinates[0]); ctx.closePath();
    ctx.fillStyle = ZONE_STYLE[f.properties.kind] || "rgba(0,0,0,.1)"; ctx.fill();
  }
  for (const f of state.routes) {
    if (f.geometry.type === "Polygon") {
      ctx.beginPath(); pathOf(ctx, f.geometry.coordinates[0]); ctx.closePath();
      ctx.fillStyle = f.properties.kind === "corridor" ? "rgba(37, 99, 235, .18)" : "rgba(245, 158, 11, .4)";
      ctx.fill();
    } else if (f.geometry.type === "LineString") {
      ctx.lineJoin = "round"; ctx.lineCap = "round";
      ctx.beginPath(); pathOf(ctx, f.geometry.coordinates);
      ctx.strokeStyle = "#2563eb"; ctx.lineWidth = 1.5; ctx.stroke();
    }
  }
  for (const f of state.gates) {
    const [x, y] = project(f.geometry.coordinates);
    ctx.fillStyle = "#92400e"; ctx.fillRect(x - 4, y - 4, 8, 8);
  }
  for (const t of state.trucks) {
    const trail = state.trails.get(t.vehicle_id) || [];
    if (trail.length > 1) {
      ctx.beginPath(); pathOf(ctx, trail); ctx.strokeStyle = "rgba(15, 23, 42, .5)"; ctx.lineWidth = 1; ctx.stroke();
    }
    const [x, y] = project([t.lon, t.lat]);
    ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI);
    ctx.fillStyle = t.trip_id ? "#16a34a" : "#64748b"; ctx.fill();
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 2; ctx.stroke();
    ctx.fillStyle = "#0f172a"; ctx.font = "12px system-ui"; ctx.fillText(t.vehicle_id, x + 9, y + 4);
  }
}

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c ?? "—"; tr.append(td); }
    return tr;
  }));
}

const timeFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", second: "2-digit" });

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [trucks, trips] = await Promise.all([getJSON("/vehicles/positions"), getJSON("/trips")]);
    state.trucks = trucks;
    for (const t of trucks) {
      const trail = state.trails.get(t.vehicle_id) || [];
      const last = trail[trail.length - 1];
      if (!last || last[0] !== t.lon || last[1] !== t.lat) trail.push([t.lon, t.lat]);
      state.trails.set(t.vehicle_id, trail.slice(-600));
    }
    fillTable("trucks", trucks.map((t) => [t.vehicle_id, t.trip_id, t.speed_kmh?.toFixed(0), timeFmt.format(new Date(t.ts))]));
    fillTable("trips", trips.map((t) => [t.trip_id, t.route_id, t.status]));
    status.textContent = "实时 live"; status.className = "status ok";
  } catch (err) {
    status.textContent = "连接中断 disconnected — " + err.message; status.className = "status bad";
  }
  draw();
}

async function start() {
  for (;;) {
    try {
      const [routes, zones, gates] = await Promise.all([getJSON("/routes"), getJSON("/zones"), getJSON("/gates")]);
      state.routes = routes.features; state.zones = zones.features; state.gates = gates.features;
      break;
    } catch (err) {
      document.getElementById("status").textContent = "等待服务器 waiting for server…";
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  window.addEventListener("resize", () => { state.view = null; draw(); });
  await refresh();
  setInterval(refresh, 1000);
}

start();
