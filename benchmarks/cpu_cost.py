"""Whole-process CPU per agent span at a paced rate: ours against hand-written OTel code.

Run (from the repo root)::

    python benchmarks/cpu_cost.py --out benchmarks/results/cpu_cost.json   # 5,000 spans/s, 6 s, 3 reps
    python benchmarks/cpu_cost.py --fast                                    # 2 s, 2 reps

pyperf (bench_spans.py) times the calling thread. Ours derives its metrics on a background
thread, so the calling thread's time is not the whole cost. Here each variant runs in a fresh
process and offers agent spans at a fixed rate, in bursts of ``rate * 5 ms`` every 5 ms, well
below saturation. The process's CPU time (all threads, ``time.process_time``) from the first
span to the end of the final flush is divided by the number of spans. A pacing-only run (the
same loop, calling a no-op) is the baseline and is subtracted. The calling thread's own CPU
(``time.thread_time``) is reported too, so the split between it and the background threads
shows. Adapted from perf-scripts/cpu_cost.py. The pipelines are described in ``_common.py``.

Variants: ``baseline`` (pacing only), ``bare_stock``, ``bare_agentmon_proc``, ``ours_decorator``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import Bare, bare_agent, install_ours, paced, work

import otel_agentmon as agentmon

VARIANTS = ("baseline", "bare_stock", "bare_agentmon_proc", "ours_decorator")
WARMUP_SPANS = 2000


def _noop(i: int) -> None:
    pass


def child(variant: str, rate: float, seconds: float) -> dict[str, Any]:
    """Run one variant in this process; return its measurements."""
    op: Callable[[int], object] = _noop
    flush: Callable[[], object] = lambda: None  # noqa: E731
    monitor: agentmon.Monitor | None = None
    if variant in ("bare_stock", "bare_agentmon_proc"):
        bare = Bare("stock" if variant == "bare_stock" else "agentmon")

        def op(i: int) -> object:
            return bare_agent(bare, i)

        flush = bare.flush
    elif variant == "ours_decorator":
        monitor = install_ours()
        op = agentmon.agent("planner")(work)

        def flush() -> object:
            assert monitor is not None
            return monitor.force_flush(30.0)

    for i in range(WARMUP_SPANS):
        op(i)
    flush()
    c0, t0 = time.process_time(), time.thread_time()
    spans, elapsed = paced(op, rate, seconds)
    flush()
    c1, t1 = time.process_time(), time.thread_time()
    out: dict[str, Any] = {
        "variant": variant, "rate": rate, "spans": spans, "wall_s": elapsed,
        "cpu_s": c1 - c0, "caller_cpu_s": t1 - t0, "achieved_rate": spans / elapsed,
    }
    if monitor is not None:
        stats = monitor.stats()
        out["spans_dropped"] = dict(stats.spans_dropped)
        out["derivation_dropped"] = stats.derivation_dropped
        monitor.shutdown()
    return out


def run_child(variant: str, rate: float, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", variant, "--rate", str(rate), "--seconds", str(seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=5000.0, help="offered agent spans per second")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fast", action="store_true", help="2 s per run, 2 repetitions")
    ap.add_argument("--out", default=None, help="write all runs and the summary here (JSON)")
    ap.add_argument("--child", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rate, args.seconds)), flush=True)
        return
    if args.fast:
        args.seconds, args.reps = 2.0, 2

    runs: list[dict[str, Any]] = []
    net: dict[str, list[float]] = {v: [] for v in VARIANTS[1:]}
    caller: dict[str, list[float]] = {v: [] for v in VARIANTS[1:]}
    for rep in range(args.reps):
        base = run_child("baseline", args.rate, args.seconds)
        base["rep"] = rep
        runs.append(base)
        base_per_s = base["cpu_s"] / base["wall_s"]  # pacing loop's CPU rate, scaled to each run's length
        base_caller_per_s = base["caller_cpu_s"] / base["wall_s"]
        for variant in VARIANTS[1:]:
            r = run_child(variant, args.rate, args.seconds)
            r["rep"] = rep
            r["net_cpu_us_per_span"] = (r["cpu_s"] - base_per_s * r["wall_s"]) / r["spans"] * 1e6
            r["net_caller_cpu_us_per_span"] = (r["caller_cpu_s"] - base_caller_per_s * r["wall_s"]) / r["spans"] * 1e6
            net[variant].append(r["net_cpu_us_per_span"])
            caller[variant].append(r["net_caller_cpu_us_per_span"])
            runs.append(r)
            print(f"rep {rep} {variant:20} {r['net_cpu_us_per_span']:6.1f} µs/span whole process, "
                  f"{r['net_caller_cpu_us_per_span']:6.1f} on the calling thread "
                  f"({r['achieved_rate']:.0f} spans/s)", flush=True)

    print(f"\nnet CPU per agent span at {args.rate:.0f} spans/s, median of {args.reps} (min / max):")
    summary: dict[str, Any] = {}
    for variant in VARIANTS[1:]:
        v, c = net[variant], caller[variant]
        summary[variant] = {"net_cpu_us_per_span": {"median": statistics.median(v), "min": min(v), "max": max(v)},
                            "caller_cpu_us_per_span": {"median": statistics.median(c), "min": min(c), "max": max(c)}}
        print(f"  {variant:20} whole process {statistics.median(v):6.1f} ({min(v):.1f} / {max(v):.1f})"
              f"   calling thread {statistics.median(c):6.1f} ({min(c):.1f} / {max(c):.1f})")
    for den in ("bare_agentmon_proc", "bare_stock"):
        per_rep = [o / b for o, b in zip(net["ours_decorator"], net[den], strict=True)]
        summary[f"ours_decorator/{den}"] = {"median": statistics.median(per_rep), "min": min(per_rep),
                                            "max": max(per_rep)}
        print(f"  ours_decorator / {den}: {statistics.median(per_rep):.3f}x "
              f"(per-rep ratios {min(per_rep):.3f} .. {max(per_rep):.3f})")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(sys.argv),
                       "rate": args.rate, "seconds": args.seconds, "reps": args.reps,
                       "summary": summary, "runs": runs}, fh, indent=1)


if __name__ == "__main__":
    main()
