"""A sync method that hands back pending work (a future, a task, a coroutine, a run handler, any
awaitable) keeps its span open until that work completes; its failure marks the span; the
caller gets the same object (or one that behaves exactly like it)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Coroutine, Generator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint

import otel_agentmon as agentmon
from otel_agentmon._names import semconv as sc
from otel_agentmon.testing import Capture


class RunHandler(asyncio.Future[str]):
    """Like LlamaIndex's WorkflowHandler: an asyncio Future with methods of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    async def stream_events(self) -> list[str]:
        await self
        return self.events


class Custom:
    """An awaitable that is neither a coroutine nor a future, with state of its own."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.label = "custom"

    def __await__(self) -> Generator[Any, None, str]:
        yield from asyncio.sleep(0.05).__await__()
        if self.fail:
            raise KeyError("nope")
        return "custom done"

    def describe(self) -> str:
        return f"a {self.label} awaitable"


class Bot:
    """Sync methods that start work and return before it ends."""

    def __init__(self) -> None:
        self.finished_at: int | None = None  # time_ns when the work really ended
        self.pool = concurrent.futures.ThreadPoolExecutor(1)

    async def _work(self, fail: bool) -> str:
        await asyncio.sleep(0.2)
        with agentmon.tool("lookup"):
            pass
        self.finished_at = time.time_ns()
        if fail:
            raise RuntimeError("run failed")
        return "done"

    def run(self, fail: bool = False) -> RunHandler:
        handler = RunHandler()
        task = asyncio.get_running_loop().create_task(self._work(fail))

        def copy(t: asyncio.Task[str]) -> None:
            if t.exception() is not None:
                handler.set_exception(t.exception())  # type: ignore[arg-type]  # checked just above
            else:
                handler.events.append("stop")
                handler.set_result(t.result())

        task.add_done_callback(copy)
        return handler

    def start(self) -> asyncio.Task[str]:
        return asyncio.get_running_loop().create_task(self._work(False))

    def later(self, fail: bool = False) -> Coroutine[Any, Any, str]:
        return self._work(fail)

    def custom(self, fail: bool = False) -> Custom:
        return Custom(fail)

    def submit(self, fail: bool = False) -> concurrent.futures.Future[str]:
        gate = threading.Event()

        def job() -> str:
            gate.wait(5)
            self.finished_at = time.time_ns()
            if fail:
                raise ValueError("pool job failed")
            return "pooled"

        future = self.pool.submit(job)
        self.gate = gate
        return future

    def plain(self) -> int:
        return 42


@pytest.fixture
def bot() -> Iterator[Bot]:
    agentmon.instrument(Bot, invoke=["run", "later", "custom", "submit", "plain"], tasks={"start": "job"})
    b = Bot()
    yield b
    agentmon.uninstrument(Bot)
    b.pool.shutdown(wait=True)


def _agent(capture: Capture) -> Any:
    (span,) = capture.spans("invoke_agent Bot")
    return span


def test_a_run_handler_ends_the_span_when_the_run_ends_not_when_run_returns(
        agentmon_capture: Capture, bot: Bot) -> None:
    async def main() -> tuple[RunHandler, str, list[str], int]:
        handler = bot.run()
        spans_at_return = len(agentmon_capture.spans("invoke_agent Bot"))
        result = await handler
        return handler, result, await handler.stream_events(), spans_at_return

    handler, result, events, spans_at_return = asyncio.run(main())
    assert isinstance(handler, RunHandler) and result == "done" and events == ["stop"]
    assert spans_at_return == 0, "the agent span must still be open while the run goes on"
    span = _agent(agentmon_capture)
    assert bot.finished_at is not None and span.end_time is not None and span.end_time >= bot.finished_at
    (tool,) = agentmon_capture.spans("execute_tool lookup")
    assert tool.parent is not None and tool.parent.span_id == span.context.span_id, "the run's work nests under it"
    assert span.status.is_ok
    duration = agentmon_capture.metrics()[sc.M_INVOKE_AGENT_DURATION]
    (point,) = duration.data.data_points
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 1 and point.sum >= 0.2, "the metric times the run, not the call that started it"


def test_the_failure_of_the_returned_work_marks_the_span(agentmon_capture: Capture, bot: Bot) -> None:
    async def main() -> None:
        await bot.run(fail=True)

    with pytest.raises(RuntimeError, match="run failed"):
        asyncio.run(main())
    span = _agent(agentmon_capture)
    assert span.attributes is not None and span.attributes[sc.ERROR_TYPE] == "RuntimeError"
    assert not span.status.is_ok


def test_a_cancelled_task_ends_the_span_as_cancelled(agentmon_capture: Capture, bot: Bot) -> None:
    async def main() -> asyncio.Task[str]:
        task = bot.start()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)  # the done callback runs on the next loop turn
        return task

    task = asyncio.run(main())
    assert task.cancelled()
    (span,) = agentmon_capture.spans("task job")
    assert span.attributes is not None and span.attributes[sc.AGENTMON_TASK_OUTCOME] == sc.OUTCOME_CANCELLED


def test_a_returned_coroutine_is_timed_while_it_is_awaited(agentmon_capture: Capture, bot: Bot) -> None:
    async def main() -> str:
        pending = bot.later()
        assert agentmon_capture.spans() == []
        return await pending

    assert asyncio.run(main()) == "done"
    span = _agent(agentmon_capture)
    assert bot.finished_at is not None and span.end_time is not None and span.end_time >= bot.finished_at
    (tool,) = agentmon_capture.spans("execute_tool lookup")
    assert tool.parent is not None and tool.parent.span_id == span.context.span_id

    async def failing() -> str:
        return await bot.later(fail=True)

    with pytest.raises(RuntimeError):
        asyncio.run(failing())
    assert len(agentmon_capture.spans("invoke_agent Bot")) == 2
    failed = agentmon_capture.spans("invoke_agent Bot")[-1]
    assert failed.attributes is not None and failed.attributes[sc.ERROR_TYPE] == "RuntimeError"


def test_any_other_awaitable_comes_back_transparent(agentmon_capture: Capture, bot: Bot) -> None:
    async def main() -> tuple[Any, str]:
        pending = bot.custom()
        assert agentmon_capture.spans() == []
        return pending, await pending

    pending, value = asyncio.run(main())
    assert value == "custom done"
    assert isinstance(pending, Custom) and pending.describe() == "a custom awaitable" and pending.label == "custom"
    assert len(agentmon_capture.spans("invoke_agent Bot")) == 1

    async def failing() -> str:
        return await bot.custom(fail=True)

    with pytest.raises(KeyError):
        asyncio.run(failing())
    failed = agentmon_capture.spans("invoke_agent Bot")[-1]
    assert failed.attributes is not None and failed.attributes[sc.ERROR_TYPE] == "KeyError"


def test_a_thread_pool_future_ends_the_span_when_the_job_ends(agentmon_capture: Capture, bot: Bot) -> None:
    future = bot.submit()
    assert isinstance(future, concurrent.futures.Future)
    assert agentmon_capture.spans() == [], "still running"
    bot.gate.set()
    assert future.result(timeout=10) == "pooled"
    bot.pool.shutdown(wait=True)  # the done callback has run once the pool is drained
    span = _agent(agentmon_capture)
    assert bot.finished_at is not None and span.end_time is not None and span.end_time >= bot.finished_at

    bot.pool = concurrent.futures.ThreadPoolExecutor(1)
    failing = bot.submit(fail=True)
    bot.gate.set()
    with pytest.raises(ValueError, match="pool job failed"):
        failing.result(timeout=10)
    bot.pool.shutdown(wait=True)
    failed = agentmon_capture.spans("invoke_agent Bot")[-1]
    assert failed.attributes is not None and failed.attributes[sc.ERROR_TYPE] == "ValueError"


def test_plain_results_still_end_the_span_at_return(agentmon_capture: Capture, bot: Bot) -> None:
    assert bot.plain() == 42
    assert len(agentmon_capture.spans("invoke_agent Bot")) == 1


def test_an_unretrieved_future_failure_is_still_reported_by_asyncio(agentmon_capture: Capture, bot: Bot) -> None:
    seen: list[str] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: seen.append(ctx["message"]))
        handler = bot.run(fail=True)
        while not handler.done():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)
        del handler  # nobody looked at its exception
        import gc
        gc.collect()

    asyncio.run(main())
    assert agentmon_capture.spans("invoke_agent Bot")
    assert any("never retrieved" in m for m in seen), seen


class TaskHandler:
    """Like LlamaIndex workflows' WorkflowHandler (2.x): an awaitable over its ``_result_task``."""

    def __init__(self, task: asyncio.Task[str]) -> None:
        self._result_task = task

    def __await__(self) -> Generator[Any, None, str]:
        return self._result_task.__await__()

    async def stream_events(self) -> list[str]:
        await asyncio.wait([self._result_task])
        return ["stop"]


def test_a_run_handler_only_streamed_not_awaited_still_ends_the_span(agentmon_capture: Capture) -> None:
    class Runner:
        def run(self) -> TaskHandler:
            return TaskHandler(asyncio.get_running_loop().create_task(asyncio.sleep(0.1, "ok")))

    agentmon.instrument(Runner, invoke=["run"])
    try:
        async def main() -> tuple[TaskHandler, list[str]]:
            handler = Runner().run()
            events = await handler.stream_events()
            await asyncio.sleep(0)  # the done callback runs on the next loop turn
            return handler, events

        handler, events = asyncio.run(main())
    finally:
        agentmon.uninstrument(Runner)
    assert type(handler) is TaskHandler and events == ["stop"], "the same object comes back"
    (span,) = agentmon_capture.spans("invoke_agent Runner")
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time >= 50_000_000
