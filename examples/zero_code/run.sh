#!/usr/bin/env bash
# Run app.py unchanged with otel_agentmon as the OpenTelemetry distro and configurator.
# Spans and metrics go to OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318).
set -euo pipefail
cd "$(dirname "$0")"
export OTEL_PYTHON_DISTRO=agentmon OTEL_PYTHON_CONFIGURATOR=agentmon
export OTEL_SERVICE_NAME="${OTEL_SERVICE_NAME:-zero-code-swarm}"
export OTEL_AGENTMON_INSTRUMENT="research_team:Researcher.run=agent:@name; research_team:Researcher.handle=task:research;
research_team:Researcher.search=tool; research_team:Researcher.summarise=tool"
exec opentelemetry-instrument python app.py "$@"
