"""pyperf: what configure()'s LLM-client instrumentation costs per model call, on the caller's thread.

Run (from the repo root)::

    python benchmarks/bench_llm_clients.py -o benchmarks/results/bench_llm_clients.json   # recorded run
    python benchmarks/bench_llm_clients.py --fast                                           # quick look

Each call is a real SDK call over ``MockTransport`` (the scripted answers of
``tests/support/llm_stubs.py``): JSON parsing, the SDK's request building and response models are
in every number, the network is not. A monitor as ``configure()`` builds it (private providers, our
span processor and derivation, exporters off so nothing is sent) instruments the client through the
official GenAI instrumentation plus our stand-down wrapper. Benchmarks:

  openai_chat_bare              client.chat.completions.create, nothing instrumented
  openai_chat_configured        the same with configure()'s instrumentation: one CLIENT span + metrics
  openai_chat_stood_down        the same inside inference_scope(): the client layer stands down
  openai_chat_stream_bare       a streamed chat completion (4 SSE events, usage last), consumed
  openai_chat_stream_configured the same, instrumented
  anthropic_bare                client.messages.create, with the SDK's native tracing off
  anthropic_configured          the same, instrumented (official instrumentation)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyperf  # type: ignore[import-untyped]

from tests.support import llm_stubs as st

_state: dict[str, Any] = {}


def _monitor() -> None:
    from otel_agentmon._setup.monitor import _configure_for_testing

    if "monitor" not in _state:
        _state["monitor"] = _configure_for_testing(
            {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none",
             "system_metrics": "off", "health": False, "service_name": "bench"}, [], None)


def _openai_chat() -> None:
    _state["openai"].chat.completions.create(model=st.OPENAI_MODEL, messages=st.USER)


def _openai_stream() -> None:
    for _ in _state["openai"].chat.completions.create(model=st.OPENAI_MODEL, messages=st.USER, stream=True,
                                                      stream_options={"include_usage": True}):
        pass


def _anthropic() -> None:
    _state["anthropic"].messages.create(model=st.ANTHROPIC_MODEL, max_tokens=64, messages=st.USER)


def _timed(call: Callable[[], None], *, instrumented: bool, covered: bool = False) -> Callable[[int], float]:
    def run(loops: int) -> float:
        if instrumented:
            _monitor()
        if "openai" not in _state:
            _state["openai"] = st.openai_clients()[0]
            _state["anthropic"] = st.anthropic_clients(open_telemetry=False)[0]
        call()  # warm the SDK's lazy imports and caches outside the timing
        if covered:
            from otel_agentmon._spans.inference_scope import inference_scope

            with inference_scope():
                start = time.perf_counter()
                for _ in range(loops):
                    call()
                return time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(loops):
            call()
        return time.perf_counter() - start

    return run


def main() -> None:
    runner = pyperf.Runner()
    runner.bench_time_func("openai_chat_bare", _timed(_openai_chat, instrumented=False))
    runner.bench_time_func("openai_chat_configured", _timed(_openai_chat, instrumented=True))
    runner.bench_time_func("openai_chat_stood_down", _timed(_openai_chat, instrumented=True, covered=True))
    runner.bench_time_func("openai_chat_stream_bare", _timed(_openai_stream, instrumented=False))
    runner.bench_time_func("openai_chat_stream_configured", _timed(_openai_stream, instrumented=True))
    runner.bench_time_func("anthropic_bare", _timed(_anthropic, instrumented=False))
    runner.bench_time_func("anthropic_configured", _timed(_anthropic, instrumented=True))


if __name__ == "__main__":
    main()
