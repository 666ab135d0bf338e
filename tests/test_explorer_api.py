"""The trace explorer's API in ``agentmon serve``: a span's full detail (attributes, events,
exception, status, links, resource), the task search and its filters, deep-link pages."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_agentmon._names import semconv as sc
from otel_agentmon.serve import Limits, ServeConfig, Server
from tests.test_serve import PB, agent_spans, body_of, get_json, post

LONG = "x" * 1000


def failed_task(agent: str = "fetcher", message: str = "upstream timed out") -> list[ReadableSpan]:
    """An agent whose task fails in its tool: the OTel SDK records the exception on both spans."""
    mem = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("plain.sdk")
    with tracer.start_as_current_span("earlier") as earlier:
        linked = earlier.get_span_context()
    task_attrs = {sc.AGENTMON_TASK_TYPE: "fetch", sc.GEN_AI_AGENT_NAME: agent, "long.text": LONG, "tags": ["a", "b"]}
    agent_attrs = {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: agent}
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes=agent_attrs), \
            pytest.raises(TimeoutError), \
            tracer.start_as_current_span("task fetch", kind=SpanKind.SERVER, links=[Link(linked, {"why": "retry"})],
                                         attributes=task_attrs) as task:
        task.add_event("checkpoint", {"step": 1})
        with tracer.start_as_current_span("execute_tool lookup", attributes={
                sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "lookup"}) as tool:
            tool.set_status(Status(StatusCode.ERROR, message))
            raise TimeoutError(message)
    provider.shutdown()
    return list(mem.get_finished_spans())


@pytest.fixture
def server() -> Iterator[Server]:
    config = ServeConfig(port=0, trace_link_template="http://jaeger:16686/trace/{trace_id}")
    with Server(config) as srv:
        yield srv


def by_name(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in trace["spans"]}


def test_a_failed_task_shows_its_exception_status_attributes_events_links_and_resource(server: Server) -> None:
    spans = failed_task()
    assert post(server, "/v1/traces", body_of(spans), {"Content-Type": PB})[0] == 200
    task = next(s for s in spans if s.name == "task fetch")
    trace_id = f"{task.context.trace_id:032x}"
    trace = get_json(server, f"/api/trace/{trace_id}")
    assert trace["external"] == f"http://jaeger:16686/trace/{trace_id}" and not trace["truncated"]
    spans_by_name = by_name(trace)
    shown = spans_by_name["task fetch"]
    assert shown["exception"]["type"] == "TimeoutError" and shown["exception"]["message"] == "upstream timed out"
    assert 'raise TimeoutError(message)' in shown["exception"]["stacktrace"]
    assert shown["status"]["code"] == "ERROR" and shown["span_kind"] == "SERVER" and shown["scope"] == "plain.sdk"
    assert shown["attributes"]["long.text"] == LONG  # whole, not the record's 256 characters
    assert shown["attributes"]["tags"] == '["a","b"]'  # an array, as compact JSON text
    assert shown["attributes"][sc.AGENTMON_TASK_TYPE] == "fetch"
    assert [e["name"] for e in shown["events"]] == ["checkpoint", "exception"]
    assert shown["events"][0]["attributes"] == {"step": 1}
    [link] = shown["links"]
    earlier = next(s for s in spans if s.name == "earlier")
    assert (link["trace_id"], link["span_id"], link["attributes"]) == (
        f"{earlier.context.trace_id:032x}", f"{earlier.context.span_id:016x}", {"why": "retry"})
    resource = trace["resources"][shown["resource"]]
    assert resource["service.name"] == "svc" and resource["deployment.environment"] == "test"
    # drawing a large trace: each span's place, timing and outcome only; then one span in full
    tree = by_name(get_json(server, f"/api/trace/{trace_id}?view=tree"))
    assert set(tree) == set(spans_by_name) and "attributes" not in tree["task fetch"]
    assert tree["task fetch"]["exc"] and not tree["invoke_agent fetcher"]["exc"] and tree["task fetch"]["error"]
    one = get_json(server, f"/api/trace/{trace_id}?detail={shown['span_id']}")
    assert [s["name"] for s in one["spans"]] == ["task fetch"] and one["spans"][0]["exception"] == shown["exception"]
    assert one["resources"] == trace["resources"][:1]
    tool = spans_by_name["execute_tool lookup"]
    assert tool["status"]["code"] == "ERROR" and "upstream timed out" in tool["status"]["message"]
    assert tool["resource"] == shown["resource"]  # one resource for the process's spans


def test_search_filters_and_sorts_tasks(server: Server) -> None:
    post(server, "/v1/traces", body_of(agent_spans(3, agent="researcher")), {"Content-Type": PB})
    post(server, "/v1/traces", body_of(agent_spans(2, agent="writer", fail=True)), {"Content-Type": PB})
    post(server, "/v1/traces", body_of(failed_task()), {"Content-Type": PB})

    def names(params: str) -> list[tuple[str, str | None]]:
        rows = get_json(server, "/api/search?" + params)["rows"]
        return [(r["name"], r["agent"]) for r in rows]

    # the rows are tasks (an agent run another instrumentation made counts as one), and the roots of
    # traces with none ("earlier")
    everything = get_json(server, "/api/search")
    assert everything["total"] == 10 and everything["rows"][0]["name"] == "invoke_agent fetcher"  # newest first
    assert everything["facets"]["agents"] == ["fetcher", "researcher", "writer"]
    assert everything["facets"]["task_types"] == ["fetch", "invoke_agent", "research"]
    assert everything["facets"]["tools"] == ["lookup", "web_search"]
    assert names("agent=writer") == [("invoke_agent writer", "writer")] + [("task research", "writer")] * 2
    assert names("status=error") == [("task fetch", "fetcher")] + [("task research", "writer")] * 2
    assert set(names("status=ok")) == {("invoke_agent writer", "writer"), ("earlier", None),
                                       ("invoke_agent fetcher", "fetcher"), ("invoke_agent researcher", "researcher"),
                                       ("task research", "researcher")}
    assert names("tool=lookup") == [("invoke_agent fetcher", "fetcher"), ("task fetch", "fetcher")]
    # free text: an exception message, in any case, found in the task's subtree only
    assert names("q=UPSTREAM%20timed") == [("invoke_agent fetcher", "fetcher"), ("task fetch", "fetcher")]
    assert names("q=checkpoint&task_type=fetch") == [("task fetch", "fetcher")]
    assert names("q=web_search&agent=researcher") == [("invoke_agent researcher", "researcher")] \
        + [("task research", "researcher")] * 3
    assert names("q=nothing-like-this") == []
    trace_id = everything["rows"][0]["trace_id"]
    assert names(f"trace_id={trace_id[:10]}") == [("invoke_agent fetcher", "fetcher"), ("task fetch", "fetcher")]
    assert everything["rows"][0]["link"] == f"http://jaeger:16686/trace/{trace_id}"
    durations = [r["duration"] for r in get_json(server, "/api/search?sort=duration")["rows"]]
    assert durations == sorted(durations, reverse=True)
    assert [r["duration"] for r in get_json(server, "/api/search?sort=-duration")["rows"]] == sorted(durations)
    longest = durations[0]
    assert {r["duration"] for r in get_json(server, f"/api/search?min_s={longest}")["rows"]} == {longest}
    shortest = durations[-1]
    assert {r["duration"] for r in get_json(server, f"/api/search?max_s={shortest}")["rows"]} == {shortest}
    assert get_json(server, f"/api/search?max_s={longest}")["total"] == 10
    assert get_json(server, "/api/search?limit=2")["total"] == 10
    assert len(get_json(server, "/api/search?limit=2")["rows"]) == 2
    assert get_json(server, "/api/search?min_s=nan&limit=x&sort=bogus")["total"] == 10  # bad values: ignored


def test_details_are_charged_to_the_store_budget_and_leave_with_their_span() -> None:
    with Server(ServeConfig(port=0, limits=Limits(max_spans=4))) as srv:
        post(srv, "/v1/traces", body_of(failed_task()), {"Content-Type": PB})  # 4 spans, one 1,000 characters long
        with_detail = srv.store.bytes
        post(srv, "/v1/traces", body_of(agent_spans(1)), {"Content-Type": PB})  # 3 spans: 3 of the first go
        srv.store.expire()
        assert srv.store.span_count == 4
        kept = {r.span_id for r in srv.store.spans()}
        for trace_id in {r.trace_id for r in srv.store.spans()}:
            _, details = srv.store.trace_details(trace_id)
            assert set(details) <= kept  # no detail outlives its span
        assert with_detail > 4 * 900 + 1000  # the long text and the stack trace count
        total = sum(entry[2] for entry in srv.store._spans)
        assert srv.store.bytes == total


@pytest.mark.parametrize("path", ["/traces", "/traces/0123456789abcdef0123456789abcdef",
                                  "/traces/0123456789abcdef0123456789abcdef?span=0123456789abcdef"])
def test_deep_links_answer_the_page(server: Server, path: str) -> None:
    with urllib.request.urlopen(server.url + path, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        assert b"<!doctype html>" in resp.read()[:100]


def test_the_stream_sends_no_empty_state_first(server: Server) -> None:
    with urllib.request.urlopen(server.url + "/api/stream", timeout=10) as resp:
        line = b""
        while not line.startswith(b"data: "):
            line = resp.readline()
    assert json.loads(line[6:])["swarm"]["agents"] == 0  # a built state, not "{}"


def test_the_trace_link_template_option(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import otel_agentmon.serve
    from otel_agentmon import cli

    seen: list[ServeConfig] = []

    def refuse(config: ServeConfig) -> None:  # stands in for Server: what it was configured with
        seen.append(config)
        raise OSError("port taken")

    monkeypatch.setattr(otel_agentmon.serve, "Server", refuse)
    template = "http://jaeger:16686/trace/{trace_id}"
    assert cli.main(["serve", "--port", "0", "--trace-link-template", template]) == 1
    assert seen[0].trace_link_template == template
    for bad in ("jaeger:16686/trace/{trace_id}", "http://jaeger:16686/search"):
        with pytest.raises(SystemExit) as exited:
            cli.main(["serve", "--trace-link-template", bad])
        assert exited.value.code == 2
        assert "must be an http(s) address containing {trace_id}" in capsys.readouterr().err
