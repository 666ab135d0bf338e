"""Zero-code: ``opentelemetry-instrument`` with our distro and configurator, and
``OTEL_AGENTMON_INSTRUMENT`` naming the classes to instrument."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
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
from otel_agentmon import distro
from otel_agentmon._spans import zero_code as _zero_code
from otel_agentmon._spans.classes import is_instrumented
from otel_agentmon.testing import Capture
from tests.support.receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]


def test_parse_groups_entries_by_module_and_class() -> None:
    plans, problems = _zero_code.parse("""
        shop.agents:Planner.run=agent:@name; shop.agents:Planner.step=task:plan
        shop.agents:Planner.search=tool
        shop.tools:fetch=tool:fetch_page;shop.main:go=workflow
    """)
    assert problems == []
    assert [(e.owner, e.name, e.role, e.label) for e in plans["shop.agents"]] == [
        ("Planner", "run", "agent", "@name"), ("Planner", "step", "task", "plan"), ("Planner", "search", "tool", None)]
    assert [(e.owner, e.name, e.role, e.label) for e in plans["shop.tools"]] == [(None, "fetch", "tool", "fetch_page")]
    assert [(e.owner, e.name, e.role, e.label) for e in plans["shop.main"]] == [(None, "go", "workflow", None)]


BAD_ENTRIES = ["shop.agents.Planner.run=agent", "shop:Planner.run", "shop:Planner.run=robot", "shop:A.B.c=tool",
               ":f=tool", "shop:Planner.=tool", "shop:Plan ner.run=tool", "sh-op:f=tool"]


@pytest.mark.parametrize("bad", BAD_ENTRIES)
def test_parse_rejects_bad_entries_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        _zero_code.parse_entry(bad)
    plans, problems = _zero_code.parse(bad)
    assert plans == {} and len(problems) == 1 and repr(bad) in problems[0] and "OTEL_AGENTMON_INSTRUMENT" in problems[0]


def test_each_entry_stands_alone_in_parsing() -> None:
    # Regression: one bad entry used to make the whole variable unusable.
    plans, problems = _zero_code.parse("shop:Planner.run=agent; shop:Planner.run=robot; nonsense; "
                                       "shop:Planner.step=task; shop:Planner.run=tool")
    assert [(e.name, e.role) for e in plans["shop"]] == [("run", "agent"), ("step", "task")]
    assert len(problems) == 3
    assert "'shop:Planner.run=tool'" in problems[2] and "already named by 'shop:Planner.run=agent'" in problems[2]


@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n.startswith("zc_")]:
        del sys.modules[name]


def test_modules_imported_later_are_instrumented_on_import(agentmon_capture: Capture, module_dir: Path,
                                                           registry: _zero_code._Registry) -> None:
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


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, fresh_log_limiter: None) -> _zero_code._Registry:
    """A fresh record of the modules named so far (so the process' exit report stays quiet)."""
    fresh = _zero_code._Registry()
    monkeypatch.setattr(_zero_code, "_registry", fresh)
    return fresh


def zero_code_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "otel_agentmon" and r.levelno == logging.WARNING
            and "OTEL_AGENTMON_INSTRUMENT" in r.getMessage()]


