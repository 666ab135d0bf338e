"""Emit one of our event log records (health changes, stuck tasks, alerts); never raises."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry import _logs
from opentelemetry._logs import SeverityNumber

from .guard import report_internal_error


def emit_event(logger: Callable[[], _logs.Logger], name: str, attrs: dict[str, Any], severity: SeverityNumber,
               body: str, context: Any = None) -> None:
    try:
        logger().emit(event_name=name, attributes=attrs, severity_number=severity,
                      severity_text=severity.name, body=body, context=context)
    except Exception:  # noqa: BLE001
        report_internal_error("health event")
    logging.getLogger("otel_agentmon.health").debug("%s", body)
