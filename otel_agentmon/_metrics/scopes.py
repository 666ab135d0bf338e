"""Count each measurement once: which instrumentation scopes record GenAI metrics themselves.

otel_agentmon derives the GenAI metrics from spans, whoever made them. Some instrumentations
also record those metrics themselves (Microsoft Agent Framework's native telemetry, OpenLLMetry's
LangChain and OpenAI Agents instrumentations, the official OpenAI instrumentation, PydanticAI's
native instrumentation): deriving them again from their spans would export every token twice,
once under their scope and once under ``otel_agentmon``.

How it is decided, at runtime and per instrumentation scope: ``MetricOwners.watch`` wraps
``get_meter`` of the MeterProvider our metrics are exported through (ours, or the application's
we reuse), and the ``create_*`` methods of every meter it hands out, so it sees each
(meter scope, instrument name) pair other libraries create there; meters made before (a library
instrumented before ``configure()``, or a proxy meter bound when our provider became the global
one) are read once from the SDK provider. A span whose instrumentation scope has a meter of the
same name that created one of the metrics we derive (``DERIVED_METRICS``) gets that metric from
its own instrumentation only: the Deriver skips it for that span. A library that records to
another MeterProvider (one we do not export) is not seen, so we still derive for it: what we
export is then counted once.

Fallback: when the provider cannot be watched (a provider without the SDK's hooks), the static
table ``KNOWN_SELF_RECORDING`` of instrumentations known to record their own metrics is used.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.context import Context

from .._core.guard import report_internal_error
from .._core.sdk_compat import existing_meters, instrument_names
from .._names import semconv as sc

if TYPE_CHECKING:
    from .instruments import Instruments

#: The metrics the Deriver makes from spans of any instrumentation.
DERIVED_METRICS: Final = frozenset({
    sc.M_CLIENT_TOKEN_USAGE, sc.M_CLIENT_OPERATION_DURATION, sc.M_INVOKE_AGENT_DURATION,
    sc.M_EXECUTE_TOOL_DURATION, sc.M_INVOKE_WORKFLOW_DURATION, sc.M_INVOKE_AGENT_TOOL_CALLS,
    sc.M_INVOKE_AGENT_INFERENCE_CALLS,
})  # fmt: skip
_CLIENT: Final = frozenset({sc.M_CLIENT_TOKEN_USAGE, sc.M_CLIENT_OPERATION_DURATION})
#: Instrumentation scopes (tracer = meter scope) known to record GenAI metrics of their own.
KNOWN_SELF_RECORDING: Final[Mapping[str, frozenset[str]]] = {
    "agent_framework": _CLIENT,  # agent-framework-core, enable_instrumentation()
    "opentelemetry.instrumentation.langchain": _CLIENT,  # OpenLLMetry
    "opentelemetry.instrumentation.openai_agents": _CLIENT,  # OpenLLMetry
    "opentelemetry.instrumentation.openai_v2": _CLIENT,  # the official OpenAI instrumentation
    # the official GenAI LLM-client instrumentations configure() uses (opentelemetry-util-genai's meter)
    "opentelemetry.instrumentation.genai.openai": _CLIENT,
    "opentelemetry.instrumentation.genai.anthropic": _CLIENT,
    "opentelemetry.instrumentation.google_genai": _CLIENT,
    "pydantic-ai": frozenset({sc.M_CLIENT_TOKEN_USAGE}),  # PydanticAI's native instrumentation
    # the official GenAI instrumentations of frameworks (opentelemetry-util-genai creates all five)
    **dict.fromkeys((f"opentelemetry.instrumentation.genai.{fw}" for fw in ("langchain", "openai_agents",
                                                                             "smolagents")),
                    _CLIENT | {sc.M_EXECUTE_TOOL_DURATION, sc.M_INVOKE_WORKFLOW_DURATION, sc.M_INVOKE_AGENT_DURATION}),
}
_NONE: Final[frozenset[str]] = frozenset()
_CREATE: Final = ("create_counter", "create_up_down_counter", "create_histogram", "create_gauge")
_WATCHERS: Final = "_agentmon_metric_owners"  # on our get_meter wrapper: the registries it feeds
_WATCHED: Final = "_agentmon_watched"  # on a meter whose create_* methods are wrapped


class MetricOwners:
    """Instrumentation scope -> the derived metrics that scope records itself."""

    def __init__(self, own_meter: str) -> None:
        self._own = own_meter  # our meter: its instruments are the derived ones
        self._lock = threading.Lock()
        self._by_scope: dict[str, frozenset[str]] = {}
        self.watching = False

    def watch(self, provider: object) -> bool:
        """Learn from ``provider`` from now on (and what it already has); False when it cannot
        be watched, in which case the static table stands in."""
        try:
            self.watching = _install(provider, self)
        except Exception:  # noqa: BLE001
            report_internal_error("watching the meter provider")
            self.watching = False
        if not self.watching:
            for scope, names in KNOWN_SELF_RECORDING.items():
                for name in names:
                    self.saw(scope, name)
        return self.watching

    def saw(self, scope: str, metric: str) -> None:
        """Scope ``scope`` created an instrument called ``metric`` on the watched provider."""
        if metric not in DERIVED_METRICS or scope == self._own:
            return
        with self._lock:
            self._by_scope[scope] = self._by_scope.get(scope, _NONE) | {metric}

    def recorded_by(self, scope: str | None) -> frozenset[str]:
        """The derived metrics spans of ``scope`` already get from their own instrumentation."""
        return _NONE if scope is None else self._by_scope.get(scope, _NONE)


def _install(provider: object, owners: MetricOwners) -> bool:
    current = getattr(provider, "get_meter", None)
    if current is None:
        return False
    watchers: weakref.WeakSet[MetricOwners] | None = getattr(current, _WATCHERS, None)
    if watchers is None:
        watchers = weakref.WeakSet()
        setattr(provider, "get_meter", _get_meter_wrapper(current, watchers))  # noqa: B010 - shadows the method
    watchers.add(owners)
    meters = existing_meters(provider)
    complete = meters is not None
    for meter in meters or ():
        _watch_meter(meter, watchers)
        names = instrument_names(meter)
        if names is None:
            complete = False
            continue
        for name in names:
            owners.saw(str(getattr(meter, "name", "")), name)
    return complete


def _get_meter_wrapper(original: Callable[..., Any], watchers: weakref.WeakSet[MetricOwners]) -> Callable[..., Any]:
    def get_meter(*args: Any, **kwargs: Any) -> Any:
        meter = original(*args, **kwargs)
        try:
            _watch_meter(meter, watchers)
        except Exception:  # noqa: BLE001 - the caller gets its meter whatever happens here
            report_internal_error("watching a meter")
        return meter

    setattr(get_meter, _WATCHERS, watchers)
    return get_meter


def _watch_meter(meter: object, watchers: weakref.WeakSet[MetricOwners]) -> None:
    if getattr(meter, _WATCHED, False):
        return
    scope = str(getattr(meter, "name", ""))
    try:
        for method in _CREATE:
            create = getattr(meter, method, None)
            if create is not None:
                setattr(meter, method, _create_wrapper(create, scope, watchers))
        setattr(meter, _WATCHED, True)
    except (AttributeError, TypeError):  # a meter that takes no attributes: see what exists only
        pass


def _create_wrapper(create: Callable[..., Any], scope: str,
                    watchers: weakref.WeakSet[MetricOwners]) -> Callable[..., Any]:
    def created(*args: Any, **kwargs: Any) -> Any:
        instrument = create(*args, **kwargs)  # the library's own errors pass through unchanged
        name = kwargs.get("name", args[0] if args else None)
        if isinstance(name, str) and name in DERIVED_METRICS:
            for owners in list(watchers):
                owners.saw(scope, name)
        return instrument

    return created


def agent_usage(attrs: Mapping[str, object], inst: Instruments | None, ctx: Context) -> tuple[int, int]:
    """(input, output) tokens of an agent's own model calls that only its agent span reports (no
    model-call span under it; see ``_dialects.AGENT_USAGE_SCOPES``), recorded once as the agent
    invocation's token usage."""
    inp, out = attrs.get(sc.GEN_AI_USAGE_INPUT_TOKENS), attrs.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
    counts = (inp if isinstance(inp, int) else 0, out if isinstance(out, int) else 0)
    if inst is not None:
        base = {k: v for k in (sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL)
                if isinstance(v := attrs.get(k), str)}
        for count, kind in zip(counts, (sc.TOKEN_TYPE_INPUT, sc.TOKEN_TYPE_OUTPUT), strict=True):
            if count:
                inst.token_usage.record(count, {**base, sc.GEN_AI_TOKEN_TYPE: kind}, ctx)
    return counts
