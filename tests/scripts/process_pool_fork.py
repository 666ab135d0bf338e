"""C3: tool work in a fork-started ProcessPoolExecutor. Usage: process_pool_fork.py ENDPOINT

Each worker process calls configure() itself and flushes after its task (multiprocessing
workers leave through os._exit, which skips atexit). Prints one JSON line from the parent.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import otel_agentmon

TASKS = 12


def tool_work(i: int) -> dict[str, object]:
    monitor = otel_agentmon.configure(endpoint=sys.argv[1])
    with otel_agentmon.tool("pool-tool", attributes={"i": i, "pid": os.getpid()}):
        pass
    return {"i": i, "pid": os.getpid(), "flushed": monitor.force_flush(5.0)}


def main() -> None:
    monitor = otel_agentmon.configure(endpoint=sys.argv[1], system_metrics="off", export_timeout=2.0,
                                      shutdown_timeout=3.0)
    context = multiprocessing.get_context("fork")
    with otel_agentmon.agent("pool-agent"), ProcessPoolExecutor(max_workers=3, mp_context=context) as pool:
        results = list(pool.map(tool_work, range(TASKS)))
    ok = monitor.shutdown(3.0)
    stats = monitor.stats()
    print(json.dumps({"pid": os.getpid(), "ok": ok, "results": results, "balanced": stats.balanced,
                      "stats": dataclasses.asdict(stats)}), flush=True)


if __name__ == "__main__":
    main()
