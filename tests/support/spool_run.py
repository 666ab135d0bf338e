"""One run of an agent process with the disk spool, for tests that need a second process.

    python -m tests.support.spool_run ENDPOINT SPOOL_DIR [--tasks N] [--start I] [--batch B]
                                      [--wait-resent K] [--drain] [--service S]

Runs ``N`` decorated tasks (2 spans each, tool attribute ``i`` from ``I``), then, with
``--wait-resent``, waits (at most 60 s) until this process has re-sent ``K`` spooled spans (with
``--drain``, until the spool holds no request, nor a claim on one), shuts
down (3 s deadline) and prints one JSON line: its stats, its ``service.instance.id`` and how long
``shutdown()`` took.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import otel_agentmon


@otel_agentmon.agent("spool-agent")
def agent_task(i: int) -> int:
    with otel_agentmon.tool("lookup", attributes={"i": i}):
        return i


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("spool_dir")
    parser.add_argument("--tasks", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--wait-resent", type=int, default=0)
    parser.add_argument("--service", default="spool-test")
    parser.add_argument("--drain", action="store_true", help="wait until the spool holds no request")
    args = parser.parse_args()
    monitor = otel_agentmon.configure(
        endpoint=args.endpoint, spool=True, spool_dir=args.spool_dir, service_name=args.service,
        system_metrics="off", span_schedule_delay_ms=50, span_max_export_batch_size=args.batch,
        export_timeout=10.0, shutdown_timeout=3.0, health=False)
    for i in range(args.start, args.start + args.tasks):
        agent_task(i)
    deadline = time.monotonic() + 60
    directory = Path(args.spool_dir) / args.service
    while (args.wait_resent or args.drain) and time.monotonic() < deadline:
        if args.wait_resent and monitor.stats().spool.resent.get("traces", 0) >= args.wait_resent:
            break
        if args.drain and not any(".otlp" in p.name for p in directory.iterdir()):
            break
        time.sleep(0.05)
    start = time.monotonic()
    monitor.shutdown(3.0)
    took = time.monotonic() - start
    stats = monitor.stats()
    print(json.dumps({
        "balanced": stats.balanced, "started": stats.spans_started, "exported": stats.spans_exported,
        "spooled": stats.spans_spooled, "dropped": dict(stats.spans_dropped), "queued": stats.spans_queued,
        "written": dict(stats.spool.written), "resent": dict(stats.spool.resent),
        "expired": dict(stats.spool.expired), "corrupt": stats.spool.corrupt, "directory": stats.spool.directory,
        "instance": str(monitor._resource.attributes.get("service.instance.id")),
        "shutdown_s": took,
    }), flush=True)


if __name__ == "__main__":
    main()
