"""Packaging as a new user meets it: the extras that README, docs and examples tell people to
install exist, under names every pip resolves.

pip before 23.3 (the one a fresh ``python3 -m venv`` brings on Python 3.11 is 23.2.1) compares
the extra a user asks for, normalised (``openai_agents`` -> ``openai-agents``), with the names in
the metadata as written: an extra spelled with ``_`` was silently never installed. Names already
in their normalised form (PEP 685: lower case, ``-``) match in every pip.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: pip's own vendored copy of the same parser
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
#: `pip install -e '.[x]'`, `pip install 'otel_agentmon[x,y]'` and the like.
INSTALL = re.compile(r"pip install[^\n`]*?(?:\.|otel[_-]agentmon)\[([^\]]+)\]")


def documents() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").rglob("*.py")),
             *sorted((ROOT / "examples").rglob("*.sh"))]
    return [f for f in files if f.is_file()]


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_every_extra_is_named_the_way_every_pip_matches_it(extra: str) -> None:
    assert extra == canonicalize_name(extra), (
        f"extra {extra!r}: pip < 23.3 never installs it when asked for {canonicalize_name(extra)!r}; "
        f"name it {canonicalize_name(extra)!r}")


def test_the_dev_extra_pulls_in_every_framework_extra_by_its_own_name() -> None:
    own = [Requirement(r) for r in EXTRAS["dev"] if canonicalize_name(Requirement(r).name) == "otel-agentmon"]
    assert len(own) == 1
    # as written: no normalisation by the installer needed. CrewAI (1 GB, openai < 3) is tested in
    # a venv of its own by .ci/run instead.
    assert own[0].extras == set(EXTRAS) - {"dev", "crewai"}


def test_every_install_line_in_the_docs_and_examples_names_an_existing_extra() -> None:
    named: dict[str, set[str]] = {}
    for path in documents():
        for match in INSTALL.finditer(path.read_text()):
            for extra in match.group(1).split(","):
                named.setdefault(extra.strip(), set()).add(str(path.relative_to(ROOT)))
    assert {"langgraph", "openai-agents", "pydantic-ai", "smolagents", "dev"} <= set(named)  # the examples' own lines
    unknown = {extra: sorted(where) for extra, where in named.items() if extra not in EXTRAS}
    assert unknown == {}, f"install lines name extras pyproject.toml does not define: {unknown}"


def test_every_framework_example_says_how_to_install_its_extra() -> None:
    for example in sorted((ROOT / "examples" / "frameworks").glob("*.py")):
        lines = INSTALL.findall(example.read_text())
        assert lines, f"{example.name} has no `pip install -e '.[<extra>]'` line"
        assert all(extra in EXTRAS for line in lines for extra in line.split(",")), (example.name, lines)
