# Sourced by scripts that need a running `boxoffice serve --dev` (schemathesis.sh,
# browser-test.sh): `start_dev_server NAME [ENV=VALUE ...]` builds the binary (or takes
# $BOXOFFICE_BIN), starts it on a free port with a fresh data directory, waits for its
# `listening on http://ADDR` line (read from a FIFO: no polling) and sets `address` and
# `work` (a temporary directory, removed at exit, with the server's log in
# `$work/server.log`). The server is stopped when the calling script exits.

start_dev_server() {
  local name=$1
  shift
  local binary
  if [[ -n "${BOXOFFICE_BIN:-}" ]]; then
    binary=$BOXOFFICE_BIN
  else
    # Runs after `cargo test` has finished, so this build does not compete with it.
    cargo build -p boxoffice
    binary="$CARGO_TARGET_DIR/debug/boxoffice"
  fi
  work=$(mktemp -d)
  dev_server_pid=""
  trap stop_dev_server EXIT
  trap 'exit 130' INT TERM
  mkfifo "$work/stdout"
  env "$@" "$binary" --dev serve --config config/default.toml --listen 127.0.0.1:0 \
    --data-dir "$work/data" >"$work/stdout" 2>"$work/server.log" &
  dev_server_pid=$!
  exec 3<"$work/stdout"
  address=""
  local line
  while IFS= read -r -t 120 line <&3; do
    echo "$line" >>"$work/server.log"
    if [[ "$line" == "listening on http://"* ]]; then
      address=${line#listening on }
      break
    fi
  done
  if [[ -z "$address" ]]; then
    echo "$name: the server did not start; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  # Keep draining its output into the log.
  cat <&3 >>"$work/server.log" &
  echo "$name: boxoffice serve at $address"
}

stop_dev_server() {
  if [[ -n "${dev_server_pid:-}" ]] && kill -0 "$dev_server_pid" 2>/dev/null; then
    kill -TERM "$dev_server_pid" 2>/dev/null || true
    wait "$dev_server_pid" 2>/dev/null || true
  fi
  rm -rf "${work:-}"
}
