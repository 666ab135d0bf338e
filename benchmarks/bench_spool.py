"""The disk spool (issue 15): delivery across an outage, the caller's cost, write/replay speed.

    python benchmarks/bench_spool.py [--parts bar,caller,throughput,drain] [--out benchmarks/results/bench_spool.json]

* ``bar``: 45 s at 1,000 spans/s (500 ``@agent`` tasks with one ``tool`` each), the Collector
  (the receiver of ``tests/support/receiver.py``, in this process) down for the first 20 s, then
  ``shutdown()``; every other option at its default (the spool in a temporary directory instead
  of ``~/.local/state``). Reported: spans created, distinct spans received, delivered fraction,
  ``stats()``. Run with the spool on and off (memory only, the behaviour before issue 15).
* ``caller``: the caller's time per task (2 spans, a tight loop of 2,000 after 200 warm-up), spool
  on vs off, with the receiver healthy and with its port closed; each (case, rep) in a fresh
  process, cases interleaved rep by rep; p50/p90/p99 of all reps pooled.
* ``throughput``: in-process, ``SpoolDir.write`` of 512-span requests (fsync included) and the
  re-send of them to a healthy receiver (claim, read, POST, remove), in spans/s.
* ``drain``: 1,000 spans/s with the Collector down for 60 s, then up; the time from "up" until
  the spool holds no trace request (the backlog re-sent while live traffic goes on).

The workload runs in a child process; the receiver runs in this one, so its decoding does not
take the workload's GIL.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SERVICE = "bench-spool"


# ---- the workload (child) ---------------------------------------------------------------------------
def workload(endpoint: str, spool_dir: str, rate: float, duration: float, options: dict[str, Any]) -> None:
    """Emit ``rate`` spans/s for ``duration`` s (0: until stdin closes), or a tight loop with
    ``rate`` 0; print one JSON line."""
    import otel_agentmon as agentmon

    @agentmon.agent("spool-agent")
    def agent_task(i: int) -> int:
        with agentmon.tool("lookup", attributes={"i": i}):
            return i

    spool = {"spool": True, "spool_dir": spool_dir} if spool_dir else {"spool": False}
    monitor = agentmon.configure(endpoint=endpoint, service_name=SERVICE, **spool, **options)
    stop = threading.Event()
    if duration == 0:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    times: list[float] = []
    n = 0
    if rate == 0:
        for i in range(200):
            agent_task(i)
        for i in range(2000):
            start = time.perf_counter()
            agent_task(i)
            times.append(time.perf_counter() - start)
        n = 2200
    else:
        t0 = time.monotonic()
        while not stop.is_set():
            elapsed = time.monotonic() - t0
            if duration and elapsed >= duration:
                break
            target = int(elapsed * rate / 2)
            while n < target:
                start = time.perf_counter()
                agent_task(n)
                times.append(time.perf_counter() - start)
                n += 1
            time.sleep(0.005)
    start = time.monotonic()
    monitor.shutdown()
    took = time.monotonic() - start
    stats = monitor.stats()
    print(json.dumps({"tasks": n, "times": times, "shutdown_s": took, "balanced": stats.balanced,
                      "started": stats.spans_started, "exported": stats.spans_exported,
                      "spooled": stats.spans_spooled, "dropped": dict(stats.spans_dropped),
                      "spool": {"written": dict(stats.spool.written), "resent": dict(stats.spool.resent),
                                "expired": dict(stats.spool.expired)}}), flush=True)


def child(endpoint: str, spool_dir: str, rate: float, duration: float, options: dict[str, Any] | None = None,
          stdin: bool = False) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen([sys.executable, __file__, "--workload", endpoint, spool_dir, str(rate), str(duration),
                             json.dumps(options or {})], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def result(proc: subprocess.Popen[str], timeout: float = 600) -> dict[str, Any]:
    out, err = proc.communicate(input="" if proc.stdin is not None else None, timeout=timeout)  # closing stdin stops it
    if proc.returncode != 0:
        raise RuntimeError(err)
    return dict(json.loads(out.strip().splitlines()[-1]))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# ---- the parts ------------------------------------------------------------------------------------------
def bar(spool_on: bool) -> dict[str, Any]:
    from tests.support.receiver import OTLPReceiver, free_port

    rx = OTLPReceiver(free_port())
    with tempfile.TemporaryDirectory() as spool_dir:
        proc = child(rx.endpoint, spool_dir if spool_on else "", 1000, 45)
        time.sleep(20)
        rx.start()
        run = result(proc)
        received = len(rx.unique_span_ids())
        duplicates = len(rx.spans()) - received
        rx.stop()
    run.pop("times")
    return {"spool_on": spool_on, "created": run["started"], "received": received, "duplicates": duplicates,
            "delivered": received / max(1, run["started"]), **run}


def caller(reps: int) -> dict[str, Any]:
    from tests.support.receiver import OTLPReceiver, closed_port

    cases = {"healthy, spool off": (True, False), "healthy, spool on": (True, True),
             "down, spool off": (False, False), "down, spool on": (False, True)}
    times: dict[str, list[float]] = {c: [] for c in cases}
    with OTLPReceiver() as rx, tempfile.TemporaryDirectory() as spool_dir:
        for _ in range(reps):
            for case, (healthy, on) in cases.items():
                endpoint = rx.endpoint if healthy else f"http://127.0.0.1:{closed_port()}"
                run = result(child(endpoint, spool_dir if on else "", 0, 0,
                                   {"system_metrics": "off", "span_schedule_delay_ms": 50, "export_timeout": 1.0}))
                times[case] += run["times"]
    return {case: {"p50_us": quantile(t, 0.5) * 1e6, "p90_us": quantile(t, 0.9) * 1e6,
                   "p99_us": quantile(t, 0.99) * 1e6, "mean_us": statistics.fmean(t) * 1e6} for case, t in times.items()}


def throughput() -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider

    from otel_agentmon._core.sdk_compat import otlp_http_client
    from otel_agentmon._export.durable import SpoolShare, encode_spans
    from otel_agentmon._export.http import http_session
    from otel_agentmon._export.spool import SpoolDir
    from tests.support.receiver import OTLPReceiver

    provider = TracerProvider()
    tracer = provider.get_tracer("bench")
    spans = []
    for i in range(512):
        with tracer.start_as_current_span("execute_tool lookup", attributes={"i": i, "gen_ai.tool.name": "lookup"}) as s:
            pass
        spans.append(s)
    payload = encode_spans(spans)  # type: ignore[arg-type]
    files = 100
    with tempfile.TemporaryDirectory() as root, OTLPReceiver() as rx:
        directory = SpoolDir.open(Path(root) / SERVICE, 1 << 30, 86400)
        assert directory is not None
        endpoint = rx.endpoint + "/v1/traces"
        start = time.perf_counter()
        for _ in range(files):
            directory.write("traces", endpoint, 512, payload)
        write_s = time.perf_counter() - start
        exporter = OTLPSpanExporter(endpoint=endpoint, session=http_session())
        share = SpoolShare("traces", directory, otlp_http_client(exporter), None, timeout_s=10, any_endpoint=False)
        start = time.perf_counter()
        _, _, more = share.replay(600)
        replay_s = time.perf_counter() - start
        assert not more and share.resent == files * 512 and rx.wait_for_spans(files * 512, 60)
    return {"request_bytes": len(payload), "spans_per_request": 512, "requests": files,
            "write_spans_per_s": files * 512 / write_s, "write_ms_per_request": write_s / files * 1e3,
            "write_MB_per_s": files * len(payload) / write_s / 1e6,
            "replay_spans_per_s": files * 512 / replay_s, "replay_ms_per_request": replay_s / files * 1e3}


def drain(outage_s: float = 60.0) -> dict[str, Any]:
    from tests.support.receiver import OTLPReceiver, free_port

    rx = OTLPReceiver(free_port())
    with tempfile.TemporaryDirectory() as spool_dir:
        proc = child(rx.endpoint, spool_dir, 1000, 0, stdin=True)
        time.sleep(outage_s)
        service = Path(spool_dir) / SERVICE
        backlog = [p for p in service.iterdir() if ".traces." in p.name]
        backlog_spans = sum(int(p.name.split(".")[3]) for p in backlog if p.name.endswith(".otlp"))
        rx.start()
        up = time.monotonic()
        drained_s = None
        while time.monotonic() - up < 300:
            if not any(".traces." in p.name for p in service.iterdir()):
                drained_s = time.monotonic() - up
                break
            time.sleep(0.05)
        time.sleep(2)
        run = result(proc)
        received = len(rx.unique_span_ids())
        rx.stop()
    run.pop("times")
    return {"outage_s": outage_s, "backlog_files": len(backlog), "backlog_spans": backlog_spans,
            "drain_s": drained_s, "created": run["started"], "received": received,
            "delivered": received / max(1, run["started"]), **run}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="bar,caller,throughput,drain")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--workload", nargs=5, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        endpoint, spool_dir, rate, duration, options = args.workload
        workload(endpoint, spool_dir, float(rate), float(duration), json.loads(options))
        return
    parts = args.parts.split(",")
    summary: dict[str, Any] = {"load_before": os.getloadavg()}
    if "bar" in parts:
        summary["bar"] = [bar(True), bar(False)]
        for row in summary["bar"]:
            print(f"bar, spool {'on ' if row['spool_on'] else 'off'}: created {row['created']}, received {row['received']} "
                  f"({row['delivered']:.4%}), duplicates {row['duplicates']}, dropped {row['dropped']}, "
                  f"spooled {row['spooled']}, shutdown {row['shutdown_s']:.2f} s", flush=True)
    if "caller" in parts:
        summary["caller"] = caller(args.reps)
        for case, row in summary["caller"].items():
            print(f"caller {case:<20} p50 {row['p50_us']:6.1f} µs  p90 {row['p90_us']:6.1f}  p99 {row['p99_us']:7.1f}  "
                  f"mean {row['mean_us']:6.1f}", flush=True)
    if "throughput" in parts:
        summary["throughput"] = throughput()
        print("throughput", json.dumps(summary["throughput"]), flush=True)
    if "drain" in parts:
        summary["drain"] = drain()
        d = summary["drain"]
        print(f"drain: {d['backlog_spans']} spans in {d['backlog_files']} files after {d['outage_s']:.0f} s down, "
              f"drained in {d['drain_s']} s; delivered {d['delivered']:.4%} of {d['created']}", flush=True)
    summary["load_after"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
