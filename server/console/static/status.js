// A truck's status on the map, from its newest fix, the clock and the active alarms.
export const TRUCK_STATUSES = ["in_transit", "stopped", "alarm", "offline"];

export function truckStatus(position, nowMs, settings, alarmVehicles) {
  if (alarmVehicles.has(position.vehicle_id)) return "alarm";
  if ((nowMs - Date.parse(position.ts)) / 1000 > settings.offline_after_s) return "offline";
  if ((position.speed_kmh ?? 0) < settings.stopped_below_kmh) return "stopped";
  return "in_transit";
}
