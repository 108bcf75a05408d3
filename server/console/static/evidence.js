// Gate evidence: a passage's uploaded images (frames and the crops the reader read) as
// thumbnails with the detected text boxes drawn and each reading's confidence; a click
// opens the full frame in a dialog. Used by the lane view (gates.js) and the trip timeline
// (trip.js). Images come from GET /api/v1/passages/{id}/images/{n} with the session's
// cookie; a passage event without them (a decision, an override) keeps those known.
import { t } from "./i18n.js";
import { el } from "./shell.js";

const SVG = "http://www.w3.org/2000/svg";
//: passage_id → its images, the most complete list seen (they are only ever added).
const known = new Map();

export function evidenceOf(p) {
  const fresh = Array.isArray(p.evidence) ? p.evidence : [];
  const before = known.get(p.passage_id) ?? [];
  const best = fresh.length >= before.length ? fresh : before;
  if (best.length) known.set(p.passage_id, best);
  return best;
}

const pct = (c) => `${Math.round(c * 100)}%`;

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

// The text boxes over an image, in the image's own pixels (the SVG scales with it).
function overlay(image) {
  const stroke = Math.max(2, Math.round(Math.max(image.width, image.height) / 200));
  const font = Math.max(12, Math.round(Math.max(image.width, image.height) / 40));
  return svg("svg", { class: "evidence-boxes", viewBox: `0 0 ${image.width} ${image.height}`, preserveAspectRatio: "none", "aria-hidden": "true" },
    ...image.texts.map((box) => {
      const [x0, y0, x1, y1] = box.box;
      const label = svg("text", { x: x0, y: Math.max(font, y0 - stroke), "font-size": font, class: "evidence-label" });
      label.textContent = `${box.text} ${pct(box.confidence)}`;
      return svg("g", { class: `evidence-box ${box.kind}${box.needs_review ? " review" : ""}`, "data-text": box.text, "data-confidence": box.confidence },
        svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, "stroke-width": stroke }), label);
    }));
}

function readings(image) {
  return el("ul", { class: "evidence-readings" }, ...image.texts.map((box) =>
    el("li", { class: box.needs_review ? "needs-review" : "" },
      el("strong", { "data-raw": "", text: box.text }), " ", el("span", { class: "conf", text: pct(box.confidence) }),
      box.needs_review ? el("span", { class: "badge review", text: t("gates.needs_review") }) : null)));
}

function picture(image, className) {
  const alt = `${t("evidence." + image.kind)} · ${image.camera}`;
  return el("div", { class: className },
    el("img", { src: image.url, alt, loading: "lazy", width: image.width, height: image.height }),
    overlay(image));
}

// The full frame of an image (a crop opens the frame it was cut from).
function openFrame(images, image) {
  const frame = image.kind === "crop" ? images.find((i) => i.n === image.frame) ?? image : image;
  const dialog = el("dialog", { class: "evidence-dialog", "data-n": frame.n },
    el("h3", { text: `${t("evidence.frame")} · ${frame.camera}` }),
    picture(frame, "evidence-full"),
    readings(frame),
    el("form", { method: "dialog" }, el("button", { type: "submit", class: "evidence-close", text: t("evidence.close") })));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

// The thumbnails of a passage (frames first, then crops), or a note that none arrived yet.
export function evidenceStrip(p) {
  const images = evidenceOf(p);
  if (!images.length) {
    const waiting = (p.images ?? []).length > 0;
    return el("p", { class: "evidence muted", "data-count": "0", text: t(waiting ? "evidence.pending" : "evidence.none") });
  }
  const ordered = [...images].sort((a, b) => (a.kind === b.kind ? a.n - b.n : a.kind === "frame" ? -1 : 1));
  return el("div", { class: "evidence", "data-count": images.length },
    ...ordered.map((image) => el("figure", {
      class: `evidence-thumb ${image.kind}`, "data-n": image.n, "data-kind": image.kind, tabindex: "0",
      title: t("evidence.open"),
      onclick: () => openFrame(images, image),
      onkeydown: (e) => { if (e.key === "Enter") openFrame(images, image); },
    }, picture(image, "evidence-picture"),
    el("figcaption", {}, ...image.texts.map((box) => el("span", { class: box.needs_review ? "needs-review" : "" },
      el("span", { "data-raw": "", text: box.text }), " ", el("span", { class: "conf", text: pct(box.confidence) })))))));
}
