#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a real Apache Kafka broker
# (KRaft, one node, on 127.0.0.1) and stripe-mock (the payments adapter's tests), runs
# `cargo test --workspace` against them, checks the OpenAPI document against a running
# server (scripts/schemathesis.sh), runs the browser test, and stops both whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

scripts/kafka.sh fetch
scripts/kafka.sh start
trap 'scripts/kafka.sh stop || true; scripts/stripe-mock.sh stop || true' EXIT
scripts/stripe-mock.sh start
export KAFKA_BOOTSTRAP="127.0.0.1:${KAFKA_PORT:-19092}"
# The broker's second listener, and the address it advertises, where a test runs a
# pausable proxy to it (defaults as in scripts/kafka.sh).
export KAFKA_PROXIED_BROKER="127.0.0.1:${KAFKA_PROXIED_PORT:-$((${KAFKA_PORT:-19092} + 2))}"
export KAFKA_PROXIED_BOOTSTRAP="127.0.0.1:${KAFKA_PROXIED_ADVERTISED_PORT:-$((${KAFKA_PORT:-19092} + 3))}"
export STRIPE_MOCK_URL="http://127.0.0.1:${STRIPE_MOCK_PORT:-12111}"

# The system tests (tests/) run the `boxoffice` binary and would build it on first use;
# built here first, so no test runs beside that build.
cargo build -p boxoffice --bin boxoffice
cargo test --workspace --no-fail-fast -- --test-threads=2
# The OpenAPI document is the exact contract: schemathesis against `serve --dev` with a
# fixed seed (it prints the seed and the command to rerun it); any failure fails the suite.
SCHEMATHESIS_SEED="${SCHEMATHESIS_SEED:-1}" scripts/schemathesis.sh
if [[ -x scripts/browser-test.sh ]]; then
  scripts/browser-test.sh
fi
