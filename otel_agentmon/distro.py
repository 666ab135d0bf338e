"""Zero-code setup: ``opentelemetry-instrument`` with otel_agentmon as distro and configurator.

::

    OTEL_PYTHON_DISTRO=agentmon OTEL_PYTHON_CONFIGURATOR=agentmon \\
    OTEL_SERVICE_NAME=my-swarm opentelemetry-instrument python my_swarm.py

The configurator calls :func:`otel_agentmon.configure` from the environment (every option has
an ``OTEL_*`` / ``OTEL_AGENTMON_*`` variable), then instruments the classes and functions named
in ``OTEL_AGENTMON_INSTRUMENT``. The distro defaults ``OTEL_PYTHON_CONFIGURATOR`` to ours, and
loads otel_agentmon's own framework instrumentors *after* every other instrumentor, so that when
another instrumentation of the same framework is present ours can see it and stand down.

Where an official OpenTelemetry GenAI instrumentation of a framework is installed next to ours and
ours is the better default (LangGraph, the OpenAI Agents SDK, smolagents: docs/frameworks.md,
"Official GenAI instrumentations vs ours"), the distro leaves the official one off, so there is one
span tree, ours; ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=agentmon_<framework>`` chooses the
official one instead.

No instrumentor is instrumented twice: one that is already active (say, the application or our
configurator started it) is skipped, and when our configurator has run, the stock
``system_metrics`` entry point is left to it (``configure()`` instruments system metrics as its
``system_metrics`` option says: the default set, all, or none). The same goes for the official GenAI
LLM-client instrumentations: ``configure()`` instruments them as its ``llm_clients`` option says.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]  # untyped module

from ._core.guard import log_once
from ._core.sdk_compat import ConfiguratorBase
from ._setup.llm_clients import SPECS
from .instrumentation._official import ours_stands_in

NAME: Final = "agentmon"
_OWN_PREFIX: Final = "agentmon_"  # our opentelemetry_instrumentor entry-point names
#: Entry points whose instrumentor configure() owns once our configurator has run.
_CONFIGURED_BY_US: Final = frozenset({"system_metrics"})
#: ... and the instrumentors (entry-point values) of the LLM clients configure() instruments.
_LLM_CLIENTS_BY_US: Final = frozenset(spec.instrumentor for spec in SPECS.values())
_deferred: list[tuple[Any, dict[str, Any]]] = []
_configured = False  # our configurator ran configure() (it runs before the instrumentors)
_log = logging.getLogger("otel_agentmon")


class AgentmonDistro(BaseDistro):  # type: ignore[misc]  # BaseDistro comes from an untyped module
    """``OTEL_PYTHON_DISTRO=agentmon``."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", NAME)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        name = str(getattr(entry_point, "name", ""))
        if name.startswith(_OWN_PREFIX):
            _deferred.append((entry_point, kwargs))  # instrumented by post_instrument()
            return
        if _configured and (name in _CONFIGURED_BY_US or getattr(entry_point, "value", None) in _LLM_CLIENTS_BY_US):
            _log.debug("%s: left to otel_agentmon.configure()", name)
            return
        disabled = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
        ours = ours_stands_in(str(getattr(entry_point, "value", "")), disabled)
        if ours is not None:
            log_once(logging.INFO, f"distro:official:{name}",
                     "%s (%s): not enabled, %s traces this framework (set OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=%s "
                     "to use the official instrumentation instead)", name, entry_point.value, ours, ours)
            return
        _instrument_once(entry_point, kwargs)


def _instrument_once(entry_point: Any, kwargs: dict[str, Any]) -> None:
    """What ``BaseDistro.load_instrumentor`` does, minus a second ``instrument()`` of an active one."""
    instrumentor = entry_point.load()()
    if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
        _log.debug("%s: already instrumented", getattr(entry_point, "name", entry_point))
        return
    instrumentor.instrument(**kwargs)


def post_instrument() -> None:
    """``opentelemetry_post_instrument`` hook: our framework instrumentors, last."""
    while _deferred:
        entry_point, kwargs = _deferred.pop(0)
        try:
            _instrument_once(entry_point, kwargs)
        except ModuleNotFoundError:
            pass  # the framework is not installed: nothing to instrument
        except Exception:  # noqa: BLE001
            log_once(logging.WARNING, f"distro:{entry_point.name}", "instrumenting %s failed",
                     entry_point.name, exc_info=True)


class AgentmonConfigurator(ConfiguratorBase):
    """``OTEL_PYTHON_CONFIGURATOR=agentmon``."""

    def _configure(self, **kwargs: Any) -> None:
        global _configured
        from ._setup.configure import configure
        from ._spans.zero_code import install_from_env

        try:
            configure()
        except Exception:  # noqa: BLE001 - a start-up hook must never stop the program
            log_once(logging.ERROR, "distro:configure", "otel_agentmon could not configure", exc_info=True)
            return
        _configured = True
        try:
            install_from_env()
        except Exception:  # noqa: BLE001
            log_once(logging.ERROR, "distro:instrument", "OTEL_AGENTMON_INSTRUMENT could not be applied",
                     exc_info=True)
