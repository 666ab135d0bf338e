// The overview: swarm KPIs, the agents table, alerts and events, resources. Keyed, in-place DOM
// updates (a cell is written only when its text changes), so hundreds of agents stay cheap.
"use strict";
import { $, ago, bytes, clock, dash, durationFormat, el, num, pct } from "./fmt.js";

const RANK = { unhealthy: 0, degraded: 1, healthy: 2, stopped: 3 };
// busy / idle: alive; stopped: shut down cleanly or retired (not an error); down: gone without a word
const LIFE_CLASS = { busy: "num up-yes", idle: "num up-yes", stopped: "num life-stopped", down: "num up-no" };
const WINDOW_S = 90;
const rows = new Map();
let order = [];
const history = { throughput: [], spans: [] };

// --- agents table ---------------------------------------------------------------------------
const COLS = ["name", "health", "up", "inflight", "oldest", "thr", "p50", "p95", "err", "busy", "tokens", "procs"];
// what a phone shows before each value, where the table reflows into one card per agent
const LABELS = { up: "lifecycle", inflight: "in flight", oldest: "oldest", thr: "tasks/s", p50: "p50", p95: "p95",
  err: "errors", busy: "busy", tokens: "tokens/task", procs: "processes" };
function makeRow(name) {
  const tr = el("tr");
  tr.dataset.agent = name;
  const cells = {};
  for (const c of COLS) {
    const td = el("td", c === "name" ? "name" : c === "procs" ? "procs" : c === "health" ? "health" : "num");
    if (LABELS[c]) td.dataset.label = LABELS[c];
    tr.appendChild(td);
    cells[c] = td;
  }
  cells.name.appendChild(el("span", "", name));
  cells.reason = cells.name.appendChild(el("span", "reason"));
  cells.pill = cells.health.appendChild(el("span", "pill"));
  cells.src = cells.health.appendChild(el("span", "src"));
  return { tr, cells, last: {} };
}
function put(row, key, text, cls) {
  const cell = row.cells[key];
  if (row.last[key] !== text) { cell.textContent = text; row.last[key] = text; }
  if (cls !== undefined && row.last[key + ".c"] !== cls) { cell.className = cls; row.last[key + ".c"] = cls; }
}
export function renderAgents(agents) {
  const tbody = $("agents").tBodies[0];
  const seen = new Set();
  // one unit per duration column (all in ms, or all in s)
  const oldestFmt = durationFormat(agents.filter((a) => a.in_flight).map((a) => a.oldest_age));
  const latFmt = durationFormat(agents.flatMap((a) => [a.p50, a.p95]));
  for (const a of agents) {
    seen.add(a.name);
    let row = rows.get(a.name);
    if (!row) { row = makeRow(a.name); rows.set(a.name, row); }
    if (row.last.state !== a.state) {
      row.tr.dataset.state = a.state;
      row.cells.pill.dataset.state = a.state;
      if (row.last.state !== undefined) { row.tr.classList.remove("flash"); void row.tr.offsetWidth; row.tr.classList.add("flash"); }
      row.last.state = a.state;
    }
    put(row, "pill", a.state);
    put(row, "src", a.source === "reported" ? "reported" : "derived");
    put(row, "reason", a.reasons.join("; "));
    const life = a.lifecycle || (a.up ? "idle" : "down");
    put(row, "up", life, LIFE_CLASS[life] || "num");
    put(row, "inflight", String(a.in_flight));
    put(row, "oldest", a.in_flight ? oldestFmt(a.oldest_age) : dash, a.stuck ? "num warn" : "num");
    put(row, "thr", num(a.throughput));
    put(row, "p50", latFmt(a.p50));
    put(row, "p95", latFmt(a.p95));
    put(row, "err", pct(a.error_rate), a.error_rate >= 0.5 ? "num bad" : a.error_rate >= 0.1 ? "num warn" : "num");
    put(row, "busy", pct(a.utilisation));
    put(row, "tokens", a.tokens_per_task ? num(a.tokens_per_task, 0) : dash);
    put(row, "procs", a.instances.join(", "));
  }
  for (const [name, row] of rows) {
    if (!seen.has(name)) { row.tr.remove(); rows.delete(name); }
  }
  const next = agents.slice().sort((x, y) => (RANK[x.state] - RANK[y.state]) || (x.name < y.name ? -1 : 1)).map((a) => a.name);
  if (next.length !== order.length || next.some((n, i) => n !== order[i])) {
    for (const name of next) tbody.appendChild(rows.get(name).tr); // moves only; rows keep their state
    order = next;
  }
  $("agents-empty").hidden = agents.length > 0;
}

