"""Instrumenting a team's own agent classes and instances from the outside."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import otel_agentmon as agentmon
from otel_agentmon._names import semconv as sc
from otel_agentmon._spans.classes import is_instrumented
from otel_agentmon.testing import Capture


class Worker:
    role = "worker"

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, jobs: list[str]) -> list[str]:
        return [self.handle(job) for job in jobs]

    def handle(self, job: str) -> str:
        if job == "bad":
            raise ValueError("bad job")
        return self.lookup(job)

    def lookup(self, job: str) -> str:
        return job.upper()

    async def arun(self, job: str) -> str:
        await asyncio.sleep(0)
        return self.lookup(job)

    def stream(self, n: int) -> Iterator[int]:
        yield from range(n)

    async def astream(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @staticmethod
    def helper(x: int) -> int:
        return x + 1

    @classmethod
    def build(cls, name: str) -> Worker:
        return cls(name)


class Child(Worker):
    pass


@pytest.fixture
def clean() -> Iterator[None]:
    yield
    for target in (Worker, Child):
        agentmon.uninstrument(target)


def test_class_methods_become_agent_task_and_tool_spans(agentmon_capture: Capture, clean: None) -> None:
    agentmon.instrument(Worker, agent="@name", invoke=["run"], tasks={"handle": "job"}, tools=["lookup"])
    assert Worker("w1").run(["a", "b"]) == ["A", "B"]
    (run,) = agentmon_capture.spans("invoke_agent w1")
    tasks = agentmon_capture.spans("task job")
    tools = agentmon_capture.spans("execute_tool lookup")
    assert len(tasks) == 2 and len(tools) == 2
    assert all(t.parent is not None and t.parent.span_id == run.context.span_id for t in tasks)
    assert {t.parent.span_id for t in tools if t.parent} == {t.context.span_id for t in tasks}
    assert all(t.attributes is not None and t.attributes[sc.GEN_AI_AGENT_NAME] == "w1" for t in tasks + tools)
    assert "agentmon.tasks.completed" in agentmon_capture.metrics()


def test_each_instance_gets_its_own_agent_name(agentmon_capture: Capture, clean: None) -> None:
    agentmon.instrument(Worker, agent="@name", invoke=["run"])
    Worker("alpha").run(["x"])
    Worker("beta").run(["y"])
    Worker("").run(["z"])  # no usable name: the class name
    names = sorted(s.name for s in agentmon_capture.spans())
    assert names == ["invoke_agent Worker", "invoke_agent alpha", "invoke_agent beta"]


def test_user_exceptions_pass_through_unchanged_and_mark_the_span(agentmon_capture: Capture, clean: None) -> None:
    agentmon.instrument(Worker, tasks=["handle"])
    with pytest.raises(ValueError, match="bad job"):
        Worker("w").handle("bad")
    (span,) = agentmon_capture.spans("task handle")
    assert span.attributes is not None and span.attributes[sc.ERROR_TYPE] == "ValueError"


def test_async_generator_static_and_class_methods_keep_their_kind(agentmon_capture: Capture, clean: None) -> None:
    agentmon.instrument(Worker, invoke=["arun"], tools=["stream", "astream", "helper", "build"])
    assert inspect.iscoroutinefunction(Worker.arun)
    assert inspect.isgeneratorfunction(Worker.stream) or inspect.isgenerator(Worker("w").stream(1))
    assert isinstance(inspect.getattr_static(Worker, "helper"), staticmethod)
    assert isinstance(inspect.getattr_static(Worker, "build"), classmethod)

    async def drive() -> list[int]:
        return [i async for i in Worker("w").astream(3)]

    assert asyncio.run(Worker("w").arun("q")) == "Q"
    assert list(Worker("w").stream(2)) == [0, 1]
    assert asyncio.run(drive()) == [0, 1, 2]
    assert Worker.helper(1) == 2
    assert Worker.build("b").name == "b"
    names = sorted(s.name for s in agentmon_capture.spans())
    assert names == ["execute_tool astream", "execute_tool build", "execute_tool helper",
                     "execute_tool stream", "invoke_agent Worker"]


def test_uninstrument_restores_the_originals_exactly(agentmon_capture: Capture, clean: None) -> None:
    before = {k: Worker.__dict__[k] for k in ("run", "handle", "lookup", "helper", "build")}
    child_before = dict(Child.__dict__)
    agentmon.instrument(Worker, invoke=["run"], tasks=["handle"], tools=["lookup", "helper", "build"])
    agentmon.instrument(Child, invoke=["run"])  # inherited: patched on Child only
    assert Worker.__dict__["run"] is not before["run"]
    agentmon.uninstrument(Worker)
    agentmon.uninstrument(Child)
    assert {k: Worker.__dict__[k] for k in before} == before
    assert dict(Child.__dict__) == child_before
    Worker("w").run(["a"])
    assert agentmon_capture.spans() == []


def test_instrumenting_twice_replaces_never_duplicates(agentmon_capture: Capture, clean: None) -> None:
    agentmon.instrument(Worker, invoke=["run"])
    agentmon.instrument(Worker, invoke=["run"])
    bot = Worker("solo")
    agentmon.instrument(bot, invoke=["run"])  # its class already does it: left alone
    bot.run(["a"])
    assert len(agentmon_capture.spans("invoke_agent Worker")) == 1
    assert len(agentmon_capture.spans()) == 1


def test_one_instance_only(agentmon_capture: Capture, clean: None) -> None:
    bot, other = Worker("bot-7"), Worker("other")
    agentmon.instrument(bot, agent="@name", invoke=["run"], tools=["lookup"])
    bot.run(["a"])
    other.run(["b"])
    assert sorted(s.name for s in agentmon_capture.spans()) == ["execute_tool lookup", "invoke_agent bot-7"]
    agentmon.uninstrument(bot)
    assert "run" not in vars(bot) and "lookup" not in vars(bot)


def test_bad_targets_fail_at_instrumentation_time_and_leave_nothing_patched(clean: None) -> None:
    original = Worker.__dict__["run"]
    with pytest.raises(AttributeError):
        agentmon.instrument(Worker, invoke=["run", "missing"])
    assert Worker.__dict__["run"] is original
    assert not is_instrumented(Worker)

    class Slotted:
        __slots__ = ("x",)

        def go(self) -> None: ...

    with pytest.raises(TypeError):
        agentmon.instrument(Slotted(), invoke=["go"])


def test_agent_spans_feed_health(agentmon_capture: Capture, clean: None) -> None:
    agentmon.instrument(Worker, agent="@name", invoke=["run"], tasks=["handle"])
    Worker("healthy-one").run(["a", "b", "c"])
    snapshot: dict[str, Any] = agentmon_capture.monitor.snapshot()
    assert snapshot["healthy-one"].tasks_ok == 3


def test_a_subclass_of_an_instrumented_class_gets_one_span_per_call(agentmon_capture: Capture, clean: None) -> None:
    agentmon.instrument(Worker, invoke=["run"])
    agentmon.instrument(Child, invoke=["run"])
    Child("c").run(["a"])
    assert [s.name for s in agentmon_capture.spans()] == ["invoke_agent Child"]
    agentmon.uninstrument(Worker)
    agentmon_capture.clear()
    Child("c").run(["a"])
    assert [s.name for s in agentmon_capture.spans()] == ["invoke_agent Child"]


def test_a_module_function_instrumented_twice_gets_one_span(agentmon_capture: Capture) -> None:
    import types

    from otel_agentmon._spans.classes import instrument_function

    module = types.ModuleType("zc_fn")
    exec("def f(x):\n    return x + 1\n", module.__dict__)
    original = module.f
    instrument_function(module, "f", "tool")
    instrument_function(module, "f", "tool")
    assert module.f(1) == 2
    assert [s.name for s in agentmon_capture.spans()] == ["execute_tool f"]
    agentmon.uninstrument(module)
    assert module.f is original


def test_a_raising_name_property_never_breaks_the_call(agentmon_capture: Capture) -> None:
    class Flaky:
        @property
        def name(self) -> str:
            raise RuntimeError("not ready")

        def run(self) -> str:
            return "done"

    agentmon.instrument(Flaky, agent="@name", invoke=["run"])
    try:
        assert Flaky().run() == "done"
    finally:
        agentmon.uninstrument(Flaky)
    assert [s.name for s in agentmon_capture.spans()] == ["invoke_agent Flaky"]
