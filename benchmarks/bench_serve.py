"""``agentmon serve`` under load, and the dashboard's reaction time.

    python benchmarks/bench_serve.py                      # 5,000 spans/s for 60 s, 64 MB store bound
    python benchmarks/bench_serve.py --rate 5000 --seconds 60 --max-memory-mb 64
    python benchmarks/bench_serve.py --dashboard 5        # health change -> DOM delay, 5 runs

Load: ``agentmon serve`` runs as its own process (``--max-memory-mb`` bound on its span store); a
generator process posts raw OTLP/HTTP protobuf requests (500 spans each: task -> tool + LLM call
trees of 50 agents, unique ids) paced to ``--rate``, over one keep-alive connection, like an SDK's
exporter. Every second the benchmark samples serve's RSS (psutil) and its store counters; at the
end it prints a Markdown report: sent / accepted / refused spans, RSS over time against the bound.

Dashboard: the failing-swarm example exports to serve; headless Chromium shows the page; a
MutationObserver timestamps the moment ``doomed``'s row turns unhealthy, compared with the
timestamp of the health event the example's SDK emitted (same machine clock).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BATCH = 500


def _request_template() -> Any:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for key, value in (("service.name", "loadgen"), ("service.instance.id", "bench-1")):
        rs.resource.attributes.add(key=key).value.string_value = value
    ss = rs.scope_spans.add()
    ss.scope.name = "loadgen"

    def attrs(span: Any, pairs: dict[str, Any]) -> None:
        for key, value in pairs.items():
            kv: KeyValue = span.attributes.add(key=key)
            if isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = value

    for i in range(BATCH // 3 + 1):
        # children end (and are exported) before their parent, as an SDK sends them
        agent = f"agent-{i % 50:02d}"
        tool = ss.spans.add(name="execute_tool web_search", kind=1)
        attrs(tool, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web_search",
                     "gen_ai.agent.name": agent})
        llm = ss.spans.add(name="chat gpt-4o", kind=3)
        attrs(llm, {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 420,
                    "gen_ai.usage.output_tokens": 96})
        task = ss.spans.add(name="task research", kind=1)
        attrs(task, {"agentmon.task.type": "research", "gen_ai.agent.name": agent, "agentmon.task.id": f"t{i}"})
    del ss.spans[BATCH:]
    return req


def generate(url: str, rate: float, seconds: float, out: Any) -> None:
    """Post ``rate`` spans/s for ``seconds`` (runs in its own process)."""
    req = _request_template()
    spans = req.resource_spans[0].scope_spans[0].spans
    rng = random.Random(1)
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    sent = accepted = refused = 0
    codes: dict[int, int] = {}
    interval = BATCH / rate
    start = time.monotonic()
    next_at = start
    while time.monotonic() - start < seconds:
        now_ns = time.time_ns()
        for j in range(0, len(spans), 3):
            trace_id = rng.randbytes(16)
            task_id = rng.randbytes(8)
            group = spans[j:j + 3]
            for k, span in enumerate(group):
                is_task = k == len(group) - 1
                span.trace_id = trace_id
                span.span_id = task_id if is_task else rng.randbytes(8)
                span.parent_span_id = b"" if is_task else task_id
                span.start_time_unix_nano = now_ns - 50_000_000
                span.end_time_unix_nano = now_ns - (0 if is_task else 10_000_000)
        body = req.SerializeToString()
        try:
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            resp = conn.getresponse()
            resp.read()
            codes[resp.status] = codes.get(resp.status, 0) + 1
            if resp.status == 200:
                accepted += len(spans)
            else:
                refused += len(spans)
        except OSError:
            refused += len(spans)
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        sent += len(spans)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    out.put({"sent": sent, "accepted": accepted, "refused": refused, "codes": codes,
             "seconds": time.monotonic() - start})


def state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/api/state", timeout=30) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def load(args: argparse.Namespace) -> str:
    cmd = [sys.executable, "-m", "otel_agentmon.cli", "serve", "--port", "0", "--max-memory-mb",
           str(args.max_memory_mb), "--max-spans", str(args.max_spans)]
    serve = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    assert serve.stdout is not None
    url = re.search(r"http://[\d.]+:\d+", serve.stdout.readline()).group(0)  # type: ignore[union-attr]
    proc = psutil.Process(serve.pid)
    idle_rss = proc.memory_info().rss
    queue: multiprocessing.Queue[dict[str, Any]] = multiprocessing.Queue()
    gen = multiprocessing.Process(target=generate, args=(url, args.rate, args.seconds, queue))
    t0 = time.monotonic()
    cpu0 = sum(proc.cpu_times()[:2])
    gen.start()
    samples: list[tuple[float, int, float, dict[str, int]]] = []
    while gen.is_alive():
        time.sleep(1.0)
        store = state(url)["store"]
        samples.append((time.monotonic() - t0, proc.memory_info().rss, proc.cpu_percent(None), store))
    result = queue.get(timeout=10)
    gen.join()
    cpu_s = sum(proc.cpu_times()[:2]) - cpu0
    elapsed = time.monotonic() - t0
    time.sleep(1.0)
    final = state(url)["store"]
    serve.terminate()
    serve.wait(20)
    bound = args.max_memory_mb * 1024 * 1024
    peak = max(s[1] for s in samples)
    lines = [
        f"## agentmon serve under {args.rate:,.0f} spans/s for {args.seconds:.0f} s",
        "",
        f"Command: `python benchmarks/bench_serve.py --rate {args.rate:.0f} --seconds {args.seconds:.0f} "
        f"--max-memory-mb {args.max_memory_mb:g} --max-spans {args.max_spans}` "
        f"({os.cpu_count()} CPUs, Python {sys.version.split()[0]}).",
        "",
        "| | |", "|---|---|",
        f"| spans sent | {result['sent']:,} in {result['seconds']:.1f} s ({result['sent'] / result['seconds']:,.0f}/s) |",
        f"| spans accepted (HTTP 200) | {result['accepted']:,} |",
        f"| spans refused (non-200 or connection error) | {result['refused']:,} (status codes: {result['codes']}) |",
        f"| spans received by the store | {final.get('spans_received', 0):,} |",
        f"| spans kept at the end / evicted (size) / evicted (age) | {final['spans']:,} / "
        f"{final.get('spans_evicted_size', 0):,} / {final.get('spans_evicted_age', 0):,} |",
        f"| store estimate at the end (bound) | {final['bytes'] / 2**20:.1f} MiB ({args.max_memory_mb:g} MiB) |",
        f"| serve RSS idle / peak / end | {idle_rss / 2**20:.0f} / {peak / 2**20:.0f} / {samples[-1][1] / 2**20:.0f} MiB |",
        f"| peak RSS minus idle RSS vs the store bound | {(peak - idle_rss) / 2**20:.0f} MiB vs {bound / 2**20:.0f} MiB |",
        f"| serve CPU time during the run | {cpu_s:.1f} s in {elapsed:.0f} s ({100 * cpu_s / elapsed:.0f} % of one core; "
        f"{1e6 * cpu_s / max(1, result['accepted']):.0f} µs per span) |",
        "",
        "| t (s) | RSS (MiB) | store spans | store estimate (MiB) | serve CPU % |", "|---:|---:|---:|---:|---:|",
    ]
    for t, rss, cpu, store in samples[:: max(1, len(samples) // 12)]:
        lines.append(f"| {t:.0f} | {rss / 2**20:.0f} | {store['spans']:,} | {store['bytes'] / 2**20:.1f} | {cpu:.0f} |")
    return "\n".join(lines)


def dashboard(runs: int) -> str:
    from otel_agentmon.serve import ServeConfig, Server
    from tests.support.browser import chromium
    from tests.test_dashboard import OBSERVE, clean_env

    delays: list[float] = []
    render_ms: list[float] = []
    for _ in range(runs):
        with Server(ServeConfig(port=0)) as srv:
            driver = chromium()
            proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "failing_swarm.py")],
                                    env=clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=srv.url), stdout=subprocess.DEVNULL,
                                    cwd=ROOT)
            try:
                driver.get(srv.url + "/")
                driver.execute_script(OBSERVE)
                deadline = time.monotonic() + 20
                seen: dict[str, int] = {}
                while time.monotonic() < deadline and "doomed=unhealthy" not in seen:
                    time.sleep(0.1)
                    seen = driver.execute_script("return window.seenStates")
                    render_ms.append(float(driver.execute_script("return window.agentmonRenderMs || 0")))
                event = next(e for e in state(srv.url)["events"]
                             if e["kind"] == "health" and e["agent"] == "doomed" and e["state"] == "unhealthy")
                delays.append(seen["doomed=unhealthy"] / 1000 - event["t"])
            finally:
                proc.kill()
                proc.wait()
                driver.quit()
    ordered = sorted(delays)
    return "\n".join([
        f"## Dashboard: health change to DOM ({runs} runs of examples/failing_swarm.py)", "",
        f"Command: `python benchmarks/bench_serve.py --dashboard {runs}`.", "",
        "From the `agentmon.health.changed` record's timestamp (the SDK's health loop in the example, "
        "realtime profile) to the moment the `doomed` row's `data-state` turned `unhealthy` in headless "
        "Chromium (MutationObserver), including the SDK's log batch delay (200 ms), serve's push "
        "coalescing (200 ms) and rendering:", "",
        f"- delay: median {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
        f"(all: {', '.join(f'{d * 1000:.0f}' for d in ordered)} ms)",
        f"- one full render of the state (4 agents): median {statistics.median(render_ms):.2f} ms",
    ])


def render_200(port_agents: int = 200) -> str:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from otel_agentmon.serve import ServeConfig, Server
    from tests.support.browser import chromium
    from tests.test_serve import agent_spans

    with Server(ServeConfig(port=0)) as srv:
        exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces", timeout=5)
        for i in range(port_agents):
            exporter.export(agent_spans(2, agent=f"agent-{i:03d}", instance=f"i-{i % 10}"))
        exporter.shutdown()
        driver = chromium()
        try:
            driver.get(srv.url + "/")
            times: list[float] = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                time.sleep(0.25)
                if driver.execute_script("return document.querySelectorAll('#agents tbody tr').length") == port_agents:
                    times.append(float(driver.execute_script("return window.agentmonRenderMs")))
                if len(times) >= 30:
                    break
        finally:
            driver.quit()
    return (f"- one render with {port_agents} agents (keyed rows, changed cells only): median "
            f"{statistics.median(times):.1f} ms, max {max(times):.1f} ms over {len(times)} pushes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-memory-mb", type=float, default=64)
    parser.add_argument("--max-spans", type=int, default=1_000_000)
    parser.add_argument("--dashboard", type=int, metavar="RUNS", help="measure health change -> DOM instead")
    args = parser.parse_args()
    if args.dashboard:
        print(dashboard(args.dashboard))
        print(render_200())
    else:
        print(load(args))


if __name__ == "__main__":
    main()
