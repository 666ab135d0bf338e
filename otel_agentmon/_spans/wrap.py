"""Run a function of any shape inside a span: sync, coroutine, generator, async generator.

A sync function that returns pending work (an awaitable, a future, a run handler) keeps its
span open until that work completes (see ``deferred``).

The span covers the work as the caller sees it. For generators the span's context is attached
only while the generator body runs and detached before each ``yield``, so the consumer never
runs "inside" it and closing the generator from another context or task cannot trigger
"Failed to detach context". ``GeneratorExit`` ends the span without an error; every other
exception is recorded and re-raised as the same object.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Any, Protocol, TypeVar, cast

from opentelemetry import context as otel_context

from .._core import state as _state
from .._core.guard import report_internal_error
from .deferred import NOW, settle

F = TypeVar("F", bound=Callable[..., Any])


class Operation(Protocol):
    def begin(self) -> Any:
        """Start the span and make it current; return an opaque state for ``finish``."""

    def finish(self, state: Any, exc: BaseException | None) -> None:
        """Detach and end the span; ``exc`` is the exception the work raised, if any."""

    def start_detached(self) -> Any:
        """Start the span without attaching it; return (span, context)."""

    def end_detached(self, state: Any, exc: BaseException | None) -> None:
        """End a span started by ``start_detached``."""


def wrap(fn: F, op: Operation) -> F:
    if inspect.isasyncgenfunction(fn):
        return cast(F, _wrap_async_gen(fn, op))
    if inspect.isgeneratorfunction(fn):
        return cast(F, _wrap_gen(fn, op))
    if inspect.iscoroutinefunction(fn):
        return cast(F, _wrap_coro(fn, op))
    return cast(F, _wrap_sync(fn, op))


def _wrap_sync(fn: Callable[..., Any], op: Operation) -> Callable[..., Any]:
    start, end = op.start_detached, op.end_detached

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _state.enabled:
            return fn(*args, **kwargs)
        try:
            state = start()
            token = _attach(state[1])
        except Exception:  # noqa: BLE001 - never let telemetry stop the call
            report_internal_error("span start")
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _detach(token)
            end(state, exc)
            raise
        _detach(token)
        try:  # an awaitable, a future or a run handler: the span ends when it completes
            pending = settle(result, op, state, _attach, _detach)
        except Exception:  # noqa: BLE001
            report_internal_error("span settle")
            pending = NOW
        if pending is NOW:
            end(state, None)
            return result
        return pending

    return wrapper


def _wrap_coro(fn: Callable[..., Coroutine[Any, Any, Any]], op: Operation) -> Callable[..., Any]:
    begin, finish = op.begin, op.finish

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _state.enabled:
            return await fn(*args, **kwargs)
        try:
            state = begin()
        except Exception:  # noqa: BLE001
            report_internal_error("span start")
            return await fn(*args, **kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            finish(state, exc)
            raise
        finish(state, None)
        return result

    return wrapper


def _attach(ctx: Any) -> object | None:
    try:
        return otel_context.attach(ctx)
    except Exception:  # noqa: BLE001
        return None


def _detach(token: object | None) -> None:
    if token is not None:
        try:
            otel_context.detach(token)  # type: ignore[arg-type]  # the token attach() returned, kept as object
        except Exception:  # noqa: BLE001
            pass


def _wrap_gen(fn: Callable[..., Generator[Any, Any, Any]], op: Operation) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        gen = fn(*args, **kwargs)
        if not _state.enabled:
            return (yield from gen)
        try:
            state = op.start_detached()
        except Exception:  # noqa: BLE001
            report_internal_error("span start")
            return (yield from gen)
        ctx = state[1]
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = _attach(ctx)
            try:
                item = gen.send(to_send) if to_throw is None else gen.throw(to_throw)
            except StopIteration as stop:
                _detach(token)
                op.end_detached(state, None)
                return stop.value
            except BaseException as exc:
                _detach(token)
                op.end_detached(state, exc)
                raise
            _detach(token)
            to_throw = None
            try:
                to_send = yield item
            except GeneratorExit:
                token = _attach(ctx)
                try:
                    gen.close()
                except BaseException as exc:
                    _detach(token)
                    op.end_detached(state, exc)
                    raise
                _detach(token)
                op.end_detached(state, None)  # an early break is not an error
                raise
            except BaseException as exc:  # noqa: BLE001 - forwarded into the wrapped generator
                to_throw = exc

    return wrapper


def _wrap_async_gen(fn: Callable[..., AsyncGenerator[Any, Any]], op: Operation) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        agen = fn(*args, **kwargs)
        state: Any = None
        if _state.enabled:
            try:
                state = op.start_detached()
            except Exception:  # noqa: BLE001
                report_internal_error("span start")
        ctx = state[1] if state is not None else None
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = _attach(ctx) if ctx is not None else None
            try:
                if to_throw is None:
                    item = await agen.asend(to_send)
                else:
                    item = await agen.athrow(to_throw)
            except StopAsyncIteration:
                _detach(token)
                if state is not None:
                    op.end_detached(state, None)
                return
            except BaseException as exc:
                _detach(token)
                if state is not None:
                    op.end_detached(state, exc)
                raise
            _detach(token)
            to_throw = None
            try:
                to_send = yield item
            except GeneratorExit:
                token = _attach(ctx) if ctx is not None else None
                try:
                    await agen.aclose()
                except BaseException as exc:
                    _detach(token)
                    if state is not None:
                        op.end_detached(state, exc)
                    raise
                _detach(token)
                if state is not None:
                    op.end_detached(state, None)
                raise
            except BaseException as exc:  # noqa: BLE001 - forwarded into the wrapped generator
                to_throw = exc

    return wrapper
