"""C4: os.fork() with spans still queued. Usage: fork_after_queue.py ENDPOINT

Prints one JSON line per process: {"who", "pid", "ok", "stats"}. The parent also reports the
child's exit status. Span names tell the test who made what: warm-up, queued (before the fork),
parent-after and child (after it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import otel_agentmon

QUEUED, CHILD, PARENT_AFTER = 300, 200, 100


def emit(name: str, n: int) -> None:
    for i in range(n):
        with otel_agentmon.tool(name, attributes={"i": i}):
            pass


def report(who: str, monitor: otel_agentmon.Monitor, ok: bool, **extra: object) -> None:
    stats = monitor.stats()
    out = {"who": who, "pid": os.getpid(), "ok": ok, "balanced": stats.balanced,
           "stats": dataclasses.asdict(stats), **extra}
    print(json.dumps(out), flush=True)


def main() -> None:
    endpoint = sys.argv[1]
    monitor = otel_agentmon.configure(endpoint=endpoint, system_metrics="off", span_schedule_delay_ms=60_000,
                                      export_timeout=2.0, shutdown_timeout=3.0)
    emit("warm-up", 10)
    monitor.force_flush(3.0)  # leaves an idle keep-alive connection in the exporter's pool
    emit("queued", QUEUED)  # below the batch size and the 60 s delay: still queued at fork
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        child = otel_agentmon.configure(endpoint=endpoint)
        emit("child", CHILD)
        report("child", child, child.shutdown(3.0), same_monitor=child is monitor)
        os._exit(0)
    emit("parent-after", PARENT_AFTER)
    _, status = os.waitpid(pid, 0)
    report("parent", monitor, monitor.shutdown(3.0), child_status=status)


if __name__ == "__main__":
    main()
