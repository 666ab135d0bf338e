"""What the framework instrumentors share: the tracer, the span table keyed by the framework's
own ids, error marking, peer stand-down and the import-safe instrument/uninstrument shell.

A framework reports its runs through callbacks that may arrive on any thread or asyncio task.
``SpanTable`` therefore builds the span tree from the framework's run ids (parent id -> our
span), never from the ambient OTel context, except for a root run: that one is parented under
whatever span is current where the run starts, so a user's ``with agentmon.agent(...)`` or
workflow around the framework call becomes its parent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Hashable, Mapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]  # the instrumentation package is untyped
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._core import state as _state
from .._core.active import ActiveTracerProvider
from .._core.guard import log_once, report_internal_error
from .._names import semconv as sc
from .._setup.providers import VERSION
from .._spans.ops import record_error
from .._spans.sanitize import clean_attributes, clean_name, clean_str

SCOPE_PREFIX: Final = "otel_agentmon.instrumentation."
#: Open spans kept per instrumentor before the oldest are forgotten (runs that never end).
MAX_OPEN: Final = 10_000

logger = logging.getLogger("otel_agentmon.instrumentation")


def get_tracer(framework: str, kwargs: Mapping[str, Any]) -> trace.Tracer:
    """Our tracer for ``framework``: from the ``tracer_provider`` kwarg, else the active monitor's
    provider looked up at each span start (so an ``agentmon_capture`` fixture sees the spans
    without being handed to ``instrument()``), else the global one."""
    provider = kwargs.get("tracer_provider") or ActiveTracerProvider()
    return trace.get_tracer(SCOPE_PREFIX + framework, VERSION, provider, schema_url=sc.SCHEMA_URL)


class Entry:
    """An open span (or the span a framework run without one of its own maps onto)."""

    __slots__ = ("span", "ctx", "agent", "owner", "label", "prev")

    def __init__(self, span: trace.Span, ctx: otel_context.Context, agent: str | None, owner: bool,
                 label: str | None = None) -> None:
        self.span = span
        self.ctx = ctx
        self.agent = agent  # gen_ai.agent.name its children inherit
        self.owner = owner  # False: an alias of an ancestor's span, ended by that ancestor
        self.label = label  # an alias's own run name (for a later promotion)
        self.prev: otel_context.Context | None = None  # set by make_current


class SpanTable:
    """Open spans by framework run id; safe to use from any thread."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._open: dict[Hashable, Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._open)

    def get(self, key: Hashable | None) -> Entry | None:
        return None if key is None else self._open.get(key)

    def start(self, key: Hashable, parent_key: Hashable | None, name: str, kind: SpanKind,
              attrs: Mapping[str, Any], *, agent: str | None = None) -> Entry:
        """Open a span for run ``key`` under run ``parent_key`` (or the caller's current span).

        ``agent`` names the agent this span runs as; without it the span inherits its parent's
        agent and carries it as ``gen_ai.agent.name``.
        """
        return self._open_span(key, self.get(parent_key), name, kind, attrs, agent)

    def _open_span(self, key: Hashable, parent: Entry | None, name: str, kind: SpanKind,
                   attrs: Mapping[str, Any], agent: str | None) -> Entry:
        ctx = parent.ctx if parent is not None else otel_context.get_current()
        attributes = dict(attrs)
        if agent is None and parent is not None:
            agent = parent.agent
        if agent is not None and sc.GEN_AI_AGENT_NAME not in attributes:
            attributes[sc.GEN_AI_AGENT_NAME] = agent
        span = self._tracer.start_span(clean_name(name), ctx, kind, clean_attributes(attributes))
        inner = trace.set_span_in_context(span, ctx)
        if agent is not None:  # agentmon.tool()/task() opened inside take the agent's name
            inner = otel_context.set_value(_state.AGENT_KEY, agent, inner)
        entry = Entry(span, inner, agent, True)
        self._put(key, entry)
        return entry

    def alias(self, key: Hashable, parent_key: Hashable | None, label: str | None = None) -> bool:
        """Map run ``key`` onto its parent's span (a framework run we do not show); False if the
        parent is unknown."""
        parent = self.get(parent_key)
        if parent is None:
            return False
        self._put(key, Entry(parent.span, parent.ctx, parent.agent, False, label))
        return True

    def promote(self, key: Hashable, name: str, kind: SpanKind, attrs: Mapping[str, Any], *,
                agent: str | None = None) -> Entry | None:
        """Give aliased run ``key`` a span of its own after all (it turned out to matter), under
        the span it was mapped onto."""
        entry = self.get(key)
        if entry is None or entry.owner:
            return entry
        return self._open_span(key, entry, name, kind, attrs, agent)

    def _put(self, key: Hashable, entry: Entry) -> None:
        with self._lock:
            if len(self._open) >= MAX_OPEN:
                for old in list(self._open)[: MAX_OPEN // 10]:
                    del self._open[old]
                log_once(logging.WARNING, "instrumentation:max-open",
                         "otel_agentmon: more than %d framework runs open; forgot the oldest", MAX_OPEN)
            self._open[key] = entry

    @staticmethod
    def make_current(entry: Entry) -> None:
        """Make ``entry``'s span the current span until it ends, so spans the user's code opens
        inside the framework operation nest under it.

        Only for operations whose start and end the framework reports from one call in one
        context (a tool call): the previous context is set back at the end, and only if our span
        is still the current one there, so nothing leaks when that does not hold. Plain sets, no
        detach tokens: a token reset from another context would fail.
        """
        entry.prev = otel_context.get_current()
        otel_context.attach(entry.ctx)

    def pop(self, key: Hashable | None) -> Entry | None:
        if key is None:
            return None
        with self._lock:
            return self._open.pop(key, None)

    def end(self, key: Hashable | None, *, error: BaseException | None = None,
            attrs: Mapping[str, Any] | None = None) -> Entry | None:
        """End run ``key``'s span (aliases just go away); marks ``error`` on it."""
        entry = self.pop(key)
        if entry is None or not entry.owner:
            return entry
        if attrs:
            entry.span.set_attributes(clean_attributes(attrs))
        if error is not None:
            record_error(entry.span, error)
        entry.span.end()
        if entry.prev is not None and trace.get_current_span() is entry.span:
            otel_context.attach(entry.prev)
        return entry


def mark_error(span: trace.Span, error_type: str, message: str | None = None) -> None:
    """Mark ``span`` failed with a low-cardinality ``error.type`` (no exception object at hand)."""
    try:
        span.set_attribute(sc.ERROR_TYPE, clean_name(error_type)[:256])
        span.set_status(Status(StatusCode.ERROR, clean_str(message or error_type, 1024)))
    except Exception:  # noqa: BLE001
        report_internal_error("mark_error")


def content_on_spans() -> bool:
    """Whether message/tool content goes on spans (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``)."""
    return _state.content_on_spans()


class FrameworkInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # BaseInstrumentor comes from an untyped module
    """``BaseInstrumentor`` that never raises into the application and stands down next to a peer.

    Subclasses set ``framework``, ``dependencies`` and implement ``_install``/``_remove``.
    """

    framework: str = ""
    #: pip requirement strings, checked by ``instrument()`` and ``opentelemetry-instrument``
    dependencies: tuple[str, ...] = ()
    # BaseInstrumentor is a per-class singleton whose ``__init__`` runs on every construction, so
    # state lives in attributes set by instrument/uninstrument, never in an ``__init__``.
    _installed: bool = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.dependencies

    def _instrument(self, **kwargs: Any) -> None:
        if self._installed:
            return
        try:
            # opentelemetry-instrument skips the dependency check (our distribution declares no
            # `instruments` extra), so an absent framework is found here and ignored.
            if self._check_dependency_conflicts() is not None:
                logger.debug("otel_agentmon: %s is not installed; not instrumenting it", self.framework)
                return
            self._install(get_tracer(self.framework, kwargs), kwargs)
            self._installed = True
        except ImportError as exc:
            logger.debug("otel_agentmon: %s cannot be imported (%s); not instrumenting it", self.framework, exc)
        except Exception:  # noqa: BLE001
            report_internal_error(f"instrument {self.framework}")

    def _uninstrument(self, **kwargs: Any) -> None:
        if not self._installed:
            return
        self._installed = False
        self.__dict__.pop("_warned_peer", None)  # instrumented again: warn again
        try:
            self._remove()
        except Exception:  # noqa: BLE001
            report_internal_error(f"uninstrument {self.framework}")

    def _install(self, tracer: trace.Tracer, kwargs: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _remove(self) -> None:
        raise NotImplementedError

    def stand_down(self, peer: str) -> None:
        """Log (once per peer) that ``peer`` already traces this framework, so we add no spans."""
        warned: set[str] = self.__dict__.setdefault("_warned_peer", set())
        if peer in warned:
            return
        warned.add(peer)
        log_once(logging.WARNING, f"instrumentation:peer:{self.framework}:{peer}",
                 "otel_agentmon: %s already traces %s; agentmon_%s adds no spans of its own while it is active "
                 "(its spans still feed otel_agentmon's metrics and health)", peer, self.framework, self.framework)
