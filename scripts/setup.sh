#!/usr/bin/env bash
# Installs what building and testing Boxoffice needs on a Debian machine, only when it
# is missing, so a second run does nothing. Called by scripts/run.sh and scripts/test.sh.
set -euo pipefail
source "$(dirname "$0")/env.sh"

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }

# RocksDB's build needs a C++ compiler and libclang (bindgen); librdkafka needs make,
# a C compiler, zlib and pkg-config; the Kafka broker needs Java 17+ and Maven.
for pkg in build-essential ccache clang libclang-dev cmake pkg-config zlib1g-dev libssl-dev curl ca-certificates; do
  have_pkg "$pkg" || need_apt+=("$pkg")
done
have java || need_apt+=(default-jdk-headless)
# schemathesis (below) runs in a Python virtual environment.
if [[ "${BOXOFFICE_SCHEMATHESIS:-1}" == "1" ]]; then
  have python3 && python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3 python3-venv)
fi
have mvn || need_apt+=(maven)
if [[ "${BOXOFFICE_BROWSER_TESTS:-1}" == "1" ]]; then
  have chromium || need_apt+=(chromium)
  have node || need_apt+=(nodejs npm)
fi

if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! have cargo; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: cargo is missing; installing Debian's rustup" >&2
    SUDO=""; if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    $SUDO apt-get install -y -qq rustup || $SUDO apt-get install -y -qq cargo rustc
    have rustup && rustup default stable
  fi
fi

# schemathesis (PyPI, pinned) for scripts/schemathesis.sh, the OpenAPI contract check that
# scripts/test.sh runs: in its own virtual environment in the cache (Debian's Python
# refuses system-wide pip installs), made once.
if [[ "${BOXOFFICE_SCHEMATHESIS:-1}" == "1" ]] && [[ ! -x "$SCHEMATHESIS_VENV/bin/schemathesis" ]]; then
  echo "setup: installing schemathesis $SCHEMATHESIS_VERSION (pip) in $SCHEMATHESIS_VENV"
  rm -rf "$SCHEMATHESIS_VENV"
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION"
fi

# stripe-mock (a Go module, pinned in scripts/stripe-mock.sh) for the payments adapter's
# tests (not for `run.sh`, which sets BOXOFFICE_STRIPE_MOCK=0). It needs Go 1.22 or newer:
# the machine's Go where it has one; else Debian's golang-go where that is new enough
# (Debian 13); else, on Debian 12 (whose golang-go is 1.19), golang-1.23-go from
# bookworm-backports.
if [[ "${BOXOFFICE_STRIPE_MOCK:-1}" != 0 ]]; then
  if ! "$(dirname "$0")/stripe-mock.sh" find-go >/dev/null; then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get install -y -qq --no-install-recommends golang-go || true
    if ! "$(dirname "$0")/stripe-mock.sh" find-go >/dev/null \
      && grep -q '^VERSION_CODENAME=bookworm' /etc/os-release; then
      echo "setup: Debian 12's Go is too old for stripe-mock; installing golang-1.23-go from bookworm-backports" >&2
      echo "deb http://deb.debian.org/debian bookworm-backports main" \
        | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
      $SUDO apt-get update -qq
      $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports golang-1.23-go
    fi
  fi
  "$(dirname "$0")/stripe-mock.sh" install
fi
