// The span detail pane: status and exception (type, message, stack trace) first, then message
// content when it was captured, attributes, events, links and the resource.
"use strict";
import { clock, el, link, offset, traceUrl } from "./fmt.js";

// message content (GenAI semantic conventions; older instrumentations' names too)
const CONTENT_KEYS = ["gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages",
  "gen_ai.prompt", "gen_ai.completion", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"];
const CONTENT_EVENT = /^gen_ai\.(content|user|system|assistant|tool|choice)/;

const pretty = (v) => {
  if (typeof v !== "string") return JSON.stringify(v, null, 2);
  const t = v.trim();
  if (t.startsWith("{") || t.startsWith("[")) { try { return JSON.stringify(JSON.parse(t), null, 2); } catch (e) { /* as sent */ } }
  return v;
};

function section(title, ...children) {
  const s = el("section", "dp-section");
  s.append(el("h3", "", title), ...children);
  return s;
}

function kvList(obj, cls = "kv") {
  const dl = el("dl", cls);
  for (const key of Object.keys(obj).sort()) {
    const v = obj[key];
    const text = typeof v === "string" ? v : JSON.stringify(v);
    const dd = el("dd", text.length > 120 || text.includes("\n") ? "long" : "", text);
    dl.append(el("dt", "", key), dd);
  }
  return dl;
}

function exceptionBlock(ex, where, onPick) {
  const box = el("div", "dp-exception");
  box.append(el("div", "dp-ex-head", `${ex.type || "exception"}${ex.message ? `: ${ex.message}` : ""}`));
  if (where) {
    const from = el("div", "note", "raised in ");
    const b = el("button", "linkish", where.name);
    b.type = "button";
    b.addEventListener("click", () => onPick(where.span_id));
    from.append(b);
    box.append(from);
  }
  if (ex.stacktrace) box.append(el("pre", "dp-stack", ex.stacktrace));
  return box;
}

// ``below``: for a failed span without an exception of its own, the first span under it with one.
export function renderDetail(box, span, ctx, onPick, below, resources) {
  if (!span) { box.replaceChildren(el("div", "empty", "Select a span.")); return; }
  const head = el("div", "dp-head");
  const title = el("h2", "dp-title", span.name);
  const kind = el("span", `pill kind k-${span.kind}`, span.kind);
  const status = el("span", `pill status-${(span.status.code || "unset").toLowerCase()}`, span.status.code || "UNSET");
  head.append(title, kind, status);
  const facts = el("dl", "kv facts");
  const fact = (k, v) => { if (v != null && v !== "") facts.append(el("dt", "", k), el("dd", "", String(v))); };
  fact("duration", offset(span.duration));
  fact("starts at", `+${offset(span.start - ctx.t0)} (${clock(span.start)})`);
  fact("agent", span.agent); fact("tool", span.tool); fact("model", span.model); fact("task type", span.task_type);
  if (span.tokens) fact("tokens", span.tokens);
  fact("service", span.service); fact("span kind", span.span_kind); fact("scope", span.scope);
  fact("span id", span.span_id);
  if (span.parent_id && ctx.byId.has(span.parent_id)) {
    const b = el("button", "linkish", `${ctx.byId.get(span.parent_id).name} (${span.parent_id})`);
    b.type = "button";
    b.addEventListener("click", () => onPick(span.parent_id));
    const dd = el("dd"); dd.append(b);
    facts.append(el("dt", "", "parent"), dd);
  } else fact("parent", span.parent_id ? `${span.parent_id} (not in this trace)` : "none (a root)");
  fact("trace id", span.trace_id);
  const out = [head, facts];

  if (span.exception) out.push(section("Exception", exceptionBlock(span.exception, null, onPick)));
  else if (below && below.exception) out.push(section("Exception", exceptionBlock(below.exception, below, onPick)));
  if (span.status.message && !(span.exception && span.status.message.includes(span.exception.message || "\u0000"))) {
    out.push(section("Status message", el("pre", "dp-pre", span.status.message)));
  }
  if (span.error) out.push(el("div", "note", `error.type ${span.error}`));

  const content = CONTENT_KEYS.filter((k) => k in span.attributes);
  const contentEvents = span.events.filter((e) => CONTENT_EVENT.test(e.name));
  if (content.length || contentEvents.length) {
    const blocks = [];
    for (const k of content) blocks.push(el("div", "dp-msg-key", k), el("pre", "dp-pre", pretty(span.attributes[k])));
    for (const e of contentEvents) blocks.push(el("div", "dp-msg-key", e.name), el("pre", "dp-pre", pretty(e.attributes)));
    out.push(section("Messages", ...blocks));
  }
  out.push(section(`Attributes (${Object.keys(span.attributes).length})`, kvList(span.attributes)));
  if (span.events.length) {
    const list = el("ol", "dp-events");
    for (const e of span.events) {
      const li = el("li");
      li.append(el("span", "t", `+${offset(e.t - span.start)}`), el("b", "", e.name));
      if (Object.keys(e.attributes).length) li.append(kvList(e.attributes, "kv small"));
      list.append(li);
    }
    out.push(section(`Events (${span.events.length})`, list));
  }
  if (span.links.length) {
    const list = el("ul", "dp-links");
    for (const l of span.links) {
      const li = el("li");
      li.append(link(traceUrl(l.trace_id, l.span_id), `${l.trace_id.slice(0, 12)}… / ${l.span_id}`));
      if (Object.keys(l.attributes).length) li.append(kvList(l.attributes, "kv small"));
      list.append(li);
    }
    out.push(section(`Links (${span.links.length})`, list));
  }
  const resource = span.resource != null ? resources[span.resource] : null;
  if (resource) out.push(section("Resource", kvList(resource)));
  if (span.dropped) out.push(el("div", "note", `${span.dropped} attributes, events or links were not kept (serve's bounds, or the SDK's)`));
  box.replaceChildren(...out);
  box.scrollTop = 0;
}
