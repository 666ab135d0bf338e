"""Decorated generators, async generators and coroutines: span lifetime, parenting, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import otel_agentmon as agentmon
from otel_agentmon.testing import Capture
from tests.support.spans import span_attrs

from .conftest import agentmon_warnings, detach_failures


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="opentelemetry")


def _clean(caplog: pytest.LogCaptureFixture) -> None:
    assert detach_failures(caplog) == []
    assert agentmon_warnings(caplog) == []
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]  # "end() on an ended span"


def _ok(span: ReadableSpan) -> None:
    assert span.end_time is not None
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in (span.attributes or {})


def _sid(span: ReadableSpan | None) -> int | None:
    return span.context.span_id if span is not None else None


def _pid(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


@agentmon.task("produce")
def produce(n: int, times: list[int] | None = None) -> Generator[int, None, int]:
    for i in range(n):
        with agentmon.tool("inner"):
            pass
        if times is not None:
            times.append(time.time_ns())
        yield i
    return n


@agentmon.task("aproduce")
async def aproduce(n: int) -> AsyncGenerator[int, None]:
    for i in range(n):
        async with agentmon.tool("ainner"):
            await asyncio.sleep(0)
        yield i


# --- sync generators ---------------------------------------------------------------------------


def test_exhausted_generator_covers_iteration_and_returns_value(agentmon_capture: Capture,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    times: list[int] = []

    def consume() -> Any:
        result = yield from produce(3, times)
        return result

    gen = consume()
    items = []
    with contextlib.suppress(StopIteration):
        while True:
            items.append(next(gen))
            time.sleep(0.002)
    assert items == [0, 1, 2]
    span = agentmon_capture.span("task produce")
    _ok(span)
    assert span_attrs(span)["agentmon.task.outcome"] == "success"
    assert span.start_time is not None and span.end_time is not None
    assert span.start_time < times[0] and times[-1] < span.end_time
    assert span.end_time - span.start_time >= 2 * 2_000_000  # spans the consumer's pauses too
    _clean(caplog)


def test_return_value_reaches_yield_from(agentmon_capture: Capture) -> None:
    def consume() -> Iterator[int]:
        total = yield from produce(2)
        yield total * 10

    assert list(consume()) == [0, 1, 20]


def test_early_break_ends_span_once_without_error(agentmon_capture: Capture, caplog: pytest.LogCaptureFixture) -> None:
    for item in produce(10):
        if item == 1:
            break
    spans = agentmon_capture.spans("task produce")
    assert len(spans) == 1
    _ok(spans[0])
    assert len(agentmon_capture.spans("execute_tool inner")) == 2
    _clean(caplog)


def test_close_ends_span_without_error(agentmon_capture: Capture, caplog: pytest.LogCaptureFixture) -> None:
    gen = produce(10)
    assert next(gen) == 0
    gen.close()
    gen.close()
    assert len(agentmon_capture.spans("task produce")) == 1
    _ok(agentmon_capture.span("task produce"))
    _clean(caplog)


def test_exception_thrown_in_and_unhandled_fails_span(agentmon_capture: Capture,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    gen = produce(10)
    next(gen)
    err = ValueError("stop now")
    with pytest.raises(ValueError) as info:
        gen.throw(err)
    assert info.value is err
    span = agentmon_capture.span("task produce")
    assert span.status.status_code is StatusCode.ERROR
    assert span_attrs(span)["error.type"] == "ValueError"
    assert span_attrs(span)["agentmon.task.outcome"] == "error"
    _clean(caplog)


def test_exception_thrown_in_and_handled_keeps_generating(agentmon_capture: Capture) -> None:
    @agentmon.tool("resilient")
    def resilient() -> Generator[str, None, None]:
        while True:
            try:
                yield "ok"
            except KeyError:
                yield "recovered"

    gen = resilient()
    assert next(gen) == "ok"
    assert gen.throw(KeyError("x")) == "recovered"
    assert next(gen) == "ok"
    gen.close()
    _ok(agentmon_capture.span("execute_tool resilient"))


def test_send_reaches_the_wrapped_generator(agentmon_capture: Capture) -> None:
    @agentmon.tool("echo")
    def echo() -> Generator[Any, Any, None]:
        received = yield "ready"
        while True:
            received = yield received * 2

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send(4) == 8
    assert gen.send("ab") == "abab"
    gen.close()


def test_error_in_generator_body_fails_span(agentmon_capture: Capture) -> None:
    err = RuntimeError("broken source")

    @agentmon.tool("source")
    def source() -> Iterator[int]:
        yield 1
        raise err

    with pytest.raises(RuntimeError) as info:
        list(source())
    assert info.value is err
    assert span_attrs(agentmon_capture.span("execute_tool source"))["error.type"] == "RuntimeError"


def test_body_spans_are_children_consumer_spans_are_not(agentmon_capture: Capture,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with agentmon.agent("a"):
        consumer_parent = trace.get_current_span()
        for _ in produce(3):
            assert trace.get_current_span() is consumer_parent
            with agentmon.tool("consumer"):
                pass
    gen_span = agentmon_capture.span("task produce")
    agent_span = agentmon_capture.span("invoke_agent a")
    assert _pid(gen_span) == _sid(agent_span)
    assert [_pid(s) for s in agentmon_capture.spans("execute_tool inner")] == [_sid(gen_span)] * 3
    assert [_pid(s) for s in agentmon_capture.spans("execute_tool consumer")] == [_sid(agent_span)] * 3
    assert {span_attrs(s)["gen_ai.agent.name"] for s in agentmon_capture.spans("execute_tool inner")} == {"a"}
    _clean(caplog)


# --- async generators ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_generator_exhausted(agentmon_capture: Capture, caplog: pytest.LogCaptureFixture) -> None:
    assert [i async for i in aproduce(3)] == [0, 1, 2]
    _ok(agentmon_capture.span("task aproduce"))
    assert len(agentmon_capture.spans("execute_tool ainner")) == 3
    _clean(caplog)


@pytest.mark.asyncio
async def test_async_generator_break_with_aclosing(agentmon_capture: Capture, caplog: pytest.LogCaptureFixture) -> None:
    async with contextlib.aclosing(aproduce(10)) as gen:
        async for item in gen:
            if item == 1:
                break
    spans = agentmon_capture.spans("task aproduce")
    assert len(spans) == 1
    _ok(spans[0])
    _clean(caplog)


@pytest.mark.asyncio
async def test_async_generator_aclose_from_another_task(agentmon_capture: Capture,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    gen = aproduce(10)

    async def first() -> int:
        return await gen.__anext__()

    assert await asyncio.create_task(first()) == 0
    await asyncio.create_task(gen.aclose())
    spans = agentmon_capture.spans("task aproduce")
    assert len(spans) == 1
    _ok(spans[0])
    _clean(caplog)


@pytest.mark.asyncio
async def test_async_generator_athrow(agentmon_capture: Capture, caplog: pytest.LogCaptureFixture) -> None:
    gen = aproduce(10)
    await gen.__anext__()
    err = ValueError("no more")
    with pytest.raises(ValueError) as info:
        await gen.athrow(err)
    assert info.value is err
    span = agentmon_capture.span("task aproduce")
    assert span_attrs(span)["error.type"] == "ValueError"
    assert span_attrs(span)["agentmon.task.outcome"] == "error"
    _clean(caplog)


@pytest.mark.asyncio
async def test_async_body_spans_are_children_consumer_spans_are_not(agentmon_capture: Capture,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    async with agentmon.agent("a"):
        async for _ in aproduce(2):
            async with agentmon.tool("consumer"):
                await asyncio.sleep(0)
    gen_span = agentmon_capture.span("task aproduce")
    agent_span = agentmon_capture.span("invoke_agent a")
    assert _pid(gen_span) == _sid(agent_span)
    assert [_pid(s) for s in agentmon_capture.spans("execute_tool ainner")] == [_sid(gen_span)] * 2
    assert [_pid(s) for s in agentmon_capture.spans("execute_tool consumer")] == [_sid(agent_span)] * 2
    _clean(caplog)


@pytest.mark.asyncio
async def test_cancelling_a_task_iterating_an_async_generator(agentmon_capture: Capture,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    started = asyncio.Event()

    @agentmon.tool("stream")
    async def stream() -> AsyncIterator[int]:
        yield 0
        started.set()
        await asyncio.sleep(60)
        yield 1

    async def consume() -> None:
        async for _ in stream():
            pass

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = agentmon_capture.span("execute_tool stream")
    assert "CancelledError" in str(span_attrs(span)["error.type"])
    _clean(caplog)


# --- coroutines: cancellation and timeouts --------------------------------------------------------


@pytest.mark.asyncio
async def test_cancelled_coroutine_ends_span_as_cancelled(agentmon_capture: Capture,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    started = asyncio.Event()

    @agentmon.task("long")
    async def long_task() -> None:
        started.set()
        await asyncio.sleep(60)

    @agentmon.agent("a")
    async def run() -> None:
        await long_task()

    outer = trace.get_current_span()
    task = asyncio.create_task(run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = agentmon_capture.span("task long")
    assert "CancelledError" in str(span_attrs(span)["error.type"])
    assert span_attrs(span)["agentmon.task.outcome"] == "cancelled"
    assert agentmon_capture.span("invoke_agent a").end_time is not None
    assert trace.get_current_span() is outer
    _clean(caplog)


@pytest.mark.asyncio
async def test_timeout_ends_span_and_caller_sees_timeout_error(agentmon_capture: Capture,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    @agentmon.task("slow")
    async def slow() -> None:
        await asyncio.sleep(60)

    outer = trace.get_current_span()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02), agentmon.agent("a"):  # type: ignore[attr-defined]  # 3.11+ API (mypy targets 3.10); this test fails on 3.10
            await slow()
    span = agentmon_capture.span("task slow")
    assert "CancelledError" in str(span_attrs(span)["error.type"])
    assert span_attrs(span)["agentmon.task.outcome"] == "cancelled"
    assert agentmon_capture.span("invoke_agent a").end_time is not None
    assert trace.get_current_span() is outer
    _clean(caplog)


# --- many concurrent tasks (C2) ------------------------------------------------------------------

N_TASKS = 200


async def _one_agent(i: int) -> None:
    async with agentmon.agent("worker", attributes={"idx": i}):
        await asyncio.sleep(0)
        async with agentmon.tool("lookup", attributes={"idx": i}):
            await asyncio.sleep(0.001 * (i % 3))
        await _decorated_tool(i)


@agentmon.tool("decorated")
async def _decorated_tool(i: int) -> None:
    trace.get_current_span().set_attribute("idx", i)  # the tool's own span
    await asyncio.sleep(0)


def _check_no_cross_task_parenting(cap: Capture) -> None:
    agents = {span_attrs(s)["idx"]: s for s in cap.spans("invoke_agent worker")}
    workflow = cap.span("invoke_workflow swarm")
    assert len(agents) == N_TASKS
    assert all(_pid(a) == _sid(workflow) for a in agents.values())
    tools = cap.spans("execute_tool lookup") + cap.spans("execute_tool decorated")
    assert len(tools) == 2 * N_TASKS
    for t in tools:
        assert _pid(t) == _sid(agents[span_attrs(t)["idx"]]), span_attrs(t)["idx"]
        assert span_attrs(t)["gen_ai.agent.name"] == "worker"
    stats = cap.monitor.stats()
    assert stats.spans_started == stats.spans_ended == len(cap.spans()) == 3 * N_TASKS + 1


@pytest.mark.asyncio
async def test_concurrent_tasks_with_gather(agentmon_capture: Capture, caplog: pytest.LogCaptureFixture) -> None:
    async with agentmon.workflow("swarm"):
        await asyncio.gather(*(_one_agent(i) for i in range(N_TASKS)))
    _check_no_cross_task_parenting(agentmon_capture)
    _clean(caplog)


@pytest.mark.asyncio
async def test_concurrent_tasks_with_task_group(agentmon_capture: Capture,
                                                caplog: pytest.LogCaptureFixture) -> None:
    async with agentmon.workflow("swarm"), asyncio.TaskGroup() as group:  # type: ignore[attr-defined]  # 3.11+ API (mypy targets 3.10); this test fails on 3.10
        for i in range(N_TASKS):
            group.create_task(_one_agent(i))
    _check_no_cross_task_parenting(agentmon_capture)
    _clean(caplog)
