#!/usr/bin/env bash
# The PostgreSQL baseline, and Boxoffice on the same workload, in one run, with the ratio.
#
#   benches/postgres-baseline/run.sh [flash-sale|theatre|all]
#
# Environment: SCALE (default 0.1, as `loadgen --scale`), CLIENTS (concurrent clients on
# both sides, default 32), DURATION (theatre seconds, default 30).
#
# PostgreSQL: Debian's package (installed when missing), a private cluster in a temporary
# directory on 127.0.0.1 (run as the `postgres` user when invoked as root), fsync and
# synchronous_commit on (Boxoffice fsyncs every group commit too). Hold and confirm are
# SERIALIZABLE transactions (see *.sql); pgbench retries serialization failures.
# Boxoffice: `boxoffice serve` (release) on a temporary data directory, rate limits off,
# driven by `loadgen run --mode closed --concurrency $CLIENTS` with the same scenario.
# Both sides are closed loops with the same number of clients on the same 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
WHAT="${1:-all}"
SCALE="${SCALE:-0.1}"
CLIENTS="${CLIENTS:-32}"
DURATION="${DURATION:-30}"
HERE=benches/postgres-baseline
PGPORT="${PGPORT:-55432}"

if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
fi
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"

WORK="$(mktemp -d /tmp/pg-baseline.XXXXXX)"
chmod 755 "$WORK"
as_pg() { if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
SERVER_PID=""
cleanup() {
  as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
  if [[ -n "$SERVER_PID" ]]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/pglog"
if [[ "$(id -u)" == 0 ]]; then chown postgres "$WORK"; fi

echo "== building boxoffice and loadgen (release)"
cargo build --release -q -p boxoffice -p loadgen
BOXOFFICE="$CARGO_TARGET_DIR/release/boxoffice"
LOADGEN="$CARGO_TARGET_DIR/release/loadgen"

echo "== starting PostgreSQL ($("$PG_BIN/postgres" --version)) on 127.0.0.1:$PGPORT"
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U bench --auth=trust >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
  -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=512MB -c fsync=on -c synchronous_commit=on" start >/dev/null
PSQL=(psql -h 127.0.0.1 -p "$PGPORT" -U bench -v ON_ERROR_STOP=1 -q)
PGBENCH=(pgbench -h 127.0.0.1 -p "$PGPORT" -U bench -n -c "$CLIENTS" -j 2 --max-tries=1000)

ceil() { python3 -c "import math,sys; print(max(1, math.ceil(float(sys.argv[1]) * float(sys.argv[2]))))" "$1" "$2"; }
# Latency percentiles (ms) and count of a pgbench per-transaction log (3rd field: µs).
pg_latency() {
  cat "$@" | awk '{print $3}' | sort -n | awk '{v[NR]=$1} END {p50=v[int(NR*0.50)>0?int(NR*0.50):1]; p99=v[int(NR*0.99)>0?int(NR*0.99):1]; printf "%d %.2f %.2f %.2f\n", NR, p50/1000, p99/1000, v[NR]/1000}'
}

start_boxoffice() {
  rm -rf "$WORK/box"
  BOXOFFICE_RATE_LIMIT_ENABLED=false RUST_LOG=warn "$BOXOFFICE" --dev serve --listen 127.0.0.1:0 --data-dir "$WORK/box" >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    if grep -q "listening on" "$WORK/serve.out"; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/serve.err"; exit 1; fi
    sleep 0.1
  done
  TARGET="$(sed -n 's/^listening on //p' "$WORK/serve.out" | head -1)"
}
stop_boxoffice() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }

RESULTS="$WORK/results.txt"
: >"$RESULTS"

run_flash() {
  local users capacity per_client
  users="$(ceil 50000 "$SCALE")"; capacity="$(ceil 5000 "$SCALE")"; per_client=$(( (users + CLIENTS - 1) / CLIENTS ))
  echo "== flash-sale: $capacity tickets, $users attempts, $CLIENTS clients"
  as_pg "$PG_BIN/dropdb" -h 127.0.0.1 -p "$PGPORT" -U bench --if-exists flash; as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U bench flash
  "${PSQL[@]}" -d flash -f "$HERE/schema.sql"
  "${PSQL[@]}" -d flash -c "INSERT INTO events (id, name, hold_ttl, max_per_user) VALUES (1, 'Flash sale', interval '120 seconds', 1); INSERT INTO pools VALUES (1, 'General', $capacity, 0, 0); ANALYZE;"
  (cd "$WORK" && "${PGBENCH[@]}" -d flash -t "$per_client" -D users="$users" -f "$OLDPWD/$HERE/flash-sale.sql" --log --log-prefix="$WORK/pglog/flash" >"$WORK/flash.pgbench" 2>&1)
  local pg_tps pg_booked; pg_tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/flash.pgbench" | head -1)"
  pg_booked="$("${PSQL[@]}" -d flash -At -c "SELECT booked FROM pools")"
  read -r pg_n pg_p50 pg_p99 pg_max < <(pg_latency "$WORK"/pglog/flash.*)
  start_boxoffice
  "$LOADGEN" run config/scenarios/flash-sale.toml --target "$TARGET" --scale "$SCALE" --mode closed --concurrency "$CLIENTS" --duration 600 --quiet --no-plots --out "$WORK/flash-box" >"$WORK/flash.loadgen"
  stop_boxoffice
  python3 - "$WORK/flash-box/report.json" "$pg_tps" "$pg_n" "$pg_p50" "$pg_p99" "$pg_booked" >>"$RESULTS" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
pg_tps, pg_n, pg_p50, pg_p99, pg_booked = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
holds = report["measurements"]["kinds"]["hold_best"]
box_rate = holds["count"] / report["duration_seconds"]
print(f"flash-sale  boxoffice: {holds['count']} attempts in {report['duration_seconds']:.1f} s = {box_rate:.0f}/s, hold p50 {holds['latency']['p50_us']/1000:.2f} ms p99 {holds['latency']['p99_us']/1000:.2f} ms, {report['granted']['bookings_granted']} booked")
print(f"flash-sale  postgres:  {pg_n} attempts = {pg_tps:.0f}/s, attempt (hold + confirm) p50 {pg_p50:.2f} ms p99 {pg_p99:.2f} ms, {pg_booked} booked")
print(f"flash-sale  ratio: boxoffice/postgres throughput {box_rate / pg_tps:.2f}x")
PY
}

run_theatre() {
  local events rows users
  events="$(ceil 200 "$SCALE")"; rows="$(ceil 50 "$SCALE")"; users="$(ceil 50000 "$SCALE")"
  echo "== theatre: $events shows of $((rows * 40)) seats, $CLIENTS clients, $DURATION s"
  as_pg "$PG_BIN/dropdb" -h 127.0.0.1 -p "$PGPORT" -U bench --if-exists theatre; as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U bench theatre
  "${PSQL[@]}" -d theatre -f "$HERE/schema.sql"
  "${PSQL[@]}" -d theatre -v events="$events" -v rows="$rows" -f "$HERE/seed.sql"
  (cd "$WORK" && "${PGBENCH[@]}" -d theatre -T "$DURATION" -D events="$events" -D rows="$rows" -D users="$users" \
    -f "$OLDPWD/$HERE/theatre-hold-exact.sql@20" -f "$OLDPWD/$HERE/theatre-hold-best.sql@25" \
    -f "$OLDPWD/$HERE/theatre-read-event.sql@20" -f "$OLDPWD/$HERE/theatre-read-seats.sql@10" \
    --log --log-prefix="$WORK/pglog/theatre" >"$WORK/theatre.pgbench" 2>&1)
  local pg_tps pg_followups; pg_tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/theatre.pgbench" | head -1)"
  # A purchase script is one hold plus, in the same transaction, its confirm or release: in
  # API requests it counts once more for each confirmed or released hold.
  pg_followups="$("${PSQL[@]}" -d theatre -At -c "SELECT count(*) FROM holds WHERE status IN ('c', 'r')")"
  read -r pg_n pg_p50 pg_p99 pg_max < <(pg_latency "$WORK"/pglog/theatre.*)
  start_boxoffice
  "$LOADGEN" run config/scenarios/theatre.toml --target "$TARGET" --scale "$SCALE" --mode closed --concurrency "$CLIENTS" --no-think --duration "$DURATION" --requests 100000000 --quiet --no-plots --out "$WORK/theatre-box" >"$WORK/theatre.loadgen"
  stop_boxoffice
  python3 - "$WORK/theatre-box/report.json" "$pg_tps" "$pg_n" "$pg_p50" "$pg_p99" "$pg_followups" >>"$RESULTS" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
pg_tps, pg_n, pg_p50, pg_p99, pg_followups = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
overall = report["measurements"]["overall"]
box_rate = report["measurements"]["responses"] / report["duration_seconds"]
# pgbench's tps counts scripts; the same run's requests (a confirm or release counted apart
# from its hold, as the API does) at the same pace:
pg_requests = pg_n + pg_followups
pg_request_rate = pg_tps * pg_requests / max(pg_n, 1)
print(f"theatre     boxoffice: {report['measurements']['responses']} requests = {box_rate:.0f}/s, p50 {overall['p50_us']/1000:.2f} ms p99 {overall['p99_us']/1000:.2f} ms")
print(f"theatre     postgres:  {pg_n} scripts = {pg_tps:.0f}/s, p50 {pg_p50:.2f} ms p99 {pg_p99:.2f} ms (a purchase script is its hold and its confirm or release in one transaction)")
print(f"theatre     postgres:  = {pg_requests} API requests ({pg_followups} confirms and releases counted apart) = {pg_request_rate:.0f}/s")
print(f"theatre     ratio: boxoffice/postgres throughput {box_rate / pg_request_rate:.2f}x in requests ({box_rate / pg_tps:.2f}x requests per script)")
PY
}

case "$WHAT" in
  flash-sale) run_flash ;;
  theatre) run_theatre ;;
  all) run_flash; run_theatre ;;
  *) echo "usage: $0 [flash-sale|theatre|all]" >&2; exit 2 ;;
esac
echo "== results (SCALE=$SCALE CLIENTS=$CLIENTS DURATION=$DURATION, $(nproc) cores)"
cat "$RESULTS"
