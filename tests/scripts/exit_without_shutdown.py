"""C8: the process returns from main without calling shutdown(). Usage: exit_without_shutdown.py ENDPOINT N

The monitor's own atexit hook must finish within its shutdown_timeout whatever the Collector
does. A hook registered before configure() runs after it (atexit is LIFO) and prints the final
stats as one JSON line, with the time.monotonic() readings of main's return and of that hook.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import sys
import time

import otel_agentmon

marks: dict[str, float] = {}


def report() -> None:
    monitor = otel_agentmon.get_monitor()
    if monitor is None:
        return
    marks["hook_done"] = time.monotonic()
    stats = monitor.stats()
    print(json.dumps({"balanced": stats.balanced, "stats": dataclasses.asdict(stats), **marks}), flush=True)


@otel_agentmon.agent("exit-agent")
def work(i: int) -> int:
    with otel_agentmon.tool("exit-tool"):
        return i


def main() -> None:
    atexit.register(report)
    otel_agentmon.configure(endpoint=sys.argv[1], shutdown_timeout=3)
    for i in range(int(sys.argv[2]) // 2):
        work(i)
    marks["main_returned"] = time.monotonic()


if __name__ == "__main__":
    main()
