"""The README stays true: its configuration table is the option table, and it carries exactly the
two set-up commands (the test command is what .ci/run executes)."""

from __future__ import annotations

import re
from pathlib import Path

from otel_agentmon._metrics.instruments import ALLOWED_ATTRIBUTES
from otel_agentmon._names import semconv as sc
from otel_agentmon._setup.settings import options_markdown

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_configuration_table_is_generated_from_the_option_table() -> None:
    assert options_markdown() in README


def test_readme_has_exactly_the_main_and_test_commands() -> None:
    assert README.count("<!-- main-command -->") == 1
    assert README.count("<!-- test-command -->") == 1
    blocks = re.findall(r"<!-- (main|test)-command -->\n```sh\n(.+?)\n```", README)
    assert dict(blocks) == {
        "main": "pip install -e . && python examples/swarm.py --live",
        "test": "collector-config/build && pip install -e '.[dev]' && ruff check . && mypy && lint-imports"
                " && python -m pytest",
    }


def test_every_metric_we_emit_is_in_the_signal_reference() -> None:
    for name in ALLOWED_ATTRIBUTES:
        assert f"| `{name}` |" in README, name


def test_span_names_in_the_signal_reference_match_the_code() -> None:
    for op in (sc.OP_INVOKE_AGENT, sc.OP_EXECUTE_TOOL, sc.OP_INVOKE_WORKFLOW):
        assert f"`{op} {{name}}`" in README
