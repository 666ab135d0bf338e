// One trace (/traces/<trace_id>?span=<span_id>): a time axis and every span at its true start and
// duration, indented by depth, subtrees collapsible. Only the rows in view are in the DOM, so a
// 10,000-span trace opens as fast as a small one. A keyboard-operable tree (WAI-ARIA treeview):
// arrows move, Right/Left expand/collapse (or go to the child/parent), Enter/Space toggle.
"use strict";
import { $, el, offset } from "./fmt.js";

const ROW = 24; // px: the height of one row (matches .tv-row in explorer.css)
const OVERSCAN = 12;

export class TraceView {
  constructor(onSelect) {
    this.onSelect = onSelect;
    this.box = $("tv");
    this.layer = $("tv-rows");
    this.spacer = $("tv-spacer");
    this.trace = null;
    this.collapsed = new Set();
    this.rows = [];
    this.sel = -1;
    this.pending = false;
    this.box.addEventListener("scroll", () => this.schedule());
    window.addEventListener("resize", () => { if (this.trace) this.axis(); this.schedule(); });
    this.box.addEventListener("keydown", (ev) => this.key(ev));
    this.layer.addEventListener("click", (ev) => {
      const row = ev.target.closest(".tv-row");
      if (!row) return;
      const i = +row.dataset.i;
      if (ev.target.closest(".tv-caret")) this.toggle(i); else this.select(i);
      this.box.focus({ preventScroll: true });
    });
  }

  // --- data -------------------------------------------------------------------------------
  setTrace(trace) {
    this.trace = trace;
    this.collapsed = new Set();
    const spans = trace.spans;
    this.byId = new Map(spans.map((s) => [s.span_id, s]));
    this.kids = new Map();
    for (const s of spans) {
      const p = this.byId.has(s.parent_id) && s.parent_id !== s.span_id ? s.parent_id : null;
      if (!this.kids.has(p)) this.kids.set(p, []);
      this.kids.get(p).push(s);
    }
    for (const list of this.kids.values()) list.sort((a, b) => a.start - b.start);
    this.t0 = Math.min(...spans.map((s) => s.start));
    this.t1 = Math.max(...spans.map((s) => s.start + s.duration));
    if (!(this.t1 > this.t0)) this.t1 = this.t0 + 1e-6;
    this.flatten();
    this.axis();
  }

  flatten() {
    const out = [];
    const seen = new Set(); // the server sends a forest; this keeps a bad link from looping all the same
    const stack = (this.kids.get(null) || []).slice().reverse().map((s) => [s, 0]);
    while (stack.length) {
      const [s, depth] = stack.pop();
      if (seen.has(s.span_id)) continue;
      seen.add(s.span_id);
      const kids = this.kids.get(s.span_id) || [];
      out.push({ s, depth, kids: kids.length });
      if (!this.collapsed.has(s.span_id)) for (let k = kids.length - 1; k >= 0; k--) stack.push([kids[k], depth + 1]);
    }
    this.rows = out;
    this.index = new Map(out.map((r, i) => [r.s.span_id, i]));
    this.spacer.style.height = `${out.length * ROW}px`;
    this.box.style.height = `min(${out.length * ROW + 6}px, var(--tv-max))`; // a small trace takes little room
  }

  // the first span under ``spanId`` (breadth first) for which ``pred`` holds
  firstBelow(spanId, pred) {
    const queue = [...(this.kids.get(spanId) || [])];
    for (let i = 0; i < queue.length && i < 20000; i++) {
      if (pred(queue[i])) return queue[i].span_id;
      queue.push(...(this.kids.get(queue[i].span_id) || []));
    }
    return null;
  }

