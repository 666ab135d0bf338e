"""``agentmon serve`` under concurrent large export requests: peak and retained memory, latency.

    python benchmarks/bench_serve_memory.py                         # 4 x 16 MiB at once, 256 MiB store bound
    python benchmarks/bench_serve_memory.py --requests 4 --mb 16 --max-memory-mb 64 --shape empty-attrs
    python benchmarks/bench_serve_memory.py --src /path/to/other/checkout   # the same load on other code

serve runs as its own process (``agentmon serve --port 0``, from ``--src``); this process builds
``--requests`` protobuf trace export requests of just under ``--mb`` MiB each and posts them all at
once, each on its own connection (``--gzip``: compressed). Shapes: ``realistic`` (task -> tool +
LLM call trees, as ``bench_serve_agents.py`` builds them), ``empty-attrs`` (spans of 200 empty
attributes: the most parse tree per byte) and ``ids`` (spans of bare ids: the most decoded
objects per byte). Reported: serve's RSS before, its peak (``VmHWM``) and after the requests (2 s
later), each request's status and latency, and what serve's counters say.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
_LIMIT = 16 * 1024 * 1024


def body(shape: str, mb: float, seed: int) -> bytes:
    """One export request of just under ``mb`` MiB (and at most serve's 16 MiB cap)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    target = min(int(mb * 1024 * 1024), _LIMIT) - 64 * 1024
    if shape == "realistic":
        from bench_serve_agents import requests

        parts: list[bytes] = []
        size = 0
        while size < target:
            for part in requests(50, 1, 30_000, seed * 1000 + len(parts)):
                if size + len(part) > target:
                    return b"".join(parts)
                parts.append(part)
                size += len(part)
        return b"".join(parts)
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    i = 0
    while True:
        span = spans.add(trace_id=(seed << 64 | i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"))
        if shape == "empty-attrs":
            for _ in range(200):
                span.attributes.add()
        i += 1
        if i % 256 == 0 and req.ByteSize() > target:
            return bytes(req.SerializeToString())


def rss_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def post(url: str, data: bytes, compressed: bool, out: list[Any]) -> None:
    host, port = url.removeprefix("http://").split(":")
    headers = {"Content-Type": "application/x-protobuf"}
    if compressed:
        headers["Content-Encoding"] = "gzip"
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    try:
        conn.request("POST", "/v1/traces", data, headers)
        resp = conn.getresponse()
        resp.read()
        out.append((resp.status, time.perf_counter() - start, resp.getheader("Retry-After")))
    except OSError as exc:
        out.append((type(exc).__name__, time.perf_counter() - start, None))
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--mb", type=float, default=16.0)
    parser.add_argument("--shape", choices=("realistic", "empty-attrs", "ids"), default="realistic")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--max-memory-mb", type=float, default=256.0)
    parser.add_argument("--src", type=Path, default=ROOT, help="the checkout whose serve runs")
    args = parser.parse_args()
    bodies = [body(args.shape, args.mb, seed) for seed in range(1, args.requests + 1)]
    wire = [gzip.compress(b, 1) if args.gzip else b for b in bodies]
    env = {**os.environ, "PYTHONPATH": str(args.src)}
    cmd = [sys.executable, "-m", "otel_agentmon.cli", "serve", "--port", "0",
           "--max-memory-mb", str(args.max_memory_mb)]
    serve = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=args.src,
                             env=env)
    try:
        assert serve.stdout is not None
        url = re.search(r"http://[\d.]+:\d+", serve.stdout.readline()).group(0)  # type: ignore[union-attr]
        time.sleep(1.0)
        idle = rss_kib(serve.pid, "VmRSS")
        results: list[Any] = []
        threads = [threading.Thread(target=post, args=(url, data, args.gzip, results)) for data in wire]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak = rss_kib(serve.pid, "VmHWM")
        time.sleep(2.0)
        after = rss_kib(serve.pid, "VmRSS")
        with urllib.request.urlopen(url + "/healthz", timeout=60) as resp:
            stats = json.loads(resp.read())
    finally:
        serve.terminate()
        serve.wait(30)
    mib = 1024
    print(f"{args.requests} x {len(bodies[0]) / 2**20:.1f} MiB ({args.shape}{', gzip' if args.gzip else ''}) "
          f"at once, --max-memory-mb {args.max_memory_mb:g}, serve from {args.src}")
    print(f"serve RSS idle / peak / 2 s after: {idle / mib:.0f} / {peak / mib:.0f} / {after / mib:.0f} MiB")
    print("requests (status, seconds):", ", ".join(f"{code} {sec:.1f}s" for code, sec, _ in sorted(
        results, key=lambda r: r[1])))
    keys = ("spans", "bytes", "spans_received", "request_bytes_peak", "request_budget_bytes", "requests_busy")
    print("serve:", {k: stats[k] for k in keys if k in stats})


if __name__ == "__main__":
    main()
