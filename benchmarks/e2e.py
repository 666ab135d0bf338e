"""End to end through our real pipeline: ``otel_agentmon.configure(endpoint=...)`` -> local OTLP/HTTP
receiver (``sink.py``, its own process).

Run (from the repo root)::

    python benchmarks/e2e.py --out benchmarks/results/e2e.json
    python benchmarks/e2e.py --fast

1. Throughput. For each offered rate, a fresh process configures otel_agentmon with its defaults
   (realtime profile, traces + metrics + logs over OTLP/HTTP, system metrics on), calls an
   ``@agentmon.agent("planner")`` function at that rate in bursts every 5 ms, then calls
   ``monitor.force_flush()`` and ``monitor.shutdown()``. A run passes when the app reached the
   rate, ``monitor.stats()`` reports every span exported and none dropped, and the sink counted
   every span; a rate passes when all its runs (``--reps``, default 2) pass. Rates are stepped up
   until two in a row fail. The process's CPU per span (gross: the whole pipeline, incl. OTLP
   encoding, metrics and system metrics) is reported too.
   The same steps run for ``bare``: the equivalent hand-written OTel code (``_common.Bare``:
   stock BatchSpanProcessor with a 200 ms delay + OTLP/HTTP, caller-side metric records, OTLP
   metrics every 500 ms, no system metrics), judged by the sink's count alone (the SDK counts
   no drops).
2. Latency. One process runs a few hundred tasks (``@agentmon.agent`` around
   ``with agentmon.task("plan")``) at ~20/s under the realtime profile, then waits for natural
   delivery (no flush, which would cut latency short). The sink records arrival minus span end.

Adapted from perf-scripts/throughput.py, latency.py and perfcommon.py.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import Bare, bare_agent, paced, percentile, work

import otel_agentmon as agentmon

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
DEFAULT_RATES = "1000,2000,4000,6000,8000,10000,12000,14000,16000,18000,20000"
FAST_RATES = "2000,5000,8000,12000,16000"
TASK_SPAN = "task plan"


# --- sink control (parent) ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def start_sink(max_seconds: float) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    cmd = [sys.executable, os.path.join(HERE, "sink.py"), "--port", str(port), "--max-seconds", str(max_seconds)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        raise RuntimeError(f"sink failed to start: {line!r}")
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            sink_get(port, "/ready")
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def sink_get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=30) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def sink_reset(port: int) -> None:
    req = urllib.request.Request(f"http://{HOST}:{port}/reset", data=b"", method="POST")
    urllib.request.urlopen(req, timeout=10).read()


def stop_sink(proc: subprocess.Popen[str], port: int) -> None:
    try:
        sink_get(port, "/quit")
    except OSError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- children -------------------------------------------------------------------------------------
def _stats(monitor: agentmon.Monitor) -> dict[str, Any]:
    s = monitor.stats()
    return {"started": s.spans_started, "exported": s.spans_exported, "dropped": dict(s.spans_dropped),
            "queued": s.spans_queued, "in_flight": s.spans_in_flight, "balanced": s.balanced,
            "derivation_dropped": s.derivation_dropped, "metric_exports_ok": s.metric_exports_ok,
            "metric_exports_failed": s.metric_exports_failed}


def child_throughput(endpoint: str, rate: float, seconds: float) -> dict[str, Any]:
    monitor = agentmon.configure(endpoint=endpoint, service_name="bench-e2e")
    planner = agentmon.agent("planner")(work)
    c0 = time.process_time()
    spans, elapsed = paced(planner, rate, seconds)
    flushed = monitor.force_flush(30.0)
    cpu = time.process_time() - c0
    shutdown_ok = monitor.shutdown()
    return {"offered_rate": rate, "created": spans, "achieved_rate": spans / elapsed, "flushed": flushed,
            "shutdown_ok": shutdown_ok, "cpu_us_per_span_gross": cpu / spans * 1e6, "stats": _stats(monitor)}


def child_throughput_bare(endpoint: str, rate: float, seconds: float) -> dict[str, Any]:
    """The same agent span written by hand: stock BatchSpanProcessor + OTLP/HTTP, caller-side metrics."""
    bare = Bare("stock", endpoint=endpoint)
    c0 = time.process_time()
    spans, elapsed = paced(lambda i: bare_agent(bare, i), rate, seconds)
    bare.flush()
    cpu = time.process_time() - c0
    bare.shutdown()
    return {"offered_rate": rate, "created": spans, "achieved_rate": spans / elapsed,
            "cpu_us_per_span_gross": cpu / spans * 1e6}


def child_latency(endpoint: str, tasks: int, rate: float) -> dict[str, Any]:
    monitor = agentmon.configure(endpoint=endpoint, service_name="bench-e2e-latency")  # realtime by default

    @agentmon.agent("planner")
    def run_task(i: int) -> int:
        with agentmon.task("plan"):
            return work(i)

    interval = 1.0 / rate
    t0 = time.perf_counter()
    for i in range(tasks):
        run_task(i)
        pause = t0 + (i + 1) * interval - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:  # natural delivery: the worker's own schedule, no flush
        s = monitor.stats()
        if s.spans_exported + s.spans_dropped_total >= s.spans_started:
            break
        time.sleep(0.02)
    monitor.shutdown()
    return {"tasks": tasks, "rate": rate, "schedule_delay_ms": monitor.settings.span_schedule_delay_ms,
            "stats": _stats(monitor)}


def run_child(args: list[str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- parent ---------------------------------------------------------------------------------------
def throughput_run(port: int, rate: int, seconds: float, pipeline: str) -> dict[str, Any]:
    """One process offering ``rate`` spans/s for ``seconds``; judged by its own stats and the sink."""
    sink_reset(port)
    r = run_child(["--child", f"throughput_{pipeline}", "--endpoint", f"http://{HOST}:{port}", "--rate", str(rate),
                   "--seconds", str(seconds)], timeout=seconds + 120)
    r["offered_rate"] = rate
    r["sink_spans"] = sink_get(port, "/stats")["spans"]
    r["reached_rate"] = r["achieved_rate"] >= 0.97 * rate
    st = r.get("stats")
    if st is None:  # bare: the SDK counts no drops; the sink's count is the only account
        r["zero_drop"] = r["created"] == r["sink_spans"]
        own = ""
    else:
        r["zero_drop"] = not st["dropped"] and st["exported"] == r["created"] == r["sink_spans"]
        own = f"exported {st['exported']:7d} dropped {st['dropped'] or 0} derivation_dropped {st['derivation_dropped']} "
    r["passed"] = r["reached_rate"] and r["zero_drop"]
    print(f"{pipeline:4} offered {rate:6d}/s achieved {r['achieved_rate']:6.0f}/s created {r['created']:7d} "
          f"sink {r['sink_spans']:7d} {own}cpu {r['cpu_us_per_span_gross']:.0f} µs/span "
          f"-> {'PASS' if r['passed'] else 'FAIL'}", flush=True)
    return r


def throughput(port: int, rates: list[int], seconds: float, reps: int, pipeline: str) -> dict[str, Any]:
    """Step the offered rate up; a rate passes only if all its ``reps`` runs pass. Stop after 2 failing rates."""
    rows: list[dict[str, Any]] = []
    verdicts: dict[int, bool] = {}
    for rate in rates:
        runs = [throughput_run(port, rate, seconds, pipeline) for _ in range(reps)]
        rows.extend(runs)
        verdicts[rate] = all(r["passed"] for r in runs)
        if list(verdicts.values())[-2:] == [False, False]:
            break
    passed = [rate for rate, ok in verdicts.items() if ok]
    failed = [rate for rate, ok in verdicts.items() if not ok]
    best = max(passed) if passed else None
    first_fail = min(failed) if failed else None
    sustained = max((rate for rate in passed if first_fail is None or rate < first_fail), default=None)
    print(f"{pipeline}: highest offered rate with zero drops in all {reps} runs: {best}/s; first failing: "
          f"{first_fail}/s; highest with every lower rate passing too: {sustained}/s")
    return {"seconds_per_run": seconds, "reps": reps, "rows": rows, "max_zero_drop_rate": best,
            "first_failing_rate": first_fail, "sustained_zero_drop_rate": sustained}


def latency(port: int, tasks: int, rate: float) -> dict[str, Any]:
    sink_reset(port)
    r = run_child(["--child", "latency", "--endpoint", f"http://{HOST}:{port}", "--tasks", str(tasks),
                   "--rate", str(rate)], timeout=tasks / rate + 120)
    sink = sink_get(port, "/stats?lat=1")
    out: dict[str, Any] = {**r, "sink_spans": sink["spans"], "sink_trace_requests": sink["trace_requests"]}
    for name, lats in sorted(sink["lat_ns"].items()):
        ms = [x / 1e6 for x in lats]
        row = {"n": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
               "p99_ms": percentile(ms, 99), "max_ms": max(ms), "min_ms": min(ms)}
        out[f"latency:{name}"] = row
        print(f"latency {name!r} (n={row['n']}, delay {r['schedule_delay_ms']} ms): p50 {row['p50_ms']:.0f} ms, "
              f"p90 {row['p90_ms']:.0f}, p99 {row['p99_ms']:.0f}, max {row['max_ms']:.0f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default=None, help=f"offered spans/s to step through (default {DEFAULT_RATES})")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per rate (default 5; --fast 2)")
    ap.add_argument("--reps", type=int, default=None, help="runs per rate, all must pass (default 2; --fast 1)")
    ap.add_argument("--tasks", type=int, default=None, help="latency tasks (default 300; --fast 100)")
    ap.add_argument("--pipelines", default="ours,bare", help="throughput for ours and/or the hand-written bare code")
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", choices=("throughput_ours", "throughput_bare", "latency"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--endpoint", default="", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=20.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "throughput_ours":
        print(json.dumps(child_throughput(args.endpoint, args.rate, args.seconds)), flush=True)
        return
    if args.child == "throughput_bare":
        print(json.dumps(child_throughput_bare(args.endpoint, args.rate, args.seconds)), flush=True)
        return
    if args.child == "latency":
        print(json.dumps(child_latency(args.endpoint, args.tasks, args.rate)), flush=True)
        return
    rates = [int(x) for x in (args.rates or (FAST_RATES if args.fast else DEFAULT_RATES)).split(",")]
    seconds = args.seconds or (2.0 if args.fast else 5.0)
    tasks = args.tasks or (100 if args.fast else 300)
    reps = args.reps or (1 if args.fast else 2)
    proc, port = start_sink(max_seconds=1800)
    try:
        result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(sys.argv)}
        for pipeline in args.pipelines.split(","):
            result[f"throughput_{pipeline}"] = throughput(port, rates, seconds, reps, pipeline)
        result["latency"] = latency(port, tasks, 20.0)
    finally:
        stop_sink(proc, port)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
