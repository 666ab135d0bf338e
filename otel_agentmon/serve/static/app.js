// agentmon live dashboard: state pushed by Server-Sent Events (/api/stream), rendered with keyed,
// in-place DOM updates (a cell is written only when its text changes), so hundreds of agents stay cheap.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const RANK = { unhealthy: 0, degraded: 1, healthy: 2, stopped: 3 };
  // busy / idle: alive; stopped: shut down cleanly or retired (not an error); down: gone without a word
  const LIFE_CLASS = { busy: "num up-yes", idle: "num up-yes", stopped: "num life-stopped", down: "num up-no" };
  const WINDOW_S = 90;
  const rows = new Map();
  let order = [];
  let lastState = null;
  const history = { throughput: [], spans: [] };
  let tab = "recent";
  let selected = null;
  let autoSelected = false;

  // --- formatting ---------------------------------------------------------------------------
  const dash = "–";
  const secs = (s) => s == null ? dash : s < 1 ? `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms` : `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const pct = (x) => x == null ? dash : `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
  const num = (x, d = 2) => x == null ? dash : x >= 100 ? x.toFixed(0) : x.toFixed(d);
  const bytes = (b) => b == null ? dash : b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : b >= 1e3 ? `${(b / 1e3).toFixed(1)} kB` : `${b.toFixed(0)} B`;
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });
  const ago = (t, now) => { const d = Math.max(0, now - t); return d < 60 ? `${d.toFixed(0)}s ago` : d < 3600 ? `${(d / 60).toFixed(0)}m ago` : `${(d / 3600).toFixed(1)}h ago`; };
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; };

  // --- agents table -------------------------------------------------------------------------
  const COLS = ["name", "health", "up", "inflight", "oldest", "thr", "p50", "p95", "err", "busy", "tokens", "procs"];
  function makeRow(name) {
    const tr = el("tr");
    tr.dataset.agent = name;
    const cells = {};
    for (const c of COLS) {
      const td = el("td", c === "name" ? "name" : c === "procs" ? "procs" : c === "health" ? "" : "num");
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
  function renderAgents(agents) {
    const tbody = $("agents").tBodies[0];
    const seen = new Set();
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
      put(row, "oldest", a.in_flight ? secs(a.oldest_age) : dash, a.stuck ? "num warn" : "num");
      put(row, "thr", num(a.throughput));
      put(row, "p50", secs(a.p50));
      put(row, "p95", secs(a.p95));
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
    $("agents-empty").style.display = agents.length ? "none" : "block";
  }

  // --- header -------------------------------------------------------------------------------
  function sparkline(svg, values) {
    const path = svg.querySelector("path");
    if (values.length < 2) { path.setAttribute("d", ""); return; }
    const max = Math.max(...values, 1e-9);
    const step = 120 / (values.length - 1);
    path.setAttribute("d", values.map((v, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(27 - (v / max) * 25).toFixed(1)}`).join(""));
  }
  function renderHeader(s) {
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

  // --- alerts and events --------------------------------------------------------------------
  let alertsKey = "";
  function renderAlerts(s) {
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
    $("alerts-none").style.display = s.alerts.firing.length ? "none" : "block";
    refreshAges(s.now);
  }
  function refreshAges(now) {
    for (const m of document.querySelectorAll(".alerts-list .meta")) m.textContent = m.dataset.prefix + ago(+m.dataset.t, now) + m.dataset.suffix;
  }
  let eventsKey = "";
  function renderEvents(events) {
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

  // --- resources ----------------------------------------------------------------------------
  const cards = new Map();
  const CHARTS = [["cpu", "cpu", ["c-cpu"], (v) => pct(v)], ["memory", "memory", ["c-mem"], bytes], ["net", "network", ["c-rx", "c-tx"], (v) => `${bytes(v)}/s`]];
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
      const paths = [];
      for (const cls of classes) {
        const area = document.createElementNS(svg.namespaceURI, "path"); area.setAttribute("class", `area ${cls}`);
        const line = document.createElementNS(svg.namespaceURI, "path"); line.setAttribute("class", cls);
        svg.append(area, line);
        paths.push([area, line]);
      }
      const val = el("span", "val");
      row.append(el("span", "lbl", label), svg, val);
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
  function renderResources(list, now) {
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
      c.charts.net.val.title = `received ${bytes(last(r.net_rx))}/s, sent ${bytes(last(r.net_tx))}/s`;
    }
    for (const [id, c] of cards) if (!seen.has(id)) { c.card.remove(); cards.delete(id); }
    $("resources-empty").style.display = list.length ? "none" : "block";
  }

  // --- tasks and the waterfall --------------------------------------------------------------
  async function loadTraces() {
    try {
      const res = await fetch("/api/traces?recent=30&slowest=15", { cache: "no-store" });
      const data = await res.json();
      renderTraces(data[tab], lastState ? lastState.now : Date.now() / 1000);
      if (!selected && !autoSelected && data.slowest.length) { autoSelected = true; select(data.slowest[0]); }
    } catch (err) { /* offline: the stream shows it */ }
  }
  function renderTraces(list, now) {
    const max = Math.max(1e-9, ...list.map((t) => t.duration));
    $("traces").tBodies[0].replaceChildren(...list.map((t) => {
      const tr = el("tr");
      tr.dataset.span = t.span_id;
      if (selected && selected.span_id === t.span_id) tr.classList.add("selected");
      const bar = el("span", "bar"); bar.style.width = `${Math.max(2, (t.duration / max) * 90)}px`;
      if (t.error) bar.style.background = "var(--red)";
      const dur = el("td"); dur.append(bar, document.createTextNode(secs(t.duration)));
      tr.append(el("td", "", clock(t.start + t.duration)), el("td", "", t.name), el("td", "", t.agent || t.service), dur,
        el("td", t.error ? "bad" : "up-yes", t.error ? t.error.split(".").pop() : "ok"));
      tr.addEventListener("click", () => select(t));
      return tr;
    }));
  }
  async function select(t) {
    selected = t;
    for (const tr of $("traces").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.span === t.span_id);
    $("wf-title").textContent = `${t.name} · ${t.agent || t.service} · trace ${t.trace_id.slice(0, 12)}…`;
    const res = await fetch(`/api/trace/${t.trace_id}${t.span_id ? `?span=${t.span_id}` : ""}`, { cache: "no-store" });
    renderWaterfall((await res.json()).spans, t.span_id);
  }
  function renderWaterfall(spans, focus) {
    const box = $("wf");
    if (!spans.length) { box.replaceChildren(el("div", "empty", "This trace has left the store.")); return; }
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    const kids = new Map();
    for (const s of spans) {
      const p = byId.has(s.parent_id) ? s.parent_id : null;
      if (!kids.has(p)) kids.set(p, []);
      kids.get(p).push(s);
    }
    const ancestors = new Set();
    for (let p = byId.get(focus); p && byId.has(p.parent_id) && !ancestors.has(p.parent_id); p = byId.get(p.parent_id)) ancestors.add(p.parent_id);
    const ordered = [];
    const seen = new Set();  // the server sends a forest; this keeps a bad link from looping all the same
    const walk = (parent, depth) => {
      for (const s of (kids.get(parent) || []).sort((a, b) => a.start - b.start)) {
        if (seen.has(s.span_id)) continue;
        seen.add(s.span_id); ordered.push([s, depth]); walk(s.span_id, depth + 1);
      }
    };
    walk(null, 0);
    const focusSpan = byId.get(focus) || spans.reduce((a, b) => (b.duration > a.duration ? b : a));
    const t0 = focusSpan.start, t1 = focusSpan.start + Math.max(focusSpan.duration, 1e-6);
    const legend = el("div", "legend");
    for (const k of ["agent", "task", "tool", "llm", "workflow"]) { const i = el("i", `k-${k}`); legend.append(el("span", "", "")); legend.lastChild.append(i, k); }
    const rowsOut = [legend];
    for (const [s, depth] of ordered) {
      const row = el("div", "wf-row");
      const name = el("div", "wf-name", s.name);
      name.style.paddingLeft = `${depth * 14}px`;
      name.title = [s.name, s.agent && `agent ${s.agent}`, s.tool && `tool ${s.tool}`, s.model && `model ${s.model}`,
        s.tokens && `${s.tokens} tokens`, s.error && `error ${s.error}`].filter(Boolean).join(" · ");
      const track = el("div", "wf-track");
      // the task's ancestors run beyond the task: drawn faded, clipped to its time range
      const bar = el("div", `wf-bar k-${s.kind}${s.error ? " k-error" : ""}${ancestors.has(s.span_id) ? " wf-ctx" : ""}`);
      const left = Math.max(0, Math.min(100, ((s.start - t0) / (t1 - t0)) * 100));
      const width = Math.max(0.4, Math.min(100 - left, (s.duration / (t1 - t0)) * 100));
      bar.style.left = `${left}%`; bar.style.width = `${width}%`;
      track.append(bar);
      row.append(name, track, el("div", "wf-dur", secs(s.duration)));
      rowsOut.push(row);
    }
    box.replaceChildren(...rowsOut);
  }
  async function loadInsights() {
    try {
      const data = await (await fetch("/api/insights", { cache: "no-store" })).json();
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
          const a = el("a", "", id.slice(0, 8));
          a.title = `waterfall of trace ${id}`;
          a.addEventListener("click", () => select({ trace_id: id, span_id: "", name: "trace", agent: id.slice(0, 12) }));
          li.append(a);
        }
        return li;
      }));
      $("insights-empty").style.display = items.length ? "none" : "block";
    } catch (err) { /* offline */ }
  }
  for (const b of document.querySelectorAll(".tabs button")) {
    b.addEventListener("click", () => {
      tab = b.dataset.tab;
      for (const o of document.querySelectorAll(".tabs button")) o.classList.toggle("active", o === b);
      loadTraces();
    });
  }

  // --- the stream ---------------------------------------------------------------------------
  function render(s) {
    lastState = s;
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
  for (const o of document.querySelectorAll(".origin")) o.textContent = location.origin;
  fetch("/api/state", { cache: "no-store" }).then((r) => r.json()).then(render).catch(() => {});
  connect();
  loadTraces();
  setInterval(loadTraces, 2000);
  loadInsights();
  setInterval(loadInsights, 10000);
})();
