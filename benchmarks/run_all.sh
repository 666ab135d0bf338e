#!/usr/bin/env bash
# Run every otel_agentmon benchmark; JSON results (and a log) go to benchmarks/results/ (gitignored).
#
#   benchmarks/run_all.sh          # recorded run: pyperf defaults, 3 CPU reps, full rate steps (~13 min)
#   benchmarks/run_all.sh --fast   # quick look (~3 min); files get a _fast suffix
#
# Uses $PYTHON if set, else `python` (activate the venv first). ROUNDS=4 (a divisor of 20) runs
# pyperf's 20 worker processes as 4 interleaved passes of 5 (same number of values as the default).
# SNAPSHOT=REV measures otel_agentmon as of git revision REV (exported to a temporary directory and
# put first on PYTHONPATH), so commits landing in the work tree during the run cannot mix versions.
set -euo pipefail
cd "$(dirname "$0")/.."

FAST=""
case "${1:-}" in
  "") ;;
  --fast) FAST="--fast" ;;
  *) echo "usage: $0 [--fast]" >&2; exit 2 ;;
esac
PY="${PYTHON:-python}"
ROUNDS="${ROUNDS:-1}"
REV="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if [[ -n "${SNAPSHOT:-}" ]]; then
  REV="$(git rev-parse --short "$SNAPSHOT")"
  SNAP="$(mktemp -d)"
  trap 'rm -rf "$SNAP"' EXIT
  git archive "$REV" otel_agentmon | tar -x -C "$SNAP"
  export PYTHONPATH="$SNAP${PYTHONPATH:+:$PYTHONPATH}"
fi
OUT=benchmarks/results
SUFFIX="${FAST:+_fast}"
mkdir -p "$OUT"
LOG="$OUT/run_all$SUFFIX.log"

load() { echo "   load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

{
  echo "# $(date '+%Y-%m-%d %H:%M:%S %z')  otel_agentmon $REV" \
       "from $(cd / && "$PY" -c 'import os, otel_agentmon as m; print(os.path.dirname(m.__file__))')" \
       "$("$PY" -V 2>&1)  nproc=$(nproc)  ROUNDS=$ROUNDS  $0 $*"
  load  # other processes on this box skew every number: run it quiet

  echo "## bench_spans.py (pyperf)"
  rm -f "$OUT/bench_spans$SUFFIX.json"  # pyperf will not overwrite
  if [[ -z "$FAST" && "$ROUNDS" -gt 1 ]]; then
    # pyperf's 20 processes split into ROUNDS passes over all benchmarks, appended to one file:
    # every benchmark then samples the same stretches of time, so load drift hits all alike.
    for round in $(seq "$ROUNDS"); do
      echo "   round $round/$ROUNDS"
      "$PY" benchmarks/bench_spans.py --quiet --processes $((20 / ROUNDS)) \
          --append "$OUT/bench_spans.json" > /dev/null
    done
    "$PY" benchmarks/bench_spans.py --report "$OUT/bench_spans.json" --summary "$OUT/bench_spans_ratios.json"
  else
    "$PY" benchmarks/bench_spans.py $FAST --quiet -o "$OUT/bench_spans$SUFFIX.json" \
        --summary "$OUT/bench_spans_ratios$SUFFIX.json"
  fi

  load
  echo "## cpu_cost.py"
  "$PY" benchmarks/cpu_cost.py $FAST --out "$OUT/cpu_cost$SUFFIX.json"

  load
  echo "## e2e.py"
  "$PY" benchmarks/e2e.py $FAST --out "$OUT/e2e$SUFFIX.json"
  load
} 2>&1 | tee "$LOG"
