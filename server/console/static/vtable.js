// A table body that keeps only the rows in view in the page (plus a margin), so that a
// list of thousands (the alarm queue, the truck list) costs the same as one of fifty.
// Short lists (up to `allUpTo` rows) are rendered whole. Rows must be of equal height.
//
//   const rows = new VirtualRows({ scroller, tbody, key: (a) => a.id, render: (a) => tr });
//   rows.setItems(list);       // re-renders what is in view
//   rows.invalidate(id);       // that item's row is drawn again (if in view)
export class VirtualRows {
  constructor({ scroller, tbody, key, render, allUpTo = 300, overscan = 15, columns = 1 }) {
    this.scroller = scroller;
    this.tbody = tbody;
    this.key = key;
    this.renderRow = render;
    this.allUpTo = allUpTo;
    this.overscan = overscan;
    this.columns = columns;
    this.items = [];
    this.cache = new Map(); // key → { item, row }
    this.rowHeight = 0;
    this.frame = null;
    this.window = [0, 0];
    scroller.addEventListener("scroll", () => { if (this.virtual) this.schedule(); }, { passive: true });
    window.addEventListener("resize", () => this.schedule());
  }

  get virtual() { return this.items.length > this.allUpTo; }

  setItems(items) {
    this.items = items;
    this.render();
  }

  // Every row is drawn again (language or selection changed).
  refresh() {
    this.cache.clear();
    this.render();
  }

  invalidate(key) { this.cache.delete(key); }

  schedule() {
    if (this.frame !== null) return;
    this.frame = requestAnimationFrame(() => { this.frame = null; this.render(); });
  }

  row(item) {
    const k = this.key(item);
    const known = this.cache.get(k);
    if (known && known.item === item) return known.row;
    const row = this.renderRow(item);
    this.cache.set(k, { item, row });
    return row;
  }

  spacer(height) {
    const tr = document.createElement("tr");
    tr.className = "vspacer";
    tr.setAttribute("aria-hidden", "true");
    const td = document.createElement("td");
    td.colSpan = this.columns;
    tr.style.height = `${height}px`;
    tr.append(td);
    return tr;
  }

  render() {
    const items = this.items;
    if (!this.virtual) {
      const rows = items.map((item) => this.row(item));
      this.prune(new Set(items.map(this.key)));
      this.tbody.replaceChildren(...rows);
      this.window = [0, items.length];
      return;
    }
    if (!this.rowHeight) {
      const probe = this.renderRow(items[0]);
      this.tbody.replaceChildren(probe);
      this.rowHeight = probe.getBoundingClientRect().height || 24;
    }
    const h = this.rowHeight;
    const view = this.scroller.getBoundingClientRect();
    const top = this.tbody.getBoundingClientRect().top - view.top; // tbody start, in view
    const first = Math.max(0, Math.floor(-top / h) - this.overscan);
    const last = Math.min(items.length, Math.ceil((view.height - top) / h) + this.overscan);
    const start = Math.min(first, Math.max(0, last - 1));
    const end = Math.max(last, start + 1);
    const shown = items.slice(start, end);
    this.prune(new Set(shown.map(this.key)));
    this.tbody.replaceChildren(
      this.spacer(start * h), ...shown.map((item) => this.row(item)), this.spacer((items.length - end) * h));
    this.window = [start, end];
  }

  prune(keep) {
    for (const k of this.cache.keys()) if (!keep.has(k)) this.cache.delete(k);
  }

  // Brings item `index` into view.
  scrollToIndex(index) {
    if (!this.virtual) return;
    const tbodyTop = this.tbody.getBoundingClientRect().top - this.scroller.getBoundingClientRect().top + this.scroller.scrollTop;
    this.scroller.scrollTop = Math.max(0, tbodyTop + index * this.rowHeight - this.scroller.clientHeight / 3);
    this.render();
  }
}
