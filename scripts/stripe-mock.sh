#!/usr/bin/env bash
# Run stripe-mock (Stripe's official mock of its HTTP API, a Go module) for the payments
# adapter's tests: it validates every request against Stripe's OpenAPI specification and
# answers from fixed fixtures, so it proves the adapter speaks Stripe's API, not the flows.
#
# Usage: scripts/stripe-mock.sh install|start|stop|status|find-go
#
#   install  `go install github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION` into
#            $BOXOFFICE_CACHE/go/bin, once: a second run installs nothing.
#   start    install if needed, start it in the background on 127.0.0.1:$STRIPE_MOCK_PORT
#            (plain HTTP) and wait until it answers.
#   stop     stop the server started by `start` and wait for it to exit.
#   status   say whether it is running and answering.
#   find-go  print a Go of version 1.22 or newer (the one `install` uses), or fail.
#
# Environment:
#   BOXOFFICE_CACHE          cache root (default: $HOME/.cache/boxoffice)
#   STRIPE_MOCK_PORT         HTTP port on 127.0.0.1 (default: 12111)
#   STRIPE_MOCK_START_TIMEOUT_S  how long `start` waits (default: 30)
#
# Tests reach it at STRIPE_MOCK_URL=http://127.0.0.1:$STRIPE_MOCK_PORT.
set -euo pipefail

readonly STRIPE_MOCK_VERSION="v0.203.0"
readonly CACHE_DIR="${BOXOFFICE_CACHE:-$HOME/.cache/boxoffice}/stripe-mock"
readonly GO_BIN_DIR="${BOXOFFICE_CACHE:-$HOME/.cache/boxoffice}/go/bin"
readonly BINARY="$GO_BIN_DIR/stripe-mock"
readonly STAMP="$GO_BIN_DIR/.stripe-mock-$STRIPE_MOCK_VERSION"
readonly PORT="${STRIPE_MOCK_PORT:-12111}"
readonly RUN_DIR="$CACHE_DIR/run-$PORT"
readonly PID_FILE="$RUN_DIR/stripe-mock.pid"
readonly LOG_FILE="$RUN_DIR/stripe-mock.log"
readonly START_TIMEOUT_S="${STRIPE_MOCK_START_TIMEOUT_S:-30}"

say() { printf 'stripe-mock.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# find_go: prints the first Go of version 1.22 or newer among the one on the PATH, the
# machine's /usr/local/go and Debian's versioned packages (/usr/lib/go-1.NN); fails if none.
find_go() {
    local candidate version
    for candidate in "$(command -v go || true)" /usr/local/go/bin/go /usr/lib/go-1.*/bin/go; do
        [[ -n "$candidate" && -x "$candidate" ]] || continue
        version="$("$candidate" env GOVERSION 2>/dev/null || "$candidate" version | awk '{print $3}')"
        version="${version#go}"
        if [[ "${version%%.*}" -gt 1 ]] || { [[ "${version%%.*}" -eq 1 ]] && [[ "$(echo "$version" | cut -d. -f2)" -ge 22 ]]; }; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

cmd_install() {
    if [[ -x "$BINARY" && -f "$STAMP" ]]; then
        say "stripe-mock $STRIPE_MOCK_VERSION already in $BINARY; nothing to install"
        return 0
    fi
    local go
    go="$(find_go)" || die "no Go 1.22 or newer found (stripe-mock $STRIPE_MOCK_VERSION's go.mod needs go 1.22.1): scripts/setup.sh installs one"
    say "installing stripe-mock $STRIPE_MOCK_VERSION ($go install) into $GO_BIN_DIR ..."
    mkdir -p "$GO_BIN_DIR"
    GOBIN="$GO_BIN_DIR" "$go" install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION"
    rm -f "$GO_BIN_DIR"/.stripe-mock-*
    touch "$STAMP"
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid; pid=$(<"$PID_FILE")
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

answers() {
    # A real request: stripe-mock answers any key; a 200 with a payment intent list.
    curl -fsS -o /dev/null -u sk_test_probe: "http://127.0.0.1:$PORT/v1/payment_intents?limit=1" 2>/dev/null
}

cmd_start() {
    local pid
    if pid=$(running_pid); then
        say "already running (pid $pid) on 127.0.0.1:$PORT"
        return 0
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        die "port $PORT is in use by another process; set STRIPE_MOCK_PORT"
    fi
    cmd_install
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    # In its own session so that it outlives the shell that started it; the pid file names
    # the server itself (exec).
    # shellcheck disable=SC2016 # $$ is the inner shell's
    setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$PID_FILE" \
        "$BINARY" -http-addr "127.0.0.1:$PORT" >"$LOG_FILE" 2>&1 </dev/null &
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until [[ -s "$PID_FILE" ]]; do
        ((SECONDS < deadline)) || die "stripe-mock did not start"
        sleep 0.1
    done
    pid=$(<"$PID_FILE")
    until answers; do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$LOG_FILE" >&2; rm -f "$PID_FILE"; die "stripe-mock exited during start-up (log: $LOG_FILE)"; }
        ((SECONDS < deadline)) || { tail -n 20 "$LOG_FILE" >&2; cmd_stop; die "no answer on port $PORT after ${START_TIMEOUT_S}s"; }
        sleep 0.2
    done
    say "stripe-mock $STRIPE_MOCK_VERSION up on 127.0.0.1:$PORT (pid $pid)"
    say "use STRIPE_MOCK_URL=http://127.0.0.1:$PORT"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        say "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    say "stopping stripe-mock (pid $pid) ..."
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= 50)); then
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    rm -f "$PID_FILE"
    say "stopped"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        if answers; then
            say "running (pid $pid), answering on 127.0.0.1:$PORT"
        else
            say "running (pid $pid), NOT answering on 127.0.0.1:$PORT"
            return 1
        fi
    else
        say "not running"
        return 3
    fi
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    find-go) find_go ;;
    *)
        echo "usage: $0 install|start|stop|status|find-go" >&2
        exit 2
        ;;
esac
