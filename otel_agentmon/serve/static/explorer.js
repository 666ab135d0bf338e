// The trace list (/traces): filters (agent, task type, tool, status, duration, trace id, free
// text), sortable by time and duration; the filters live in the URL, so a filtered list is a link.
"use strict";
import { $, clock, durationFormat, el, getJson, go, link, traceUrl } from "./fmt.js";
import { durationCell, statusCell } from "./tasks.js";

const FIELDS = ["agent", "task_type", "tool", "status", "min_s", "max_s", "trace_id", "q"];
let timer = null;

function query() {
  const params = new URLSearchParams(location.search);
  const out = new URLSearchParams();
  for (const k of [...FIELDS, "sort"]) { const v = params.get(k); if (v) out.set(k, v); }
  return out;
}

function fillSelect(select, values, current) {
  const want = ["", ...values];
  if (current && !want.includes(current)) want.push(current);
  const have = [...select.options].map((o) => o.value);
  if (have.length === want.length && have.every((v, i) => v === want[i])) return;
  select.replaceChildren(...want.map((v) => { const o = el("option", "", v || "any"); o.value = v; return o; }));
  select.value = current || "";
}

function syncForm(params) {
  const form = $("filters");
  for (const k of FIELDS) {
    const input = form.elements[k];
    if (document.activeElement !== input && input.value !== (params.get(k) || "")) input.value = params.get(k) || "";
  }
  const sort = params.get("sort") || "time";
  for (const th of document.querySelectorAll("#trace-list th[data-sort]")) {
    const key = th.dataset.sort;
    th.setAttribute("aria-sort", sort.replace("-", "") === key ? (sort.startsWith("-") ? "ascending" : "descending") : "none");
  }
}

function renderRows(rows) {
  const focused = document.activeElement && document.activeElement.closest("#trace-list tbody")
    ? document.activeElement.getAttribute("href") : null;
  const max = Math.max(1e-9, ...rows.map((t) => t.duration));
  const fmt = durationFormat(rows.map((t) => t.duration));
  $("trace-list").tBodies[0].replaceChildren(...rows.map((t) => {
    const tr = el("tr");
    tr.dataset.trace = t.trace_id;
    tr.dataset.agent = t.agent || "";
    const name = el("td", "name");
    name.append(link(traceUrl(t.trace_id, t.span_id), t.name));
    const ext = el("td", "ext");
    if (t.link) { const a = el("a", "", "↗"); a.href = t.link; a.target = "_blank"; a.rel = "noopener"; a.title = "open in the trace backend"; a.tabIndex = -1; ext.append(a); }
    tr.append(el("td", "t", clock(t.start + t.duration)), name, el("td", "agent", t.agent || t.service),
      el("td", "type", t.task_type || t.kind), durationCell(t, max, fmt), statusCell(t), ext);
    return tr;
  }));
  if (focused) { const again = document.querySelector(`#trace-list tbody a[href="${CSS.escape(focused)}"]`); if (again) again.focus(); }
}

export async function loadList() {
  const params = query();
  syncForm(params);
  const key = params.toString();
  try {
    const data = await getJson(`/api/search?${key}&limit=200`);
    if (query().toString() !== key) return; // the filters changed meanwhile: that answer is coming
    const form = $("filters");
    fillSelect(form.elements.agent, data.facets.agents, params.get("agent"));
    fillSelect(form.elements.task_type, data.facets.task_types, params.get("task_type"));
    fillSelect(form.elements.tool, data.facets.tools, params.get("tool"));
    renderRows(data.rows);
    $("trace-list-empty").hidden = data.rows.length > 0;
    $("search-note").textContent = `${data.rows.length} of ${data.total} matching · ${data.kept} tasks kept`;
  } catch (err) {
    $("search-note").textContent = "cannot reach serve";
  }
}

function apply(sortKey) {
  const form = $("filters");
  const params = new URLSearchParams();
  for (const k of FIELDS) { const v = String(form.elements[k].value || "").trim(); if (v) params.set(k, v); }
  const sort = sortKey !== undefined ? sortKey : query().get("sort");
  if (sort && sort !== "time") params.set("sort", sort);
  const qs = params.toString();
  go(`/traces${qs ? `?${qs}` : ""}`, true);
}

export function setupExplorer() {
  const form = $("filters");
  form.addEventListener("submit", (ev) => { ev.preventDefault(); apply(); });
  form.addEventListener("change", () => apply());
  form.addEventListener("input", (ev) => {
    if (ev.target.tagName !== "INPUT") return;
    clearTimeout(timer);
    timer = setTimeout(() => apply(), 300);
  });
  $("filters-clear").addEventListener("click", () => { form.reset(); go("/traces", true); });
  for (const th of document.querySelectorAll("#trace-list th[data-sort]")) {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.sort;
      const cur = query().get("sort") || "time";
      apply(cur === key ? `-${key}` : key);
    });
  }
  // arrow keys move between rows; Enter opens (the row's link)
  $("trace-list").tBodies[0].addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    const links = [...document.querySelectorAll("#trace-list tbody td.name a")];
    const i = links.indexOf(document.activeElement);
    const next = links[Math.max(0, Math.min(links.length - 1, i + (ev.key === "ArrowDown" ? 1 : -1)))];
    if (next) { next.focus(); ev.preventDefault(); }
  });
}
