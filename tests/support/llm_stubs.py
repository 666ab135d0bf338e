"""Real LLM client SDKs over a scripted HTTP transport of their own HTTP library.

Each stub answers like the provider's API, as JSON or as a server-sent-event stream, with known
token usage, so a test can check every span's tokens and the token metrics' sums. The clients are
the real ``openai``, ``anthropic`` and ``google-genai`` clients; only the network is replaced
(``MockTransport`` of ``httpx2`` where the SDK uses it, else ``httpx``).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from typing import Any, Final

http: Any = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")

#: (input, output) tokens each scripted answer reports
OPENAI_CHAT: Final = (10, 5)
OPENAI_CHAT_STREAM: Final = (9, 3)
OPENAI_RESPONSES: Final = (7, 2)
OPENAI_RESPONSES_STREAM: Final = (8, 4)
ANTHROPIC: Final = (13, 6)
ANTHROPIC_STREAM: Final = (12, 5)
GEMINI: Final = (11, 4)
OPENAI_MODEL: Final = "gpt-4o-mini"
ANTHROPIC_MODEL: Final = "claude-sonnet-4-5"
GEMINI_MODEL: Final = "gemini-2.5-flash"


def _sse(events: list[tuple[str | None, dict[str, Any]]], done: bool = False) -> Any:
    text = "".join((f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n" for name, data in events)
    if done:
        text += "data: [DONE]\n\n"
    return http.Response(200, text=text, headers={"content-type": "text/event-stream"})


def _chat_chunk(delta: dict[str, Any], finish: str | None, usage: dict[str, int] | None = None) -> dict[str, Any]:
    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
    chunk: dict[str, Any] = {"id": "cc-s", "object": "chat.completion.chunk", "created": 0, "model": OPENAI_MODEL,
                             "choices": choices}
    if usage:
        chunk["usage"] = usage
    return chunk


def _response(rid: str, tokens: tuple[int, int], status: str = "completed") -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": 0, "status": status, "model": OPENAI_MODEL,
            "output": [{"type": "message", "id": "m1", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "It is sunny.", "annotations": []}]}],
            "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1], "total_tokens": sum(tokens),
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}


def openai_answer(request: Any) -> Any:
    body = json.loads(request.content)
    if request.url.path.endswith("/chat/completions"):
        if body.get("stream"):
            inp, out = OPENAI_CHAT_STREAM
            return _sse([(None, _chat_chunk({"role": "assistant", "content": "It is "}, None)),
                         (None, _chat_chunk({"content": "sunny."}, None)),
                         (None, _chat_chunk({}, "stop")),
                         (None, _chat_chunk({}, None, {"prompt_tokens": inp, "completion_tokens": out,
                                                       "total_tokens": inp + out}))], done=True)
        inp, out = OPENAI_CHAT
        return http.Response(200, json={
            "id": "cc-1", "object": "chat.completion", "created": 0, "model": OPENAI_MODEL,
            "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "It is sunny."},
                         "finish_reason": "stop"}]})
    if request.url.path.endswith("/responses"):
        if body.get("stream"):
            done = _response("resp-s", OPENAI_RESPONSES_STREAM)
            return _sse([("response.created", {"type": "response.created", "sequence_number": 0,
                                               "response": {**_response("resp-s", (0, 0), "in_progress"),
                                                            "output": [], "usage": None}}),
                         ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 1,
                                                         "item_id": "m1", "output_index": 0, "content_index": 0,
                                                         "delta": "It is sunny.", "logprobs": []}),
                         ("response.completed", {"type": "response.completed", "sequence_number": 2,
                                                 "response": done})])
        return http.Response(200, json=_response("resp-1", OPENAI_RESPONSES))
    return http.Response(404, json={"error": {"message": "not scripted"}})


def anthropic_answer(request: Any) -> Any:
    body = json.loads(request.content)
    if body.get("stream"):
        inp, out = ANTHROPIC_STREAM
        message: dict[str, Any] = {
            "id": "msg-s", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": inp, "output_tokens": 1}}
        return _sse([("message_start", {"type": "message_start", "message": message}),
                     ("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}}),
                     ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": "It is sunny."}}),
                     ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                     ("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                        "usage": {"output_tokens": out}}),
                     ("message_stop", {"type": "message_stop"})])
    inp, out = ANTHROPIC
    return http.Response(200, json={
        "id": "msg-1", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL,
        "content": [{"type": "text", "text": "It is sunny."}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": inp, "output_tokens": out}})


def gemini_answer(request: Any) -> Any:
    inp, out = GEMINI
    return http.Response(200, json={
        "candidates": [{"content": {"role": "model", "parts": [{"text": "It is sunny."}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": inp, "candidatesTokenCount": out, "totalTokenCount": inp + out},
        "modelVersion": GEMINI_MODEL})


def openai_clients() -> tuple[Any, Any]:
    """(OpenAI, AsyncOpenAI) answering from ``openai_answer``."""
    import openai

    base = "http://stub.invalid/v1"
    return (openai.OpenAI(api_key="offline", base_url=base,
                          http_client=http.Client(transport=http.MockTransport(openai_answer))),
            openai.AsyncOpenAI(api_key="offline", base_url=base,
                               http_client=http.AsyncClient(transport=http.MockTransport(openai_answer))))


def anthropic_clients(**options: Any) -> tuple[Any, Any]:
    """(Anthropic, AsyncAnthropic) answering from ``anthropic_answer``."""
    import anthropic

    base = "http://stub.invalid"
    return (anthropic.Anthropic(api_key="offline", base_url=base, **options,
                                http_client=http.Client(transport=http.MockTransport(anthropic_answer))),
            anthropic.AsyncAnthropic(api_key="offline", base_url=base, **options,
                                     http_client=http.AsyncClient(transport=http.MockTransport(anthropic_answer))))


def gemini_client() -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(api_key="offline", http_options=types.HttpOptions(
        httpx_client=http.Client(transport=http.MockTransport(gemini_answer)),
        httpx_async_client=http.AsyncClient(transport=http.MockTransport(gemini_answer))))


USER: Final = [{"role": "user", "content": "Weather in Paris?"}]
