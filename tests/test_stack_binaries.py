"""The end-to-end tests without the Collector/Jaeger binaries: a new user's ``pytest`` skips them
and says why and how to get the binaries; CI (``AGENTMON_REQUIRE_STACK=1``, set by ``.ci/run``)
fails them, so a broken build can never pass as a row of skips."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import REQUIRE_ENV, ROOT

MISSING = "/nonexistent/otelcol-agentmon"


def run_stack_test(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one real end-to-end test (it takes the ``binaries`` fixture) with the Collector missing."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    base.update(AGENTMON_OTELCOL=MISSING, AGENTMON_JAEGER=MISSING, **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsf",
                           "tests/test_tempo.py::test_tempo_config_ships_traces_over_otlp"],
                          cwd=ROOT, env=base, capture_output=True, text=True, timeout=120, check=False)


def outcome(done: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"^=*\s*1 (passed|skipped|failed|error)\b", done.stdout, re.MULTILINE)
    return found.group(1) if found else f"no outcome in:\n{done.stdout}\n{done.stderr}"


@pytest.mark.subprocess
def test_missing_binaries_skip_the_stack_tests_with_the_reason_and_the_fix(tmp_path: Path) -> None:
    done = run_stack_test(tmp_path)
    assert outcome(done) == "skipped", done.stdout
    assert done.returncode == 0
    assert MISSING in done.stdout and "collector-config/build" in done.stdout and REQUIRE_ENV in done.stdout


@pytest.mark.subprocess
@pytest.mark.parametrize("value", ["1", "true"])
def test_missing_binaries_fail_the_stack_tests_when_required(tmp_path: Path, value: str) -> None:
    done = run_stack_test(tmp_path, **{REQUIRE_ENV: value})
    assert outcome(done) == "error", done.stdout  # the fixture fails: reported as an error of the test
    assert done.returncode == 1
    assert MISSING in done.stdout and f"{REQUIRE_ENV}=1" in done.stdout


def test_ci_requires_the_stack() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^export {REQUIRE_ENV}=1$", ci, re.MULTILINE), ".ci/run must make missing binaries fail"
