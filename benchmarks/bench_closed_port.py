"""examples/swarm.py with its endpoint at a closed port versus its normal run.

    python benchmarks/bench_closed_port.py [--reps 5]

Runs the example alternately (normal: no exporter; closed: OTEL_EXPORTER_OTLP_ENDPOINT at a
closed 127.0.0.1 port) and reports, per mode, the swarm's work time (printed by the example),
the shutdown time after the work ends, and the wall time of the whole process: medians and
min/max, and the closed/normal ratio of the work time in the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(endpoint: str | None) -> tuple[float, float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    start = time.monotonic()
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "swarm.py")], env=env, capture_output=True,
                         text=True, check=True, timeout=120).stdout
    wall = time.monotonic() - start
    work = float(re.search(r"swarm finished in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    shutdown = float(re.search(r"shutdown took ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    return work, shutdown, wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {"normal": [], "closed": []}
    for _ in range(args.reps):
        results["normal"].append(run(None))
        results["closed"].append(run(f"http://127.0.0.1:{closed_port()}"))
    for mode, rows in results.items():
        for i, name in enumerate(("work", "shutdown", "wall")):
            values = [r[i] for r in rows]
            print(f"{mode:<7} {name:<9} median {statistics.median(values):6.2f}s  "
                  f"min {min(values):6.2f}s  max {max(values):6.2f}s")
    ratios = [c[0] / n[0] for n, c in zip(results["normal"], results["closed"], strict=True)]
    print(f"work time closed/normal: median {statistics.median(ratios):.3f}x "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}); bar <= 1.2x, exit <= 5 s after the work")


if __name__ == "__main__":
    main()
