"""``SpanRecord``: one finished span as ``agentmon serve``, the analytics engine and reports see it.

A record is small, flat and JSON-friendly. It is built either from an SDK ``ReadableSpan``
(in-process) or from an OTLP protobuf span (``agentmon serve``), always through
``_dialects.normalize``, so spans from any instrumentation land with the same fields.
Recordings are JSON Lines, one ``{"type": "span", ...}`` object per line.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Final, Literal

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from .._core.sdk_compat import fast_attributes
from .._names import semconv as sc
from .._names.dialects import normalize

Kind = Literal["agent", "task", "tool", "llm", "workflow", "other"]
#: Attribute values kept on a record (everything else lives in the exported trace).
_MAX_ATTRS: Final = 32
_MAX_VALUE_CHARS: Final = 256
SERVICE_INSTANCE_ID: Final = "service.instance.id"


@dataclasses.dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span, in standard names."""

    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_id: str | None
    name: str
    kind: Kind
    start_ns: int  # Unix epoch, nanoseconds
    end_ns: int
    service: str = "unknown_service"
    instance: str = ""  # service.instance.id: one per process
    agent: str | None = None  # gen_ai.agent.name
    task_type: str | None = None  # agentmon.task.type
    tool: str | None = None  # gen_ai.tool.name
    workflow: str | None = None  # gen_ai.workflow.name
    model: str | None = None  # gen_ai.request.model (else response model)
    operation: str | None = None  # gen_ai.operation.name
    error: str | None = None  # error.type, "_OTHER" for an error status without one
    input_tokens: int = 0
    output_tokens: int = 0
    attributes: Mapping[str, str | int | float | bool] = dataclasses.field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    def to_json(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["type"] = "span"
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SpanRecord:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})  # type: ignore[arg-type]  # values of a recording we wrote: the fields are filtered, not re-typed


def classify(attrs: Mapping[str, object]) -> Kind:
    """A record's kind from standard attributes: a task wins over the operation it performs."""
    if sc.AGENTMON_TASK_TYPE in attrs:
        return "task"
    op = attrs.get(sc.GEN_AI_OPERATION_NAME)
    if op == sc.OP_INVOKE_AGENT:
        return "agent"
    if op == sc.OP_EXECUTE_TOOL:
        return "tool"
    if op == sc.OP_INVOKE_WORKFLOW:
        return "workflow"
    if op in sc.INFERENCE_OPERATIONS:
        return "llm"
    return "other"


def build(*, trace_id: int, span_id: int, parent_id: int | None, name: str, start_ns: int,
          end_ns: int, attrs: Mapping[str, object], scope: str | None, is_root: bool,
          error_status: bool, resource: Mapping[str, object]) -> SpanRecord:
    """A record from raw span parts (shared by the SDK and OTLP paths)."""
    std = normalize(name, attrs, scope, is_root, fast_attributes(attrs))
    error = std.get(sc.ERROR_TYPE)
    if error is None and error_status:
        error = "_OTHER"
    model = std.get(sc.GEN_AI_REQUEST_MODEL, std.get(sc.GEN_AI_RESPONSE_MODEL))
    kept: dict[str, str | int | float | bool] = {}
    for key, value in attrs.items():
        if len(kept) >= _MAX_ATTRS:
            break
        if isinstance(value, str):
            kept[key] = value[:_MAX_VALUE_CHARS]
        elif isinstance(value, (int, float, bool)):
            kept[key] = value
    return SpanRecord(
        trace_id=f"{trace_id:032x}", span_id=f"{span_id:016x}",
        parent_id=None if parent_id is None else f"{parent_id:016x}", name=name,
        kind=classify(std), start_ns=start_ns, end_ns=end_ns,
        service=_str(resource.get(sc.SERVICE_NAME)) or "unknown_service",
        instance=_str(resource.get(SERVICE_INSTANCE_ID)) or "",
        agent=_str(std.get(sc.GEN_AI_AGENT_NAME)), task_type=_str(std.get(sc.AGENTMON_TASK_TYPE)),
        tool=_str(std.get(sc.GEN_AI_TOOL_NAME)), workflow=_str(std.get(sc.GEN_AI_WORKFLOW_NAME)),
        model=_str(model), operation=_str(std.get(sc.GEN_AI_OPERATION_NAME)),
        error=None if error is None else str(error),
        input_tokens=_int(std.get(sc.GEN_AI_USAGE_INPUT_TOKENS)),
        output_tokens=_int(std.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)), attributes=kept)


def from_readable(span: ReadableSpan) -> SpanRecord:
    """A record from a finished SDK span."""
    parent = span.parent
    scope = span.instrumentation_scope
    return build(trace_id=span.context.trace_id, span_id=span.context.span_id,
                 parent_id=None if parent is None else parent.span_id, name=span.name,
                 start_ns=span.start_time or 0, end_ns=span.end_time or span.start_time or 0,
                 attrs=span.attributes or {}, scope=None if scope is None else scope.name,
                 is_root=parent is None or parent.is_remote,
                 error_status=span.status.status_code is StatusCode.ERROR,
                 resource=span.resource.attributes)


def dump(records: Iterable[SpanRecord], out: IO[str]) -> int:
    """Write records as JSON Lines; returns how many were written."""
    n = 0
    for record in records:
        out.write(json.dumps(record.to_json(), separators=(",", ":")))
        out.write("\n")
        n += 1
    return n


def load(lines: Iterable[str]) -> Iterator[SpanRecord]:
    """Read the span records of a JSON Lines recording (other line types are skipped)."""
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        data = json.loads(text)
        if isinstance(data, dict) and data.get("type") == "span":
            yield SpanRecord.from_json(data)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