  // --- the time axis: "nice" steps (1, 2, 5 x 10^k) across the whole trace ---------------------
  axis() {
    const total = this.t1 - this.t0;
    const raw = total / Math.max(2, Math.floor(($("tv-ticks").clientWidth || 300) / 80));
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw) || raw;
    const digits = Math.max(0, -Math.floor(Math.log10(total >= 1 ? step : step * 1000)));
    const label = (t) => total >= 1 ? `${t.toFixed(digits)} s` : `${(t * 1000).toFixed(digits)} ms`;
    const ticks = [];
    for (let i = 0, t = 0; t <= total + 1e-12; t = ++i * step) {
      const tick = el("span", "tv-tick", label(t));
      tick.style.left = `${(t / total) * 100}%`;
      ticks.push(tick);
    }
    $("tv-ticks").replaceChildren(...ticks);
  }

  // --- rendering (only the rows in view) -------------------------------------------------------
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }

  render() {
    if (!this.trace) return;
    const height = this.box.clientHeight || 400;
    const first = Math.max(0, Math.floor(this.box.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((this.box.scrollTop + height) / ROW) + OVERSCAN);
    const total = this.t1 - this.t0;
    const out = [];
    for (let i = first; i < last; i++) {
      const { s, depth, kids } = this.rows[i];
      const row = el("div", `tv-row${i === this.sel ? " selected" : ""}${s.error ? " failed" : ""}`);
      row.id = `tv-${s.span_id}`;
      row.dataset.i = String(i);
      row.dataset.span = s.span_id;
      row.style.top = `${i * ROW}px`;
      row.setAttribute("role", "treeitem");
      row.setAttribute("aria-level", String(depth + 1));
      row.setAttribute("aria-selected", String(i === this.sel));
      if (kids) row.setAttribute("aria-expanded", String(!this.collapsed.has(s.span_id)));
      const name = el("div", "tv-name");
      name.style.paddingLeft = `${4 + Math.min(depth, 40) * 12}px`;
      name.append(el("span", "tv-caret", kids ? (this.collapsed.has(s.span_id) ? "▸" : "▾") : ""));
      if (s.error) name.append(el("span", "tv-err", "!"));
      name.append(el("span", "tv-label", s.name));
      const who = s.tool || s.model || (s.kind === "agent" || s.kind === "task" ? s.agent : null);
      if (who && !s.name.includes(who)) name.append(el("span", "tv-who", who));
      if (kids && this.collapsed.has(s.span_id)) name.append(el("span", "tv-who", `+${kids}`));
      name.title = s.name;
      const track = el("div", "tv-track");
      const left = ((s.start - this.t0) / total) * 100;
      const width = (s.duration / total) * 100;
      const bar = el("div", `tv-bar k-${s.kind}${s.error ? " k-error" : ""}`);
      bar.style.left = `${left}%`;
      bar.style.width = `${width}%`;
      const label = el("span", "tv-dur", offset(s.duration));
      // the duration after the bar, or inside its end, or before it: wherever it fits
      if (left + width <= 78) label.style.left = `${left + width}%`;
      else if (width >= 18) { label.classList.add("inside"); label.style.right = `${100 - left - width}%`; }
      else label.style.right = `${100 - left}%`;
      track.append(bar, label);
      row.append(name, track);
      out.push(row);
    }
    this.layer.replaceChildren(...out);
  }

  // --- selection and keys ------------------------------------------------------------------------
  select(i, scroll = true) {
    if (i < 0 || i >= this.rows.length) return;
    this.sel = i;
    const s = this.rows[i].s;
    this.box.setAttribute("aria-activedescendant", `tv-${s.span_id}`);
    if (scroll) {
      const top = i * ROW, h = this.box.clientHeight;
      if (top < this.box.scrollTop) this.box.scrollTop = top;
      else if (top + ROW > this.box.scrollTop + h) this.box.scrollTop = top + ROW - h;
    }
    this.render();
    this.onSelect(s);
  }

  selectSpan(spanId, center = false) {
    const s = this.byId.get(spanId);
    if (!s) return false;
    let changed = false; // open the way to it
    for (let p = this.byId.get(s.parent_id), n = 0; p && n < 10000; p = this.byId.get(p.parent_id), n++) {
      if (this.collapsed.delete(p.span_id)) changed = true;
    }
    if (changed) this.flatten();
    const i = this.index.get(spanId);
    if (center) this.box.scrollTop = Math.max(0, i * ROW - this.box.clientHeight / 3);
    this.select(i, !center);
    return true;
  }

  toggle(i) {
    const { s, kids } = this.rows[i];
    if (!kids) return;
    const selected = this.sel >= 0 ? this.rows[this.sel].s.span_id : null;
    if (!this.collapsed.delete(s.span_id)) this.collapsed.add(s.span_id);
    this.flatten();
    // the selection stays on its span, or moves to the collapsed one that now hides it
    this.sel = this.index.has(selected) ? this.index.get(selected) : i;
    this.render();
    if (this.rows[this.sel].s.span_id !== selected) this.onSelect(this.rows[this.sel].s);
  }

  key(ev) {
    const n = this.rows.length;
    if (!n) return;
    const i = Math.max(0, this.sel);
    const page = Math.max(1, Math.floor(this.box.clientHeight / ROW) - 1);
    const row = this.rows[i];
    let handled = true;
    if (ev.key === "ArrowDown") this.select(Math.min(n - 1, this.sel + 1));
    else if (ev.key === "ArrowUp") this.select(Math.max(0, i - 1));
    else if (ev.key === "Home") this.select(0);
    else if (ev.key === "End") this.select(n - 1);
    else if (ev.key === "PageDown") this.select(Math.min(n - 1, i + page));
    else if (ev.key === "PageUp") this.select(Math.max(0, i - page));
    else if (ev.key === "ArrowRight") {
      if (row.kids && this.collapsed.has(row.s.span_id)) this.toggle(i);
      else if (row.kids) this.select(i + 1);
    } else if (ev.key === "ArrowLeft") {
      if (row.kids && !this.collapsed.has(row.s.span_id)) this.toggle(i);
      else if (this.index.has(row.s.parent_id)) this.select(this.index.get(row.s.parent_id));
    } else if (ev.key === "Enter" || ev.key === " ") this.toggle(i);
    else handled = false;
    if (handled) ev.preventDefault();
  }
}
