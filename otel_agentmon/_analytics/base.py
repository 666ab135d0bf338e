"""What every insight shares: its evidence, how spans are selected, and the price table."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal, TypeAlias

import yaml

from .._records.records import SpanRecord

Dimension: TypeAlias = Literal["agent", "task_type", "tool", "model"]
DIMENSIONS: Final[tuple[Dimension, ...]] = ("agent", "task_type", "tool", "model")
#: Which spans a dimension measures: an agent's and a task type's tasks, a tool's calls, a model's calls.
KIND_OF: Final[Mapping[Dimension, str]] = {"agent": "task", "task_type": "task", "tool": "tool", "model": "llm"}
#: How many trace ids an insight names as evidence.
EVIDENCE_TRACES: Final = 3


@dataclasses.dataclass(frozen=True)
class Window:
    """A half-open interval [start_ns, end_ns) of span end times."""

    start_ns: int
    end_ns: int

    @property
    def seconds(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    def contains(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns < self.end_ns


@dataclasses.dataclass(frozen=True)
class EvidencePart:
    """One piece of an evidence line: ``label`` (our words) then ``values`` joined with ", ".

    The values can come from span attributes (agent, tool and model names, trace ids): a renderer
    must escape them. ``code``: they are identifiers or expressions (code spans, ``<code>``).
    """

    name: str  # what it is: query, expression, window, baseline, n, <a numbers key>, statistic, p, traces
    label: str
    values: tuple[str, ...]
    code: bool = False

    def plain(self) -> str:
        return self.label + ", ".join(self.values)


#: The ``Evidence.numbers`` an evidence line shows, in this order.
EVIDENCE_NUMBERS: Final = ("n_baseline", "n_recent", "z", "median_baseline", "median_recent", "median_baseline_ms",
                           "median_recent_ms")


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What an insight was computed from, so a user can check it.

    ``query`` says it in words; ``expression`` is the same selection in a PromQL-like form
    (``duration_s{kind="task",agent="writer"}`` over spans whose end time is in ``window``);
    ``trace_ids`` are a few traces that show it; ``n`` the sample size; ``statistic`` and
    ``p_value`` the test's, when a test was run; ``numbers`` anything else that was computed.
    """

    query: str
    expression: str
    window: Window
    trace_ids: tuple[str, ...] = ()
    n: int = 0
    statistic: float | None = None
    p_value: float | None = None
    numbers: Mapping[str, float] = dataclasses.field(default_factory=dict[str, float])
    baseline: Window | None = None  # the comparison window, for regressions

    def parts(self) -> tuple[EvidencePart, ...]:
        """The query, the expression, the window(s), n, the numbers, the test result and the traces."""
        out = [EvidencePart("query", "", (self.query,)),
               EvidencePart("expression", "", (self.expression,), code=True),
               EvidencePart("window", "window ", (fmt_window(self.window),))]
        if self.baseline is not None:
            out.append(EvidencePart("baseline", "baseline ", (fmt_window(self.baseline),)))
        out.append(EvidencePart("n", "n=", (str(self.n),)))
        out += [EvidencePart(key, f"{key}=", (f"{self.numbers[key]:.4g}",))
                for key in EVIDENCE_NUMBERS if key in self.numbers]
        if self.statistic is not None:
            out.append(EvidencePart("statistic", "statistic=", (f"{self.statistic:.4g}",)))
        if self.p_value is not None:
            out.append(EvidencePart("p", "p=", (f"{self.p_value:.3g}",)))
        if self.trace_ids:
            out.append(EvidencePart("traces", "traces ", self.trace_ids, code=True))
        return tuple(out)

    def describe(self) -> str:
        """One plain-text line: the window(s), n, the numbers, the test result and the traces."""
        return "; ".join(p.plain() for p in self.parts() if p.name not in ("query", "expression"))


def fmt_time(ns: int) -> str:
    """UTC ISO 8601 with centiseconds: ``2026-11-27T13:22:05.12Z``."""
    stamp = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"


def fmt_window(w: Window) -> str:
    return f"[{fmt_time(w.start_ns)}, {fmt_time(w.end_ns)})"


def selector(dimension: Dimension, key: str) -> str:
    """The PromQL-like selector of one group's spans."""
    return f'{{kind="{KIND_OF[dimension]}",{dimension}="{key}"}}'


def key_of(rec: SpanRecord, dimension: Dimension) -> str | None:
    """The group a span belongs to along ``dimension`` (``None``: not measured by it)."""
    if rec.kind != KIND_OF[dimension]:
        return None
    if dimension == "agent":
        return rec.agent
    if dimension == "task_type":
        return rec.task_type
    if dimension == "tool":
        return rec.tool or rec.name
    return rec.model


