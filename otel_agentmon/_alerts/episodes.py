"""One alert, one row: the same rule for the same agent, evaluated in several places, is one alert.

A rule can be evaluated by the process itself (its otel_agentmon), by ``agentmon serve`` on what it
receives, and by Prometheus on the exported rules. Each evaluator reports its own transitions; an
*episode* of an alert instance (rule, agent) starts when the first evaluator says firing and ends
when the last one firing says resolved. An evaluator that fires late (its data arrives later) joins
the episode another one just resolved when it fires within ``tolerance`` seconds of that end.
``agentmon serve`` shows one row per episode, and the report counts episodes ("fired Nx").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Final, Literal, TypeAlias

#: how long after an episode ended another evaluator's firing still belongs to it
SAME_EPISODE_S: Final = 30.0
SERVE: Final = "serve"
PROMETHEUS: Final = "prometheus"
Where: TypeAlias = Literal["process", "serve", "prometheus", "both"]


@dataclasses.dataclass
class Episode:
    start: float
    end: float | None  # None while it is firing
    sources: list[str]  # the evaluators that fired it, in order


def episodes(transitions: Iterable[tuple[float, str, bool]], tolerance: float = SAME_EPISODE_S) -> list[Episode]:
    """``transitions``: (time, evaluator, firing?) of one alert instance, in any order. A resolve
    from an evaluator not seen firing (its firing fell outside the data) is ignored."""
    firing: set[str] = set()
    out: list[Episode] = []
    for t, source, is_firing in sorted(transitions, key=lambda x: (x[0], not x[2])):
        if is_firing:
            if source in firing:
                continue  # a repeat (the gauge and the record of one transition)
            last = out[-1] if out else None
            if last is not None and (firing or (last.end is not None and t - last.end <= tolerance
                                                and source not in last.sources)):
                last.end = None  # another evaluator agrees (or lags behind): the same episode
            else:
                last = Episode(t, None, [])
                out.append(last)
            firing.add(source)
            if source not in last.sources:
                last.sources.append(source)
        elif source in firing:
            firing.discard(source)
            if not firing:
                out[-1].end = t
    return out


def where(sources: Iterable[str]) -> Where:
    """``process`` / ``serve`` / ``prometheus``, or ``both`` when more than one kind evaluated it."""
    kinds = {SERVE if s == SERVE else PROMETHEUS if s.startswith(PROMETHEUS) else "process" for s in sources}
    if len(kinds) <= 1:
        kind = next(iter(kinds), "process")
        return "serve" if kind == SERVE else "prometheus" if kind == PROMETHEUS else "process"
    return "both"