// --- header ---------------------------------------------------------------------------------
function sparkline(svg, values) {
  const path = svg.querySelector("path");
  if (values.length < 2) { path.setAttribute("d", ""); return; }
  const max = Math.max(...values, 1e-9);
  const step = 120 / (values.length - 1);
  path.setAttribute("d", values.map((v, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(27 - (v / max) * 25).toFixed(1)}`).join(""));
}
export function renderHeader(s) {
  const sw = s.swarm;
  const pill = $("swarm-state");
  pill.dataset.state = sw.agents ? sw.state : "unknown";
  pill.textContent = sw.agents ? `swarm ${sw.state}` : "no agents yet";
  $("k-agents").textContent = String(sw.agents);
  const c = sw.counts;
  $("k-mix").textContent = sw.agents ? `${c.healthy || 0} ok · ${c.degraded || 0} degr. · ${c.unhealthy || 0} unh.`
    + (c.stopped ? ` · ${c.stopped} stopped` : "") : "";
  $("k-throughput").textContent = num(sw.throughput);
  $("k-errors").textContent = pct(sw.error_rate);
  $("k-inflight").textContent = String(sw.in_flight);
  $("k-spans").textContent = num(sw.span_rate, 0);
  $("k-alerts").textContent = String(s.alerts.firing.length);
  $("k-alerts").className = s.alerts.firing.length ? "value bad" : "value";
  for (const [key, value] of [["throughput", sw.throughput], ["spans", sw.span_rate]]) {
    history[key].push(value);
    if (history[key].length > 120) history[key].shift();
    sparkline($(`spark-${key}`), history[key]);
  }
  const st = s.store;
  $("store-note").textContent = `store: ${st.spans} spans in ${st.traces} traces, ~${bytes(st.bytes)} of ${bytes(s.limits.max_memory_bytes)}, `
    + `retention ${s.limits.retention_s}s · ${st.spans_received || 0} spans, ${st.points_received || 0} metric points, `
    + `${st.events_received || 0} events received · ${st.instances} processes · up ${Math.round(s.uptime)}s`;
}

// --- alerts and events ----------------------------------------------------------------------
let alertsKey = "";
export function renderAlerts(s) {
  const key = JSON.stringify([s.alerts.firing.map((a) => [a.rule, a.agent, a.value, a.source]),
    s.alerts.resolved.map((a) => [a.at, a.source])]);
  if (key === alertsKey) { refreshAges(s.now); return; }
  alertsKey = key;
  const fill = (ul, list, resolved) => {
    ul.replaceChildren(...list.slice(0, 12).map((a) => {
      const li = el("li");
      li.dataset.severity = a.severity;
      li.append(el("span", "sev", a.severity), el("div", "rule", `${a.rule}${a.agent ? " · " + a.agent : ""}`));
      if (a.summary) li.append(el("div", "", a.summary));
      const meta = el("div", "meta");
      meta.dataset.t = String(resolved ? a.at : a.since);
      meta.dataset.prefix = `${resolved ? "resolved" : "firing since"} ${clock(resolved ? a.at : a.since)} (`;
      // one row per alert wherever it was evaluated: the process, serve, or both
      meta.dataset.suffix = `) · evaluated in ${a.where === "both" ? "process and serve" : a.where || "?"}: ${a.source}`;
      li.append(meta);
      return li;
    }));
  };
  fill($("alerts-firing"), s.alerts.firing, false);
  fill($("alerts-resolved"), s.alerts.resolved, true);
  $("alerts-none").hidden = s.alerts.firing.length > 0;
  refreshAges(s.now);
}
function refreshAges(now) {
  for (const m of document.querySelectorAll(".alerts-list .meta")) m.textContent = m.dataset.prefix + ago(+m.dataset.t, now) + m.dataset.suffix;
}
let eventsKey = "";
export function renderEvents(events) {
  const key = events.length ? `${events.length}:${events[0].t}` : "0";
  if (key === eventsKey) return;
  eventsKey = key;
  $("events").replaceChildren(...events.slice(0, 40).map((e) => {
    const li = el("li");
    li.append(el("span", "t", clock(e.t)));
    if (e.kind === "health") {
      const p = el("span", "pill", e.state); p.dataset.state = e.state;
      li.append(el("b", "", `${e.agent} `), p, el("span", "", e.text ? ` ${e.text}` : ""));
    } else if (e.kind === "alert") {
      li.append(el("span", e.state === "firing" ? "bad" : "up-yes", `${e.state} `), el("b", "", e.rule), el("span", "", e.agent ? ` · ${e.agent}` : ""));
    } else {
      li.append(el("span", "warn", "stuck "), el("span", "", e.text));
    }
    return li;
  }));
}

// --- resources: CPU and memory of each process; network of the host it runs on ----------------
const cards = new Map();
const CHARTS = [["cpu", "cpu", ["c-cpu"]], ["memory", "memory", ["c-mem"]], ["net", "host net", ["c-rx", "c-tx"]]];
function makeCard(r) {
  const card = el("div", "card");
  const title = el("div", "title", r.service);
  title.append(el("span", "note", r.instance));
  card.append(title);
  const charts = {};
  for (const [key, label, classes] of CHARTS) {
    const row = el("div", "chart");
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 300 30");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    const paths = [];
    for (const cls of classes) {
      const area = document.createElementNS(svg.namespaceURI, "path"); area.setAttribute("class", `area ${cls}`);
      const line = document.createElementNS(svg.namespaceURI, "path"); line.setAttribute("class", cls);
      svg.append(area, line);
      paths.push([area, line]);
    }
    const val = el("span", "val");
    const lbl = el("span", "lbl", label);
    if (key === "net") lbl.title = "system.network.io: the whole host's traffic, not this process's";
    row.append(lbl, svg, val);
    card.append(row);
    charts[key] = { paths, val };
  }
  return { card, charts };
}
function drawSeries(pair, points, now, max, span) {
  const [area, line] = pair;
  const pts = (points || []).filter((p) => p[0] >= now - span);
  if (pts.length < 2) { area.setAttribute("d", ""); line.setAttribute("d", ""); return; }
  const xy = pts.map(([t, v]) => [((t - (now - span)) / span) * 300, 29 - (v / max) * 27]);
  const d = xy.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
  line.setAttribute("d", d);
  area.setAttribute("d", `${d}L${xy[xy.length - 1][0].toFixed(1)},30L${xy[0][0].toFixed(1)},30Z`);
}
export function renderResources(list, now) {
  const box = $("resources");
  const seen = new Set();
  for (const r of list) {
    const id = `${r.service}/${r.instance}`;
    seen.add(id);
    let c = cards.get(id);
    if (!c) { c = makeCard(r); cards.set(id, c); box.appendChild(c.card); }
    const last = (s) => (s && s.length ? s[s.length - 1][1] : null);
    const maxOf = (...ss) => Math.max(1e-9, ...ss.flatMap((s) => (s || []).map((p) => p[1])));
    // the last 90 s, or less while a process is young (so a new process does not draw a sliver)
    const first = Math.min(...[r.cpu, r.memory, r.net_rx].filter((s) => s && s.length).map((s) => s[0][0]), now);
    const span = Math.max(15, Math.min(WINDOW_S, now - first));
    drawSeries(c.charts.cpu.paths[0], r.cpu, now, Math.max(0.05, maxOf(r.cpu) * 1.1), span);
    c.charts.cpu.val.textContent = pct(last(r.cpu));
    drawSeries(c.charts.memory.paths[0], r.memory, now, maxOf(r.memory) * 1.1, span);
    c.charts.memory.val.textContent = bytes(last(r.memory));
    const netMax = maxOf(r.net_rx, r.net_tx) * 1.1;
    drawSeries(c.charts.net.paths[0], r.net_rx, now, netMax, span);
    drawSeries(c.charts.net.paths[1], r.net_tx, now, netMax, span);
    c.charts.net.val.textContent = `↓${bytes(last(r.net_rx))}/s`;
    c.charts.net.val.title = `host received ${bytes(last(r.net_rx))}/s, sent ${bytes(last(r.net_tx))}/s`;
  }
  for (const [id, c] of cards) if (!seen.has(id)) { c.card.remove(); cards.delete(id); }
  $("resources-empty").hidden = list.length > 0;
}
