"""``configure()``'s typed signature: in step with the options table, and what mypy makes of user code.

The options table (``Settings``' fields, read as ``OPTIONS``) drives what ``configure()`` accepts at
run time; the signature is what type checkers and IDEs see. These tests keep the two equal and check
that mypy (strict, the project's config) flags a misspelled or mistyped option in user code.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import subprocess
import sys
import textwrap
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

import otel_agentmon
from otel_agentmon import AlertRule, HealthPolicy, Notifier
from otel_agentmon._setup.option_values import (
    OBJECT_ACCEPTS,
    Choice,
    LLMClient,
    parse_bool,
    parse_endpoint,
    parse_headers,
    parse_port,
    parse_positive_float,
    parse_positive_int,
    parse_str,
)
from otel_agentmon._setup.settings import OPTION_NAMES, OPTIONS, Option, Settings

ROOT = Path(__file__).resolve().parents[2]
NoneType = type(None)

# What an argument of each kind of option may be, besides None ("not given").
BY_PARSER: dict[object, set[object]] = {
    parse_bool: {bool},
    parse_positive_int: {int},
    parse_port: {int},
    parse_positive_float: {float},
    parse_str: {str},
    parse_endpoint: {str},
    parse_headers: {Mapping[str, str], str},
}
OBJECTS: dict[str, set[object]] = {
    "health_policy": {HealthPolicy},
    "alert_rules": {str, os.PathLike[str], Collection[AlertRule]},
    "notifiers": {Collection[Notifier], Notifier},
    "resource_attributes": {Mapping[str, str | bool | int | float]},
    "spool_dir": {str, os.PathLike[str]},
    "llm_clients": {typing.Literal["auto", "none"], Collection[LLMClient]},
}


def _members(hint: object) -> set[object]:
    """The members of a union (``X | Y``, ``Optional[X]``), or {hint}."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set(typing.get_args(hint))
    return {hint}


def _parameters() -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(otel_agentmon.configure, eval_str=True).parameters)


def test_the_signature_names_every_option_keyword_only_in_the_table_order() -> None:
    params = _parameters()
    assert list(params) == [o.name for o in OPTIONS]  # no extra names, none missing, README order
    assert {p.kind for p in params.values()} == {inspect.Parameter.KEYWORD_ONLY}
    assert {p.default for p in params.values()} == {None}  # None: the environment, then the default
    assert OBJECTS.keys() == OBJECT_ACCEPTS.keys()


@pytest.mark.parametrize("option", OPTIONS, ids=[o.name for o in OPTIONS])
def test_each_option_is_typed_as_its_parser_reads_it(option: Option) -> None:
    members = _members(_parameters()[option.name].annotation)
    assert NoneType in members
    members.discard(NoneType)
    if option.name in OBJECTS:
        assert members == OBJECTS[option.name]
    elif isinstance(option.parse, Choice):
        (literal,) = members
        assert typing.get_origin(literal) is typing.Literal
        assert set(typing.get_args(literal)) == set(option.parse.choices)
    else:
        assert members == BY_PARSER[option.parse]


@pytest.mark.parametrize("field", [f for f in dataclasses.fields(Settings) if f.name in OPTION_NAMES - OBJECTS.keys()],
                         ids=lambda f: f.name)
def test_every_settings_value_type_is_accepted_as_an_argument(field: dataclasses.Field[object]) -> None:
    """What ``Settings`` holds for an option can be passed back to ``configure()`` as it is."""
    held = _members(typing.get_type_hints(Settings)[field.name]) - {NoneType}
    assert held <= _members(_parameters()[field.name].annotation)


def _mypy(tmp_path: Path, code: str) -> list[str]:
    """mypy's error lines for ``code`` as user code, with the project's strict configuration."""
    snippet = tmp_path / "user_code.py"
    snippet.write_text(textwrap.dedent(code), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary",
         "--cache-dir", str(ROOT / ".mypy_cache"), str(snippet)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
        env={k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")},
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 2: mypy itself failed
    return [line for line in proc.stdout.splitlines() if ": error:" in line]


@pytest.mark.timeout(900)
def test_mypy_flags_misspelled_and_mistyped_options_and_accepts_correct_ones(tmp_path: Path) -> None:
    errors = _mypy(tmp_path, """
        from pathlib import Path

        import otel_agentmon as am

        am.configure(servce_name="x")                        # line 6: misspelled
        am.configure(realtime="yes")                         # line 7: str for a bool
        am.configure(protocol="http")                        # line 8: not one of the choices
        am.configure(span_max_queue_size=1.5)                # line 9: float for an int
        am.configure("svc")                                  # line 10: positional
        am.configure(notifiers=[print])                      # line 11: no notify(event) method
        monitor: am.Monitor = am.configure(
            service_name="svc", service_version="1.2", endpoint="http://collector:4318", protocol="grpc",
            headers={"api-key": "k"}, export_timeout=2, traces_exporter="console", realtime=False,
            span_max_queue_size=4096, shutdown_timeout=1.5, system_metrics="off", capture_content="SPAN_ONLY",
            health_policy=am.HealthPolicy(), alert_rules=Path("rules.yaml"), notifiers=[am.LoggingNotifier()],
            health_port=0, dashboard=True, set_global=False, resource_attributes={"team": "a", "shard": 3},
        )
        am.configure(headers="k=v", alert_rules=[], notifiers=am.CallbackNotifier(print), endpoint=None)
    """)
    lines = {int(m.group(1)) for e in errors if (m := re.search(r"user_code\.py:(\d+):", e))}
    assert lines == {6, 7, 8, 9, 10, 11}, "\n".join(errors)
    assert any('Unexpected keyword argument "servce_name" for "configure"; did you mean "service_name"' in e
               for e in errors), "\n".join(errors)
