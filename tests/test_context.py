"""The current span and agent name travel into threads and executors (or, without help, do not)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.sdk.trace import ReadableSpan

import otel_agentmon as agentmon
from otel_agentmon.testing import Capture
from tests.support.spans import span_attrs

ContextPool = agentmon.ContextThreadPoolExecutor


def tool_call(label: str = "worker") -> str:
    """Runs in the worker thread: one tool span."""
    with agentmon.tool(label):
        return threading.current_thread().name


def _assert_under_agent(cap: Capture, agent_name: str, tool_name: str = "execute_tool worker") -> None:
    agent = cap.span(f"invoke_agent {agent_name}")
    tools = cap.spans(tool_name)
    assert tools
    for tool in tools:
        assert tool.parent is not None and tool.parent.span_id == agent.context.span_id
        assert tool.context.trace_id == agent.context.trace_id
        assert span_attrs(tool)["gen_ai.agent.name"] == agent_name


def _is_root(span: ReadableSpan) -> bool:
    return span.parent is None


def test_context_thread_pool_submit(agentmon_capture: Capture) -> None:
    with ContextPool() as pool, agentmon.agent("a"):
        thread_name = pool.submit(tool_call).result(5)
    assert thread_name != threading.current_thread().name
    _assert_under_agent(agentmon_capture, "a")


def test_context_thread_pool_map(agentmon_capture: Capture) -> None:
    with ContextPool() as pool, agentmon.agent("a"):
        list(pool.map(tool_call, ["worker"] * 4))
    assert len(agentmon_capture.spans("execute_tool worker")) == 4
    _assert_under_agent(agentmon_capture, "a")


def test_context_does_not_leak_between_tasks_on_the_same_worker(agentmon_capture: Capture) -> None:
    with ContextPool(max_workers=1) as pool:
        with agentmon.agent("a"):
            pool.submit(tool_call).result(5)
        pool.submit(tool_call, "later").result(5)
    later = agentmon_capture.span("execute_tool later")
    assert _is_root(later)
    assert "gen_ai.agent.name" not in span_attrs(later)


@pytest.mark.asyncio
async def test_run_in_executor_with_context_pool(agentmon_capture: Capture) -> None:
    loop = asyncio.get_running_loop()
    with ContextPool() as pool:
        async with agentmon.agent("a"):
            await loop.run_in_executor(pool, tool_call)
    _assert_under_agent(agentmon_capture, "a")


@pytest.mark.asyncio
async def test_asyncio_to_thread(agentmon_capture: Capture) -> None:
    @agentmon.agent("a")
    async def run() -> str:
        return await asyncio.to_thread(tool_call)

    assert await run() != threading.current_thread().name
    _assert_under_agent(agentmon_capture, "a")


def test_plain_thread_pool_loses_the_context(agentmon_capture: Capture) -> None:
    """Why ContextThreadPoolExecutor exists: the stock pool runs tasks in the worker's own context."""
    with ThreadPoolExecutor(max_workers=1) as pool, agentmon.agent("a"):
        pool.submit(tool_call).result(5)
    tool = agentmon_capture.span("execute_tool worker")
    assert _is_root(tool)
    assert "gen_ai.agent.name" not in span_attrs(tool)


def test_with_context_and_threading_thread(agentmon_capture: Capture) -> None:
    results: list[str] = []

    def work() -> None:
        results.append(tool_call())

    with agentmon.agent("a"):
        thread = threading.Thread(target=agentmon.with_context(work))
    thread.start()  # started after the agent block: the context was bound when wrapped
    thread.join(5)
    assert results and results[0] == thread.name
    _assert_under_agent(agentmon_capture, "a")


def test_plain_threading_thread_loses_the_context(agentmon_capture: Capture) -> None:
    with agentmon.agent("a"):
        thread = threading.Thread(target=tool_call)
        thread.start()
        thread.join(5)
    assert _is_root(agentmon_capture.span("execute_tool worker"))


def test_with_context_keeps_metadata_and_arguments(agentmon_capture: Capture) -> None:
    def add(a: int, b: int = 0) -> int:
        """Adds."""
        return a + b

    bound = agentmon.with_context(add)
    assert (bound.__name__, bound.__doc__) == ("add", "Adds.")
    assert bound(2, b=3) == 5


def test_task_in_worker_inherits_agent(agentmon_capture: Capture) -> None:
    def run_task() -> None:
        with agentmon.task("crawl"):
            pass

    with ContextPool() as pool, agentmon.agent("a"):
        pool.submit(run_task).result(5)
    task = agentmon_capture.span("task crawl")
    assert span_attrs(task)["gen_ai.agent.name"] == "a"
    assert task.parent is not None
    assert task.parent.span_id == agentmon_capture.span("invoke_agent a").context.span_id

