"""Every semantic-convention name otel_agentmon emits, in one place.

GenAI names follow the OpenTelemetry GenAI semantic conventions (semantic-conventions-genai
``main`` as of 2026-08-03, matching ``opentelemetry-util-genai`` 1.3b0). Our own names live
under ``agentmon.*``. Nothing else in the package spells a convention name as a literal.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

#: The conventions version these names were taken from (recorded as the schema URL).
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.41.0"

# --- gen_ai.operation.name values -------------------------------------------------------------
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
OP_CHAT: Final = "chat"
OP_EMBEDDINGS: Final = "embeddings"
OP_CREATE_AGENT: Final = "create_agent"
OP_TEXT_COMPLETION: Final = "text_completion"
INFERENCE_OPERATIONS: Final = frozenset({"chat", "generate_content", "text_completion"})

# --- GenAI attributes ---------------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"  # opt-in content
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"  # opt-in content
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"

# --- General attributes -------------------------------------------------------------------------
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# --- agentmon attributes ------------------------------------------------------------------------
AGENTMON_TASK_TYPE: Final = "agentmon.task.type"
AGENTMON_TASK_ID: Final = "agentmon.task.id"
AGENTMON_TASK_OUTCOME: Final = "agentmon.task.outcome"
AGENTMON_SWARM_NAME: Final = "agentmon.swarm.name"
AGENTMON_AGENT_ROLE: Final = "agentmon.agent.role"
AGENTMON_HEALTH_STATE: Final = "agentmon.health.state"
#: ``agentmon.health.state`` values (``stopped``: shut down cleanly or retired; never unhealthy)
HEALTH_STATES: Final = ("healthy", "degraded", "unhealthy", "stopped")
HEALTH_STOPPED: Final = "stopped"
#: What an agent is doing: ``busy`` (a task runs), ``idle`` (alive, no task), ``stopped``, ``down``
AGENTMON_AGENT_LIFECYCLE: Final = "agentmon.agent.lifecycle"
LIFECYCLE_BUSY: Final = "busy"
LIFECYCLE_IDLE: Final = "idle"
LIFECYCLE_STOPPED: Final = "stopped"
LIFECYCLE_DOWN: Final = "down"
AGENTMON_ALERT_RULE: Final = "agentmon.alert.rule"
AGENTMON_ALERT_SEVERITY: Final = "agentmon.alert.severity"

# --- agentmon health/alert log records and span events (emitted by _health, read by serve) ---
AGENTMON_HEALTH_PREVIOUS_STATE: Final = "agentmon.health.previous_state"
AGENTMON_HEALTH_REASONS: Final = "agentmon.health.reasons"
EVENT_HEALTH_CHANGED: Final = "agentmon.health.changed"
AGENTMON_TASK_AGE: Final = "agentmon.task.age"
EVENT_TASK_STUCK: Final = "agentmon.task.stuck"
AGENTMON_ALERT_STATE: Final = "agentmon.alert.state"
AGENTMON_ALERT_PREVIOUS_STATE: Final = "agentmon.alert.previous_state"
AGENTMON_ALERT_THRESHOLD: Final = "agentmon.alert.threshold"
AGENTMON_ALERT_SIGNAL: Final = "agentmon.alert.signal"
AGENTMON_ALERT_VALUE: Final = "agentmon.alert.value"
AGENTMON_ALERT_LABEL_PREFIX: Final = "agentmon.alert.label."
EVENT_ALERT: Final = "agentmon.alert"

OUTCOME_SUCCESS: Final = "success"
OUTCOME_ERROR: Final = "error"
OUTCOME_CANCELLED: Final = "cancelled"

# --- GenAI metrics (name, unit, advised explicit buckets) ---------------------------------------
M_INVOKE_AGENT_DURATION: Final = "gen_ai.invoke_agent.duration"
M_EXECUTE_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"
M_INVOKE_WORKFLOW_DURATION: Final = "gen_ai.invoke_workflow.duration"
M_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
M_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
M_INVOKE_AGENT_TOOL_CALLS: Final = "gen_ai.invoke_agent.tool_calls"
M_INVOKE_AGENT_INFERENCE_CALLS: Final = "gen_ai.invoke_agent.inference_calls"

UNIT_SECONDS: Final = "s"
UNIT_TOKEN: Final = "{token}"
UNIT_TOOL_CALL: Final = "{tool_call}"
UNIT_INFERENCE_CALL: Final = "{inference_call}"
UNIT_TASK: Final = "{task}"

BUCKETS_CLIENT_DURATION: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
BUCKETS_TOKEN_USAGE: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
BUCKETS_AGENT_DURATION: Final = (
    0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6,
)  # fmt: skip
BUCKETS_WORKFLOW_DURATION: Final = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
BUCKETS_CALLS: Final = (1, 2, 4, 8, 16, 32, 64, 128)
# execute_tool uses the client-duration buckets (semconv "same as client duration").
BUCKETS_TOOL_DURATION: Final = BUCKETS_CLIENT_DURATION

# --- agentmon metrics ---------------------------------------------------------------------------
M_TASKS_COMPLETED: Final = "agentmon.tasks.completed"
M_TASKS_IN_FLIGHT: Final = "agentmon.tasks.in_flight"
M_TASK_DURATION: Final = "agentmon.task.duration"
M_TASK_TOKEN_USAGE: Final = "agentmon.task.token.usage"
M_AGENT_BUSY_TIME: Final = "agentmon.agent.busy_time"
M_AGENT_UP: Final = "agentmon.agent.up"
M_AGENT_HEALTH: Final = "agentmon.agent.health"
M_TASK_OLDEST_AGE: Final = "agentmon.task.oldest_in_flight_age"
M_TASKS_STUCK: Final = "agentmon.tasks.stuck"
M_ALERT_FIRING: Final = "agentmon.alert.firing"
#: agentmon serve's per-second rate of a process's system.network.io counter (By/s)
M_PROCESS_NETWORK_IO_RATE: Final = "agentmon.process.network.io.rate"
UNIT_AGENT: Final = "{agent}"
UNIT_ALERT: Final = "{alert}"

# Tasks run from milliseconds (a cached lookup) to minutes (a research task).
BUCKETS_TASK_DURATION: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
)  # fmt: skip

# --- Resource -----------------------------------------------------------------------------------
SERVICE_NAME: Final = "service.name"
SERVICE_NAMESPACE: Final = "service.namespace"
SERVICE_VERSION: Final = "service.version"
TELEMETRY_DISTRO_NAME: Final = "telemetry.distro.name"
TELEMETRY_DISTRO_VERSION: Final = "telemetry.distro.version"

# --- Process and system metrics (system-metrics instrumentation) -------------------------------
PROCESS_CPU_UTILIZATION: Final = "process.cpu.utilization"
PROCESS_MEMORY_USAGE: Final = "process.memory.usage"
SYSTEM_NETWORK_IO: Final = "system.network.io"
NETWORK_IO_DIRECTION: Final = "network.io.direction"
NETWORK_IO_DIRECTION_LEGACY: Final = "direction"  # older system-metrics instrumentation

# Content-capture environment variable (util-genai semantics).
ENV_CAPTURE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# --- agentmon self-observability ------------------------------------------------------------------
#: span starts/ends (and tracked tasks) metric derivation lost under overload, by ``error.type``
M_DERIVATION_DROPPED: Final = "agentmon.derivation.dropped"
UNIT_SPAN: Final = "{span}"

# --- Exception events (read from other instrumentations' failed spans) -------------------------
EXCEPTION_EVENT: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"

# Message-content capture modes (the values of ENV_CAPTURE_CONTENT).
ContentMode: TypeAlias = Literal["NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT"]
