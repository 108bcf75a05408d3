// A gate decision's reasons: each shown by its code in the officer's language, with the
// server's own sentence beside it (it names the container, lock or alarm; it is part of
// the record and stays as the server wrote it, so it is marked data-raw).
import { t } from "./i18n.js";
import { el } from "./shell.js";

// [{ code, text }] of a passage, whatever the server sent (codes may be missing).
export function reasonsOf(passage, reasons) {
  const codes = passage.reason_codes ?? [];
  return reasons.map((r, i) => ({ code: codes[i] ?? null, text: typeof r === "string" ? r : JSON.stringify(r) }));
}

export function reasonItems(passage, reasons) {
  return reasonsOf(passage, reasons).map(({ code, text }) => {
    const label = code ? t("gates.reason." + code) : null;
    const known = label && label !== "gates.reason." + code;
    return el("li", { "data-code": code ?? "" },
      known ? el("span", { class: "reason", text: label }) : null, known ? " " : null,
      el("small", { class: known ? "muted raw" : "raw", "data-raw": "", lang: "en", text }));
  });
}
