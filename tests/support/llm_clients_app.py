"""A plain agent calling the OpenAI and Anthropic SDKs directly, with only ``configure()``.

Run as ``python -m tests.support.llm_clients_app`` with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set: the
clients are imported after ``configure()`` (as in most programs), answer from a scripted transport
(``llm_stubs``), and two of the calls run inside ``inference_scope()``, as under a framework that
already spans its model calls. Prints how each client was instrumented, then ``done``.
"""

from __future__ import annotations

import otel_agentmon as am
from otel_agentmon._spans.inference_scope import inference_scope
from tests.support import llm_stubs as st


def main() -> None:
    monitor = am.configure(service_name="llm-clients-app")
    oa = st.openai_clients()[0]  # imports openai: configure()'s import hook instruments it
    an = st.anthropic_clients()[0]
    with am.agent("weather"):
        oa.chat.completions.create(model=st.OPENAI_MODEL, messages=st.USER)
        an.messages.create(model=st.ANTHROPIC_MODEL, max_tokens=64, messages=st.USER)
        with an.messages.stream(model=st.ANTHROPIC_MODEL, max_tokens=64, messages=st.USER) as stream:
            assert "".join(stream.text_stream) == "It is sunny."
        with inference_scope():  # a framework spans these two itself: the client layer stands down
            oa.chat.completions.create(model=st.OPENAI_MODEL, messages=st.USER)
            an.messages.create(model=st.ANTHROPIC_MODEL, max_tokens=64, messages=st.USER)
    print(sorted(monitor._llm_clients.how.items()) if monitor._llm_clients else None)
    monitor.shutdown()
    print("done")


if __name__ == "__main__":
    main()
