#!/usr/bin/env bash
# BENCHMARKS.md "End-to-end load": each shipped scenario against a fresh service, open loop
# at a fixed rate (verified afterwards) and in step mode (the knee), on the embedded log
# (`boxoffice serve`) or on Kafka (`boxoffice engine` + `boxoffice ingress`, two processes,
# fresh topics per run on the broker at $KAFKA_BOOTSTRAP).
#
#   loadgen/e2e-bench.sh embedded|kafka [scenario...]
#
# Scenarios: flash-sale stadium-onsale theatre (default: all three), each as `NAME` (both
# runs), `NAME:open` or `NAME:step`. Environment: OUT (results, default
# /tmp/loadgen-e2e), KAFKA_BOOTSTRAP (default 127.0.0.1:19092), STEP_SECONDS (default 8),
# P99_MS (step mode's p99 threshold, default 50), STEP_START (step mode's first rate,
# default per scenario), BIN (directory of the boxoffice and loadgen binaries, default the
# release build), QUIET_LOAD (on a shared machine: wait up to QUIET_WAIT seconds, default
# 60, before each run for the 1-minute load average to fall under this).
# Every run leaves OUT/<log>-<scenario>-<open|step>/ with report.json, the SVG plots and
# loadgen's printed report (loadgen.out); data directories are deleted after each run.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_KIND="${1:?usage: $0 embedded|kafka [scenario[:open|:step]...]}"
shift
SCENARIOS=("$@")
if [[ ${#SCENARIOS[@]} == 0 ]]; then SCENARIOS=(flash-sale stadium-onsale theatre); fi
OUT="${OUT:-/tmp/loadgen-e2e}"
BROKERS="${KAFKA_BOOTSTRAP:-127.0.0.1:19092}"
STEP_SECONDS="${STEP_SECONDS:-8}"
P99_MS="${P99_MS:-50}"
B="${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice/target}/release}"
QUIET_LOAD="${QUIET_LOAD:-}"
QUIET_WAIT="${QUIET_WAIT:-60}"
mkdir -p "$OUT"
DATA="$(mktemp -d /tmp/loadgen-data.XXXXXX)"
PIDS=()
stop_service() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_service; rm -rf "$DATA"' EXIT

# Waits for "$2" in file $1 and prints the rest of that line.
wait_line() {
  for _ in $(seq 1 600); do
    if grep -q "$2" "$1" 2>/dev/null; then sed -n "s/.*$2//p" "$1" | head -1; return; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1
}

start_service() {
  local name="$1"
  rm -rf "${DATA:?}"/*
  export BOXOFFICE_RATE_LIMIT_ENABLED=false RUST_LOG=warn
  if [[ "$LOG_KIND" == embedded ]]; then
    "$B/boxoffice" serve --listen 127.0.0.1:0 --data-dir "$DATA/serve" >"$DATA/serve.out" 2>"$DATA/serve.err" &
    PIDS+=($!)
    TARGET="$(wait_line "$DATA/serve.out" "listening on ")"
    # the run records the engine's state hash
    OPERATOR_KEY="--operator-key demo-operator-key"
  else
    local unique; unique="loadgen-$name-$(date +%s%N)"
    export BOXOFFICE_LOG_KIND=kafka BOXOFFICE_KAFKA_BROKERS="$BROKERS" \
      BOXOFFICE_KAFKA_REQUESTS_TOPIC="$unique-requests" \
      BOXOFFICE_KAFKA_OUTCOMES_TOPIC="$unique-outcomes" \
      BOXOFFICE_KAFKA_TRANSACTIONAL_ID="$unique"
    "$B/boxoffice" engine --role primary --node a --operator-listen 127.0.0.1:0 --data-dir "$DATA/a" >"$DATA/engine.out" 2>"$DATA/engine.err" &
    PIDS+=($!)
    OPERATOR="$(wait_line "$DATA/engine.out" "operator endpoint on ")"
    "$B/boxoffice" ingress --listen 127.0.0.1:0 --data-dir "$DATA/ingress" >"$DATA/ingress.out" 2>"$DATA/ingress.err" &
    PIDS+=($!)
    TARGET="$(wait_line "$DATA/ingress.out" "listening on ")"
    # the engine's own operator endpoint gives the run its state hash
    OPERATOR_KEY="--operator-key demo-operator-key --engine-target $OPERATOR"
    echo "   topics $unique-requests / $unique-outcomes, engine operator endpoint $OPERATOR"
  fi
}

# The scaled-down shapes used for BENCHMARKS.md (full-size flash-sale and theatre).
args_for() {
  case "$1" in
    flash-sale:open) echo "" ;;
    flash-sale:step) echo "--mode step --step-start ${STEP_START:-500} --step-seconds $STEP_SECONDS --p99-threshold-ms $P99_MS --duration 120" ;;
    stadium-onsale:open) echo "--scale 0.25 --rate 2000 --duration 30" ;;
    stadium-onsale:step) echo "--scale 0.25 --mode step --step-start ${STEP_START:-500} --step-seconds $STEP_SECONDS --p99-threshold-ms $P99_MS --duration 120" ;;
    theatre:open) echo "--duration 30" ;;
    theatre:step) echo "--mode step --step-start ${STEP_START:-250} --step-seconds $STEP_SECONDS --p99-threshold-ms $P99_MS --duration 120 --requests 10000000" ;;
    *) echo "unknown run $1" >&2; exit 2 ;;
  esac
}

for item in "${SCENARIOS[@]}"; do
  scenario="${item%%:*}"
  if [[ "$item" == *:* ]]; then kinds=("${item#*:}"); else kinds=(open step); fi
  for kind in "${kinds[@]}"; do
    run="$LOG_KIND-$scenario-$kind"
    if [[ -n "$QUIET_LOAD" ]]; then
      for _ in $(seq 1 "$QUIET_WAIT"); do
        awk -v max="$QUIET_LOAD" '{exit !($1 < max)}' /proc/loadavg && break
        sleep 1
      done
    fi
    echo "== $run ($(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg))"
    start_service "$scenario-$kind"
    rm -rf "${OUT:?}/$run"; mkdir -p "$OUT/$run"
    # shellcheck disable=SC2046
    "$B/loadgen" run "config/scenarios/$scenario.toml" --target "$TARGET" --verify $OPERATOR_KEY --quiet \
      $(args_for "$scenario:$kind") --out "$OUT/$run" 2>&1 | tee "$OUT/$run/loadgen.out" | grep -E "responses in|^all |^step |knee|warning|verification" || true
    stop_service
  done
done
