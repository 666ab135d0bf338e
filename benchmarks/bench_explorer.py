"""``agentmon serve``'s trace explorer: API latency and render time of a 10,000-span trace.

    python benchmarks/bench_explorer.py                 # 10,000 spans, 200 agents, 20 API calls each
    python benchmarks/bench_explorer.py --spans 20000 --runs 40

A ``Server`` runs in this process (port 0) holding a store like a busy swarm's: 200 agents doing
5 tasks each (task -> tool + LLM call, 8 attributes each, the LLM call with an event), plus one
trace of ``--spans`` spans (an agent run -> tasks -> 48 tool/LLM calls each, every failed tool call
with an exception event and stack trace). Measured over HTTP from this process:
``/api/trace/<id>`` of the big trace, and ``/api/search`` unfiltered, by agent, and by free
text that matches nothing (the worst case: every task's subtree is read). Then headless Chromium
opens ``/traces/<id>?span=<a span deep inside>`` ``--runs`` times: the page's own timings
(``window.agentmonTraceMs``: fetch + JSON parse, then tree build + first render) and the wall time
from navigation until the span's detail is shown, and the rows in the DOM.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _span(rng: random.Random, trace: bytes, parent: bytes | None, name: str, start: int, dur: int,
          attrs: dict[str, Any], error: str | None = None, events: int = 0) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    def kv(key: str, value: Any) -> KeyValue:
        v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=str(value))
        return KeyValue(key=key, value=v)

    span = Span(trace_id=trace, span_id=rng.randbytes(8), name=name, start_time_unix_nano=start,
                end_time_unix_nano=start + dur, attributes=[kv(k, v) for k, v in attrs.items()])
    if parent is not None:
        span.parent_span_id = parent
    for i in range(events):
        span.events.add(name=f"step {i}", time_unix_nano=start + dur // 2, attributes=[kv("i", i)])
    if error:
        span.status.CopyFrom(Status(code=2, message=error))
        span.events.add(name="exception", time_unix_nano=start + dur, attributes=[
            kv("exception.type", "TimeoutError"), kv("exception.message", error),
            kv("exception.stacktrace", "Traceback (most recent call last):\n" + '  File "x.py", line 1\n' * 20)])
    return span


def _request(spans: list[Any], service: str) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    rs.scope_spans.add().spans.extend(spans)
    return bytes(req.SerializeToString())


def big_trace(rng: random.Random, n: int) -> tuple[str, str, list[bytes]]:
    """One agent run of ``n`` spans; its trace id, a span deep inside it, and its requests."""
    trace = rng.randbytes(16)
    t0 = time.time_ns() - 60 * 10**9
    root = _span(rng, trace, None, "invoke_agent planner", t0, 50 * 10**9,
                 {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"})
    spans, deep = [root], b""
    per_task = 48
    for t in range((n - 1) // (per_task + 1)):
        start = t0 + t * 10**9 // 5
        task = _span(rng, trace, root.span_id, "task plan", start, 900_000_000, {
            "agentmon.task.type": "plan", "gen_ai.agent.name": "planner", "agentmon.task.id": f"t{t}"})
        spans.append(task)
        for c in range(per_task):
            tool = c % 2 == 0
            child = _span(rng, trace, task.span_id, "execute_tool search" if tool else "chat gpt-4.1",
                          start + c * 15_000_000, 12_000_000, {
                              "gen_ai.operation.name": "execute_tool" if tool else "chat",
                              "gen_ai.tool.name": "search", "gen_ai.request.model": "gpt-4.1",
                              "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 40, "server.port": 443,
                              "server.address": "api.example.com", "http.response.status_code": 200},
                          error="upstream timed out" if tool and c % 10 == 0 else None, events=0 if tool else 1)
            spans.append(child)
            deep = child.span_id
    return trace.hex(), deep.hex(), [_request(spans[i:i + 2000], "planner-svc") for i in range(0, len(spans), 2000)]


def swarm(rng: random.Random, agents: int) -> list[bytes]:
    out = []
    for a in range(agents):
        spans = []
        for _ in range(5):
            trace = rng.randbytes(16)
            start = time.time_ns() - rng.randrange(60 * 10**9)
            task = _span(rng, trace, None, "task research", start, 300_000_000, {
                "agentmon.task.type": "research", "gen_ai.agent.name": f"agent-{a:03d}"})
            spans.append(task)
            spans.append(_span(rng, trace, task.span_id, "execute_tool fetch", start + 10**7, 10**8,
                               {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fetch"}))
            spans.append(_span(rng, trace, task.span_id, "chat gpt-4.1", start + 2 * 10**8, 9 * 10**7,
                               {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1"}, events=1))
        out.append(_request(spans, f"svc-{a % 20}"))
    return out


#: the span whose detail the pane shows, once it shows one
SHOWN = """
const row = document.querySelector('#tv-rows .tv-row[aria-selected=true]');
const pane = document.getElementById('detail');
return row && pane && pane.querySelector('.dp-title') ? row.dataset.span : null;
"""


def timed_get(url: str) -> tuple[float, int]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        size = len(resp.read())
    return (time.perf_counter() - t) * 1000, size


def summary(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"p50 {statistics.median(values):7.1f}  p95 {p95:7.1f}  max {values[-1]:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    from otel_agentmon.serve import ServeConfig, Server
    from tests.support.browser import chromium, set_viewport

    rng = random.Random(7)
    trace_id, deep, big = big_trace(rng, args.spans)
    with Server(ServeConfig(port=0)) as srv:
        for body in [*swarm(rng, args.agents), *big]:
            code, _ = srv.receive("traces", body, "", False)
            assert code == 200, code
        stats = srv.store.stats()
        print(f"store: {stats['spans']} spans, {stats['traces']} traces, {stats['agents']} agents, "
              f"~{stats['bytes'] / 1e6:.1f} MB (estimate, details included)")
        for label, path in [("/api/trace (10k spans)", f"/api/trace/{trace_id}"),
                            ("/api/trace?view=tree", f"/api/trace/{trace_id}?view=tree"),
                            ("/api/trace?detail=<span>", f"/api/trace/{trace_id}?detail={deep}"),
                            ("/api/search (unfiltered)", "/api/search"),
                            ("/api/search?agent=", "/api/search?agent=agent-100"),
                            ("/api/search?q= (no match)", "/api/search?q=nothing-matches-this")]:
            times, size = [], 0
            for _ in range(args.runs):
                ms, size = timed_get(srv.url + path)
                times.append(ms)
            print(f"{label:28s} {summary(times)}  ({size / 1e6:.2f} MB)")
        driver = chromium(1600, 1000)
        set_viewport(driver, 1600, 1000)
        try:
            fetches, renders, walls, rows = [], [], [], 0
            for _ in range(max(3, args.runs // 4)):
                driver.get("about:blank")
                t = time.perf_counter()
                driver.get(f"{srv.url}/traces/{trace_id}?span={deep}")
                while driver.execute_script(SHOWN) != deep and time.perf_counter() - t < 60:
                    time.sleep(0.005)
                walls.append((time.perf_counter() - t) * 1000)
                timing: dict[str, Any] = driver.execute_script("return window.agentmonTraceMs")
                fetches.append(timing["fetch"])
                renders.append(timing["render"])
                rows = driver.execute_script("return document.querySelectorAll('#tv-rows .tv-row').length")
            print(f"page: fetch + parse           {summary(fetches)}")
            print(f"page: tree build + render     {summary(renders)}")
            print(f"page: navigation -> detail    {summary(walls)}  ({rows} rows in the DOM of "
                  f"{json.dumps(timing['spans'])} spans)")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
