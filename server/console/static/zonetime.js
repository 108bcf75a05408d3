// Times typed by an officer (datetime-local inputs) read in the officer's time zone.

// "+08:00" for Asia/Shanghai at that moment (Intl's longOffset: "GMT+08:00", or "GMT").
export function zoneOffset(zone, date) {
  const name = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" })
    .formatToParts(date).find((p) => p.type === "timeZoneName")?.value ?? "GMT";
  return name === "GMT" ? "+00:00" : name.slice(3);
}

// A datetime-local value ("2026-11-23T08:00" or with seconds) read in `zone`.
export function localToRfc3339(value, zone) {
  if (!value) return null;
  const plain = value.length === 16 ? value + ":00" : value;
  const guess = new Date(plain + "Z");
  return plain + zoneOffset(zone, guess);
}

// A moment as a datetime-local value in `zone` ("2026-11-23T16:15:02").
export function toLocalInput(date, zone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(date).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}`;
}
