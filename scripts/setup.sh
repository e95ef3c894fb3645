#!/usr/bin/env bash
# Installs what building and testing Boxoffice needs on a Debian machine, only when it
# is missing, so a second run does nothing. Called by scripts/run.sh and scripts/test.sh.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }

# RocksDB's build needs a C++ compiler and libclang (bindgen); librdkafka needs make,
# a C compiler, zlib and pkg-config; the Kafka broker needs Java 17+ and Maven.
for pkg in build-essential ccache clang libclang-dev cmake pkg-config zlib1g-dev libssl-dev curl ca-certificates; do
  have_pkg "$pkg" || need_apt+=("$pkg")
done
have java || need_apt+=(default-jdk-headless)
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

# schemathesis (PyPI, pinned) for scripts/schemathesis.sh, the OpenAPI contract check.
# Not fatal: only that script needs it, and it says so when it is missing.
if [[ "${BOXOFFICE_SCHEMATHESIS:-1}" == "1" ]] && ! schemathesis --version 2>/dev/null | grep -q "4.32.5"; then
  echo "setup: installing schemathesis 4.32.5 (pip)"
  python3 -m pip install --quiet "schemathesis==4.32.5" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "schemathesis==4.32.5" \
    || echo "setup: could not install schemathesis; scripts/schemathesis.sh needs it" >&2
fi