def test_a_bad_entry_or_missing_class_logs_and_never_raises(module_dir: Path, registry: _zero_code._Registry,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    assert _zero_code.install_from_env({"OTEL_AGENTMON_INSTRUMENT": "nonsense"}) == 0
    (module_dir / "zc_empty.py").write_text("x = 1\n")
    _zero_code.install_from_env({"OTEL_AGENTMON_INSTRUMENT": "zc_empty:Missing.run=agent; zc_empty:x.y=tool"})
    importlib.import_module("zc_empty")
    assert zero_code_warnings(caplog) == [
        "OTEL_AGENTMON_INSTRUMENT entry 'nonsense' skipped: expected module:Class.method=agent|task|tool|workflow"
        "[:name] or module:function=...[:name]",
        "OTEL_AGENTMON_INSTRUMENT entry 'zc_empty:Missing.run=agent' not instrumented: module zc_empty has no "
        "class 'Missing'",
        "OTEL_AGENTMON_INSTRUMENT entry 'zc_empty:x.y=tool' not instrumented: zc_empty.x is a int, not a class"]


TEAM = textwrap.dedent("""
    class Bot:
        def __init__(self, name): self.name = name
        def run(self, x): return self.handle(x)
        def handle(self, x): return self.search(x)
        def search(self, x): return x * 2
        value = 3
    def helper(x): return x + 1
""")


def test_a_misspelled_method_never_disables_the_other_entries_of_its_class(
        agentmon_capture: Capture, module_dir: Path, registry: _zero_code._Registry,
        caplog: pytest.LogCaptureFixture) -> None:
    # Regression: one bad method made instrument() roll back the whole class, silently for the rest.
    (module_dir / "zc_crew.py").write_text(TEAM)
    bad = ["zc_crew:Bot.runn=agent", "zc_crew:Bot.value=tool", "zc_crew:helpr=tool", "zc_crew:Bot.run=robot"]
    good = ["zc_crew:Bot.run=agent:@name", "zc_crew:Bot.handle=task:work", "zc_crew:Bot.search=tool",
            "zc_crew:helper=tool"]
    mixed = [x for pair in zip(bad, good, strict=True) for x in pair]
    assert _zero_code.install_from_env({"OTEL_AGENTMON_INSTRUMENT": ";".join(mixed)}) == 1
    crew: Any = importlib.import_module("zc_crew")
    try:
        assert crew.Bot("b1").run(2) == 4 and crew.helper(1) == 2 and crew.Bot.value == 3
        spans = {s.name: s for s in agentmon_capture.spans()}
        assert sorted(spans) == ["execute_tool helper", "execute_tool search", "invoke_agent b1", "task work"]
        assert spans["task work"].parent is not None
        assert spans["task work"].parent.span_id == spans["invoke_agent b1"].context.span_id
    finally:
        agentmon.uninstrument(crew.Bot)
        agentmon.uninstrument(crew)
    warnings = zero_code_warnings(caplog)
    assert len(warnings) == len(bad)  # one each, naming the entry
    for entry, warning in zip(bad, sorted(warnings, key=lambda w: [b in w for b in bad].index(True)), strict=True):
        assert repr(entry) in warning
    assert any("class zc_crew.Bot has no attribute 'runn'" in w for w in warnings)
    assert any("module zc_crew has no attribute 'helpr'" in w for w in warnings)


def test_a_module_never_imported_is_one_warning_at_exit_naming_its_entries(
        module_dir: Path, registry: _zero_code._Registry, caplog: pytest.LogCaptureFixture) -> None:
    (module_dir / "zc_unused.py").write_text("class A:\n    def f(self): pass\n")
    (module_dir / "zc_used.py").write_text("class A:\n    def f(self): pass\n")
    _zero_code.install_from_env({"OTEL_AGENTMON_INSTRUMENT":
                                 "zc_used:A.f=tool; zc_mispelled:A.f=tool; zc_mispelled:A.g=tool; zc_unused:A.f=tool;"
                                 "zc_used.sub:A.f=tool; zc_nopkg.sub:A.f=tool"})
    importlib.import_module("zc_used")
    messages = _zero_code.report_unimported()
    assert zero_code_warnings(caplog) == messages and len(messages) == 4
    by_module = {m.split("'")[1]: m for m in messages}
    assert set(by_module) == {"zc_mispelled", "zc_unused", "zc_used.sub", "zc_nopkg.sub"}
    assert "(zc_mispelled:A.f=tool; zc_mispelled:A.g=tool)" in by_module["zc_mispelled"]
    assert "no module 'zc_mispelled' can be found" in by_module["zc_mispelled"]
    assert "never imported it during this run" in by_module["zc_unused"]
    assert "can be found" in by_module["zc_used.sub"]  # zc_used is a module, not a package
    assert "no module 'zc_nopkg' can be found" in by_module["zc_nopkg.sub"]


@pytest.mark.subprocess
def test_a_misspelled_module_is_reported_when_the_program_exits(tmp_path: Path) -> None:
    # Regression: a misspelled module used to log nothing at all.
    script = tmp_path / "prog.py"
    script.write_text("from otel_agentmon._spans import zero_code as _zero_code\n"
                      "_zero_code.install_from_env({'OTEL_AGENTMON_INSTRUMENT': 'researh_team:Bot.run=agent'})\n"
                      "print('ran')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and done.stdout == "ran\n", done.stderr
    assert done.stderr.count("OTEL_AGENTMON_INSTRUMENT") == 1
    assert "names module 'researh_team' (researh_team:Bot.run=agent), but no module 'researh_team' can be found" \
        in done.stderr


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


class _Active(_Recorder):
    is_instrumented_by_opentelemetry = True


def test_the_distro_never_instruments_an_active_instrumentor_again(monkeypatch: pytest.MonkeyPatch) -> None:
    _Recorder.calls.clear()
    active = importlib.metadata.EntryPoint(name="fake", value=f"{__name__}:_Active",
                                           group="opentelemetry_instrumentor")
    distro.AgentmonDistro().load_instrumentor(active, skip_dep_check=True)
    assert _Recorder.calls == []
    # Once our configurator ran, configure() owns system metrics (as AGENTMON_SYSTEM_METRICS says).
    system = importlib.metadata.EntryPoint(name="system_metrics", value=f"{__name__}:_Recorder",
                                           group="opentelemetry_instrumentor")
    monkeypatch.setattr(distro, "_configured", True)
    distro.AgentmonDistro().load_instrumentor(system, skip_dep_check=True)
    assert _Recorder.calls == []
    monkeypatch.setattr(distro, "_configured", False)  # e.g. the stock configurator: the stock behaviour
    distro.AgentmonDistro().load_instrumentor(system, skip_dep_check=True)
    assert _Recorder.calls == [{"skip_dep_check": True}]


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
        # Regression: system metrics were instrumented twice (by configure() and by the entry point).
        assert "Attempting to instrument while already instrumented" not in done.stderr
        assert "OTEL_AGENTMON_INSTRUMENT" not in done.stderr  # the example's entries are all good
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
    assert all(s.scope_name == "otel_agentmon" for s in spans), sorted({(s.scope_name, s.name) for s in spans})
    up = rx.latest_metric("agentmon.agent.up")
    assert up is not None
    assert {p.attributes["gen_ai.agent.name"] for p in up.points} >= {f"researcher-{i}" for i in range(3)}
