"""serve's lifecycle rules: an agent is alive while a process that runs it keeps reporting.

For each process (``service.instance.id``) an agent was seen in, serve knows whether the process
said the agent *stopped* (our SDK's ``agentmon.health.changed`` record or ``agentmon.agent.health``
gauge with state ``stopped``, sent at ``shutdown()`` or ``forget_agent``), whether the process
reports it *down* (``agentmon.agent.up`` 0), and whether the process is still *reporting*: spans
or metric exports arriving within ``max(heartbeat_timeout, 3 x its export interval)`` (the
interval it has shown; the OTel default of 60 s until two exports have arrived). Then the agent is

* **down** when a process still reporting says it is down;
* **busy** / **idle** when some process that runs it is reporting (busy while it reports tasks in
  flight);
* otherwise what the process heard from last says: **stopped** if it said so, else **down** (it
  went silent without a word: killed, crashed, or cut off).

An agent serve never saw a process for (evicted from the store) falls back to span activity within
``heartbeat_timeout``. A stopped agent is let go once it has been stopped for the grace period.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from .._health.lifecycle import Liveness, Verdict, alive
from .._metrics.derive import AgentView
from ._store import Store

#: the OTel SDK's default metric export interval: assumed until two exports have arrived
DEFAULT_EXPORT_INTERVAL_S: Final = 60.0
MISSED_EXPORTS: Final = 3.0


class ServeLiveness(Liveness):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self._store = store
        #: per process: (monotonic time of its last metric export, smoothed interval between them)
        self._cadence: dict[tuple[str, str], tuple[float, float | None]] = {}
        self._stopped_since: dict[str, float] = {}

    def metrics_arrived(self, key: tuple[str, str]) -> None:
        """A metric export of process ``key`` arrived (called for every export request)."""
        now = time.monotonic()
        with self._lock:
            last, gap = self._cadence.pop(key, (None, None))
            if last is not None and now - last > 0.05:  # exports split across requests count once
                sample = now - last
                gap = sample if gap is None else 0.7 * gap + 0.3 * sample
            elif last is not None:
                now = last
            self._cadence[key] = (now, gap)
            while len(self._cadence) > 4 * self._store.limits.max_instances:
                del self._cadence[next(iter(self._cadence))]  # the process heard from least recently

    def allowed_silence(self, key: tuple[str, str], timeout: float) -> float:
        entry = self._cadence.get(key)
        if entry is None:
            return timeout  # no metric exports: its spans are its only sign of life
        gap = entry[1] if entry[1] is not None else DEFAULT_EXPORT_INTERVAL_S
        return max(timeout, MISSED_EXPORTS * gap)

    def expired(self, grace: float) -> list[str]:
        """Agents stopped for longer than ``grace`` seconds: to be let go."""
        now = time.monotonic()
        with self._lock:
            return [name for name, since in self._stopped_since.items() if now - since > grace]

    def judge(self, views: Sequence[AgentView], timeout: float, grace: float) -> dict[str, Verdict]:
        wall, mono = time.time(), time.monotonic()
        out: dict[str, Verdict] = {}
        with self._store.lock:
            for view in views:
                verdict = self._agent(view.name, bool(view.running), timeout, wall, mono)
                if verdict is None:  # no process known for it (evicted): its span activity decides
                    verdict = alive(view) if view.idle_for <= timeout else (
                        "down", f"down: no activity for {view.idle_for:.1f}s")
                out[view.name] = verdict
        with self._lock:
            for name, (life, _) in out.items():
                if life == "stopped":
                    self._stopped_since.setdefault(name, mono)
                else:
                    self._stopped_since.pop(name, None)
            for name in set(self._stopped_since) - out.keys():
                del self._stopped_since[name]
        return out

    def current(self, name: str, timeout: float) -> Verdict | None:
        """The verdict on ``name`` now (the view between health ticks); the store's lock is held."""
        return self._agent(name, False, timeout, time.time(), time.monotonic())

    def _agent(self, name: str, running: bool, timeout: float, wall: float, mono: float) -> Verdict | None:
        store = self._store
        seen = store.agent_instances.get(name)
        if not seen:
            return None
        reporting: list[float] = []  # tasks in flight each process still reporting says
        last: tuple[float, str, str] | None = None  # (when, fate, process) of the latest silent process
        for key, seen_at in seen.items():
            rep = store.reported.get((name, key))
            inst = store.instances.get(key)
            proc = f"{key[0]}/{key[1][:8]}" if key[1] else key[0]
            heard = max(seen_at, rep.at if rep is not None else 0.0)
            if rep is not None and rep.state == "stopped":
                fate = "stopped"
            elif inst is not None and wall - inst.last_seen <= self.allowed_silence(key, timeout):
                if rep is not None and rep.up is False:
                    reasons = [r for r in rep.reasons if r.startswith("down")]
                    return "down", reasons[0] if reasons else f"down: reported by {proc}"
                reporting.append(rep.in_flight if rep is not None else 0.0)
                continue
            else:
                silent = wall - inst.last_seen if inst is not None else mono - heard
                fate = f"down: {proc} stopped reporting {silent:.1f}s ago without saying so"
            if last is None or heard > last[0]:
                last = (heard, fate, proc)
        if reporting:
            return ("busy", "") if running or any(n > 0 for n in reporting) else ("idle", "")
        if last is None:
            return None
        if last[1] == "stopped":
            return "stopped", f"stopped: {last[2]} shut down or retired it"
        return "down", last[1]
