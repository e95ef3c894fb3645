#!/usr/bin/env bash
# The OpenAPI document is the exact contract: runs schemathesis (`--checks all`, a fixed
# seed, a bounded number of examples) against `boxoffice serve --dev` on a temporary data
# directory and a free port, once with a user token and once with the demo admin key.
# Any failure fails the script. Exceptions JSON Schema cannot express are in
# scripts/schemathesis.toml. Run by scripts/test.sh after `cargo test`; schemathesis
# itself (pinned) comes from the virtual environment scripts/setup.sh makes
# ($SCHEMATHESIS_VENV, see scripts/env.sh), so the check needs no network.
#
# One worker: with two, Hypothesis parses lambda sources with `ast` on two threads at once,
# which CPython 3.11 does not survive ("AST constructor recursion depth mismatch", a
# runtime error in schemathesis's own process, not a finding about the API).
#
# BOXOFFICE_BIN: a boxoffice binary to test (default: build the debug one with cargo).
# SCHEMATHESIS_EXAMPLES (default 60), SCHEMATHESIS_SEED (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/env.sh

schemathesis="$SCHEMATHESIS_VENV/bin/schemathesis"
[[ -x "$schemathesis" ]] || { echo "schemathesis: $schemathesis is missing (scripts/setup.sh installs it)" >&2; exit 1; }
seed=${SCHEMATHESIS_SEED:-1}
examples=${SCHEMATHESIS_EXAMPLES:-60}
echo "schemathesis: seed $seed, $examples examples per operation; rerun with:"
echo "  SCHEMATHESIS_SEED=$seed SCHEMATHESIS_EXAMPLES=$examples scripts/schemathesis.sh"

# Rate limits off: schemathesis sends hundreds of requests a second from one address.
source scripts/dev-server.sh
start_dev_server schemathesis BOXOFFICE_RATE_LIMIT_ENABLED=false

token=$(curl -sf -X POST "$address/v1/demo/tokens" -H 'Content-Type: application/json' \
  -d '{"user":"schemathesis"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
admin_key=$(sed -n 's/^admin_key = "\(.*\)"$/\1/p' config/default.toml | head -n 1)

status=0
for who in user admin; do
  if [[ $who == user ]]; then credential=$token; else credential=$admin_key; fi
  echo "schemathesis: as the $who"
  (cd "$work" && "$schemathesis" --config-file "$root/scripts/schemathesis.toml" run \
    "$address/v1/openapi.json" --checks all -H "Authorization: Bearer $credential" \
    --max-examples "$examples" --seed "$seed" \
    --workers 1 --generation-database none --no-color) || status=1
done
if ! kill -0 "$dev_server_pid" 2>/dev/null; then
  echo "schemathesis: the server stopped; its log:" >&2
  tail -n 50 "$work/server.log" >&2
  exit 1
fi
if ((status != 0)); then
  echo "schemathesis: failures above; the server's log ends:" >&2
  tail -n 20 "$work/server.log" >&2
  echo "schemathesis: rerun with SCHEMATHESIS_SEED=$seed SCHEMATHESIS_EXAMPLES=$examples scripts/schemathesis.sh" >&2
fi
exit "$status"
