// Charts of the reports page drawn as inline SVG: no chart library, nothing fetched.
// Every bar is a <g class="bar" data-key data-value> holding its <rect>s (one per
// segment, each with a <title> tooltip) and its value as text.
const NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

// The smallest 1, 2 or 5 × 10^k at or above `value` (at least 1): the top of the axis.
export function niceMax(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function clip(text, max) {
  const chars = Array.from(text);
  return chars.length > max ? chars.slice(0, max - 1).join("") + "…" : text;
}

function segments(item, g, x0, y0, toLength, horizontal, thickness) {
  let offset = 0;
  for (const seg of item.segments) {
    const length = toLength(seg.value);
    if (length <= 0) continue;
    const rect = horizontal
      ? { x: x0 + offset, y: y0, width: length, height: thickness }
      : { x: x0, y: y0 - offset - length, width: thickness, height: length };
    g.append(svg("rect", { ...rect, class: seg.cls, "data-segment": seg.key, "data-value": seg.value },
      svg("title", {}, seg.title)));
    offset += length;
  }
  return offset;
}

// Horizontal bars, one row per item: [{key, label, total, text?, segments: [{key, cls, value, title}]}].
export function barChart(items, { title, width = 640, row = 26, labelWidth = 230, maxLabel = 18, max = null } = {}) {
  const height = items.length * row + 6;
  const top = max ?? niceMax(Math.max(0, ...items.map((i) => i.total)));
  const plot = width - labelWidth - 70;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title, class: "chart bars" },
    svg("title", {}, title));
  items.forEach((item, i) => {
    const y = 3 + i * row;
    const g = svg("g", { class: "bar", "data-key": item.key, "data-value": item.total });
    g.append(svg("text", { x: labelWidth - 8, y: y + row / 2, class: "label", "text-anchor": "end", "dominant-baseline": "middle" },
      svg("title", {}, item.label), clip(item.label, maxLabel)));
    g.append(svg("line", { x1: labelWidth, x2: labelWidth, y1: y, y2: y + row, class: "axis" }));
    const length = segments(item, g, labelWidth, y + 4, (v) => (v / top) * plot, true, row - 9);
    g.append(svg("text", { x: labelWidth + length + 6, y: y + row / 2, class: "value", "dominant-baseline": "middle" },
      item.text ?? String(item.total)));
    root.append(g);
  });
  return root;
}

// Vertical columns side by side: the same items as barChart; `label` under each column
// (every k-th when they would touch). Drawn at `width` px, shrunk by CSS when narrower.
export function columnChart(items, { title, width = 900, height = 220, left = 34, bottom = 34 } = {}) {
  const top = niceMax(Math.max(0, ...items.map((i) => i.total)));
  const plotH = height - bottom - 16;
  const plotW = width - left - 8;
  const slot = plotW / Math.max(1, items.length);
  const thickness = Math.max(2, slot * 0.72);
  const longest = Math.max(1, ...items.map((i) => i.label.length));
  const every = Math.max(1, Math.ceil((longest * 7 + 8) / slot));  // labels must not touch
  const base = height - bottom;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title, class: "chart columns" },
    svg("title", {}, title));
  const ticks = Number.isInteger(top / 2) ? [0, top / 2, top] : [0, top];
  for (const tick of ticks) {
    const y = base - (tick / top) * plotH;
    root.append(svg("line", { x1: left, x2: width - 8, y1: y, y2: y, class: tick ? "grid" : "axis" }),
      svg("text", { x: left - 5, y, class: "tick", "text-anchor": "end", "dominant-baseline": "middle" }, String(tick)));
  }
  items.forEach((item, i) => {
    const x = left + i * slot + (slot - thickness) / 2;
    const g = svg("g", { class: "bar", "data-key": item.key, "data-value": item.total });
    const length = segments(item, g, x, base, (v) => (v / top) * plotH, false, thickness);
    if (item.total > 0 && items.length <= 40) {
      g.append(svg("text", { x: x + thickness / 2, y: base - length - 4, class: "value", "text-anchor": "middle" },
        item.text ?? String(item.total)));
    }
    if (i % every === 0) {
      g.append(svg("text", { x: x + thickness / 2, y: base + 14, class: "label", "text-anchor": "middle" }, item.label));
    }
    root.append(g);
  });
  return root;
}

// A legend of coloured swatches: [{cls, label}].
export function legend(container, entries) {
  container.replaceChildren(...entries.flatMap(({ cls, label }) => {
    const swatch = document.createElement("span");
    swatch.className = "sw " + cls;
    const text = document.createElement("span");
    text.textContent = label;
    return [swatch, text];
  }));
}
