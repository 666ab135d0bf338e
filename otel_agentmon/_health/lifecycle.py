"""Agent lifecycle: whether an agent is *busy*, *idle*, *stopped* or *down*.

==========  ===================================================================  ==============
lifecycle   when                                                                 health state
==========  ===================================================================  ==============
busy        a task of the agent is running                                       by the rules
idle        its process is alive and reporting, no task is running                by the rules
stopped     its process shut down cleanly (``shutdown()``, also at exit), or     ``stopped``
            the agent was retired (``forget_agent``)
down        its process stopped reporting without saying so, or the agent        ``unhealthy``
            missed heartbeats it promised
==========  ===================================================================  ==============

Only *down* is unhealthy, and only *down* makes the ``up`` signal 0 for the alert rules; a stopped
agent's rules are not evaluated (a firing alert resolves). Who decides:

* **in the process** (``ProcessLiveness``) the process is alive by definition, so an agent with no
  task is idle, never down, unless it *promised heartbeats*: an agent that has called
  ``heartbeat()`` once is expected to keep calling it, and is down when ``heartbeat_timeout``
  passes without a heartbeat, a span or a running task;
* **in agentmon serve** (``serve._lifecycle.ServeLiveness``) an agent is alive while a process that
  runs it keeps reporting (spans or metric exports, at the cadence it has shown), stopped once the
  process said so, and down when the process falls silent without a word, or reports it down.

A stopped agent is still shown, as stopped, for ``HealthPolicy.stopped_grace`` (5 minutes), then
let go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Final, Literal, TypeAlias

from .._metrics.derive import AgentView

Lifecycle: TypeAlias = Literal["busy", "idle", "stopped", "down"]
LIFECYCLES: Final[tuple[Lifecycle, ...]] = ("busy", "idle", "stopped", "down")
#: (lifecycle, why: a reason for ``down``/``stopped``, else "")
Verdict: TypeAlias = tuple[Lifecycle, str]
REASON_SHUT_DOWN: Final = "stopped: the process shut down"
REASON_RETIRED: Final = "stopped: retired (forget_agent)"


def alive(view: AgentView) -> Verdict:
    return ("busy" if view.running else "idle"), ""


class Liveness:
    """Decides every agent's lifecycle on each health tick (the in-process rules).

    ``judge`` returns a verdict for each agent to show; an agent of ``views`` it leaves out is let
    go (the health loop forgets it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._promised: set[str] = set()
        self._retired: dict[str, float] = {}  # agent -> monotonic time it was retired
        self._shut_down = False

    def promise(self, agent: str) -> None:
        """``agent`` called ``heartbeat()``: from now on it is down when its heartbeats stop."""
        if agent not in self._promised:
            with self._lock:
                self._promised.add(agent)

    def retire(self, agent: str) -> None:
        """``forget_agent``: the agent stopped on purpose; shown as stopped for the grace period."""
        with self._lock:
            self._retired[agent] = time.monotonic()
            self._promised.discard(agent)

    def shut_down(self) -> None:
        """The process is shutting down cleanly: every agent is stopped."""
        self._shut_down = True

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._promised = set()
        self._retired = {}
        self._shut_down = False

    def judge(self, views: Sequence[AgentView], timeout: float, grace: float) -> dict[str, Verdict]:
        now = time.monotonic()
        out: dict[str, Verdict] = {}
        with self._lock:
            for view in views:
                retired = self._retired.get(view.name)
                if retired is not None and now - view.idle_for <= retired:
                    continue  # nothing new since it retired: listed below
                self._retired.pop(view.name, None)  # it works again
                out[view.name] = self._verdict(view, timeout)
            for name, since in list(self._retired.items()):
                if now - since > grace:
                    del self._retired[name]  # let go (and forgotten by the loop if still a view)
                else:
                    out[name] = ("stopped", REASON_RETIRED)
        if self._shut_down:
            return {name: (("stopped", REASON_SHUT_DOWN) if v[0] != "stopped" else v) for name, v in out.items()}
        return out

    def _verdict(self, view: AgentView, timeout: float) -> Verdict:
        if view.running or view.idle_for <= timeout or view.name not in self._promised:
            return alive(view)
        return "down", f"down: no heartbeat for {view.idle_for:.1f}s (it promised them; timeout {timeout:g}s)"
