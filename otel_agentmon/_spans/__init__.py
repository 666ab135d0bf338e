"""Spans: the agent/task/tool/workflow/LLM operations, wrappers, context and class instrumentation."""
