"""The LLM-client layer stands down when another layer already spans the model call.

The rule (``_spans/inference_scope``): the outermost layer wins. The official GenAI client
instrumentations are built on ``opentelemetry-util-genai``, which has its own form of the rule: an
inference started while the context holds ``CLIENT_INFERENCE_CONTEXT_KEY`` (an outer util-genai
inference) is *suppressed*: no span, no metric, no event. Our integrations mark a call differently
(a current span of ours, ``inference_scope()``, or a probe into the framework's own state), so a
thin wrapper goes on top of every method the official instrumentation wrapped: when
:func:`inside_inference` says the call is covered, it runs the call with that key set, and the
official instrumentation suppresses itself by its own rule.

The Anthropic SDK's native spans (``com.anthropic.sdk.python``) are made by the client itself;
each client reads its tracer from ``BaseClient._tracer`` at every request, and answers "no tracer"
(no span) while :func:`inside_inference` is true.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Final

import wrapt
from opentelemetry.context import attach, detach, set_value

from .._core.guard import report_internal_error
from .._spans.inference_scope import inside_inference

_MARK: Final = "_agentmon_stand_down"
#: the Anthropic client's property its requests read their tracer from (None: no span)
_ANTHROPIC_TRACER: Final = "_tracer"


def _covered() -> bool:
    try:
        return inside_inference()
    except Exception:  # noqa: BLE001 - never in the way of the model call
        report_internal_error("llm client stand-down")
        return False


class StandDown:
    """The wrappers this process put on one client library's instrumented methods."""

    def __init__(self) -> None:
        self.active = True
        self._wrapped: list[tuple[type, str, object]] = []  # (class, method name, our wrapper)
        self._key: str | None = None
        self._data: Callable[[], object] | None = None

    def _suppressed_context(self) -> Any:
        if self._key is None:
            from opentelemetry.util.genai.invocation import CLIENT_INFERENCE_CONTEXT_KEY, InferenceData

            self._key, self._data = CLIENT_INFERENCE_CONTEXT_KEY, InferenceData
        assert self._data is not None
        return set_value(self._key, self._data())  # a throwaway: what the inner call publishes goes nowhere

    def _wrapper(self, wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
        if not self.active or not _covered():
            return wrapped(*args, **kwargs)
        token = attach(self._suppressed_context())
        try:
            result = wrapped(*args, **kwargs)
        finally:
            detach(token)
        if inspect.iscoroutine(result):
            return self._awaited(result)
        if hasattr(result, "__enter__") or hasattr(result, "__aenter__"):
            return _EnteredSuppressed(result, self)  # a stream manager starts its invocation on entry
        return result

    async def _awaited(self, coro: Coroutine[Any, Any, Any]) -> Any:
        token = attach(self._suppressed_context())
        try:
            return await coro
        finally:
            detach(token)

    def wrap_changed(self, cls: type, before: dict[str, object]) -> None:
        """Put the stand-down wrapper on each method of ``cls`` that changed since ``before``
        (a copy of ``vars(cls)`` taken before the instrumentation ran)."""
        for name, value in list(vars(cls).items()):
            if before.get(name) is value or not callable(value) or name.startswith("__"):
                continue
            wrapper = wrapt.FunctionWrapper(value, self._wrapper)
            setattr(wrapper, _MARK, True)
            setattr(cls, name, wrapper)
            self._wrapped.append((cls, name, wrapper))

    def remove(self) -> None:
        """Take our wrappers off (before the instrumentation uninstruments: it unwraps the outermost
        wrapper). One something else wrapped on top of stays, passing calls straight through."""
        self.active = False
        for cls, name, wrapper in reversed(self._wrapped):
            if vars(cls).get(name) is wrapper:
                setattr(cls, name, getattr(wrapper, "__wrapped__"))  # noqa: B009 - wrapt's proxy attribute
        self._wrapped.clear()


class _EnteredSuppressed(wrapt.ObjectProxy[Any]):
    """A stream manager whose entry runs suppressed too (``messages.stream()`` starts its inference in
    ``__enter__``, after the method returned)."""

    def __init__(self, manager: object, stand_down: StandDown) -> None:
        super().__init__(manager)
        self._self_stand_down = stand_down

    def __enter__(self) -> Any:
        token = attach(self._self_stand_down._suppressed_context())  # noqa: SLF001 - its owner's helper
        try:
            return self.__wrapped__.__enter__()
        finally:
            detach(token)

    def __exit__(self, *exc: object) -> Any:
        return self.__wrapped__.__exit__(*exc)

    async def __aenter__(self) -> Any:
        token = attach(self._self_stand_down._suppressed_context())  # noqa: SLF001
        try:
            return await self.__wrapped__.__aenter__()
        finally:
            detach(token)

    async def __aexit__(self, *exc: object) -> Any:
        return await self.__wrapped__.__aexit__(*exc)


class NativeAnthropicStandDown:
    """Anthropic clients make no native span while the call is covered by another layer."""

    def __init__(self) -> None:
        self._cls: type | None = None
        self._original: property | None = None

    def install(self) -> bool:
        try:
            from anthropic._base_client import BaseClient
        except ImportError:
            return False
        original = vars(BaseClient).get(_ANTHROPIC_TRACER)
        if not isinstance(original, property) or original.fget is None or getattr(original.fget, _MARK, False):
            return False
        read = original.fget

        def tracer(client: object) -> object:
            return None if _covered() else read(client)

        setattr(tracer, _MARK, True)
        quiet = property(tracer, doc=original.__doc__)
        setattr(BaseClient, _ANTHROPIC_TRACER, quiet)
        self._cls, self._original = BaseClient, original
        return True

    def remove(self) -> None:
        if self._cls is not None and self._original is not None:
            setattr(self._cls, _ANTHROPIC_TRACER, self._original)
        self._cls = self._original = None


#: OpenAI Agents SDK trace processors (by module) known to span each model call with its tokens
#: from the SDK's generation/response span, without making it the current OTel span. Ours
#: registers its own probe; the official GenAI one and OpenLLMetry's make no such span.
_AGENTS_MODEL_SPANNERS: Final = ("openinference.",)


def agents_sdk_model_call_spanned() -> bool:
    """Inference probe: the Agents SDK's current span is a model call that a registered peer trace
    processor (OpenInference) turns into an inference span, so the LLM client under it stands down."""
    from agents.tracing import get_current_span, get_trace_provider

    data = getattr(get_current_span(), "span_data", None)
    if type(data).__name__ not in ("GenerationSpanData", "ResponseSpanData"):
        return False
    multi = getattr(get_trace_provider(), "_multi_processor", None)  # the SDK keeps no public list
    processors = getattr(multi, "_processors", ())
    return any(type(p).__module__.startswith(_AGENTS_MODEL_SPANNERS) for p in processors or ())
