"""Spans of sync calls whose work finishes later: the call returns an awaitable, a future or a
framework run handler (LlamaIndex's ``WorkflowHandler``).

The span then ends when that result completes, not when the call returns, and the result's
error (or cancellation) marks it. What the caller gets back is unchanged:

* an ``asyncio.Future`` (a ``Task``, a run handler) or a ``concurrent.futures.Future``: the same
  object, with a done callback that ends the span. Reading the outcome never marks an asyncio
  exception as retrieved, so "exception was never retrieved" is still logged where it was.
* a coroutine: a coroutine that awaits it with the span current, then ends the span.
* a run handler over a future we know of (LlamaIndex's ``WorkflowHandler``): the same object,
  the span ended by that future's done callback;
* any other awaitable: a transparent proxy (every attribute and method is the result's own)
  whose ``__await__`` ends the span.

A coroutine or awaitable that is never awaited leaves its span unended, as the work never ran.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType
from typing import Any, Final, Protocol

import wrapt

from .._core.guard import report_internal_error

#: ``settle`` returns this when the result completes with the call (the span ends now).
NOW: Final = object()
_PLAIN, _FUTURE, _COROUTINE, _AWAITABLE = range(4)
#: Result type -> what it is (one of the four above); bounded, as types can be made at run time.
_KINDS: dict[type, int] = {type(None): _PLAIN, int: _PLAIN, str: _PLAIN}
_MAX_KINDS: Final = 4096
_RESULT_TASK: Final = "_result_task"


class _Ender(Protocol):
    def end_detached(self, state: Any, exc: BaseException | None) -> None: ...


def settle(result: Any, op: _Ender, state: Any, attach: Any, detach: Any) -> Any:
    """What to return for ``result`` so ``op``'s span (``state``) ends when it completes; ``NOW``
    when ``result`` is not pending work. ``attach``/``detach`` set the span's context current.

    Runs after every wrapped sync call, so what a result is is decided by its type, once per
    type (a bounded cache): a plain result costs one dict lookup."""
    cls = type(result)
    kind = _KINDS.get(cls)
    if kind is None:
        kind = _kind(cls)
        if len(_KINDS) < _MAX_KINDS:
            _KINDS[cls] = kind
    if kind == _PLAIN:
        return NOW
    if kind == _FUTURE:
        _when_done(result, op, state)
        return result
    if kind == _COROUTINE:
        return _awaited(result, op, state, attach, detach)
    inner = _inner_future(result)
    if inner is not None:
        _when_done(inner, op, state)
        return result
    return _AwaitedProxy(result, op, state, attach, detach)


def _kind(cls: type) -> int:
    if issubclass(cls, (asyncio.Future, concurrent.futures.Future)):
        return _FUTURE
    if issubclass(cls, CoroutineType):
        return _COROUTINE
    return _AWAITABLE if getattr(cls, "__await__", None) is not None else _PLAIN


def _inner_future(result: Any) -> asyncio.Future[Any] | None:
    """The future a run handler completes with, where we know where it keeps it: LlamaIndex
    workflows >= 2 (``WorkflowHandler``, an awaitable over its ``_result_task``). Hooking the
    future, not ``__await__``, ends the span also for a caller who only streams the events."""
    task = getattr(result, _RESULT_TASK, None)
    return task if isinstance(task, asyncio.Future) else None


def _outcome(future: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> BaseException | None:
    if future.cancelled():
        return asyncio.CancelledError() if isinstance(future, asyncio.Future) else concurrent.futures.CancelledError()
    if isinstance(future, asyncio.Future):
        # Not .exception(): that marks the exception retrieved and silences asyncio's
        # "exception was never retrieved" report of a failure nobody looked at.
        exc = getattr(future, "_exception", None)
        return exc if isinstance(exc, BaseException) else None
    return future.exception()


def _when_done(future: asyncio.Future[Any] | concurrent.futures.Future[Any], op: _Ender, state: Any) -> None:
    ended = [False]

    def done(fut: Any) -> None:
        if ended[0]:
            return
        ended[0] = True
        try:
            op.end_detached(state, _outcome(fut))
        except Exception:  # noqa: BLE001
            report_internal_error("span end (future)")

    if future.done():
        done(future)
        return
    try:
        future.add_done_callback(done)
    except Exception:  # noqa: BLE001 - e.g. the future's event loop is closed: end the span now
        report_internal_error("future done callback")
        done(future)


async def _awaited(coro: Coroutine[Any, Any, Any], op: _Ender, state: Any, attach: Any, detach: Any) -> Any:
    token = attach(state[1])
    try:
        value = await coro
    except BaseException as exc:
        detach(token)
        op.end_detached(state, exc)
        raise
    detach(token)
    op.end_detached(state, None)
    return value


class _AwaitedProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]  # any awaitable
    """The result itself in every respect, except that awaiting it ends the span (once)."""

    def __init__(self, wrapped: Awaitable[Any], op: _Ender, state: Any, attach: Any, detach: Any) -> None:
        super().__init__(wrapped)
        self._self_op = op
        self._self_state = state
        self._self_attach = attach
        self._self_detach = detach
        self._self_ended = False

    def __await__(self) -> Generator[Any, None, Any]:
        if self._self_ended:
            return (yield from self.__wrapped__.__await__())
        state = self._self_state
        token = self._self_attach(state[1])
        try:
            value = yield from self.__wrapped__.__await__()
        except BaseException as exc:
            self._self_detach(token)
            self._end(exc)
            raise
        self._self_detach(token)
        self._end(None)
        return value

    def _end(self, exc: BaseException | None) -> None:
        if not self._self_ended:
            self._self_ended = True
            self._self_op.end_detached(self._self_state, exc)
