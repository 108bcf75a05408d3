// Where a page's live data comes from: its state over REST, then the changes pushed on
// WS /api/v1/stream. One LiveSource per page:
//
//   const source = new LiveSource({ load, kinds: ["alarm"], settings });
//   source.subscribe((update) => …);   // {kind: "snapshot", data} | {kind: "batch", …}
//   source.start();
//
// - On every (re)connection the stream is opened first, then `load()` reads the state over
//   REST; changes that arrive meanwhile are held and applied after it, so nothing that
//   happened while the page was disconnected (a server restart) is missed.
// - Changes are delivered in batches, at most one per animation frame (or every 250 ms in
//   a background tab, where browsers pause animation frames): positions keep the newest
//   fix per vehicle, alarms the newest state per alarm, passages all.
// - When the stream closes, the state is read again over REST at once. If the server
//   answers (a proxy without WebSocket support, a stream dropped for being slow), the
//   page says "live updates unavailable", reads the state every poll_interval_ms and
//   tries the stream again each time. If it does not (a server restart), the page says
//   "connection lost, reconnecting" and tries again after a growing wait (0.5 s doubling
//   up to reconnect_max_s, with jitter), until the stream is back and the state read.
// - A stream closed for the session (1008) or a REST 401 sends the browser to the login
//   page, and back here after logging in.
// - While the stream is up, the whole state is read again every resync_interval_s (the
//   safety net for what the stream does not carry: new trips, other server workers).
import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { setStatus } from "./shell.js";

const POLICY_VIOLATION = 1008;
const FIRST_RETRY_MS = 500;
const BACKGROUND_FLUSH_MS = 250;

// Timings the benchmark (bench/bench_console.py) and the curious read from the page:
// window.bondwatchPerf.marks[name] (ms since navigation) and .samples[name] (ms each).
export const perf = (window.bondwatchPerf ??= { marks: {}, samples: {}, counts: {} });
const MAX_SAMPLES = 20_000;

export function mark(name) {
  perf.marks[name] ??= performance.now();
}

export function timed(name, fn) {
  const started = performance.now();
  try {
    return fn();
  } finally {
    const list = (perf.samples[name] ??= []);
    if (list.length >= MAX_SAMPLES) list.splice(0, list.length - MAX_SAMPLES + 1);
    list.push(performance.now() - started);
  }
}

function count(name, n = 1) {
  perf.counts[name] = (perf.counts[name] ?? 0) + n;
}

// Newer of two fixes of one vehicle (by fix time, then seq).
export function newerFix(a, b) {
  if (!a) return b;
  const ta = Date.parse(a.ts), tb = Date.parse(b.ts);
  if (tb !== ta) return tb > ta ? b : a;
  return (b.seq ?? 0) >= (a.seq ?? 0) ? b : a;
}

// Collects stream messages and hands them over once per frame.
export class Batcher {
  constructor(deliver, backgroundMs = BACKGROUND_FLUSH_MS) {
    this.deliver = deliver;
    this.backgroundMs = backgroundMs;
    this.reset();
    this.frame = null;
    this.timer = null;
  }

  reset() {
    this.positions = new Map();
    this.alarms = new Map();
    this.passages = [];
    this.size = 0;
  }

  add(message) {
    const data = message?.data;
    if (!data) return;
    if (message.type === "position" && data.vehicle_id) {
      this.positions.set(data.vehicle_id, newerFix(this.positions.get(data.vehicle_id), data));
    } else if (message.type === "alarm" && data.id != null) {
      this.alarms.delete(data.id); // keep arrival order: the newest state last
      this.alarms.set(data.id, data);
    } else if (message.type === "passage") {
      this.passages.push(data);
    } else {
      return;
    }
    this.size += 1;
    this.schedule();
  }

  schedule() {
    if (this.frame !== null || this.timer !== null) return;
    this.frame = requestAnimationFrame(() => this.flush());
    this.timer = setTimeout(() => this.flush(), this.backgroundMs);
  }

  flush() {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    if (this.timer !== null) clearTimeout(this.timer);
    this.frame = null;
    this.timer = null;
    if (!this.size) return;
    const batch = { kind: "batch", positions: this.positions, alarms: this.alarms, passages: this.passages, messages: this.size, at: Date.now() };
    this.reset();
    this.deliver(batch);
  }

  cancel() {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    if (this.timer !== null) clearTimeout(this.timer);
    this.frame = null;
    this.timer = null;
    this.reset();
  }
}

// The "connection lost" banner every page shares (created on first use).
export function showConnection(state, text = "") {
  let node = document.getElementById("connection");
  if (!node) {
    node = document.createElement("div");
    node.id = "connection";
    node.setAttribute("role", "status");
    node.setAttribute("aria-live", "polite");
    document.body.prepend(node);
  }
  node.dataset.state = state;
  node.className = "connection conn-" + state;
  node.textContent = text;
  node.hidden = state === "live";
}

export class LiveSource {
  // load(): the page's state over REST (any value; handed over as `data` of a snapshot).
  // kinds: the stream's event kinds this page needs; vehicles: positions of these only.
  constructor({ load, kinds = ["position", "alarm", "passage"], vehicles = null, settings = {} }) {
    this.load = load;
    this.kinds = kinds;
    this.vehicles = vehicles;
    this.pollMs = settings.poll_interval_ms ?? 1500;
    this.resyncMs = (settings.resync_interval_s ?? 120) * 1000;
    this.maxRetryMs = (settings.reconnect_max_s ?? 30) * 1000;
    this.listeners = new Set();
    this.batcher = new Batcher((batch) => { count("stream.batches"); this.emit(batch); });
    this.ws = null;
    this.held = null; // messages received while the state is being read
    this.attempt = 0;
    this.retryTimer = null;
    this.resyncTimer = null;
    this.countdown = null;
    this.stopped = true;
    this.generation = 0;
    this.everLive = false;
    this.mode = "connecting";
  }

