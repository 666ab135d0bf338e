"""What the Collector's disk queues (issue 15) cost: OTLP/HTTP ingestion and delivery, disk vs memory.

Runs the real Collector with Jaeger up, each config twice: as shipped (sending queues on
``file_storage``) and with the ``storage:`` lines (and agent.yaml's ``wait_for_result``) removed,
i.e. the in-memory queues of before.  ``local``: local.yaml -> Jaeger.  ``agent``: agent.yaml ->
one gateway.yaml (keeping every trace) -> Jaeger.  Four client threads post pre-encoded OTLP/HTTP
requests of 512 agent-like spans (12 GenAI attributes each) as fast as the Collector answers.
Reported per run: spans/s accepted (answered 200), the time until the Collector under test had
sent them all (``otelcol_exporter_sent_spans`` of its exporter), and its queue directory's size.
A measurement, not a test.

    PYTHONPATH=. python benchmarks/bench_collector_queue.py [--requests 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tests.support.stack import CONFIG_DIR, Stack, locate_binaries, scrape, wait_until

SPANS = 512
THREADS = 4


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


ATTRS = [_kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", "web_search"),
         _kv("gen_ai.agent.name", "researcher-3"), _kv("gen_ai.request.model", "gpt-4o-mini-2024-07-18"),
         _kv("gen_ai.provider.name", "openai"), _kv("agentmon.task.id", "task-000123"),
         _kv("agentmon.task.type", "research"), _kv("gen_ai.tool.call.id", "call_" + "x" * 24),
         _kv("server.address", "api.openai.com"), _kv("agentmon.swarm.name", "research-swarm"),
         _kv("error.type", ""), _kv("gen_ai.response.id", "chatcmpl-" + "y" * 29)]


def bodies(n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        now = time.time_ns()
        trace_id = os.urandom(16)
        spans = [Span(trace_id=trace_id, span_id=os.urandom(8), name="execute_tool web_search",
                      start_time_unix_nano=now - 5_000_000, end_time_unix_nano=now, attributes=ATTRS)
                 for _ in range(SPANS)]
        out.append(ExportTraceServiceRequest(resource_spans=[ResourceSpans(
            resource=Resource(attributes=[_kv("service.name", "bench-queue")]),
            scope_spans=[ScopeSpans(spans=spans)])]).SerializeToString())
    return out


EXPORTER = {"local": "otlp_grpc/jaeger", "agent": "load_balancing/traces"}


def sent_spans(url: str, exporter: str) -> float:
    return sum(s.value for s in scrape(url)
               if s.name.startswith("otelcol_exporter_sent_spans") and s.labels.get("exporter") == exporter)


def in_memory(config: Path, out: Path) -> Path:
    """``config`` with its queues back in memory (the configs before issue 15)."""
    drop = ("storage: file_storage/queue", "wait_for_result: true")
    out.write_text("".join(line for line in config.read_text().splitlines(True) if not any(d in line for d in drop)))
    return out


def run(topology: str, config: Path, label: str, payloads: list[bytes], workdir: Path) -> None:
    with Stack(workdir, locate_binaries()) as stack:
        jaeger = stack.jaeger()
        if topology == "agent":
            (gw,) = stack.free_ports(1)
            stack.collector("gateway", "gateway.yaml", jaeger=jaeger, env={
                "AGENTMON_GATEWAY_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{gw}", "AGENTMON_SAMPLE_PERCENT": "100",
                "AGENTMON_DECISION_WAIT": "1s"})
            col = stack.collector("otelcol", str(config), env={"AGENTMON_GATEWAYS": f"[127.0.0.1:{gw}]"})
        else:
            col = stack.collector("otelcol", str(config), jaeger=jaeger)
        queue_dir = workdir / "otelcol-queue"
        chunks = [payloads[i::THREADS] for i in range(THREADS)]
        refused = [0] * THREADS

        def send(i: int) -> None:
            for body in chunks[i]:
                req = urllib.request.Request(f"{col.otlp_http}/v1/traces", data=body,
                                             headers={"Content-Type": "application/x-protobuf"})
                try:
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        refused[i] += resp.status != 200
                except OSError:
                    refused[i] += 1
        threads = [threading.Thread(target=send, args=(i,)) for i in range(THREADS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted_s = time.perf_counter() - t0
        total = (len(payloads) - sum(refused)) * SPANS
        disk = sum(p.stat().st_size for p in queue_dir.iterdir()) if queue_dir.exists() else 0
        wait_until(lambda: sent_spans(col.telemetry_url, EXPORTER[topology]) >= total, 600, "every span sent",
                   interval=0.1)
        delivered_s = time.perf_counter() - t0
        print(f"{topology:<6} {label:<7} {total:>7} spans  accepted {total / accepted_s:>9,.0f}/s  "
              f"all sent after {delivered_s:6.1f} s ({total / delivered_s:>9,.0f}/s)  "
              f"refused {sum(refused)}  queue files {disk / 1e6:6.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="requests of 512 spans per run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--topology", choices=["local", "agent", "both"], default="both")
    args = ap.parse_args()
    topologies = ["local", "agent"] if args.topology == "both" else [args.topology]
    with tempfile.TemporaryDirectory(prefix="bench-collector-queue-") as tmp:
        for r in range(args.rounds):
            payloads = bodies(args.requests)
            for topology in topologies:
                shipped = CONFIG_DIR / f"{topology}.yaml"
                memory = in_memory(shipped, Path(tmp) / f"{topology}-in-memory.yaml")
                for label, config in (("disk", shipped), ("memory", memory)):
                    run(topology, config, label, payloads, Path(tmp) / f"{topology}-{label}-{r}")


if __name__ == "__main__":
    main()
