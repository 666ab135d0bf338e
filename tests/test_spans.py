"""agent / tool / workflow / task / llm spans: names, kinds, attributes, nesting and error recording."""

from __future__ import annotations

import asyncio
import threading
import traceback
from typing import TypeAlias

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import otel_agentmon as agentmon
from otel_agentmon.testing import Capture, capture
from tests.support.spans import span_attrs

from .conftest import StartRecorder, detach_failures


@pytest.fixture
def starts(agentmon_capture: Capture) -> StartRecorder:
    recorder = StartRecorder()
    agentmon_capture.monitor.tracer_provider.add_span_processor(recorder)  # type: ignore[union-attr]
    return recorder


class ToolFailed(Exception):
    pass


class Outer:
    class Inner(Exception):
        pass


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken")


# --- names, kinds and attributes ----------------------------------------------------------------


def test_agent_span_name_kind_and_attributes_set_at_start(agentmon_capture: Capture, starts: StartRecorder) -> None:
    with agentmon.agent("x", description="does x", conversation_id="conv-1", model="gpt-4o"):
        pass
    span = agentmon_capture.span("invoke_agent x")
    assert span.kind is SpanKind.INTERNAL
    assert starts.at_start["invoke_agent x"]["gen_ai.operation.name"] == "invoke_agent"
    assert starts.at_start["invoke_agent x"]["gen_ai.agent.name"] == "x"
    assert span_attrs(span)["gen_ai.agent.description"] == "does x"
    assert span_attrs(span)["gen_ai.conversation.id"] == "conv-1"
    assert span_attrs(span)["gen_ai.request.model"] == "gpt-4o"
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in span_attrs(span)


def test_tool_span_inherits_the_enclosing_agent_name_at_start(agentmon_capture: Capture,
                                                             starts: StartRecorder) -> None:
    with agentmon.agent("planner"), agentmon.tool("search"):
        pass
    span = agentmon_capture.span("execute_tool search")
    assert span.kind is SpanKind.INTERNAL
    assert starts.at_start["execute_tool search"] == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
        "gen_ai.tool.type": "function",
        "gen_ai.agent.name": "planner",
    }


def test_tool_outside_any_agent_has_no_agent_name(agentmon_capture: Capture) -> None:
    with agentmon.tool("search"):
        pass
    assert "gen_ai.agent.name" not in span_attrs(agentmon_capture.span("execute_tool search"))


def test_tool_optional_attributes(agentmon_capture: Capture) -> None:
    with agentmon.tool("db", type="datastore", description="reads rows", call_id="call-7",
                       attributes={"rows": 3}):
        pass
    attrs = span_attrs(agentmon_capture.span("execute_tool db"))
    assert attrs["gen_ai.tool.type"] == "datastore"
    assert attrs["gen_ai.tool.description"] == "reads rows"
    assert attrs["gen_ai.tool.call.id"] == "call-7"
    assert attrs["rows"] == 3


def test_workflow_span(agentmon_capture: Capture, starts: StartRecorder) -> None:
    with agentmon.workflow("w"):
        pass
    span = agentmon_capture.span("invoke_workflow w")
    assert span.kind is SpanKind.INTERNAL
    assert starts.at_start["invoke_workflow w"] == {"gen_ai.operation.name": "invoke_workflow",
                                                    "gen_ai.workflow.name": "w"}


def test_task_span_carries_type_id_agent_and_success_outcome(agentmon_capture: Capture,
                                                             starts: StartRecorder) -> None:
    with agentmon.agent("worker"), agentmon.task("summarize", task_id="task-42"):
        pass
    span = agentmon_capture.span("task summarize")
    assert span.kind is SpanKind.INTERNAL
    assert starts.at_start["task summarize"]["agentmon.task.type"] == "summarize"
    assert starts.at_start["task summarize"]["gen_ai.agent.name"] == "worker"
    assert span_attrs(span)["agentmon.task.id"] == "task-42"
    assert span_attrs(span)["agentmon.task.outcome"] == "success"
    assert span.status.status_code is StatusCode.UNSET


def test_task_outcome_error(agentmon_capture: Capture) -> None:
    with pytest.raises(ValueError), agentmon.agent("worker"), agentmon.task("summarize"):
        raise ValueError("bad input")
    span = agentmon_capture.span("task summarize")
    assert span_attrs(span)["agentmon.task.outcome"] == "error"
    assert span_attrs(span)["error.type"] == "ValueError"
    assert span.status.status_code is StatusCode.ERROR


def test_task_with_explicit_agent_names_its_tools(agentmon_capture: Capture) -> None:
    with agentmon.agent("dispatcher"), agentmon.task("review", agent="reviewer"), agentmon.tool("lint"):
        pass
    assert span_attrs(agentmon_capture.span("task review"))["gen_ai.agent.name"] == "reviewer"
    assert span_attrs(agentmon_capture.span("execute_tool lint"))["gen_ai.agent.name"] == "reviewer"


