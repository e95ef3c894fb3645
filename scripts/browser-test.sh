#!/usr/bin/env bash
# The browser test of the seat-map page: starts `boxoffice serve` on a temporary data
# directory and a free port, then runs browser-tests/ (Node's test runner, playwright-core
# driving Debian's headless Chromium). Screenshots go to artifacts/browser/.
# Run by scripts/test.sh after `cargo test`; on its own: scripts/browser-test.sh.
#
# BOXOFFICE_BIN: a boxoffice binary to test (default: build the debug one with cargo).
# CHROMIUM: the browser (default /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/env.sh

chromium=${CHROMIUM:-/usr/bin/chromium}
for tool in node npm "$chromium"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "browser-test: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

# Node packages, pinned by browser-tests/package-lock.json, installed outside the clone and
# again only when the lock file changes.
modules_dir="$BOXOFFICE_CACHE/browser-tests"
mkdir -p "$modules_dir"
if ! cmp -s browser-tests/package-lock.json "$modules_dir/package-lock.json" || [[ ! -d "$modules_dir/node_modules" ]]; then
  cp browser-tests/package.json browser-tests/package-lock.json "$modules_dir/"
  (cd "$modules_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

source scripts/dev-server.sh
# The development payment gateway: the page pays through the real flow (the hold's payment,
# then the confirm with its id, checked against the gateway).
start_dev_server browser-test BOXOFFICE_PAYMENTS_GATEWAY=test

mkdir -p artifacts/browser
status=0
BASE_URL="$address" ARTIFACTS_DIR="$root/artifacts/browser" CHROMIUM="$chromium" \
  NODE_PATH="$modules_dir/node_modules" \
  node --test --test-reporter=spec browser-tests/seatmap.test.js || status=$?
if ((status != 0)); then
  echo "browser-test: failed; the server's log:" >&2
  tail -n 50 "$work/server.log" >&2
  exit "$status"
fi
echo "browser-test: screenshots in artifacts/browser/"
