"""The agent a tool call runs under, for tool spans that do not name it.

Our tool spans carry ``gen_ai.agent.name``; those of other instrumentations (Agent Framework,
AutoGen, OpenInference, OpenLLMetry) mostly do not, though the agent encloses them in the trace.
``Enclosing`` finds it for the Deriver, in span order:

* at a tool span's end, from the spans still open above it whose start the Deriver saw with an
  agent name (``started``): the tool's metric is recorded at once, with that name;
* otherwise, for another instrumentation's tool span (e.g. OpenInference's LangChain spans, which
  get their attributes only at their end), the measurement waits on its parent span, moves up as
  each ancestor ends, and is recorded with the name of the first ancestor that has one (after the
  dialect mapping), or without a name at the trace's local root (or a remote parent). Waiting
  measurements are bounded: past ``MAX_PARKED`` the oldest are recorded at once, without the name.
  Ours are recorded at once: our API puts the agent on them whenever there is one.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Final, TypeAlias

from opentelemetry.context import Context
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.trace import ReadableSpan

from .._names import semconv as sc
from .._names.dialects import CORE_SCOPE

if TYPE_CHECKING:
    from .instruments import Instruments

MAX_LIVE: Final = 100_000  # open spans remembered
MAX_PARKED: Final = 10_000  # measurements waiting for their agent's name
_MAX_DEPTH: Final = 64
Labels: TypeAlias = dict[str, str | int | float | bool]
# (duration, labels, context, the histogram of the tool span's scope: without the metrics that
# scope records itself, so a parked measurement is counted once too)
_Parked: TypeAlias = list[tuple[float, Labels, Context, Histogram]]


class Enclosing:
    def __init__(self) -> None:
        self._live: dict[int, tuple[int | None, str | None]] = {}  # span id -> (parent id, agent)
        self._parked: dict[int, _Parked] = {}  # span id -> tool measurements waiting on its end
        self._parked_count = 0

    def started(self, span: ReadableSpan, agent: object) -> None:
        if len(self._live) >= MAX_LIVE:  # spans that never end must not grow this forever
            for key in list(itertools.islice(self._live, MAX_LIVE // 10)):
                del self._live[key]
        parent = span.parent
        self._live[span.context.span_id] = (parent.span_id if parent is not None else None,
                                            agent if isinstance(agent, str) else None)

    def tool(self, inst: Instruments, span: ReadableSpan, duration: float, labels: Labels, ctx: Context) -> None:
        """Record a tool span's duration, named by its enclosing agent when it names none."""
        parent = span.parent
        if sc.GEN_AI_AGENT_NAME not in labels and parent is not None:
            agent = self._agent_above(parent.span_id)
            if agent is not None:
                labels[sc.GEN_AI_AGENT_NAME] = agent
            elif not parent.is_remote and not _ours(span):  # ours name their agent when there is one
                if self._parked_count >= MAX_PARKED:  # ancestors that never end: give up on the oldest
                    for key in list(itertools.islice(self._parked, max(1, len(self._parked) // 10))):
                        self._settle(self._parked.pop(key), None, inst)
                self._parked.setdefault(parent.span_id, []).append((duration, labels, ctx, inst.tool_duration))
                self._parked_count += 1
                return
        inst.tool_duration.record(duration, labels, ctx)

    def ended(self, span: ReadableSpan, agent: object, inst: Instruments | None) -> None:
        """``span`` ended (named ``agent`` after the dialect mapping): settle what waited on it."""
        sid = span.context.span_id
        self._live.pop(sid, None)
        waiting = self._parked.pop(sid, None)
        if waiting is None:
            return
        parent = span.parent
        if not isinstance(agent, str) and parent is not None and not parent.is_remote:
            self._parked.setdefault(parent.span_id, []).extend(waiting)
            return
        self._settle(waiting, agent if isinstance(agent, str) else None, inst)

    def _settle(self, waiting: _Parked, agent: str | None, inst: Instruments | None) -> None:
        self._parked_count -= len(waiting)
        if inst is None:
            return
        for duration, labels, ctx, histogram in waiting:
            if agent is not None:
                labels[sc.GEN_AI_AGENT_NAME] = agent
            histogram.record(duration, labels, ctx)

    def _agent_above(self, span_id: int) -> str | None:
        key: int | None = span_id
        for _ in range(_MAX_DEPTH):
            entry = self._live.get(key) if key is not None else None
            if entry is None:
                return None
            if entry[1] is not None:
                return entry[1]
            key = entry[0]
        return None


def _ours(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope
    return scope is not None and scope.name.startswith(CORE_SCOPE)
