"""Zero-code: ``opentelemetry-instrument`` with our distro and configurator, and
``OTEL_AGENTMON_INSTRUMENT`` naming the classes to instrument."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._configuration import _BaseConfigurator
from packaging.requirements import Requirement

import otel_agentmon as agentmon
from otel_agentmon import _zero_code, distro
from otel_agentmon._classes import is_instrumented
from otel_agentmon.testing import Capture
from tests.support.receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]


def test_parse_groups_entries_by_module_and_class() -> None:
    plans = _zero_code.parse("""
        shop.agents:Planner.run=agent:@name; shop.agents:Planner.step=task:plan
        shop.agents:Planner.search=tool
        shop.tools:fetch=tool:fetch_page;shop.main:go=workflow
    """)
    planner = plans["shop.agents"].classes["Planner"]
    assert (planner.agent, planner.invoke, planner.tasks, planner.tools) == (
        "@name", ["run"], {"step": "plan"}, {"search": "search"})
    assert plans["shop.tools"].functions == [("fetch", "tool", "fetch_page")]
    assert plans["shop.main"].functions == [("go", "workflow", None)]


@pytest.mark.parametrize("bad", ["shop.agents.Planner.run=agent", "shop:Planner.run", "shop:Planner.run=robot",
                                 "shop:A.B.c=tool", ":f=tool"])
def test_parse_rejects_bad_entries_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match="OTEL_AGENTMON_INSTRUMENT"):
        _zero_code.parse(bad)


@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n.startswith("zc_")]:
        del sys.modules[name]


def test_modules_imported_later_are_instrumented_on_import(agentmon_capture: Capture, module_dir: Path) -> None:
    (module_dir / "zc_team.py").write_text(textwrap.dedent("""
        class Bot:
            def __init__(self, name): self.name = name
            def run(self, x): return self.tool(x)
            def tool(self, x): return x * 2
        def helper(x): return x + 1
    """))
    env = {"OTEL_AGENTMON_INSTRUMENT": "zc_team:Bot.run=agent:@name;zc_team:Bot.tool=tool;zc_team:helper=tool"}
    assert _zero_code.install_from_env(env) == 1
    assert "zc_team" not in sys.modules
    team: Any = importlib.import_module("zc_team")
    try:
        assert team.Bot("b1").run(2) == 4 and team.helper(1) == 2
        assert sorted(s.name for s in agentmon_capture.spans()) == [
            "execute_tool helper", "execute_tool tool", "invoke_agent b1"]
    finally:
        agentmon.uninstrument(team.Bot)
        agentmon.uninstrument(team)
    assert not is_instrumented(team.Bot)


def test_a_bad_entry_or_missing_class_logs_and_never_raises(module_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert _zero_code.install_from_env({"OTEL_AGENTMON_INSTRUMENT": "nonsense"}) == 0
    (module_dir / "zc_empty.py").write_text("x = 1\n")
    _zero_code.install_from_env({"OTEL_AGENTMON_INSTRUMENT": "zc_empty:Missing.run=agent"})
    importlib.import_module("zc_empty")
    assert "nothing instrumented" in caplog.text and "cannot instrument zc_empty.Missing" in caplog.text


def test_the_configurator_rests_on_the_sdk_base_the_loader_expects() -> None:
    # The private coupling (_sdk_compat) pinned: the SDK versions pyproject allows must still
    # have _BaseConfigurator with configure(**kwargs) -> _configure(**kwargs).
    sdk = next(Requirement(r) for r in importlib.metadata.requires("otel_agentmon") or []
               if Requirement(r).name == "opentelemetry-sdk")
    assert importlib.metadata.version("opentelemetry-sdk") in sdk.specifier
    assert issubclass(distro.AgentmonConfigurator, _BaseConfigurator)
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="opentelemetry_configurator")}
    assert names["agentmon"] == "otel_agentmon.distro:AgentmonConfigurator"
    assert {ep.name for ep in importlib.metadata.entry_points(group="opentelemetry_distro")} >= {"agentmon"}


class _Recorder:
    calls: list[dict[str, Any]] = []  # noqa: RUF012

    def instrument(self, **kwargs: Any) -> None:
        _Recorder.calls.append(kwargs)


def test_the_distro_instruments_ours_after_every_other_instrumentor() -> None:
    ep = importlib.metadata.EntryPoint(name="agentmon_fake", value=f"{__name__}:_Recorder",
                                       group="opentelemetry_instrumentor")
    _Recorder.calls.clear()
    distro.AgentmonDistro().load_instrumentor(ep, skip_dep_check=True)
    assert _Recorder.calls == []  # deferred
    distro.post_instrument()
    assert _Recorder.calls == [{"skip_dep_check": True}]


@pytest.mark.subprocess
def test_an_unmodified_program_under_opentelemetry_instrument_delivers_agents_and_health() -> None:
    bindir = Path(sys.executable).parent
    assert (bindir / "opentelemetry-instrument").exists(), "opentelemetry-instrumentation provides it"
    with OTLPReceiver() as rx:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
        env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                   OTEL_SERVICE_NAME="zero-code-test")
        done = subprocess.run(["bash", str(ROOT / "examples" / "zero_code" / "run.sh")], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=90, check=False)
        assert done.returncode == 0, done.stderr
        assert "12 summaries from 3 researchers" in done.stdout
        assert rx.wait_for(lambda: len([s for s in rx.spans() if s.name.startswith("invoke_agent")]) == 3, 10)
        assert rx.wait_for(lambda: "agentmon.agent.up" in rx.metric_names(), 10), sorted(rx.metric_names())
        spans = rx.spans()
    agents = {s.span_id: s for s in spans if s.name.startswith("invoke_agent")}
    assert sorted(s.name for s in agents.values()) == [f"invoke_agent researcher-{i}" for i in range(3)]
    tasks = [s for s in spans if s.name == "task research"]
    assert len(tasks) == 12 and all(t.parent_span_id in agents for t in tasks)
    tools = [s for s in spans if s.name.startswith("execute_tool")]
    assert len(tools) == 24 and {t.parent_span_id for t in tools} <= {t.span_id for t in tasks}
    assert {s.resource["service.name"] for s in spans} == {"zero-code-test"}
    assert all(s.scope_name == "otel_agentmon" for s in spans)
    up = rx.latest_metric("agentmon.agent.up")
    assert up is not None
    assert {p.attributes["gen_ai.agent.name"] for p in up.points} >= {f"researcher-{i}" for i in range(3)}
