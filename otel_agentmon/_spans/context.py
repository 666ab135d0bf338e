"""Carry the current span (and agent) into threads, executors and child processes.

``asyncio.to_thread`` already copies the context; plain ``ThreadPoolExecutor.submit``,
``loop.run_in_executor`` and ``threading.Thread`` do not. Use ``ContextThreadPoolExecutor`` in
place of ``ThreadPoolExecutor``, or wrap a callable with ``with_context`` before handing it over.

Across processes the trace context travels as W3C ``traceparent``: a ``with_context`` callable
pickled to a ``spawn`` child or a process pool carries it (and the agent name), and
``inject_env()`` writes it as the ``TRACEPARENT`` / ``TRACESTATE`` environment variables (the OTel
environment-variable carrier) for ``subprocess``. ``configure()`` in the child picks them up, so
its root spans join the parent's trace. A ``fork`` child inherits the context as it is, and its
telemetry is flushed when a ``multiprocessing`` child exits (which skips ``atexit``).
"""

from __future__ import annotations

import contextvars
import functools
import multiprocessing
import multiprocessing.util
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, Generic, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._core import state as _state
from .._core.guard import report_internal_error

if TYPE_CHECKING:
    from .._setup.monitor import Monitor

P = ParamSpec("P")
R = TypeVar("R")

#: The OTel environment-variable carrier's names for W3C trace context.
TRACEPARENT: Final = "TRACEPARENT"
TRACESTATE: Final = "TRACESTATE"
_W3C: Final = TraceContextTextMapPropagator()
_EXIT_PRIORITY: Final = 10  # multiprocessing finalizers at >= 0 run before children are joined
_adopted_in: int | None = None  # pid of the process whose configure() adopted TRACEPARENT


class _Bound(Generic[P, R]):
    """``fn`` bound to the caller's context; picklable (as trace context) when ``fn`` is."""

    def __init__(self, fn: Callable[P, R], ctx: contextvars.Context | None, carrier: dict[str, str],
                 agent: object) -> None:
        self._fn = fn
        self._ctx = ctx
        self._carrier = carrier
        self._agent = agent
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._ctx is not None:
            # A copy per call: the same bound callable may run in several threads at once.
            return self._ctx.copy().run(self._fn, *args, **kwargs)
        token = otel_context.attach(_remote(self._carrier, self._agent))
        try:
            return self._fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    def __reduce__(self) -> tuple[Any, ...]:
        # In another process only the trace context and the agent name mean anything.
        return (_unpickle, (self._fn, self._carrier, self._agent))


def _unpickle(fn: Callable[..., Any], carrier: dict[str, str], agent: object) -> _Bound[..., Any]:
    return _Bound(fn, None, carrier, agent)


def _remote(carrier: Mapping[str, str], agent: object) -> otel_context.Context:
    ctx = _W3C.extract(carrier, context=otel_context.Context())
    return otel_context.set_value(_state.AGENT_KEY, agent, ctx) if isinstance(agent, str) else ctx


def _carrier() -> dict[str, str]:
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


def with_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to the caller's context (spans, agent name, baggage): for a thread, an executor,
    or a child process (pickled, it carries the trace context and the agent name)."""
    return _Bound(fn, contextvars.copy_context(), _carrier(), otel_context.get_value(_state.AGENT_KEY))


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the submitter's context.

    Also covers ``loop.run_in_executor(pool, fn)``, which calls ``submit``.
    """

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)


def inject_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) with the current trace context as ``TRACEPARENT``
    and ``TRACESTATE``, for ``subprocess.run(..., env=inject_env())``. Without a current span it is
    an unchanged copy."""
    out = dict(os.environ if env is None else env)
    try:
        carrier = _carrier()
        if "traceparent" in carrier:
            out[TRACEPARENT] = carrier["traceparent"]
            out.pop(TRACESTATE, None)
            if carrier.get("tracestate"):
                out[TRACESTATE] = carrier["tracestate"]
    except Exception:  # noqa: BLE001
        report_internal_error("inject_env")
    return out


def bind_process(monitor: Monitor) -> None:
    """``configure()``'s hook: join the trace in ``TRACEPARENT``, flush at multiprocessing exits."""
    try:
        _adopt_env_parent()
        _flush_at_exit(monitor)  # this process, if multiprocessing started it
        multiprocessing.util.register_after_fork(monitor, _flush_at_exit)  # children it forks later
    except Exception:  # noqa: BLE001
        report_internal_error("bind_process")


def _adopt_env_parent() -> None:
    """Make the parent in ``TRACEPARENT`` the current span of this thread, for good, unless a span
    is current already: the process's root spans become children of the process that started it."""
    global _adopted_in
    if _adopted_in == os.getpid() or TRACEPARENT not in os.environ:
        return
    if trace.get_current_span().get_span_context().is_valid:
        return
    carrier = {"traceparent": os.environ[TRACEPARENT], "tracestate": os.environ.get(TRACESTATE, "")}
    ctx = _W3C.extract(carrier)
    if trace.get_current_span(ctx).get_span_context().is_valid:
        otel_context.attach(ctx)  # never detached: it is this thread's context from now on
        _adopted_in = os.getpid()


def _flush_at_exit(monitor: Monitor) -> None:
    # multiprocessing children leave through os._exit (no atexit) after running its finalizers;
    # the registry is cleared in every new child, so each one registers anew.
    if multiprocessing.parent_process() is not None:
        multiprocessing.util.Finalize(monitor, monitor.shutdown, exitpriority=_EXIT_PRIORITY)
