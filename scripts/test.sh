#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a real Apache Kafka broker
# (KRaft, one node, on 127.0.0.1), runs `cargo test --workspace` against it, checks the
# OpenAPI document against a running server (scripts/schemathesis.sh), runs the browser
# test, and stops the broker whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

scripts/kafka.sh fetch
scripts/kafka.sh start
trap 'scripts/kafka.sh stop || true' EXIT
export KAFKA_BOOTSTRAP="127.0.0.1:${KAFKA_PORT:-19092}"

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
