"""A forked child's health and alerts. Usage: fork_health.py ENDPOINT

The parent configures health with an alert rule that always fires, then forks; the child runs an
agent of its own, evaluates health and exports: its health and alert gauges must reach ENDPOINT.
"""

from __future__ import annotations

import os
import sys

import otel_agentmon
from otel_agentmon import AlertRule


def main() -> None:
    monitor = otel_agentmon.configure(endpoint=sys.argv[1], system_metrics="off", health_interval=3600,
                                      alert_rules=[AlertRule("always", "in_flight", ">=", 0)])
    with otel_agentmon.agent("parent-agent"):
        pass
    monitor.evaluate_health()
    pid = os.fork()
    if pid == 0:
        with otel_agentmon.agent("child-agent"):
            pass
        monitor._sync()
        monitor.evaluate_health()
        ok = monitor.force_flush(3.0)  # while child-agent is up and its alert fires (shutdown stops both)
        ok &= monitor.shutdown(3.0)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    monitor.shutdown(3.0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
