"""The caller's time per task while the Collector is unusable, fault by fault, against a healthy one.

    python benchmarks/bench_faults.py [--tasks 2000] [--reps 3] [--out benchmarks/results/bench_faults.json]

tests/test_faults.py checks that the caller never waits for the exporter as causality (every task
returns while the receiver holds the export); how long a task takes is measured here. One task is
an ``@agent`` function with one ``tool`` inside (2 spans), as in the tests. Each (fault, rep) runs
in a fresh process: ``configure()`` against the fault-injecting receiver of
``tests/support/receiver.py``, which runs in a process of its own so that its decoding does not
take our GIL; 200 warm-up tasks, then ``--tasks`` timed ones (``time.perf_counter`` around each
call), then ``shutdown(2.0)``. Faults are interleaved rep by rep. Reported per fault: p50, p90,
p99 and max of the per-task times (all reps pooled, µs) and the shutdown time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHUTDOWN_BUDGET_S = 2.0

# fault -> (receiver mode, or None for a closed port; export timeout s; extra configure() options)
FAULTS: dict[str, tuple[str | None, float, dict[str, Any]]] = {
    "healthy": ("ok", 10.0, {}),
    "down (closed port)": (None, 1.0, {}),
    "black hole": ("blackhole", 2.0, {}),
    "slow (1.5 s, timeout 0.5 s)": ("slow", 0.5, {}),
    "reset": ("reset", 1.0, {}),
    "close mid-body": ("close_mid_body", 1.0, {}),
    "black hole, queue full (256)": ("blackhole", 2.0, {"span_max_queue_size": 256,
                                                       "span_max_export_batch_size": 64}),
}


def serve(mode: str) -> None:
    """Child: run the receiver in ``mode``, print its endpoint, stop when stdin closes."""
    sys.path.insert(0, str(ROOT))
    from tests.support import receiver as r

    modes = {"ok": r.ok(), "blackhole": r.blackhole(), "slow": r.slow(1.5), "reset": r.reset(),
             "close_mid_body": r.close_mid_body()}
    rx = r.OTLPReceiver().start()
    rx.mode = modes[mode]
    print(rx.endpoint, flush=True)
    sys.stdin.read()
    rx.stop()


def workload(endpoint: str, export_timeout: float, tasks: int, options: dict[str, Any]) -> None:
    """Child: time each task against ``endpoint``; print one JSON line."""
    import otel_agentmon as agentmon

    @agentmon.agent("fault-agent")
    def agent_task(i: int) -> int:
        with agentmon.tool("lookup", attributes={"i": i}):
            return i

    monitor = agentmon.configure(endpoint=endpoint, export_timeout=export_timeout, system_metrics="off",
                                 span_schedule_delay_ms=50, shutdown_timeout=SHUTDOWN_BUDGET_S, **options)
    for i in range(200):
        agent_task(i)
    times: list[float] = []
    for i in range(tasks):
        start = time.perf_counter()
        agent_task(i)
        times.append(time.perf_counter() - start)
    start = time.monotonic()
    monitor.shutdown(SHUTDOWN_BUDGET_S)
    shutdown = time.monotonic() - start
    stats = monitor.stats()
    print(json.dumps({"times": times, "shutdown": shutdown, "balanced": stats.balanced,
                      "exported": stats.spans_exported, "dropped": dict(stats.spans_dropped)}), flush=True)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        return int(s.getsockname()[1])


def run_one(fault: str, tasks: int) -> dict[str, Any]:
    mode, export_timeout, options = FAULTS[fault]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    me = [sys.executable, str(Path(__file__).resolve())]
    server = None
    try:
        if mode is None:
            endpoint = f"http://127.0.0.1:{closed_port()}"
        else:
            server = subprocess.Popen([*me, "--serve", mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, env=env, cwd=ROOT)
            assert server.stdout is not None
            endpoint = server.stdout.readline().strip()
        out = subprocess.run([*me, "--workload", endpoint, str(export_timeout), str(tasks), json.dumps(options)],
                             capture_output=True, text=True, env=env, cwd=ROOT, check=True, timeout=300).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))
    finally:
        if server is not None:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(30)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workload", nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.workload:
        endpoint, timeout, tasks, options = args.workload
        workload(endpoint, float(timeout), int(tasks), json.loads(options))
        return
    load = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {fault: [] for fault in FAULTS}
    for rep in range(args.reps):
        for fault in FAULTS:
            results[fault].append(run_one(fault, args.tasks))
            print(f"rep {rep + 1}/{args.reps} {fault}: done", file=sys.stderr, flush=True)
    summary: dict[str, Any] = {"tasks_per_run": args.tasks, "reps": args.reps,
                               "load_before": load, "load_after": os.getloadavg(), "faults": {}}
    print(f"{'fault':<30} {'p50 µs':>8} {'p90 µs':>8} {'p99 µs':>8} {'max ms':>8} {'shutdown s':>11}  balanced")
    for fault, runs in results.items():
        times = [t for run in runs for t in run["times"]]
        row = {"p50_us": quantile(times, 0.5) * 1e6, "p90_us": quantile(times, 0.9) * 1e6,
               "p99_us": quantile(times, 0.99) * 1e6, "max_ms": max(times) * 1e3,
               "shutdown_s": [run["shutdown"] for run in runs], "balanced": all(run["balanced"] for run in runs),
               "dropped": [run["dropped"] for run in runs]}
        summary["faults"][fault] = row
        print(f"{fault:<30} {row['p50_us']:8.0f} {row['p90_us']:8.0f} {row['p99_us']:8.0f} {row['max_ms']:8.1f} "
              f"{statistics.median(row['shutdown_s']):6.2f} (max {max(row['shutdown_s']):.2f})  {row['balanced']}")
    print(f"load average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
