"""Derive agent metrics and per-agent summaries from spans, off the agent's thread.

The span processor only appends the span to a bounded deque (tens of nanoseconds); this
module's daemon thread turns starts and ends into in-flight tracking, the GenAI and agentmon
metrics, and the per-agent summary behind ``Monitor.snapshot()``. Because it works from spans,
it serves spans made by any instrumentation that uses the GenAI conventions, not just ours.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Final, TypeAlias

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, StatusCode

from .._core.guard import after_fork_in_child, report_internal_error
from .._core.sdk_compat import fast_attributes
from .._names import semconv as sc
from .._names.dialects import AGENT_USAGE_SCOPES, exception_type, normalize
from .enclosing import Enclosing
from .inflight import DerivationDrops, InFlightTable
from .inflight import InFlight as _InFlight
from .instruments import Instruments
from .scopes import agent_usage
from .windows import AgentWindows, WindowStats

_MAX_QUEUE: Final = 65536  # entries (span ends, and starts of agent spans): bounds the backlog's memory
_YIELD_EVERY: Final = 64
_MAX_PENDING: Final = 100_000
_TICK_S: Final = 0.05  # worker latency bound: metrics and summaries lag spans by at most this
_RESERVOIR: Final = 512
_AttrMap: TypeAlias = Mapping[str, object]


@dataclasses.dataclass(frozen=True)
class AgentView:
    """One agent as the health loop sees it."""

    name: str
    idle_for: float  # seconds since its last span activity or heartbeat
    running: list[tuple[str, float, ReadableSpan]]  # (task type, age in s, live span)
    windows: dict[float, WindowStats]


@dataclasses.dataclass
class _ChildCounts:
    tool_calls: int = 0
    inference_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclasses.dataclass
class AgentSummary:
    """What one agent (by ``gen_ai.agent.name``) did, as seen in this process."""

    name: str
    tasks_ok: int = 0
    tasks_failed: int = 0
    tasks_cancelled: int = 0
    invocations: int = 0
    tool_calls: int = 0
    inference_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    busy_seconds: float = 0.0
    in_flight: int = 0
    last_seen: float = 0.0  # time.time() of the last span start or end
    errors: dict[str, int] = dataclasses.field(default_factory=dict[str, int])
    recent_durations: collections.deque[float] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=_RESERVOIR))

    def percentile(self, q: float) -> float | None:
        """Task-duration percentile (0 < q < 1) over the most recent tasks, in seconds."""
        values = sorted(self.recent_durations)
        if not values:
            return None
        return values[min(len(values) - 1, int(q * len(values)))]


_NO_CHILDREN: Final = _ChildCounts()  # shared, never mutated: most spans have no counted children


def _error_ctx(span: ReadableSpan) -> Context:
    # Recording on this thread loses the span's context; pass it so exemplars still link.
    return trace.set_span_in_context(NonRecordingSpan(span.context))


class Deriver:
    def __init__(self, *, run_thread: bool = True) -> None:
        self._run_thread = run_thread
        self.instruments: Instruments | None = None
        #: sliding-window lengths (s) the health policy and alert rules read
        self.window_lengths: set[float] = {60.0}
        self._init_state()
        after_fork_in_child(self._init_state)

    def _init_state(self) -> None:
        self._queue: collections.deque[tuple[bool, ReadableSpan]] = collections.deque()
        self._drops = DerivationDrops()
        self._pending: dict[int, _ChildCounts] = {}
        self._in_flight = InFlightTable(self._forget_in_flight)
        self._agents: dict[str, AgentSummary] = {}
        self._enclosing = Enclosing()  # names the agent of tool spans that do not
        self._windows: dict[str, AgentWindows] = {}
        #: monotonic time of each agent's last activity (span start/end or heartbeat)
        self._last_activity: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentmon-derive", daemon=True)
        if self._run_thread:
            self._thread.start()

    # --- hot path (span processor) ------------------------------------------------------------
    def offer(self, started: bool, span: ReadableSpan) -> None:
        if self._stop.is_set():
            next(self._drops.stopped)  # stopped: nothing will consume it
            return
        if len(self._queue) < _MAX_QUEUE:
            self._queue.append((started, span))
        else:
            next(self._drops.queue_full)

    # --- worker -------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(_TICK_S):
            self.process_pending()
            self._drops.report(self._in_flight.evicted)

    def process_pending(self, deadline: float | None = None, *, final: bool = False) -> None:
        """Consume everything queued so far (also called by flush and by tests); with a
        ``deadline`` (monotonic), stop there and drop (and count) what is left."""
        queue = self._queue
        with self._lock:
            # Only what is queued now: emitters on other threads must not keep this loop going.
            for i in range(len(queue)):
                if i % _YIELD_EVERY == 0 and not final and self._stop.is_set():
                    return  # stop() takes over, with its own deadline
                if deadline is not None and i % _YIELD_EVERY == 0 and time.monotonic() > deadline:
                    for _ in range(len(queue)):
                        queue.popleft()
                        self._drops.deadline += 1
                    break
                if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                    # Let the export thread (and the agents) run: a long burst here would hold the
                    # GIL for hundreds of ms and let the span export queue overflow.
                    time.sleep(0)
                started, span = queue.popleft()
                try:
                    if started:
                        self._on_start(span)
                    else:
                        self._on_end(span)
                except Exception:  # noqa: BLE001
                    report_internal_error("metric derivation")
            if self._drops.sweep_due():
                self._in_flight.sweep_ended()  # a task whose end was dropped is not in flight

    def stop(self, deadline: float | None = None) -> None:
        self._stop.set()
        self.process_pending(deadline, final=True)
        self._drops.report(self._in_flight.evicted)

    @property
    def dropped(self) -> int:
        """Span starts/ends and tracked tasks derivation lost (the sum of ``dropped_by_reason``)."""
        return self._drops.queue_drops() + self._in_flight.evicted

    def dropped_by_reason(self) -> dict[str, int]:
        return self._drops.by_reason(self._in_flight.evicted)

    def _forget_in_flight(self, entry: _InFlight) -> None:
        summary = self._agents.get(entry.key[0])
        if summary is not None:
            summary.in_flight = max(0, summary.in_flight - 1)

    def _agent(self, name: str) -> AgentSummary:
        summary = self._agents.get(name)
        if summary is None:
            if len(self._agents) >= 10_000:
                self._agents.clear()
            summary = self._agents[name] = AgentSummary(name)
        return summary

    def _on_start(self, span: ReadableSpan) -> None:
        attrs = _standard_attrs(span)
        agent = attrs.get(sc.GEN_AI_AGENT_NAME)
        self._enclosing.started(span, agent)
        if isinstance(agent, str):
            self._agent(agent).last_seen = time.time()
            self._last_activity[agent] = time.monotonic()
        task_type = attrs.get(sc.AGENTMON_TASK_TYPE)
        if task_type is None or not isinstance(agent, str):
            return
        key = (agent, str(task_type))
        if span.end_time is not None:  # ended already (its end follows, or was dropped): not in flight
            self._in_flight.note(key)
            return
        self._agent(agent).in_flight += 1
        self._in_flight.add(span.context.span_id, _InFlight(key, span.start_time or time.time_ns(), span))

    def _on_end(self, span: ReadableSpan) -> None:
        attrs = _standard_attrs(span)
        sid = span.context.span_id
        own = self._pending.pop(sid, None) or _NO_CHILDREN
        start, end = span.start_time or 0, span.end_time or 0
        duration = max(0, end - start) / 1e9
        error = attrs.get(sc.ERROR_TYPE)
        if error is None and span.status.status_code is StatusCode.ERROR:
            error = exception_type(span.events) or "_OTHER"
        op = attrs.get(sc.GEN_AI_OPERATION_NAME)
        agent = attrs.get(sc.GEN_AI_AGENT_NAME)
        # Less the metrics the span's own instrumentation records itself (see _scopes).
        inst = self.instruments.for_scope(_scope(span)) if self.instruments is not None else None
        if op == sc.OP_INVOKE_AGENT and not own.inference_calls and _scope(span) in AGENT_USAGE_SCOPES:
            inp, out = agent_usage(attrs, inst, _error_ctx(span))  # tokens only the agent span reports
            own = dataclasses.replace(own, input_tokens=own.input_tokens + inp, output_tokens=own.output_tokens + out)
        up = _ChildCounts(input_tokens=own.input_tokens, output_tokens=own.output_tokens)
        if op == sc.OP_INVOKE_AGENT:
            labels = _pick(attrs, (sc.GEN_AI_AGENT_NAME, sc.GEN_AI_REQUEST_MODEL), error)
            if inst is not None:
                ctx = _error_ctx(span)
                inst.agent_duration.record(duration, labels, ctx)
                calls = _pick(attrs, (sc.GEN_AI_AGENT_NAME,), None)
                inst.tool_calls.record(own.tool_calls, calls, ctx)
                inst.inference_calls.record(own.inference_calls, calls, ctx)
            if isinstance(agent, str):
                summary = self._agent(agent)
                summary.invocations += 1
                summary.tool_calls += own.tool_calls
                summary.inference_calls += own.inference_calls
        else:
            # Calls belong to the nearest enclosing agent invocation: pass them up.
            up.tool_calls, up.inference_calls = own.tool_calls, own.inference_calls
            if op == sc.OP_EXECUTE_TOOL:
                up.tool_calls += 1
                if inst is not None:
                    labels = _pick(attrs, (sc.GEN_AI_TOOL_NAME, sc.GEN_AI_TOOL_TYPE, sc.GEN_AI_AGENT_NAME), error)
                    self._enclosing.tool(inst, span, duration, labels, _error_ctx(span))
            elif op in sc.INFERENCE_OPERATIONS:
                self._on_inference(span, attrs, duration, error, up, inst)
            elif op == sc.OP_INVOKE_WORKFLOW and inst is not None:
                labels = _pick(attrs, (sc.GEN_AI_WORKFLOW_NAME,), error)
                inst.workflow_duration.record(duration, labels, _error_ctx(span))
        if sc.AGENTMON_TASK_TYPE in attrs:
            self._on_task_end(span, attrs, duration, error, own)
        elif isinstance(agent, str):
            self._agent(agent).last_seen = time.time()
            self._last_activity[agent] = time.monotonic()
        self._enclosing.ended(span, agent, self.instruments)
        parent = span.parent
        if parent is not None and (up.tool_calls or up.inference_calls or up.input_tokens or up.output_tokens):
            acc = self._pending.get(parent.span_id)
            if acc is None:
                if len(self._pending) >= _MAX_PENDING:
                    # Parents that never end (unsampled, lost) must not grow this forever.
                    for key in list(itertools.islice(self._pending, _MAX_PENDING // 10)):
                        del self._pending[key]
                acc = self._pending[parent.span_id] = _ChildCounts()
            acc.tool_calls += up.tool_calls
            acc.inference_calls += up.inference_calls
            acc.input_tokens += up.input_tokens
            acc.output_tokens += up.output_tokens

    def _on_inference(self, span: ReadableSpan, attrs: _AttrMap, duration: float, error: object,
                      up: _ChildCounts, inst: Instruments | None) -> None:
        up.inference_calls += 1
        inp = attrs.get(sc.GEN_AI_USAGE_INPUT_TOKENS)
        out = attrs.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
        if isinstance(inp, int):
            up.input_tokens += inp
        if isinstance(out, int):
            up.output_tokens += out
        if inst is None:
            return
        keys = (sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL,
                sc.GEN_AI_RESPONSE_MODEL, sc.SERVER_ADDRESS, sc.SERVER_PORT)
        ctx = _error_ctx(span)
        inst.client_duration.record(duration, _pick(attrs, keys, error), ctx)
        base = _pick(attrs, keys, None)
        if isinstance(inp, int):
            inst.token_usage.record(inp, {**base, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_INPUT}, ctx)
        if isinstance(out, int):
            inst.token_usage.record(out, {**base, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_OUTPUT}, ctx)

    def _on_task_end(self, span: ReadableSpan, attrs: _AttrMap, duration: float, error: object,
                     own: _ChildCounts) -> None:
        entry = self._in_flight.pop(span.context.span_id)
        key = entry.key if entry is not None else None
        agent = attrs.get(sc.GEN_AI_AGENT_NAME)
        agent_name = agent if isinstance(agent, str) else "unknown"
        outcome = attrs.get(sc.AGENTMON_TASK_OUTCOME)
        if not isinstance(outcome, str):
            outcome = sc.OUTCOME_SUCCESS if error is None else sc.OUTCOME_ERROR
        summary = self._agent(agent_name)
        if key is not None:
            summary.in_flight = max(0, summary.in_flight - 1)
        summary.last_seen = time.time()
        self._last_activity[agent_name] = time.monotonic()
        window = self._windows.get(agent_name)
        if window is None:
            window = self._windows[agent_name] = AgentWindows(self.window_lengths)
        window.add(time.monotonic(), duration, outcome == sc.OUTCOME_ERROR, own.input_tokens + own.output_tokens)
        summary.busy_seconds += duration
        summary.recent_durations.append(duration)
        summary.input_tokens += own.input_tokens
        summary.output_tokens += own.output_tokens
        if outcome == sc.OUTCOME_SUCCESS:
            summary.tasks_ok += 1
        elif outcome == sc.OUTCOME_CANCELLED:
            summary.tasks_cancelled += 1
        else:
            summary.tasks_failed += 1
            summary.errors[str(error)] = summary.errors.get(str(error), 0) + 1
        inst = self.instruments
        if inst is None:
            return
        ctx = _error_ctx(span)
        labels = _pick(attrs, (sc.GEN_AI_AGENT_NAME, sc.AGENTMON_TASK_TYPE), error)
        labels[sc.AGENTMON_TASK_OUTCOME] = outcome
        inst.tasks_completed.add(1, labels, ctx)
        inst.task_duration.record(duration, labels, ctx)
        inst.busy_time.add(duration, {sc.GEN_AI_AGENT_NAME: agent_name}, ctx)
        tokens = {sc.GEN_AI_AGENT_NAME: agent_name, sc.AGENTMON_TASK_TYPE: str(attrs.get(sc.AGENTMON_TASK_TYPE))}
        if own.input_tokens or own.output_tokens:
            inst.task_tokens.record(own.input_tokens, {**tokens, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_INPUT}, ctx)
            inst.task_tokens.record(own.output_tokens, {**tokens, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_OUTPUT}, ctx)

    # --- readers (other threads) ----------------------------------------------------------------
    def in_flight(self) -> Iterable[tuple[tuple[str, str], int]]:
        return self._in_flight.counts()

    def heartbeat(self, agent: str) -> None:
        """Mark ``agent`` alive now (any thread; a dict store)."""
        self._last_activity[agent] = time.monotonic()

    def forget(self, agent: str) -> None:
        """Stop tracking an agent that has retired (it will not be reported down)."""
        with self._lock:
            self._last_activity.pop(agent, None)
            self._windows.pop(agent, None)

    def health_view(self, windows: Iterable[float]) -> list[AgentView]:
        """What the health loop needs, per agent, read consistently under the lock."""
        now = time.monotonic()
        now_ns = time.time_ns()
        self.process_pending()
        with self._lock:
            running: dict[str, list[tuple[str, float, ReadableSpan]]] = {}
            for entry in self._in_flight.values():
                running.setdefault(entry.key[0], []).append(
                    (entry.key[1], max(0.0, (now_ns - entry.start_ns) / 1e9), entry.span))
            views = []
            for agent, last in list(self._last_activity.items()):
                window = self._windows.get(agent)
                stats = {w: window.stats(now, w) for w in windows} if window is not None else {}
                views.append(AgentView(agent, now - last, running.get(agent, []), stats))
            return views

    def agents(self) -> dict[str, AgentSummary]:
        with self._lock:
            return {name: dataclasses.replace(s, errors=dict(s.errors),
                                              recent_durations=collections.deque(s.recent_durations,
                                                                                 maxlen=_RESERVOIR))
                    for name, s in self._agents.items()}


def _scope(span: ReadableSpan) -> str | None:
    scope = span.instrumentation_scope
    return scope.name if scope is not None else None


def _standard_attrs(span: ReadableSpan) -> _AttrMap:
    parent = span.parent
    attrs = span.attributes or {}
    return normalize(span.name, attrs, _scope(span), parent is None or parent.is_remote, fast_attributes(attrs))


def _pick(attrs: _AttrMap, keys: tuple[str, ...], error: object) -> dict[str, str | int | float | bool]:
    out: dict[str, str | int | float | bool] = {}
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, (str, int, float, bool)):
            out[key] = value
    if error is not None:
        out[sc.ERROR_TYPE] = str(error)
    return out

