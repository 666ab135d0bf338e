"""Health and alerts: (1) time from an alert's condition holding for its ``for`` to its callback;
(2) what the health and alert processors add per span, against the core SDK alone, in one run.

    python benchmarks/bench_health.py [--fast] [--out benchmarks/results/health.json]

(1) A rule ``in_flight > 0 for 0.5 s`` on one agent: a task starts at t0 and blocks until the
callback fires; latency = callback time - (t0 + 0.5 s). Repeated N times (median, p90, max).
(2) Worker subprocesses alternate between ``health=False`` (core only) and ``health=True`` with
the six rules of examples/alert_rules.yaml. Each runs paced agent tasks (agent -> task -> tool,
2,000 tasks/s for a few seconds) and reports the caller-thread time per task and the whole
process's CPU per task (all threads: derivation, health loop, export). Ratios are health/core
over the same run; median and min/max over the alternating repetitions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def alert_latency(n: int) -> dict[str, float]:
    import otel_agentmon as agentmon

    fired = threading.Event()
    fired_at: list[float] = []

    def on_alert(event: agentmon.AlertEvent) -> None:
        if event.state == "firing":
            fired_at.append(time.monotonic())
            fired.set()

    rule = agentmon.AlertRule("Busy", "in_flight", ">", 0, for_=0.5, agent="bench")
    monitor = agentmon.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none",
                                 system_metrics="off", alert_rules=[rule],
                                 notifiers=[agentmon.CallbackNotifier(on_alert)])
    latencies = []
    for _ in range(n):
        fired.clear()
        with agentmon.agent("bench"), agentmon.task("wait"):
            t0 = time.monotonic()
            fired.wait(5.0)
        latencies.append(fired_at[-1] - (t0 + rule.for_))
        time.sleep(0.3)  # let it resolve
    monitor.shutdown()
    latencies.sort()
    return {"n": n, "median_s": statistics.median(latencies), "p90_s": latencies[int(0.9 * (n - 1))],
            "max_s": latencies[-1], "min_s": latencies[0]}


def worker(health: bool, seconds: float, rate: int) -> dict[str, float]:
    import otel_agentmon as agentmon

    options: dict[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none",
                               "system_metrics": "off", "health": health}
    if health:
        options["alert_rules"] = str(ROOT / "examples" / "alert_rules.yaml")
        options["notifiers"] = [agentmon.CallbackNotifier(lambda e: None)]
    monitor = agentmon.configure(**options)

    @agentmon.tool("search")
    def search() -> int:
        return 1

    def task(i: int) -> None:
        with agentmon.agent(f"agent-{i % 20}"), agentmon.task("answer"):
            search()

    for i in range(2000):  # warm-up
        task(i)
    burst = max(1, rate // 200)  # bursts every 5 ms
    caller = 0.0
    done = 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    next_burst = wall0
    while time.monotonic() - wall0 < seconds:
        t = time.perf_counter()
        for _ in range(burst):
            task(done)
            done += 1
        caller += time.perf_counter() - t
        next_burst += 0.005
        time.sleep(max(0.0, next_burst - time.monotonic()))
    cpu = time.process_time() - cpu0
    monitor.shutdown()
    return {"caller_us_per_task": caller / done * 1e6, "cpu_us_per_task": cpu / done * 1e6, "tasks": done}


def overhead(reps: int, seconds: float, rate: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {"core": [], "health": []}
    for _ in range(reps):
        for name in ("core", "health"):
            out = subprocess.run([sys.executable, __file__, "--worker", name, "--seconds", str(seconds),
                                  "--rate", str(rate)], capture_output=True, text=True, check=True, cwd=ROOT)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary: dict[str, Any] = {"reps": reps, "seconds": seconds, "rate_per_s": rate, "runs": runs}
    for key in ("caller_us_per_task", "cpu_us_per_task"):
        ratios = [h[key] / c[key] for h, c in zip(runs["health"], runs["core"], strict=True)]
        summary[key] = {"core_median": statistics.median(r[key] for r in runs["core"]),
                        "health_median": statistics.median(r[key] for r in runs["health"]),
                        "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                        "ratio_max": max(ratios)}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", choices=["core", "health"])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rate", type=int, default=2000)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker == "health", args.seconds, args.rate)))
        return
    result = {"alert_latency": alert_latency(10 if args.fast else 30),
              "overhead": overhead(2 if args.fast else 5, 2.0 if args.fast else args.seconds, args.rate)}
    lat = result["alert_latency"]
    print(f"alert latency after 'for': median {lat['median_s'] * 1e3:.0f} ms, p90 {lat['p90_s'] * 1e3:.0f} ms, "
          f"max {lat['max_s'] * 1e3:.0f} ms (n={lat['n']})")
    for key in ("caller_us_per_task", "cpu_us_per_task"):
        o = result["overhead"][key]
        print(f"{key}: core {o['core_median']:.1f} us, health+alerts {o['health_median']:.1f} us, ratio "
              f"{o['ratio_median']:.3f} (min {o['ratio_min']:.3f}, max {o['ratio_max']:.3f})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
