"""Carry the current span (and agent) into threads and executors.

``asyncio.to_thread`` already copies the context; plain ``ThreadPoolExecutor.submit``,
``loop.run_in_executor`` and ``threading.Thread`` do not. Use ``ContextThreadPoolExecutor`` in
place of ``ThreadPoolExecutor``, or wrap a callable with ``with_context`` before handing it over.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def with_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to a copy of the caller's context (spans, agent name, baggage)."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.run(fn, *args, **kwargs)

    return run


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the submitter's context.

    Also covers ``loop.run_in_executor(pool, fn)``, which calls ``submit``.
    """

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)
