"""``agentmon serve``: CPU per received span as the number of distinct agents grows.

    python benchmarks/bench_serve_agents.py                       # 10 and 10,000 agents
    python benchmarks/bench_serve_agents.py --agents 10 2000 10000 --spans 60000
    python benchmarks/bench_serve_agents.py --profile 10000      # cProfile of the 10,000-agent run

A ``Server`` runs in this process (port 0); requests of 500 spans (task -> tool + LLM call trees,
unique ids, the agents taken round-robin from ``--agents N`` distinct names, every agent in its
own process instance when ``--instances`` says so) go straight to ``Server.receive``, the path an
HTTP request takes after its body is read. Every agent is seen once before the measurement starts.
CPU time is this process's (all threads: ingestion, the derivation thread, the health loop), over
the measured spans, after the derivation queue has drained; the request thread's own share (decoding,
storing, deriving) is shown apart from the other threads' (the health loop, which evaluates every
known agent on its clock, whatever the span rate).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BATCH = 500


def requests(agents: int, instances: int, spans: int, seed: int) -> list[bytes]:
    """Serialized export requests of ``BATCH`` spans, ``spans`` in all, agents round-robin."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    rng = random.Random(seed)
    now_ns = time.time_ns()
    out: list[bytes] = []
    n = 0
    while n < spans:
        req = ExportTraceServiceRequest()
        by_instance: dict[int, Any] = {}
        for _ in range(BATCH // 3):
            agent_no = (n // 3) % agents
            inst_no = agent_no % instances
            ss = by_instance.get(inst_no)
            if ss is None:
                rs = req.resource_spans.add()
                for key, value in (("service.name", "loadgen"), ("service.instance.id", f"inst-{inst_no}")):
                    rs.resource.attributes.add(key=key).value.string_value = value
                ss = by_instance[inst_no] = rs.scope_spans.add()
                ss.scope.name = "loadgen"
            agent = f"agent-{agent_no:05d}"
            trace_id, task_id = rng.randbytes(16), rng.randbytes(8)
            shapes: tuple[tuple[int, str, dict[str, Any]], ...] = (
                    (1, "execute_tool web_search", {"gen_ai.operation.name": "execute_tool",
                                                    "gen_ai.tool.name": "web_search", "gen_ai.agent.name": agent}),
                    (3, "chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 420,
                                        "gen_ai.usage.output_tokens": 96}),
                    (1, "task research", {"agentmon.task.type": "research", "gen_ai.agent.name": agent,
                                          "agentmon.task.id": f"t{n}"}))
            for kind, name, attrs in shapes:
                span = ss.spans.add(name=name, kind=kind, trace_id=trace_id)
                is_task = name.startswith("task")
                span.span_id = task_id if is_task else rng.randbytes(8)
                if not is_task:
                    span.parent_span_id = task_id
                span.start_time_unix_nano = now_ns - 50_000_000
                span.end_time_unix_nano = now_ns - (0 if is_task else 10_000_000)
                for key, value in attrs.items():
                    kv = span.attributes.add(key=key)
                    if isinstance(value, int):
                        kv.value.int_value = value
                    else:
                        kv.value.string_value = value
                n += 1
        out.append(bytes(req.SerializeToString()))
    return out


def measure(agents: int, instances: int, spans: int, profile: bool) -> dict[str, float]:
    from otel_agentmon.serve import ServeConfig, Server

    warm = requests(agents, instances, max(3 * agents, BATCH), seed=1)  # every agent once
    bodies = requests(agents, instances, spans, seed=2)
    server = Server(ServeConfig(port=0)).start()
    try:
        for body in warm:
            assert server.receive("traces", body, "", False)[0] == 200
        _drain(server)
        profiler = cProfile.Profile() if profile else None
        cpu0, wall0, own0 = time.process_time(), time.perf_counter(), time.thread_time()
        if profiler is not None:
            profiler.enable()
        for body in bodies:
            assert server.receive("traces", body, "", False)[0] == 200
        _drain(server)
        if profiler is not None:
            profiler.disable()
        own = time.thread_time() - own0  # decoding, storing and deriving: the request thread's work
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        sent = _count(bodies)
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        stats = server.stats()
    finally:
        server.stop()
    return {"agents": agents, "spans": sent, "cpu_us_per_span": cpu / sent * 1e6,
            "ingest_us_per_span": own / sent * 1e6, "background_cpu_per_s": (cpu - own) / wall,
            "wall_us_per_span": wall / sent * 1e6, "stored_agents": stats.get("agents", 0),
            "derive_dropped": server.evaluator.deriver.dropped}


def _count(bodies: list[bytes]) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    return sum(len(ss.spans) for b in bodies for rs in ExportTraceServiceRequest.FromString(b).resource_spans
               for ss in rs.scope_spans)


def _drain(server: Any) -> None:
    """Wait (bounded) until the derivation thread has taken everything queued."""
    deadline = time.monotonic() + 120
    deriver = server.evaluator.deriver
    while getattr(deriver, "_queue", None) and time.monotonic() < deadline:
        time.sleep(0.01)
    with deriver._lock:  # the last one taken is processed
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--instances", type=int, default=1, help="distinct process instances (agents spread)")
    parser.add_argument("--spans", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per agent count (the median is shown)")
    parser.add_argument("--profile", type=int, help="profile the run with this many agents instead")
    args = parser.parse_args()
    if args.profile:
        measure(args.profile, args.instances, args.spans, True)
        return
    print(f"| distinct agents | spans | CPU µs/span, all threads (median of {args.repeat}) | runs | "
          "request thread µs/span | other threads, CPU s per s | wall µs/span |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for agents in args.agents:
        runs = sorted((measure(agents, args.instances, args.spans, False) for _ in range(args.repeat)),
                      key=lambda r: r["cpu_us_per_span"])
        mid = runs[len(runs) // 2]
        shown = ", ".join(f"{r['cpu_us_per_span']:.0f}" for r in runs)
        print(f"| {agents:,} | {int(mid['spans']):,} | {mid['cpu_us_per_span']:.0f} | {shown} | "
              f"{mid['ingest_us_per_span']:.0f} | {mid['background_cpu_per_s']:.2f} | {mid['wall_us_per_span']:.0f} |")


if __name__ == "__main__":
    main()