def test_llm_span_and_usage(agentmon_capture: Capture, starts: StartRecorder) -> None:
    with agentmon.llm("gpt-4o", provider="openai", server_address="api.openai.com", server_port=443) as call:
        call.record_usage(input_tokens=120, output_tokens=30, response_model="gpt-4o-2024-08-06",
                          response_id="resp-1", finish_reasons=["stop"])
    span = agentmon_capture.span("chat gpt-4o")
    assert span.kind is SpanKind.CLIENT
    assert starts.at_start["chat gpt-4o"] == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "server.address": "api.openai.com", "server.port": 443,
    }
    attrs = span_attrs(span)
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 30
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert attrs["gen_ai.response.id"] == "resp-1"
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("stop",)


def test_llm_operation_names_the_span(agentmon_capture: Capture) -> None:
    with agentmon.llm("gemini-2.0", provider="gcp.gemini", operation="generate_content"):
        pass
    assert span_attrs(agentmon_capture.span("generate_content gemini-2.0"))["gen_ai.operation.name"] == (
        "generate_content")


def test_record_llm_usage_targets_the_current_span_and_skips_invalid_counts(agentmon_capture: Capture) -> None:
    with agentmon.llm("m", provider="openai"):
        agentmon.record_llm_usage(input_tokens=-1, output_tokens=True)
        agentmon.record_llm_usage(input_tokens=5)
    attrs = span_attrs(agentmon_capture.span("chat m"))
    assert attrs["gen_ai.usage.input_tokens"] == 5
    assert "gen_ai.usage.output_tokens" not in attrs


def test_span_handle_setters(agentmon_capture: Capture) -> None:
    with agentmon.agent("a") as handle:
        handle.set_attribute("step", 2)
        handle.set_attributes({"phase": "plan", "ok": True})
        handle.add_event("checkpoint", {"n": 1})
    span = agentmon_capture.span("invoke_agent a")
    assert (span_attrs(span)["step"], span_attrs(span)["phase"], span_attrs(span)["ok"]) == (2, "plan", True)
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [("checkpoint", {"n": 1})]


# --- nesting and the three forms ------------------------------------------------------------------

Tree: TypeAlias = list[tuple[str, "Tree"]]
EXPECTED_TREE: Tree = [("invoke_workflow w", [("invoke_agent a", [("task t", [("execute_tool s", []),
                                                                       ("chat m", [])])])])]


def test_tree_with_context_managers(agentmon_capture: Capture) -> None:
    with agentmon.workflow("w"), agentmon.agent("a"), agentmon.task("t"):
        with agentmon.tool("s"):
            pass
        with agentmon.llm("m", provider="openai"):
            pass
    assert agentmon_capture.tree() == EXPECTED_TREE


def test_tree_with_decorators(agentmon_capture: Capture) -> None:
    @agentmon.tool("s")
    def search(q: str) -> str:
        return q.upper()

    @agentmon.llm("m", provider="openai")
    def ask() -> str:
        return "answer"

    @agentmon.task("t")
    def do_task() -> str:
        return search("q") + ask()

    @agentmon.agent("a")
    def run_agent() -> str:
        return do_task()

    @agentmon.workflow("w")
    def run() -> str:
        return run_agent()

    assert run() == "Qanswer"
    assert agentmon_capture.tree() == EXPECTED_TREE


@pytest.mark.asyncio
async def test_tree_with_async_decorators_and_async_with(agentmon_capture: Capture) -> None:
    @agentmon.tool("s")
    async def search() -> int:
        await asyncio.sleep(0)
        return 1

    @agentmon.agent("a")
    async def run_agent() -> int:
        async with agentmon.task("t"):
            n = await search()
            async with agentmon.llm("m", provider="openai") as call:
                call.record_usage(input_tokens=n)
        return n

    async with agentmon.workflow("w"):
        assert await run_agent() == 1
    assert agentmon_capture.tree() == EXPECTED_TREE
    assert span_attrs(agentmon_capture.span("execute_tool s"))["gen_ai.agent.name"] == "a"


def test_current_span_is_restored_after_each_form(agentmon_capture: Capture) -> None:
    @agentmon.tool("t")
    def fails() -> None:
        raise ValueError

    before = trace.get_current_span()
    with agentmon.agent("a"):
        inside = trace.get_current_span()
        with pytest.raises(ValueError):
            fails()
        assert trace.get_current_span() is inside
    assert trace.get_current_span() is before


