// agentmon serve's page: the live overview (state pushed by Server-Sent Events, /api/stream) and
// the trace explorer (/traces, /traces/<trace_id>?span=<span_id>), routed in the page.
"use strict";
import { $, clock, getJson, go, offset, setRouter, traceUrl } from "./fmt.js";
import { renderAgents, renderAlerts, renderEvents, renderHeader, renderResources } from "./overview.js";
import { loadInsights, loadTasks, setupTasks } from "./tasks.js";
import { loadList, setupExplorer } from "./explorer.js";
import { TraceView } from "./traceview.js";
import { renderDetail } from "./detail.js";

let view = "";
let openTrace = null;
const tv = new TraceView(showDetail);
let details = new Map(); // span id -> its full detail (of the open trace), fetched when first selected
let detailFor = null;

function spanDetail(traceId, spanId) {
  if (!details.has(spanId)) {
    const req = getJson(`/api/trace/${traceId}?detail=${spanId}`);
    req.catch(() => details.delete(spanId));
    details.set(spanId, req);
  }
  return details.get(spanId);
}

async function showDetail(span) {
  const traceId = tv.trace.trace_id;
  detailFor = span.span_id;
  const url = traceUrl(traceId, span.span_id);
  if (location.pathname + location.search !== url) history.replaceState(null, "", url);
  try {
    const got = await spanDetail(traceId, span.span_id);
    const full = got.spans[0];
    let below = null; // a failed span without an exception of its own: the first one raised under it
    if (full && !full.exception && (full.error || full.status.code === "ERROR")) {
      const id = tv.firstBelow(span.span_id, (s) => s.exc);
      if (id) below = (await spanDetail(traceId, id)).spans[0];
    }
    if (detailFor !== span.span_id) return; // another span was selected meanwhile
    if (!full) $("detail").textContent = "This span has left serve's store (evicted by age or size).";
    else renderDetail($("detail"), full, tv, (id) => tv.selectSpan(id, true), below, got.resources);
  } catch (err) {
    if (detailFor === span.span_id) $("detail").textContent = "cannot reach serve";
  }
}

function show(name, title) {
  view = name;
  document.body.dataset.view = name;
  for (const v of ["overview", "traces", "trace"]) $(`view-${v}`).hidden = v !== name;
  for (const a of document.querySelectorAll("nav.views a")) {
    if (a.dataset.view === (name === "trace" ? "traces" : name)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `agentmon · ${title}`;
}

async function showTrace(traceId, spanId) {
  show("trace", `trace ${traceId.slice(0, 8)}`);
  if (openTrace === traceId && tv.trace) {
    if (spanId && tv.rows[tv.sel] && tv.rows[tv.sel].s.span_id !== spanId) tv.selectSpan(spanId, true);
    return;
  }
  openTrace = traceId;
  details = new Map();
  $("trace-title").textContent = `trace ${traceId}`;
  $("trace-meta").textContent = "loading…";
  $("tv-rows").replaceChildren();
  $("detail").replaceChildren();
  const started = performance.now();
  let trace;
  try {
    trace = await getJson(`/api/trace/${encodeURIComponent(traceId)}?view=tree`);
  } catch (err) {
    $("trace-meta").textContent = "cannot reach serve";
    return;
  }
  if (openTrace !== traceId) return;
  const fetched = performance.now();
  const ext = $("trace-external");
  ext.hidden = !trace.external;
  if (trace.external) ext.href = trace.external;
  if (!trace.spans.length) {
    tv.trace = null;
    $("trace-meta").textContent = "This trace is not in serve's store (never received, or evicted by age or size).";
    $("tv-spacer").style.height = "0";
    return;
  }
  tv.setTrace(trace);
  const roots = tv.kids.get(null) || [];
  const errors = trace.spans.filter((s) => s.error).length;
  const services = new Set(trace.spans.map((s) => s.service));
  $("trace-title").textContent = roots.length ? roots[0].name : `trace ${traceId}`;
  $("trace-meta").textContent = `${trace.spans.length} spans${trace.truncated ? " (the first shown)" : ""} · ${offset(tv.t1 - tv.t0)} · `
    + `${errors ? `${errors} failed · ` : ""}${[...services].join(", ")} · started ${clock(tv.t0)} · trace ${traceId}`;
  const want = new URLSearchParams(location.search).get("span");
  tv.box.scrollTop = 0;
  if (!(want && tv.selectSpan(want, true))) tv.select(0);
  window.agentmonTraceMs = { fetch: fetched - started, render: performance.now() - fetched, spans: trace.spans.length };
}

function route() {
  const path = location.pathname.replace(/\/+$/, "");
  if (path === "/traces") {
    $("back-to-list").href = location.pathname + location.search; // back to this list, filters and all
    show("traces", "traces");
    loadList();
  } else if (path.startsWith("/traces/")) {
    showTrace(decodeURIComponent(path.slice("/traces/".length)).toLowerCase(), new URLSearchParams(location.search).get("span"));
  } else {
    show("overview", "live swarm");
    loadTasks();
  }
}

// --- the stream -----------------------------------------------------------------------------
function render(s) {
  if (!s || !s.swarm) return; // nothing built yet
  const t = performance.now();
  renderHeader(s);
  renderAgents(s.agents);
  renderAlerts(s);
  renderEvents(s.events);
  renderResources(s.resources, s.now);
  window.agentmonRenderMs = performance.now() - t; // read by the benchmarks
  window.agentmonUpdates = (window.agentmonUpdates || 0) + 1;
}
function connect() {
  const es = new EventSource("/api/stream");
  es.onopen = () => { $("conn-dot").className = "dot live"; $("conn-text").textContent = "live"; };
  es.onerror = () => { $("conn-dot").className = "dot"; $("conn-text").textContent = "reconnecting…"; };
  es.onmessage = (e) => { try { render(JSON.parse(e.data)); } catch (err) { console.error(err); } };
}

setRouter(route);
window.addEventListener("popstate", route);
document.addEventListener("click", (ev) => { // the page's own links (header, back) stay in the page
  const a = ev.target.closest("a[data-nav]");
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  go(a.getAttribute("href"));
});
for (const o of document.querySelectorAll(".origin")) o.textContent = location.origin;
setupTasks();
setupExplorer();
$("trace-reload").addEventListener("click", () => { openTrace = null; route(); }); // the selected span stays (the URL)
route();
getJson("/api/state").then(render).catch(() => {});
connect();
setInterval(() => { if (view === "overview") loadTasks(); else if (view === "traces") loadList(); }, 3000);
loadInsights();
setInterval(loadInsights, 10000);
window.agentmonReady = true;
