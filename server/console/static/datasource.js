// Where live data comes from. Today: polling the REST API. The WebSocket stream
// (/api/v1/stream) will be a second class with the same interface — subscribe(listener),
// start(), stop() — and the map code will not change.
import { api } from "./api.js";

export class PollingSource {
  constructor(intervalMs) {
    this.intervalMs = intervalMs;
    this.listeners = new Set();
    this.timer = null;
    this.alarmsAvailable = true;
  }

  subscribe(listener) { this.listeners.add(listener); return () => this.listeners.delete(listener); }

  emit(update) { for (const fn of this.listeners) fn(update); }

  async tick() {
    try {
      const [positions, trips, alarms] = await Promise.all([
        api("/vehicles/positions"), api("/trips"), this.activeAlarms(),
      ]);
      this.emit({ kind: "snapshot", positions, trips, alarms, at: Date.now() });
    } catch (err) {
      this.emit({ kind: "error", error: err });
    }
  }

  async activeAlarms() {
    if (!this.alarmsAvailable) return [];
    try {
      return await api("/alarms?state=active");
    } catch (err) {
      if (err.status === 404) { this.alarmsAvailable = false; return []; } // not on this server yet
      throw err;
    }
  }

  start() {
    const loop = async () => {
      await this.tick();
      if (this.timer !== null) this.timer = setTimeout(loop, this.intervalMs);
    };
    this.timer = 0;
    loop();
  }

  stop() { clearTimeout(this.timer); this.timer = null; }
}
