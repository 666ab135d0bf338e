"""A swarm where things go wrong: one agent hangs, one starts failing, one dies.

    python examples/failing_swarm.py
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python examples/failing_swarm.py

It prints health transitions and alerts as they happen (rules: examples/alert_rules.yaml) and
exits by itself in about 16 s:

* ``steady``  keeps working and stays healthy;
* ``flaky``   fails every task from 2 s to 8 s (error-rate alert fires), then recovers
              (the alert resolves, with hysteresis);
* ``hanger``  picks up a task that hangs for 7 s (stuck while it runs, then the alert resolves);
* ``doomed``  stops after 3 s without a word (it goes down; AgentDown fires).

Each worker calls ``agentmon.heartbeat`` in its loop: a long-lived agent that promises heartbeats is
down when they stop (an agent that merely waits for work, without that promise, is *idle*). At
the end ``monitor.shutdown()`` reports every agent *stopped*: a clean exit raises no alert.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import otel_agentmon as agentmon

RULES = Path(__file__).with_name("alert_rules.yaml")
START = time.monotonic()


def stamp() -> str:
    return f"[{time.monotonic() - START:5.1f}s]"


def on_alert(event: agentmon.AlertEvent) -> None:
    who = f" {event.agent}" if event.agent else ""
    summary = event.render(event.rule.annotations.get("summary", ""))
    print(f"{stamp()} ALERT {event.rule.name}{who} {event.state.upper()} ({event.rule.severity}) {summary}",
          flush=True)


@agentmon.tool("lookup")
def lookup(fail: bool) -> str:
    time.sleep(0.02)
    if fail:
        raise TimeoutError("upstream timed out")
    return "ok"


def worker(name: str, stop: threading.Event, *, fail_between: tuple[float, float] | None = None,
           hang_at: float | None = None, die_at: float | None = None) -> None:
    n = 0
    with agentmon.agent(name):
        while not stop.is_set():
            elapsed = time.monotonic() - START
            if die_at is not None and elapsed > die_at:
                return  # the agent dies silently: no more spans, no heartbeat
            agentmon.heartbeat(name)  # "I am alive": from the first call on, silence means down
            failing = fail_between is not None and fail_between[0] <= elapsed < fail_between[1]
            n += 1
            try:
                with agentmon.task("answer", task_id=f"{name}-{n}"):
                    if hang_at is not None and elapsed > hang_at:
                        hang_at = None
                        time.sleep(7.0)  # a hung call: the task is stuck while it runs
                    lookup(failing)
            except TimeoutError:
                pass
            time.sleep(0.1)


def main() -> None:
    exporting = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    options = {} if exporting else {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}
    monitor = agentmon.configure(service_name="failing-swarm", swarm="failing-swarm", alert_rules=RULES,
                                 heartbeat_timeout=2.0, stuck_after=3.0,
                                 notifiers=[agentmon.CallbackNotifier(on_alert)], **options)
    stop = threading.Event()
    threads = [
        threading.Thread(target=worker, args=("steady", stop)),
        threading.Thread(target=worker, args=("flaky", stop), kwargs={"fail_between": (2.0, 8.0)}),
        threading.Thread(target=worker, args=("hanger", stop), kwargs={"hang_at": 2.0}),
        threading.Thread(target=worker, args=("doomed", stop), kwargs={"die_at": 3.0}),
    ]
    for t in threads:
        t.start()
    states: dict[str, str] = {}
    while time.monotonic() - START < 16.0:
        for name, health in sorted(monitor.health().agents.items()):
            if states.get(name) != health.state:
                states[name] = health.state
                why = "; ".join(health.reasons) or "all good"
                print(f"{stamp()} HEALTH {name} -> {health.state} ({why})", flush=True)
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    monitor.shutdown()
    stats = monitor.stats()
    print(f"{stamp()} done: {stats.spans_started} spans, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
