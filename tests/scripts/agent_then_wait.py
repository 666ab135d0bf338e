"""One agent's program, as a user writes it, for the lifecycle tests against an agentmon serve.

    python agent_then_wait.py ENDPOINT AGENT MODE RULES

Configures otel_agentmon (exporting to ENDPOINT, alert rules from the RULES file), runs one task of
AGENT (six failing ones with MODE=fail), prints "idle" and then, with MODE=hang, waits to be
killed; otherwise reads one line from stdin (the test's go-ahead), shuts down cleanly and prints
"done".
"""

from __future__ import annotations

import sys
import time

import otel_agentmon as agentmon


def main() -> None:
    endpoint, agent, mode, rules = sys.argv[1:5]
    monitor = agentmon.configure(service_name="lifecycle-child", endpoint=endpoint, system_metrics="off",
                                 metric_export_interval_ms=200, heartbeat_timeout=1.0, alert_rules=rules)
    with agentmon.agent(agent):
        for _ in range(6 if mode == "fail" else 1):
            try:
                with agentmon.task("work"):
                    time.sleep(0.01)
                    if mode == "fail":
                        raise TimeoutError("upstream timed out")
            except TimeoutError:
                pass
    print("idle", flush=True)
    if mode == "hang":
        while True:
            time.sleep(1.0)
    sys.stdin.readline()
    print("shutdown ok" if monitor.shutdown() else "shutdown late", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
