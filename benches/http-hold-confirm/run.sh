#!/usr/bin/env bash
# HTTP hold + confirm, on the embedded log and on Kafka, in one run sequence.
#
#   benches/http-hold-confirm/run.sh
#
# Each run starts fresh processes (release build, rate limits off) and drives them with
# `boxoffice loadgen run hold-confirm.toml --mode closed --concurrency $CLIENTS --no-think`
# for $DURATION seconds (with `--cpu-of` for every service process and the broker, so each
# figure comes with the CPU microseconds per response of each process and of loadgen, and
# of each process's threads by name: where a response's CPU goes, stage by stage, and
# with the CPU time the VM's host took from it, its steal, during the run),
# then verifies the server's state through the API:
#   embedded: `boxoffice serve` on a temporary data directory;
#   kafka:    `boxoffice engine` and `boxoffice ingress` (two processes) on fresh topics of
#             the broker at $KAFKA_BOOTSTRAP;
#   noop:     `boxoffice serve` as for embedded, driven the same way with `noop.toml`
#             (`GET /healthz` only): the same HTTP stack with no write behind it, the
#             baseline the two write paths are compared with.
#   returning: `boxoffice serve` as for embedded, driven with `hold-confirm-returning.toml`
#             (2,000 buyers, not 200,000: every request after the first seconds is a known
#             user's): beside `embedded`, what the standard run's fresh buyers cost.
# The sides alternate ($RUNS runs each) and the medians are printed at the end. Every
# other run takes the sides in reverse order (A B, B A, A B, ...): on this machine the side
# that runs second in a pair was the cheaper one in 16 of 22 pairs, whichever binary it was
# (BENCHMARKS.md, "Session 29"), so a fixed order favours one side by about 10%.
#
# Environment: RUNS (default 3), CLIENTS (32), DURATION (20), KAFKA_BOOTSTRAP
# (127.0.0.1:19092; start one with scripts/kafka.sh start), SIDES ("embedded kafka noop"),
# SHARDS (1): with more, `serve` runs that many engines (one embedded log pair each) and the
# Kafka side one `boxoffice engine --shard K` process per shard, behind one ingress. A side
# may name its own shard count, alternated with the others: SIDES="embeddedx1 embeddedx2
# embeddedx4" (or kafkax2...). Webhooks (issue 20): `hooklive` is `serve` with one webhook
# endpoint (booking.created, hold.expired) on a local receiver that answers 204 at once
# (`webhook_receiver`, benches/src/bin): the row adds the deliveries received during the
# load and after the backlog drained; `hookdead` is the same with a receiver that accepts
# and never answers (the engine's and serve's throughput beside `embedded`'s).
# BOXOFFICE_BIN_B: a second binary, which the side `embeddedb` serves with (`embedded`
# serves with BOXOFFICE_BIN; loadgen is always BOXOFFICE_BIN's): two commits compared in
# one sequence, SIDES="embedded embeddedb" RUNS=6, alternated run by run; the summary
# gives each pair's ratio of the server's CPU per response and its median.
# SERVE_CPUS (default empty: anywhere): the CPUs every `serve` side runs on
# (`http.cpus`, e.g. 0: the HTTP thread and the pipeline together on one CPU, the load
# generator on the other; BENCHMARKS.md, "Session 52"). Kafka's processes are not confined.
# KAFKA_WARMUP (seconds, default 120; 0 skips it): before the sequence, when a side runs on
# Kafka, one discarded run of that long warms the broker. A broker fresh from
# `scripts/kafka.sh start` runs cold (its JVM compiles as it goes): its CPU per response
# fell from 567 to 83 us over its first 35 runs of 8 s, and the Kafka side's requests/s rose
# from 1.6k to 5.5k with it (BENCHMARKS.md, "HTTP hold + confirm, session 16"), so without
# it the first sequence on a new broker measures the JIT, not Boxoffice. 120 s takes a cold
# broker past the worst of it (186 us per response on average over the warm-up), not all
# the way: for figures against the issue's bars, warm a new broker longer.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
RUNS="${RUNS:-3}"
CLIENTS="${CLIENTS:-32}"
DURATION="${DURATION:-20}"
KAFKA="${KAFKA_BOOTSTRAP:-127.0.0.1:19092}"
SIDES="${SIDES:-embedded kafka noop}"
SHARDS="${SHARDS:-1}"
SERVE_CPUS="${SERVE_CPUS:-}"
export BOXOFFICE_SHARDS="$SHARDS"
HERE=benches/http-hold-confirm
# The broker's pid, for its CPU figure (scripts/kafka.sh writes it; empty when absent).
KAFKA_PID="$(cat "${KAFKA_PID_FILE:-$HOME/.cache/boxoffice/kafka/run-${KAFKA##*:}/kafka.pid}" 2>/dev/null || true)"

# BOXOFFICE_BIN: a binary built before (to compare two commits in one sequence).
if [[ -z "${BOXOFFICE_BIN:-}" ]]; then
  cargo build --release -q -p boxoffice
fi
BOXOFFICE="${BOXOFFICE_BIN:-$CARGO_TARGET_DIR/release/boxoffice}"
if [[ "$SIDES" == *hook* ]]; then
  cargo build --release -q -p boxoffice-benches --bin webhook_receiver
fi
RECEIVER="$CARGO_TARGET_DIR/release/webhook_receiver"
WORK="$(mktemp -d /tmp/http-hold-confirm.XXXXXX)"
PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT
export BOXOFFICE_RATE_LIMIT_ENABLED=false RUST_LOG=warn

# wait_for FILE PATTERN PID: until FILE has a line matching PATTERN (at most 120 s).
wait_for() {
  for _ in $(seq 1 1200); do
    if grep -q "$2" "$1"; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then echo "process $3 exited:"; cat "$1" "${1%.out}.err"; exit 1; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1"; exit 1
}

start_embedded() {
  local run="$1"
  BOXOFFICE_HTTP_CPUS="$SERVE_CPUS" "$BOXOFFICE" --dev serve --listen 127.0.0.1:0 --data-dir "$WORK/embedded-$run" \
    >"$WORK/serve-$run.out" 2>"$WORK/serve-$run.err" &
  PIDS+=($!)
  CPU_OF=(--cpu-of "serve=$!")
  wait_for "$WORK/serve-$run.out" "^listening on" "$!"
  TARGET="$(sed -n 's/^listening on //p' "$WORK/serve-$run.out" | head -1)"
}

# start_receiver live|dead RUN: a webhook receiver; HOOK_URL is its address.
start_receiver() {
  "$RECEIVER" 127.0.0.1:0 "$1" "$WORK/received-$2" >"$WORK/receiver-$2.out" 2>"$WORK/receiver-$2.err" &
  PIDS+=($!)
  wait_for "$WORK/receiver-$2.out" "^listening on" "$!"
  HOOK_URL="$(sed -n 's/^listening on //p' "$WORK/receiver-$2.out" | head -1)/hook"
}

# create_hook: one endpoint of the demo tenant on HOOK_URL (loopback: serve runs with --dev).
create_hook() {
  local status
  status="$(curl -s -o "$WORK/hook.json" -w '%{http_code}' -X POST "$TARGET/v1/admin/webhooks" \
    -H "Authorization: Bearer demo-admin-key" -H "Content-Type: application/json" \
    -d "{\"url\": \"$HOOK_URL\", \"event_types\": [\"booking.created\", \"hold.expired\"]}")"
  if [[ "$status" != 201 ]]; then echo "creating the webhook endpoint: $status"; cat "$WORK/hook.json"; exit 1; fi
}

start_hooklive() {
  start_receiver live "$1"
  start_embedded "$1"
  create_hook
  HOOK_COUNT="$WORK/received-$1"
}

start_hookdead() {
  start_receiver dead "$1"
  start_embedded "$1"
  create_hook
  HOOK_COUNT=""
}

# hook_drain SIDE-RUN: the deliveries received when the load ended, then once the count has
# not moved for 2 s (at most 120 s), and how long that took.
hook_drain() {
  local during after last=-1 still=0 started
  during="$(cat "$HOOK_COUNT" 2>/dev/null || echo 0)"
  started="$(date +%s.%N)"
  for _ in $(seq 1 1200); do
    after="$(cat "$HOOK_COUNT" 2>/dev/null || echo 0)"
    if [[ "$after" == "$last" ]]; then still=$((still + 1)); else still=0; fi
    last="$after"
    if ((still >= 20)); then break; fi
    sleep 0.1
  done
  echo "$during $after $(echo "$(date +%s.%N) - $started - 2" | bc)" >"$WORK/$1.hook"
}

BOXOFFICE_B="${BOXOFFICE_BIN_B:-$BOXOFFICE}"
start_embeddedb() {
  local served_by="$BOXOFFICE"
  BOXOFFICE="$BOXOFFICE_B"
  start_embedded "$1"
  BOXOFFICE="$served_by"
}

start_noop() {
  start_embedded "noop-$1"
}

start_returning() {
  start_embedded "returning-$1"
}

start_kafka() {
  local run="$1" unique="http-bench-$$-$1-$(date +%s%N)"
  export BOXOFFICE_LOG_KIND=kafka BOXOFFICE_KAFKA_BROKERS="$KAFKA" \
    BOXOFFICE_KAFKA_REQUESTS_TOPIC="$unique-requests" BOXOFFICE_KAFKA_OUTCOMES_TOPIC="$unique-outcomes" \
    BOXOFFICE_KAFKA_TRANSACTIONAL_ID="$unique"
  CPU_OF=()
  for shard in $(seq 0 $((SHARDS - 1))); do
    BOXOFFICE_ENGINE_OPERATOR_LISTEN=127.0.0.1:0 "$BOXOFFICE" --dev engine --shard "$shard" \
      --data-dir "$WORK/kafka-$run" >"$WORK/engine-$run-$shard.out" 2>"$WORK/engine-$run-$shard.err" &
    PIDS+=($!)
    CPU_OF+=(--cpu-of "engine-$shard=$!")
    wait_for "$WORK/engine-$run-$shard.out" " is primary$" "$!"
  done
  if [[ -n "${KAFKA_PID:-}" ]]; then CPU_OF+=(--cpu-of "broker=$KAFKA_PID"); fi
  "$BOXOFFICE" --dev ingress --listen 127.0.0.1:0 --data-dir "$WORK/ingress-$run" >"$WORK/ingress-$run.out" 2>"$WORK/ingress-$run.err" &
  PIDS+=($!)
  CPU_OF+=(--cpu-of "ingress=$!")
  wait_for "$WORK/ingress-$run.out" "^listening on" "$!"
  TARGET="$(sed -n 's/^listening on //p' "$WORK/ingress-$run.out" | head -1)"
  unset BOXOFFICE_LOG_KIND BOXOFFICE_KAFKA_BROKERS BOXOFFICE_KAFKA_REQUESTS_TOPIC \
    BOXOFFICE_KAFKA_OUTCOMES_TOPIC BOXOFFICE_KAFKA_TRANSACTIONAL_ID
}

# The VM's steal time so far, in clock ticks (`/proc/stat`'s eighth CPU column: time the
# host ran other guests while this one wanted a CPU). A run's figure comes with the
# milliseconds stolen during it: on a shared host a slow stretch is often this, not the
# code (BENCHMARKS.md, "Session 50").
steal_ticks() { awk '/^cpu /{print $9}' /proc/stat; }

KAFKA_WARMUP="${KAFKA_WARMUP:-120}"
if [[ "$SIDES" == *kafka* ]] && ((KAFKA_WARMUP > 0)); then
  start_kafka warmup
  echo "== kafka warm-up, ${KAFKA_WARMUP} s, discarded: $TARGET"
  "$BOXOFFICE" loadgen run "$HERE/hold-confirm.toml" --target "$TARGET" --mode closed \
    --concurrency "$CLIENTS" --no-think --duration "$KAFKA_WARMUP" --quiet --no-plots \
    "${CPU_OF[@]}" --out "$WORK/warmup" >"$WORK/warmup.loadgen" || { cat "$WORK/warmup.loadgen"; exit 1; }
  grep -E "requests/s|^cpu" "$WORK/warmup.loadgen" || true
  stop_all
fi

RESULTS="$WORK/results.jsonl"
for run in $(seq 1 "$RUNS"); do
  order="$SIDES"
  if ((run % 2 == 0)); then order="$(echo "$SIDES" | tr ' ' '\n' | tac | tr '\n' ' ')"; fi
  for side in $order; do
    base="$side"
    if [[ "$side" =~ ^(embedded|kafka)x([0-9]+)$ ]]; then
      base="${BASH_REMATCH[1]}"
      SHARDS="${BASH_REMATCH[2]}"
      export BOXOFFICE_SHARDS="$SHARDS"
    fi
    # Dirty pages of earlier work (a build, the run before) are written back for up to
    # 30 s after it: behind them every fsync of the measured run waits (a 4 KiB overwrite
    # with O_DSYNC took 1.35 ms during a build's write-back against 0.15 ms quiet,
    # BENCHMARKS.md "Session 35"). Each run starts with the disk's queue empty.
    sync
    "start_$base" "$side-$run"
    scenario=hold-confirm
    if [[ "$side" == noop ]]; then scenario=noop; fi
    if [[ "$side" == returning ]]; then scenario=hold-confirm-returning; fi
    echo "== $side, run $run: $TARGET (load $(cut -d' ' -f1-3 /proc/loadavg))"
    steal_before="$(steal_ticks)"
    "$BOXOFFICE" loadgen run "$HERE/$scenario.toml" --target "$TARGET" --mode closed \
      --concurrency "$CLIENTS" --no-think --duration "$DURATION" --quiet --no-plots --verify \
      "${CPU_OF[@]}" --out "$WORK/$side-$run" >"$WORK/$side-$run.loadgen" || { cat "$WORK/$side-$run.loadgen"; exit 1; }
    echo $((($(steal_ticks) - steal_before) * 1000 / $(getconf CLK_TCK))) >"$WORK/$side-$run.steal"
    grep -E "^verification" "$WORK/$side-$run.loadgen" || true
    if [[ "$base" == hooklive ]]; then hook_drain "$side-$run"; fi
    stop_all
    python3 - "$side" "$WORK/$side-$run/report.json" "$WORK/$side-$run.hook" "$DURATION" "$WORK/$side-$run.steal" >>"$RESULTS" <<'PY'
import json, os, sys
side, path, hook, duration, steal = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
report = json.load(open(path))
kinds = report["measurements"]["kinds"]
row = {"side": side, "requests_per_second": report["achieved_rate_per_second"],
       "errors": report["measurements"].get("errors_by_code", {}),
       "steal_ms": int(open(steal).read())}
for kind in ("hold_best", "confirm", "noop"):
    if kind not in kinds:
        continue
    latency = kinds[kind]["latency"]
    row[kind] = {"count": kinds[kind]["count"], "ok": kinds[kind]["ok"],
                 "p50_ms": latency["p50_us"] / 1000, "p99_ms": latency["p99_us"] / 1000,
                 "p999_ms": latency["p999_us"] / 1000}
overall = report["measurements"]["overall"]
row["overall"] = {"p50_ms": overall["p50_us"] / 1000, "p99_ms": overall["p99_us"] / 1000,
                  "p999_ms": overall["p999_us"] / 1000}
# CPU per response of each process over the measured phase (loadgen --cpu-of).
row["cpu_us_per_response"] = {p["name"]: p["cpu_us_per_response"] for p in report.get("cpu", [])}
# ... and split by thread name: where a response's CPU goes, stage by stage.
row["cpu_threads"] = {p["name"]: {t["name"]: t["cpu_us_per_response"] for t in p.get("threads", [])}
                      for p in report.get("cpu", [])}
if os.path.exists(hook):
    during, after, drain_seconds = open(hook).read().split()
    row["webhooks"] = {"during_load": int(during), "total": int(after),
                       "drain_seconds": float(drain_seconds),
                       "bookings": kinds.get("confirm", {}).get("ok", 0)}
print(json.dumps(row))
PY
    tail -1 "$RESULTS"
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print()
print("| log | requests/s | hold p50 / p99 / p99.9 (ms) | confirm p50 / p99 / p99.9 (ms) | all p50 / p99 / p99.9 (ms) | CPU us per response (median) |")
print("|---|---|---|---|---|---|")
for side in dict.fromkeys(row["side"] for row in rows):
    mine = [row for row in rows if row["side"] == side]
    if not mine:
        continue
    median = lambda pick: statistics.median(pick(row) for row in mine)
    cells = []
    for kind in ("hold_best", "confirm", "overall"):
        if kind not in mine[0]:
            cells.append("-")
            continue
        cells.append(" / ".join(f"{median(lambda row: row[kind][p]):.1f}" for p in ("p50_ms", "p99_ms", "p999_ms")))
    rates = ", ".join(f"{row['requests_per_second']:,.0f}" for row in mine)
    names = sorted({name for row in mine for name in row.get("cpu_us_per_response", {})})
    cpu = ", ".join(f"{name} {median(lambda row: row['cpu_us_per_response'].get(name, 0)):.0f}" for name in names)
    print(f"| {side} | **{median(lambda row: row['requests_per_second']):,.0f}** ({rates}) | {cells[0]} | {cells[1]} | {cells[2]} | {cpu} |")
PY
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print()
for side in dict.fromkeys(row["side"] for row in rows):
    mine = [row for row in rows if row["side"] == side]
    for process in sorted({name for row in mine for name in row.get("cpu_threads", {})}):
        split = [row["cpu_threads"].get(process, {}) for row in mine]
        names = {name for threads in split for name in threads}
        medians = sorted(((statistics.median(threads.get(name, 0) for threads in split), name) for name in names),
                         reverse=True)
        cells = ", ".join(f"{name} {us:.1f}" for us, name in medians if us >= 0.1)
        print(f"{side} {process} by thread (median us per response): {cells}")
PY
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
rate = {side: statistics.median(row["requests_per_second"] for row in rows if row["side"] == side)
        for side in {row["side"] for row in rows}}
if "noop" in rate:
    print()
    for side in sorted(rate):
        if side != "noop":
            print(f"{side}: {rate[side] / rate['noop']:.0%} of the no-op endpoint's requests/s")
print()
for side in dict.fromkeys(row["side"] for row in rows):
    stolen = ", ".join(str(row["steal_ms"]) for row in rows if row["side"] == side)
    print(f"{side}: CPU time the VM's host took (steal) during each run, ms: {stolen}")
PY
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
serve = lambda side: [row["cpu_us_per_response"].get("serve") for row in rows if row["side"] == side]
pairs = [(a, b) for a, b in zip(serve("embedded"), serve("embeddedb")) if a and b]
if pairs:
    ratios = [b / a for a, b in pairs]
    print()
    print("embeddedb / embedded, serve's CPU per response, run by run: "
          + ", ".join(f"{b:.1f}/{a:.1f} = {ratio:.2f}" for (a, b), ratio in zip(pairs, ratios))
          + f"; median {statistics.median(ratios):.2f}, embeddedb lower in {sum(r < 1 for r in ratios)} of {len(ratios)}"
          + " (the sides swap order every other run)")
PY
python3 - "$RESULTS" "$DURATION" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
duration = float(sys.argv[2])
hooked = [row for row in rows if "webhooks" in row]
if hooked:
    print()
    for row in hooked:
        hook = row["webhooks"]
        print(f"{row['side']}: {hook['bookings']:,} bookings; webhook deliveries {hook['during_load']:,} during the load "
              f"({hook['during_load'] / duration:,.0f}/s), {hook['total']:,} once drained {hook['drain_seconds']:.1f} s later "
              f"({hook['total'] / (duration + hook['drain_seconds']):,.0f}/s overall)")
PY
