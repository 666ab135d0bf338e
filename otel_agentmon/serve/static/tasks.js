// The overview's task list (recent / slowest) and insights: each task and each trace id opens
// in the trace explorer (/traces/<trace_id>?span=<span_id>).
"use strict";
import { $, clock, durationFormat, el, getJson, link, secs, traceUrl } from "./fmt.js";

let tab = "recent";

export async function loadTasks() {
  try {
    const data = await getJson("/api/traces?recent=30&slowest=15");
    renderTasks(data[tab]);
  } catch (err) { /* offline: the stream shows it */ }
}

export function statusCell(t) {
  const td = el("td", t.error ? "status bad" : "status ok-text", t.error ? t.error.split(".").pop() : "ok");
  if (t.error) td.title = t.error;
  return td;
}

export function durationCell(t, max, fmt) {
  const bar = el("span", t.error ? "bar bar-error" : "bar");
  bar.style.width = `${Math.max(2, (t.duration / max) * 60)}px`;
  const td = el("td", "num dur");
  td.append(bar, document.createTextNode(fmt(t.duration)));
  return td;
}

function renderTasks(list) {
  const max = Math.max(1e-9, ...list.map((t) => t.duration));
  const fmt = durationFormat(list.map((t) => t.duration));
  $("traces").tBodies[0].replaceChildren(...list.map((t) => {
    const tr = el("tr");
    tr.dataset.span = t.span_id;
    const name = el("td", "name");
    name.append(link(traceUrl(t.trace_id, t.span_id), t.name));
    tr.append(el("td", "t", clock(t.start + t.duration)), name, el("td", "agent", t.agent || t.service),
      durationCell(t, max, fmt), statusCell(t));
    return tr;
  }));
  $("traces-empty").hidden = list.length > 0;
}

export function setupTasks() {
  for (const b of document.querySelectorAll(".tabs button")) {
    b.addEventListener("click", () => {
      tab = b.dataset.tab;
      for (const o of document.querySelectorAll(".tabs button")) o.setAttribute("aria-pressed", String(o === b));
      loadTasks();
    });
  }
}

export async function loadInsights() {
  try {
    const data = await getJson("/api/insights");
    const facts = [];
    if (data.slowest_agent) facts.push(["slowest agent", `${data.slowest_agent.name} (p50 ${secs(data.slowest_agent.p50)})`]);
    if (data.busiest_tool) facts.push(["busiest tool", `${data.busiest_tool.name} (${data.busiest_tool.n} calls)`]);
    if (data.spans) facts.push(["over", `${data.spans} spans`]);
    $("insights-facts").replaceChildren(...facts.map(([k, v]) => { const s = el("span", "", `${k} `); s.append(el("b", "", v)); return s; }));
    const items = data.opportunities.length ? data.opportunities
      : data.bottlenecks.map((b) => ({ kind: "bottleneck", title: b.headline, evidence: "", trace_ids: b.trace_ids }));
    $("insights").replaceChildren(...items.map((o) => {
      const li = el("li");
      li.append(el("span", "kind", o.kind), el("span", "", o.title));
      const ev = el("span", "ev", o.evidence);
      ev.title = o.query || o.evidence;
      li.append(ev);
      for (const id of o.trace_ids || []) {
        const a = link(traceUrl(id), id.slice(0, 8), "trace-id");
        a.title = `open trace ${id}`;
        li.append(a);
      }
      return li;
    }));
    $("insights-empty").hidden = items.length > 0;
  } catch (err) { /* offline */ }
}