def group(records: Iterable[SpanRecord], dimension: Dimension, window: Window | None = None
          ) -> dict[str, list[SpanRecord]]:
    """Spans of ``dimension``'s kind, by group, whose end is in ``window``."""
    out: dict[str, list[SpanRecord]] = {}
    for rec in records:
        key = key_of(rec, dimension)
        if key is not None and (window is None or window.contains(rec.end_ns)):
            out.setdefault(key, []).append(rec)
    return out


def span_window(records: Sequence[SpanRecord]) -> Window:
    """The smallest window holding every span's end (empty records: an empty window at 0)."""
    if not records:
        return Window(0, 0)
    return Window(min(r.start_ns for r in records), max(r.end_ns for r in records) + 1)


def slowest_traces(records: Iterable[SpanRecord], k: int = EVIDENCE_TRACES) -> tuple[str, ...]:
    """Trace ids of the ``k`` slowest spans (distinct traces)."""
    out: list[str] = []
    for rec in sorted(records, key=lambda r: r.end_ns - r.start_ns, reverse=True):
        if rec.trace_id not in out:
            out.append(rec.trace_id)
            if len(out) >= k:
                break
    return tuple(out)


def failed_traces(records: Iterable[SpanRecord], k: int = EVIDENCE_TRACES) -> tuple[str, ...]:
    out: list[str] = []
    for rec in records:
        if rec.error is not None and rec.trace_id not in out:
            out.append(rec.trace_id)
            if len(out) >= k:
                break
    return tuple(out)


# --- prices -------------------------------------------------------------------------------------

#: EXAMPLE prices, USD per 1M tokens (input, output), as listed publicly by the providers in
#: 2025-06. They are not maintained: pass ``prices=`` (or ``--prices FILE``) with your own.
DEFAULT_PRICES_AS_OF: Final = "public list prices as of 2025-06, not maintained"
DEFAULT_PRICES: Final[Mapping[str, tuple[float, float]]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "o3-mini": (1.10, 4.40),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-pro": (1.25, 10.00),
}
Prices: TypeAlias = Mapping[str, tuple[float, float]]


#: Dated model names the providers list as snapshots of a name in ``DEFAULT_PRICES`` (same price).
#: Only these are aliased: any other name is unpriced, never matched by prefix (``gpt-4.1-nano`` is
#: not ``gpt-4.1``). A table passed with ``prices=`` / ``--prices`` is matched exactly, with these
#: aliases applied only when the dated name is not in it but its base name is.
DATED_ALIASES: Final[Mapping[str, str]] = {
    "gpt-4o-2024-05-13": "gpt-4o",
    "gpt-4o-2024-08-06": "gpt-4o",
    "gpt-4o-2024-11-20": "gpt-4o",
    "gpt-4o-mini-2024-07-18": "gpt-4o-mini",
    "gpt-4.1-2025-04-14": "gpt-4.1",
    "gpt-4.1-mini-2025-04-14": "gpt-4.1-mini",
    "o3-mini-2025-01-31": "o3-mini",
    "claude-3-5-haiku-20241022": "claude-3-5-haiku",
    "claude-3-5-haiku-latest": "claude-3-5-haiku",
    "claude-sonnet-4-20250514": "claude-sonnet-4",
    "claude-opus-4-20250514": "claude-opus-4",
}


def price_of(prices: Prices, model: str | None) -> tuple[float, float] | None:
    """A model's prices: its exact name in ``prices``, else the name ``DATED_ALIASES`` lists for it
    (``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``); ``None`` (unpriced) otherwise."""
    if model is None:
        return None
    if model in prices:
        return prices[model]
    alias = DATED_ALIASES.get(model)
    return None if alias is None else prices.get(alias)


def cost_usd(prices: Prices, model: str | None, input_tokens: int, output_tokens: int) -> float | None:
    price = price_of(prices, model)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1e6


def load_prices(path: str | Path) -> dict[str, tuple[float, float]]:
    """A price table from JSON or YAML: ``{model: [input, output]}`` or
    ``{model: {input: .., output: ..}}``, USD per 1M tokens. Raises ``ValueError`` on a bad file."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of model -> prices")
    out: dict[str, tuple[float, float]] = {}
    for model, value in data.items():
        if isinstance(value, dict):
            pair = (value.get("input"), value.get("output"))
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            pair = (value[0], value[1])
        else:
            raise ValueError(f"{path}: {model}: expected [input, output] or {{input:, output:}}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                   for v in pair):
            raise ValueError(f"{path}: {model}: prices must be non-negative numbers")
        out[str(model)] = (float(pair[0]), float(pair[1]))  # type: ignore[arg-type]  # checked to be finite non-negative numbers just above
    return out
