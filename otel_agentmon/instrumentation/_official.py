"""The official OpenTelemetry GenAI instrumentations of the frameworks we also instrument, and which
of the two is the default (the comparison behind it: docs/frameworks.md, "Official GenAI
instrumentations vs ours"; the benchmark: benchmarks/bench_official.py).

For LangGraph, the OpenAI Agents SDK and smolagents ours is the default: on the same scripted runs
the official packages (1.3b0 / 1.2b0) give LangGraph graphs no agent span (a named graph is an
``invoke_workflow``, nested graphs get no span, tool spans no agent), the Agents SDK no model-call
span of its own and ``error.type=_OTHER`` for every failure, and smolagents no tool span and no
model-call span for a model class of your own or an API model.

"The other stands down, never two trees":

* zero-code (``opentelemetry-instrument`` with our distro), where both are enabled because both
  are installed: the distro skips the official instrumentor of such a framework while ours is
  enabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=agentmon_<framework>`` chooses the official);
* in code, where you called the official instrumentor's ``instrument()`` yourself: that is your
  choice, so its spans are the tree and ours stands down for every run it traces (the per-run peer
  check each instrumentor makes), except that ours still adds the kinds of span it does not make
  (``FrameworkInstrumentor.complements_official``: model calls for the Agents SDK, tool and model
  calls for smolagents) under its spans; its spans feed otel_agentmon's metrics, tasks and health
  through the dialect view.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["OFFICIAL", "official_framework", "ours_stands_in"]

#: framework (our entry point ``agentmon_<framework>``) -> the official instrumentation's module
OFFICIAL: Final = {
    "langgraph": "opentelemetry.instrumentation.genai.langchain",
    "openai_agents": "opentelemetry.instrumentation.genai.openai_agents",
    "smolagents": "opentelemetry.instrumentation.genai.smolagents",
}
#: frameworks where the official instrumentation is the better default (none so far: see above)
OFFICIAL_DEFAULT: Final[frozenset[str]] = frozenset()
_OWN_PREFIX: Final = "agentmon_"


def official_framework(entry_point_value: str) -> str | None:
    """The framework whose official GenAI instrumentation ``module:Class`` is, if it is one of ours."""
    module = entry_point_value.split(":", 1)[0].strip()
    return next((fw for fw, official in OFFICIAL.items() if official == module), None)


def ours_stands_in(entry_point_value: str, disabled: Iterable[str]) -> str | None:
    """Our entry point that replaces the official instrumentor ``entry_point_value`` under zero-code
    (None: load the official one). ``disabled``: the names in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``."""
    framework = official_framework(entry_point_value)
    if framework is None or framework in OFFICIAL_DEFAULT:
        return None
    ours = _OWN_PREFIX + framework
    return None if ours in {name.strip() for name in disabled} else ours
