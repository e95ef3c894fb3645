#!/usr/bin/env bash
# Runs the whole service (ingress + engine + snapshotter) on the embedded log with
# config/default.toml; data under ./data. Extra arguments go to `boxoffice serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
BOXOFFICE_BROWSER_TESTS=0 BOXOFFICE_STRIPE_MOCK=0 scripts/setup.sh
source scripts/env.sh
cargo build --release -p boxoffice
# Development mode: the demo secrets of config/default.toml are accepted (see README).
exec "$CARGO_TARGET_DIR/release/boxoffice" --dev serve "$@"
