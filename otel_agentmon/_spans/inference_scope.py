"""One inference span per model call, however many layers see the call.

A model call is often seen by several layers at once: the framework's model abstraction (a
LangChain chat model, a smolagents ``Model``, the OpenAI Agents SDK's generation span, a CrewAI
LLM) and, below it, the LLM client library that sends the request (``openai``, ``anthropic``).
Each layer can emit an inference span (``chat {model}``, CLIENT). Two spans for one call would
double the call count and, worse, the tokens and the cost.

The rule: **the outermost layer wins.** A layer that emits an inference span marks the call,
either by making its span current (then :func:`inside_inference` sees it through the OTel
context) or, when its span is not current (callback- and processor-based integrations), by
running the call inside :func:`inference_scope` or by registering a probe that answers from
the framework's own notion of "the current step". A lower layer (an LLM client
instrumentation) that finds the mark stands down: it emits no span and records no metric for
that call.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator

from opentelemetry import trace

from .._core.guard import report_internal_error
from .._names.semconv import GEN_AI_OPERATION_NAME, INFERENCE_OPERATIONS

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("agentmon_inference_active", default=False)
_PROBES: list[Callable[[], bool]] = []
_PROBES_LOCK = threading.Lock()


@contextlib.contextmanager
def inference_scope() -> Iterator[None]:
    """Mark everything run inside the block as part of an inference span already emitted."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def register_probe(probe: Callable[[], bool]) -> None:
    """Add a check answering "is the caller inside a model call some layer already spans?".

    For integrations whose inference span is not the current OTel span (callback or processor
    hooks): e.g. "the framework's current step is a generation". Probes must be cheap and must
    not raise (one that raises counts as "no" and is reported once).
    """
    with _PROBES_LOCK:
        if probe not in _PROBES:
            _PROBES.append(probe)


def unregister_probe(probe: Callable[[], bool]) -> None:
    with _PROBES_LOCK:
        if probe in _PROBES:
            _PROBES.remove(probe)


def _current_span_is_inference() -> bool:
    span = trace.get_current_span()
    if not span.is_recording():
        return False
    attributes = getattr(span, "attributes", None)
    if attributes is None:
        return False
    try:
        return attributes.get(GEN_AI_OPERATION_NAME) in INFERENCE_OPERATIONS
    except Exception:  # noqa: BLE001  # a foreign span type with odd attributes: not ours to judge
        return False


def inside_inference() -> bool:
    """True when the current call is already covered by an inference span from another layer."""
    if _ACTIVE.get() or _current_span_is_inference():
        return True
    for probe in tuple(_PROBES):
        try:
            if probe():
                return True
        except Exception:  # noqa: BLE001  # a broken probe must never reach the model call
            report_internal_error("inference probe")
    return False
