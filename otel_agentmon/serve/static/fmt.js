// Shared helpers of the agentmon page: DOM building, number formats, navigation.
"use strict";

export const $ = (id) => document.getElementById(id);
export const dash = "–";
export const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};

// One format per column: a duration column picks its unit once, from its largest value.
export const secs = (s) => s == null ? dash : s < 1 ? `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms` : `${s.toFixed(s < 10 ? 2 : 1)} s`;
export function durationFormat(values) {
  const max = Math.max(0, ...values.filter((v) => v != null));
  if (max >= 1) return (s) => s == null ? dash : `${s.toFixed(2)} s`;
  return (s) => s == null ? dash : `${(s * 1000).toFixed(max < 0.01 ? 2 : 0)} ms`;
}
// Percentages always with one decimal: "9.9%", "10.0%", "11.0%" line up in a column.
export const pct = (x) => x == null ? dash : `${(x * 100).toFixed(1)}%`;
export const num = (x, d = 2) => x == null ? dash : x.toFixed(d);
export const bytes = (b) => b == null ? dash : b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB`
  : b >= 1e3 ? `${(b / 1e3).toFixed(1)} kB` : `${b.toFixed(0)} B`;
export const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });
export const ago = (t, now) => {
  const d = Math.max(0, now - t);
  return d < 60 ? `${d.toFixed(0)}s ago` : d < 3600 ? `${(d / 60).toFixed(0)}m ago` : `${(d / 3600).toFixed(1)}h ago`;
};
// A span offset or duration inside one trace: ms below 1 s, else s.
export const offset = (s) => Math.abs(s) < 1 ? `${(s * 1000).toFixed(Math.abs(s) < 0.01 ? 2 : 1)} ms` : `${s.toFixed(2)} s`;

export const traceUrl = (traceId, spanId) => `/traces/${traceId}${spanId ? `?span=${spanId}` : ""}`;

// In-page navigation: links keep working as links (new tab, copy), a plain click stays in the page.
let router = null;
export function setRouter(fn) { router = fn; }
export function go(url, replace = false) {
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  if (router) router();
}
export function link(href, text, cls) {
  const a = el("a", cls, text);
  a.href = href;
  a.addEventListener("click", (ev) => {
    if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    go(href);
  });
  return a;
}

export async function getJson(url) {
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.json();
}