  subscribe(listener) { this.listeners.add(listener); return () => this.listeners.delete(listener); }

  emit(update) {
    for (const fn of this.listeners) {
      try { fn(update); } catch (err) { console.error("console: update failed", err); }
    }
  }

  url() {
    const query = new URLSearchParams();
    if (this.kinds) query.set("kinds", this.kinds.join(","));
    for (const v of this.vehicles ?? []) query.append("vehicle", v);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/v1/stream?${query}`;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.generation += 1;
    clearTimeout(this.retryTimer);
    clearTimeout(this.resyncTimer);
    clearInterval(this.countdown);
    this.batcher.cancel();
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000); this.ws = null; }
  }

  // Same stream with other vehicles (the trip page when another trip is picked).
  restart({ vehicles = this.vehicles, load = this.load } = {}) {
    this.stop();
    this.vehicles = vehicles;
    this.load = load;
    this.attempt = 0;
    this.start();
  }

  // Read the whole state again now (the page's filters changed). While the stream is
  // down, the next reconnection reads it anyway.
  resync() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.sync(this.generation);
  }

  connect() {
    if (this.stopped) return;
    const generation = ++this.generation;
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.failed(generation, null);
      return;
    }
    this.ws = ws;
    this.held = [];
    ws.onopen = () => {
      if (generation !== this.generation) return;
      count("stream.opened");
      mark("stream.first_open");
      this.sync(generation);
    };
    ws.onmessage = (event) => {
      if (generation !== this.generation) return;
      count("stream.messages");
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      if (this.held) this.held.push(message);
      else this.batcher.add(message);
    };
    ws.onclose = (event) => {
      if (generation !== this.generation) return;
      this.ws = null;
      this.failed(generation, event);
    };
  }

  // Read the state over REST, hand it over, then the changes held meanwhile.
  async sync(generation) {
    clearTimeout(this.resyncTimer);
    const ws = this.ws;
    const token = (this.syncToken = (this.syncToken ?? 0) + 1);
    this.held ??= [];
    let data;
    try {
      data = await this.load();
    } catch (err) {
      if (generation !== this.generation || token !== this.syncToken) return;
      // 401: api() is already taking the browser to the login page.
      if (err instanceof ApiError && err.status === 401) { this.lost("session"); return; }
      console.warn("console: reading the state failed", err);
      if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
      this.backoff(generation);
      return;
    }
    if (generation !== this.generation || token !== this.syncToken) return; // a newer read runs
    mark("state.first_read");
    this.emit({ kind: "snapshot", data, at: Date.now() });
    if (this.ws !== ws || ws === null) return; // the stream closed meanwhile: failed() retries
    const held = this.held ?? [];
    this.held = null;
    for (const message of held) this.batcher.add(message);
    this.batcher.flush();
    this.attempt = 0;
    this.everLive = true;
    this.live();
    if (this.resyncMs > 0) this.resyncTimer = setTimeout(() => { if (this.ws) this.sync(generation); }, this.resyncMs);
  }

  live() {
    this.mode = "live";
    clearInterval(this.countdown);
    showConnection("live");
    setStatus("status.live", true);
    document.dispatchEvent(new CustomEvent("bondwatch:live"));
  }

  lost(reason, retryMs = null) {
    this.mode = reason;
    clearInterval(this.countdown);
    if (reason === "session") {
      showConnection("session", t("conn.session"));
      setStatus("status.disconnected", false, t("conn.session"));
      return;
    }
    if (reason === "polling") {
      const text = t("conn.polling", { s: Math.round(this.pollMs / 100) / 10 });
      showConnection("polling", text);
      setStatus("status.polling", false);
      return;
    }
    const until = Date.now() + (retryMs ?? 0);
    const show = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      const text = t("conn.lost") + (left ? " " + t("conn.retry_in", { s: left }) : "");
      showConnection("lost", text);
      setStatus("status.disconnected", false, t("conn.reconnecting"));
    };
    show();
    this.countdown = setInterval(show, 1000);
  }

  async failed(generation, event) {
    if (this.stopped || generation !== this.generation) return;
    clearTimeout(this.resyncTimer);
    this.held = null;
    this.batcher.flush();
    count("stream.closed");
    if (event && event.code === POLICY_VIOLATION) {
      // Refused or ended by the server: the session is over, or the request was wrong.
      try {
        await api("/auth/me"); // a 401 sends the browser to the login page
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) { this.lost("session"); return; }
      }
      console.warn("console: stream refused:", event.reason);
    }
    // Is the server there? Then read the state now (nothing is missed while the stream
    // is down) and try the stream again soon; if not, wait longer each time.
    try {
      const data = await this.load();
      if (generation !== this.generation || this.stopped) return;
      this.emit({ kind: "snapshot", data, at: Date.now() });
      this.attempt = 0;
      this.lost("polling");
      this.retry(this.pollMs);
      return;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { this.lost("session"); return; }
    }
    if (generation !== this.generation || this.stopped) return;
    this.backoff(generation);
  }

  // The server is away: try again after a growing wait.
  backoff(generation) {
    if (this.stopped || generation !== this.generation) return;
    clearTimeout(this.resyncTimer);
    this.held = null;
    const wait = Math.min(this.maxRetryMs, FIRST_RETRY_MS * 2 ** this.attempt) * (0.8 + 0.4 * Math.random());
    this.attempt += 1;
    this.lost("lost", wait);
    this.retry(wait);
  }

  retry(ms) {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), ms);
  }
}
