"""A rule file with problems: every problem reported at once with its line, by ``load_rules``,
``agentmon rules check`` and ``agentmon serve --rules``; ``configure()`` warns and keeps running,
also when the file comes from ``AGENTMON_ALERT_RULES`` and under ``opentelemetry-instrument``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_agentmon import load_rules
from otel_agentmon.cli import main as cli_main
from tests.support.receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]

# Line numbers matter here: each problem is reported on the line of its key, or of its rule.
BROKEN = """\
rules:
  - name: Good
    signal: up
    op: "<"
    threshold: 1
  - name: NoThreshold
    signal: error_rate
    colour: red
  - name: Bad Name
    signal: nope
    threshold: x
    for: soon
    window: 0
  - name: Good
    signal: cpu
    threshold: 0.9
  - name: Twice
    signal: cpu
    threshold: 0.9
    threshold: 0.8
  - AgentDown
  - name: WrongSide
    signal: error_rate
    op: ">"
    threshold: 0.5
    resolve: 0.7
  - name: AlsoGood
    signal: cpu
    op: ">"
    threshold: 0.9
"""

EXPECTED = [
    (6, "rule 'NoThreshold': missing 'threshold'"),
    (8, "rule 'NoThreshold': unknown key 'colour'"),
    (9, "rule 'Bad Name': name 'Bad Name': use a non-empty name of letters, digits, '_' or '-'"),
    (10, "rule 'Bad Name': unknown signal 'nope'"),
    (11, "rule 'Bad Name': threshold must be a number, not 'x'"),
    (12, "rule 'Bad Name': not a duration: 'soon'"),
    (13, "rule 'Bad Name': 'window' must be > 0, not 0"),
    (14, "rule 'Good': name already used on line 2"),
    (20, "key 'threshold' given twice (first on line 19)"),
    (21, "rule #6 is not a mapping"),
    (22, "rule WrongSide: resolve threshold must be on the other side"),
]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    return path


def _assert_all_reported(lines: list[str], path: Path) -> None:
    assert len(lines) == len(EXPECTED), "\n".join(lines)
    for line, (number, message) in zip(lines, EXPECTED, strict=True):
        assert line.startswith(f"{path}:{number}: {message}"), (line, number, message)


def test_every_problem_is_reported_at_once_with_its_line(broken: Path) -> None:
    from otel_agentmon._alerts.rule_file import RuleFileError, check_rule_file

    report = check_rule_file(broken)
    _assert_all_reported(report.errors, broken)
    assert [r.name for r in report.rules] == ["Good", "AlsoGood"]  # the valid rules, first of a name wins
    with pytest.raises(RuleFileError) as raised:
        load_rules(broken)
    assert isinstance(raised.value, ValueError) and raised.value.errors == report.errors
    assert str(raised.value).startswith("11 problems in the rule file:\n")


@pytest.mark.parametrize(("text", "line", "message"), [
    ("rules:\n  - name: a\n   signal: [\n", 3, "YAML syntax error"),
    ("rules:\n  - {name: a, signal: up\n", 3, "YAML syntax error"),
    ("rules: {}\n", 1, "expected a mapping with a 'rules' list"),
    ("", 1, "expected a mapping with a 'rules' list"),
])
def test_syntax_and_shape_errors_carry_the_parser_position(tmp_path: Path, text: str, line: int,
                                                           message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        load_rules(path)
    [error] = getattr(raised.value, "errors", [str(raised.value)])
    assert error.startswith(f"{path}:{line}: ") and message in error


def test_an_unreadable_file_is_one_problem_not_an_os_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ValueError) as raised:
        load_rules(missing)
    assert getattr(raised.value, "errors", None) == [f"{missing}: cannot read the file: No such file or directory"]


def test_rules_check_prints_every_problem_and_exits_non_zero(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["rules", "check", str(broken)]) == 1
    err = capsys.readouterr().err.splitlines()
    _assert_all_reported(err[:-1], broken)
    assert err[-1] == f"agentmon: {broken}: 11 problems"
    assert cli_main(["rules", "export", str(broken)]) == 1


def test_serve_refuses_to_start_and_lists_every_problem(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["serve", "--port", "0", "--rules", str(broken), "--duration", "0.1"]) == 1
    captured = capsys.readouterr()
    assert "dashboard and OTLP/HTTP endpoint" not in captured.out  # it never started
    lines = [line.strip() for line in captured.err.splitlines()]
    assert lines[0] == f"agentmon serve: {broken}: 11 problems in the rule file:"
    _assert_all_reported(lines[1:], broken)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    env.update(OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", AGENTMON_SYSTEM_METRICS="off", **extra)
    return env


APP = """
import logging, otel_agentmon as am
logging.basicConfig(level=logging.WARNING)
if {configure}:
    am.configure()
with am.agent("a"):
    pass
m = am.get_monitor()
m.shutdown(2.0)
print("rules:", [r.name for r in m._health.engine.rules] if m._health else None)
"""


@pytest.mark.subprocess
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["missing", "broken"])
def test_a_bad_rule_file_in_the_environment_leaves_telemetry_running(kind: str, broken: Path) -> None:
    path = broken if kind == "broken" else broken.with_name("missing.yaml")
    with OTLPReceiver() as rx:
        proc = subprocess.run([sys.executable, "-c", APP.format(configure=True)], capture_output=True, text=True,
                              timeout=50, cwd=ROOT, check=False,
                              env=_env(AGENTMON_ALERT_RULES=str(path), OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint))
        assert proc.returncode == 0, proc.stderr
        assert rx.wait_for(lambda: any(s.name == "invoke_agent a" for s in rx.spans()), 10)
    assert proc.stdout.strip() == ("rules: ['Good', 'AlsoGood']" if kind == "broken" else "rules: []")
    assert f"AGENTMON_ALERT_RULES='{path}'" in proc.stderr and "Traceback" not in proc.stderr
    assert ("No such file or directory" if kind == "missing" else f"{path}:10: rule 'Bad Name'") in proc.stderr


@pytest.mark.subprocess
@pytest.mark.timeout(90)
def test_under_opentelemetry_instrument_a_missing_rule_file_still_gives_telemetry(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    assert (bindir / "opentelemetry-instrument").exists(), "opentelemetry-instrumentation provides it"
    with OTLPReceiver() as rx:
        env = _env(AGENTMON_ALERT_RULES=str(tmp_path / "missing.yaml"), OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                   OTEL_PYTHON_DISTRO="agentmon", OTEL_PYTHON_CONFIGURATOR="agentmon",
                   PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        proc = subprocess.run([str(bindir / "opentelemetry-instrument"), sys.executable, "-c",
                               APP.format(configure=False)], capture_output=True, text=True, timeout=80, cwd=ROOT,
                              env=env, check=False)
        assert proc.returncode == 0, proc.stderr
        assert rx.wait_for(lambda: any(s.name == "invoke_agent a" for s in rx.spans()), 10), proc.stderr
    assert "could not configure" not in proc.stderr and "No such file or directory" in proc.stderr