def test_a_reused_context_manager_object_is_safe_across_threads(agentmon_capture: Capture,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A module-level ``search = agentmon.tool("search")`` used as ``with search:`` in two threads."""
    search = agentmon.tool("search")
    entered = [threading.Event(), threading.Event()]
    first_left = threading.Event()

    def worker(i: int) -> None:
        if i == 1:
            entered[0].wait(5)
        with search as handle:
            handle.set_attribute("worker", i)
            entered[i].set()
            if i == 0:
                entered[1].wait(5)  # both inside: thread 0 entered first and leaves first
            else:
                first_left.wait(5)
        if i == 0:
            first_left.set()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = agentmon_capture.spans("execute_tool search")
    # Each thread's ``with`` ends the span that thread started, and detaches its own context.
    assert [span_attrs(s)["worker"] for s in spans] == [0, 1]
    assert detach_failures(caplog) == []


def test_disabled_sdk_calls_straight_through() -> None:
    cap, close = capture(disabled=True)
    try:
        @agentmon.agent("a")
        def run() -> int:
            with agentmon.tool("t") as handle:
                handle.set_attribute("k", 1)
            return 7

        assert run() == 7
        assert cap.spans() == []
    finally:
        close()


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "expected"), [
    (ValueError("boom"), "ValueError"),
    (ToolFailed("boom"), f"{__name__}.ToolFailed"),
    (Outer.Inner("boom"), f"{__name__}.Outer.Inner"),
])
def test_exception_marks_span_failed_and_records_event(agentmon_capture: Capture, exc: Exception,
                                                       expected: str) -> None:
    with pytest.raises(type(exc)), agentmon.tool("t"):
        raise exc
    span = agentmon_capture.span("execute_tool t")
    assert span.status.status_code is StatusCode.ERROR
    assert span_attrs(span)["error.type"] == expected
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1
    assert span_attrs(events[0])["exception.message"] == "boom"


def _last_frame_name(exc: BaseException) -> str:
    return traceback.extract_tb(exc.__traceback__)[-1].name


def raiser(original: list[BaseException]) -> None:
    err = ToolFailed("from raiser")
    original.append(err)
    raise err


def test_sync_decorator_reraises_the_same_exception_with_its_traceback(agentmon_capture: Capture) -> None:
    original: list[BaseException] = []
    wrapped = agentmon.tool("t")(raiser)
    with pytest.raises(ToolFailed) as info:
        wrapped(original)
    assert info.value is original[0]
    assert _last_frame_name(info.value) == "raiser"
    assert span_attrs(agentmon_capture.span("execute_tool t"))["error.type"] == f"{__name__}.ToolFailed"


def test_with_block_reraises_the_same_exception_with_its_traceback(agentmon_capture: Capture) -> None:
    original: list[BaseException] = []
    with pytest.raises(ToolFailed) as info, agentmon.agent("a"):
        raiser(original)
    assert info.value is original[0]
    assert _last_frame_name(info.value) == "raiser"
    assert agentmon_capture.span("invoke_agent a").status.status_code is StatusCode.ERROR


@pytest.mark.asyncio
async def test_async_decorator_reraises_the_same_exception_with_its_traceback(agentmon_capture: Capture) -> None:
    original: list[BaseException] = []

    @agentmon.agent("a")
    async def run() -> None:
        await asyncio.sleep(0)
        raiser(original)

    with pytest.raises(ToolFailed) as info:
        await run()
    assert info.value is original[0]
    assert _last_frame_name(info.value) == "raiser"
    assert span_attrs(agentmon_capture.span("invoke_agent a"))["error.type"] == f"{__name__}.ToolFailed"


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3)], ids=["KeyboardInterrupt", "SystemExit"])
def test_keyboard_interrupt_and_system_exit_propagate_and_end_the_span(agentmon_capture: Capture,
                                                                       exc: BaseException) -> None:
    @agentmon.agent("a")
    def run() -> None:
        with agentmon.tool("t"):
            raise exc

    with pytest.raises(type(exc)) as info:
        run()
    assert info.value is exc
    assert {s.name for s in agentmon_capture.spans()} == {"invoke_agent a", "execute_tool t"}
    assert agentmon_capture.monitor.stats().spans_started == agentmon_capture.monitor.stats().spans_ended == 2


@pytest.mark.parametrize("form", ["decorator", "with"])
def test_exception_with_broken_str_is_reraised_and_span_ends(agentmon_capture: Capture, form: str) -> None:
    exc = Unprintable()

    def body() -> None:
        raise exc

    with pytest.raises(Unprintable) as info:
        if form == "decorator":
            agentmon.tool("t")(body)()
        else:
            with agentmon.tool("t"):
                body()
    assert info.value is exc
    span = agentmon_capture.span("execute_tool t")
    assert span.status.status_code is StatusCode.ERROR
    assert span_attrs(span)["error.type"] == f"{__name__}.Unprintable"
    assert any(e.name == "exception" for e in span.events)
