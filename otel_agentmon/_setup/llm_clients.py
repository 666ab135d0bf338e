"""LLM clients, automatically: ``configure()`` instruments every supported LLM client library the
application imports (option ``llm_clients``, ``AGENTMON_LLM_CLIENTS``).

Standards first: each client gets the official OpenTelemetry GenAI instrumentation
(``opentelemetry-instrumentation-genai-openai``, ``-genai-anthropic``,
``opentelemetry-instrumentation-google-genai``; core dependencies: small, pure-Python, built on
``opentelemetry-util-genai``), bound to the providers we export through, so its spans, metrics
and events go out with ours. An SDK that emits native GenAI spans gets nothing added: the
Anthropic SDKs that ship ``anthropic._tracing`` make one ``anthropic.messages.create`` CLIENT span
per call on the global tracer provider, so when that provider is ours (and
``ANTHROPIC_OPEN_TELEMETRY`` is not ``false``) they are left to it.

Nothing is imported before the application imports the client: a post-import hook instruments it
then (importing ``openai`` and ``anthropic`` takes seconds; configure() must not). A client the
application (or another distro) already instrumented is left as it is and never uninstrumented by
us; what we instrumented is uninstrumented at ``Monitor.shutdown()``. Every layer above the client
(a framework's model span) makes the client layer stand down (``llm_standdown``).

Content capture follows ``capture_content``: the official instrumentations read
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` when they are instrumented; a mode passed to
``configure()`` is lent to them through that variable only when the user did not set it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterator
from types import FrameType, ModuleType
from typing import Any, Final

import wrapt

from .._core.guard import log_once, report_internal_error
from .._names.semconv import ENV_CAPTURE_CONTENT, ContentMode
from .._spans.inference_scope import register_probe
from .llm_standdown import NativeAnthropicStandDown, StandDown, agents_sdk_model_call_spanned
from .option_values import LLM_CLIENT_NAMES, LLMClients

_ANTHROPIC_ENABLED: Final = "ANTHROPIC_OPEN_TELEMETRY"
_ANTHROPIC_CONTENT: Final = "ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE"
_EMIT_EVENT: Final = "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"


@dataclasses.dataclass(frozen=True)
class ClientSpec:
    name: str  # the option value, and the extra that installs the client
    module: str  # what the application imports
    instrumentor: str  # "module:Class" of the official instrumentation
    package: str  # its distribution
    classes: tuple[str, ...]  # "module:Class" whose instrumented methods get the stand-down wrapper


SPECS: Final[dict[str, ClientSpec]] = {s.name: s for s in (
    ClientSpec("openai", "openai", "opentelemetry.instrumentation.genai.openai:OpenAIInstrumentor",
               "opentelemetry-instrumentation-genai-openai",
               ("openai.resources.chat.completions:Completions", "openai.resources.chat.completions:AsyncCompletions",
                "openai.resources.responses.responses:Responses",
                "openai.resources.responses.responses:AsyncResponses")),
    ClientSpec("anthropic", "anthropic", "opentelemetry.instrumentation.genai.anthropic:AnthropicInstrumentor",
               "opentelemetry-instrumentation-genai-anthropic",
               ("anthropic.resources.messages:Messages", "anthropic.resources.messages:AsyncMessages",
                "anthropic.resources.beta.messages:Messages", "anthropic.resources.beta.messages:AsyncMessages")),
    ClientSpec("google-genai", "google.genai",
               "opentelemetry.instrumentation.google_genai:GoogleGenAiSdkInstrumentor",
               "opentelemetry-instrumentation-google-genai",
               ("google.genai.models:Models", "google.genai.models:AsyncModels")),
)}  # fmt: skip
assert tuple(SPECS) == LLM_CLIENT_NAMES

_lock = threading.RLock()
_active: LLMClientInstrumentation | None = None  # the running monitor's; import hooks report to it
_hooked: set[str] = set()  # post-import hooks are registered once per process


def chosen(option: LLMClients) -> tuple[str, ...]:
    if option == "auto":
        return LLM_CLIENT_NAMES
    if option == "none":
        return ()
    return tuple(option)


def anthropic_native_spans() -> bool:
    """This Anthropic SDK makes its own GenAI spans, and the environment does not turn them off."""
    try:
        shipped = importlib.util.find_spec("anthropic._tracing") is not None
    except (ImportError, ValueError):
        shipped = False
    return shipped and os.environ.get(_ANTHROPIC_ENABLED, "").strip().lower() != "false"


@contextlib.contextmanager
def _content_env(mode: ContentMode) -> Iterator[None]:
    """Lend ``mode`` to an official instrumentation while it reads it, unless the user set the variable."""
    if mode == "NO_CONTENT" or os.environ.get(ENV_CAPTURE_CONTENT, "").strip():
        yield
        return
    os.environ[ENV_CAPTURE_CONTENT] = mode
    try:
        yield
    finally:
        os.environ.pop(ENV_CAPTURE_CONTENT, None)


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class LLMClientInstrumentation:
    """The LLM clients one monitor instrumented (or left to their native spans)."""

    def __init__(self, clients: tuple[str, ...], providers: dict[str, object], content: ContentMode, *,
                 native_ok: bool) -> None:
        self.clients = clients
        self.how: dict[str, str] = {}  # client -> "official" | "native" | "already instrumented" | why not
        self._providers = providers
        self._content = content
        self._native_ok = native_ok
        self._closed = False
        self._ours: list[tuple[Any, StandDown]] = []
        self._native: NativeAnthropicStandDown | None = None
        self._env_set: list[str] = []

    def start(self) -> None:
        global _active
        with _lock:
            if _active is not None or not self.clients:
                return  # another monitor's instrumentation is running: it stays in charge
            _active = self
            if "openai" in self.clients and "agents" not in _hooked:
                _hooked.add("agents")  # the OpenAI Agents SDK under a peer instrumentation: see the probe
                wrapt.register_post_import_hook(lambda _m: register_probe(agents_sdk_model_call_spanned), "agents")
            for name in self.clients:
                if name not in _hooked:
                    _hooked.add(name)
                    wrapt.register_post_import_hook(_on_import(name), SPECS[name].module)
                elif _imported(SPECS[name].module):
                    self.imported(name)

    def imported(self, name: str) -> None:
        """The application imported client ``name`` (called once per client)."""
        with _lock:
            if self._closed or name in self.how or name not in self.clients:
                return
            try:
                self.how[name] = self._instrument(SPECS[name])
            except Exception:  # noqa: BLE001 - the application's import must go on
                self.how[name] = "failed"
                report_internal_error(f"instrumenting {name}")

    def _instrument(self, spec: ClientSpec) -> str:
        if spec.name == "anthropic" and self._native_ok and anthropic_native_spans():
            native = NativeAnthropicStandDown()
            if native.install():
                self._native = native
            if self._content in ("SPAN_ONLY", "SPAN_AND_EVENT") and not os.environ.get(_ANTHROPIC_CONTENT):
                os.environ[_ANTHROPIC_CONTENT] = "content"  # read by clients constructed from now on
                self._env_set.append(_ANTHROPIC_CONTENT)
            return "native"
        module_name, _, cls_name = spec.instrumentor.partition(":")
        if _being_set_up(module_name, cls_name):
            return "already instrumented"  # the client was imported by its instrumentation, being set up now
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            log_once(logging.WARNING, f"llm:missing:{spec.name}",
                     "%s is in use but %s is not installed, so its calls get no inference span or token "
                     "metrics: pip install 'otel_agentmon[%s]'", spec.module, spec.package, spec.name)
            return "instrumentation not installed"
        instrumentor = getattr(module, cls_name)()
        if instrumentor.is_instrumented_by_opentelemetry:
            return "already instrumented"  # by the application: its setup stays as it is
        from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

        conflict = get_dependency_conflicts(instrumentor.instrumentation_dependencies())
        if conflict is not None:
            log_once(logging.WARNING, f"llm:conflict:{spec.name}",
                     "%s: %s is not instrumented, its calls get no inference span (%s)", spec.package,
                     spec.module, conflict)
            return "version not supported"
        classes = [_resolve(c) for c in spec.classes if _has(c)]
        before = {cls: dict(vars(cls)) for cls in classes}
        emit_before = os.environ.get(_EMIT_EVENT)
        with _content_env(self._content):
            instrumentor.instrument(skip_dep_check=True, **self._providers)
        if emit_before is None:
            # google-genai's instrumentation sets it to "true" for the whole process: every client's
            # every call would emit an event record; the default (events only with an EVENT content
            # mode, as capture_content says) is kept unless the user set the variable.
            os.environ.pop(_EMIT_EVENT, None)
        if not instrumentor.is_instrumented_by_opentelemetry:
            return "failed"
        stand_down = StandDown()
        self._ours.append((instrumentor, stand_down))
        for cls in classes:
            stand_down.wrap_changed(cls, before[cls])
        return "official"

    def shutdown(self) -> None:
        """Uninstrument what we instrumented; never what the application did."""
        global _active
        with _lock:
            if self._closed:
                return
            self._closed = True
            if _active is self:
                _active = None
            for instrumentor, stand_down in reversed(self._ours):
                try:
                    stand_down.remove()
                    instrumentor.uninstrument()
                except Exception:  # noqa: BLE001
                    report_internal_error("uninstrumenting an LLM client")
            self._ours.clear()
            if self._native is not None:
                self._native.remove()
            for name in self._env_set:
                os.environ.pop(name, None)
            self._env_set.clear()


def _has(path: str) -> bool:
    try:
        _resolve(path)
    except (ImportError, AttributeError):
        return False
    return True


def _being_set_up(module_name: str, cls_name: str) -> bool:
    """The official instrumentation is being imported or instrumented right now, further up this
    thread's stack (``opentelemetry-instrument``'s stock distro loading its entry point imports the
    client from there): instrumenting it from the import hook too would wrap every method twice."""
    import sys

    module = sys.modules.get(module_name)
    if module is not None and not hasattr(module, cls_name):
        return True  # partially imported
    frame: FrameType | None = sys._getframe(1)  # noqa: SLF001 - the one way to see an enclosing instrument() call
    while frame is not None:
        owner = frame.f_locals.get("self") if frame.f_code.co_name in ("instrument", "_instrument") else None
        if owner is not None and type(owner).__module__.startswith(module_name):
            return True
        frame = frame.f_back
    return False


def _imported(module: str) -> bool:
    import sys

    return module in sys.modules


def _on_import(name: str) -> Callable[[ModuleType], None]:
    def hook(_module: ModuleType) -> None:
        handle = _active
        if handle is not None:
            handle.imported(name)

    return hook


def start(clients: LLMClients, content: ContentMode, *, tracer_provider: object, meter_provider: object,
          logger_provider: object, native_ok: bool) -> LLMClientInstrumentation:
    """Instrument the chosen LLM clients now (those already imported) and as they are imported."""
    handle = LLMClientInstrumentation(
        chosen(clients), {"tracer_provider": tracer_provider, "meter_provider": meter_provider,
                          "logger_provider": logger_provider}, content, native_ok=native_ok)
    try:
        handle.start()
    except Exception:  # noqa: BLE001
        report_internal_error("LLM client instrumentation")
    return handle
