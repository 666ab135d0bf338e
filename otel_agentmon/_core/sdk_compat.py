"""The one place otel_agentmon touches private OpenTelemetry SDK API.

``opentelemetry-instrument`` loads configurators from the ``opentelemetry_configurator`` entry
point and calls ``configure(auto_instrumentation_version=...)`` on an instance; the SDK's base
class for them, ``_BaseConfigurator``, is private. Tests pin the behaviour we rely on to the
SDK versions pyproject allows, so a change there fails our CI rather than users' start-up.

One other private detail is read, never relied on: ``BoundedAttributes._dict`` in the span
processor's start check and in ``_dialects`` (a plain dict answers a missing key ~10x faster);
both fall back to the public mapping when it is absent.
"""

from __future__ import annotations

from typing import Any

try:
    from opentelemetry.sdk._configuration import _BaseConfigurator as ConfiguratorBase
except ImportError:  # pragma: no cover - only if a future SDK drops it; the loader needs no base
    class ConfiguratorBase:  # type: ignore[no-redef]
        """Stand-in with the same calling convention."""

        def configure(self, **kwargs: Any) -> None:
            self._configure(**kwargs)

        def _configure(self, **kwargs: Any) -> None:
            raise NotImplementedError

__all__ = ["ConfiguratorBase"]
