// The officer's own time zone, picked in the header beside the language: kept on the
// account (PATCH /api/v1/auth/me), so it follows the officer to any browser. Every page
// shows its times again in the new zone at once (the same event as a language change).
import { api } from "./api.js";
import { setZone, t, translatePage } from "./i18n.js";

// Every IANA zone the browser knows, the officer's own and UTC among them.
export function zoneNames(own) {
  const known = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return [...new Set([...known, "UTC", ...(own ? [own] : [])])].sort();
}

// Puts the picker after `anchor` (the language select). `me` is /auth/me's answer.
export function zonePicker(anchor, me, consoleZone) {
  if (!anchor || document.getElementById("tz")) return null;
  const select = document.createElement("select");
  select.id = "tz";
  select.dataset.i18nAriaLabel = "tz.label";
  select.dataset.i18nTitle = "tz.label";
  const fallback = document.createElement("option");
  fallback.value = "";
  select.append(fallback, ...zoneNames(me.account.time_zone).map((zone) => {
    const option = document.createElement("option");
    option.value = option.textContent = zone;
    return option;
  }));
  const label = () => {
    fallback.textContent = t("tz.default", { zone: consoleZone });
    select.setAttribute("aria-label", t("tz.label"));
    select.title = t("tz.label");
  };
  label();
  let saved = me.account.time_zone ?? "";
  select.value = saved;
  select.dataset.zone = me.time_zone;
  document.addEventListener("languagechange", label);
  select.addEventListener("change", async () => {
    select.disabled = true;
    try {
      const answer = await api("/auth/me", { method: "PATCH", body: { time_zone: select.value || null } });
      saved = answer.account.time_zone ?? "";
      setZone(answer.time_zone);
      select.dataset.zone = answer.time_zone;
      translatePage(); // pages show their times again
    } catch (err) {
      select.value = saved;
      console.error("console: time zone not saved:", err?.message ?? err);
    } finally {
      select.disabled = false;
    }
  });
  anchor.after(" ", select);
  return select;
}
