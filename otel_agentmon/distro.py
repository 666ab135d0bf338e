"""Zero-code setup: ``opentelemetry-instrument`` with otel_agentmon as distro and configurator.

::

    OTEL_PYTHON_DISTRO=agentmon OTEL_PYTHON_CONFIGURATOR=agentmon \\
    OTEL_SERVICE_NAME=my-swarm opentelemetry-instrument python my_swarm.py

The configurator calls :func:`otel_agentmon.configure` from the environment (every option has
an ``OTEL_*`` / ``OTEL_AGENTMON_*`` variable), then instruments the classes and functions named
in ``OTEL_AGENTMON_INSTRUMENT``. The distro defaults ``OTEL_PYTHON_CONFIGURATOR`` to ours, and
loads otel_agentmon's own framework instrumentors *after* every other instrumentor, so that when
another instrumentation of the same framework is present ours can see it and stand down.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]  # untyped module

from ._guard import log_once
from ._sdk_compat import ConfiguratorBase

NAME: Final = "agentmon"
_OWN_PREFIX: Final = "agentmon_"  # our opentelemetry_instrumentor entry-point names
_deferred: list[tuple[Any, dict[str, Any]]] = []


class AgentmonDistro(BaseDistro):  # type: ignore[misc]
    """``OTEL_PYTHON_DISTRO=agentmon``."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", NAME)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if str(getattr(entry_point, "name", "")).startswith(_OWN_PREFIX):
            _deferred.append((entry_point, kwargs))  # instrumented by post_instrument()
            return
        super().load_instrumentor(entry_point, **kwargs)


def post_instrument() -> None:
    """``opentelemetry_post_instrument`` hook: our framework instrumentors, last."""
    while _deferred:
        entry_point, kwargs = _deferred.pop(0)
        try:
            entry_point.load()().instrument(**kwargs)
        except ModuleNotFoundError:
            pass  # the framework is not installed: nothing to instrument
        except Exception:  # noqa: BLE001
            log_once(logging.WARNING, f"distro:{entry_point.name}", "instrumenting %s failed",
                     entry_point.name, exc_info=True)


class AgentmonConfigurator(ConfiguratorBase):
    """``OTEL_PYTHON_CONFIGURATOR=agentmon``."""

    def _configure(self, **kwargs: Any) -> None:
        from ._monitor import configure
        from ._zero_code import install_from_env

        try:
            configure()
        except Exception:  # noqa: BLE001 - a start-up hook must never stop the program
            log_once(logging.ERROR, "distro:configure", "otel_agentmon could not configure", exc_info=True)
            return
        install_from_env()
