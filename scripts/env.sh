# Sourced by the scripts: one cache outside the clone for Cargo's target directory and
# the Kafka jars, so a second run on the same machine builds incrementally.
export BOXOFFICE_CACHE="${BOXOFFICE_CACHE:-$HOME/.cache/boxoffice}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BOXOFFICE_CACHE/target}"
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p "$BOXOFFICE_CACHE"
# C/C++ dependencies (RocksDB, librdkafka) compile through ccache when it is there:
# feature unification can give librocksdb-sys several build hashes, and ccache makes
# every rebuild after the first one cheap.
if command -v ccache >/dev/null 2>&1; then
  export CC="${CC:-ccache cc}" CXX="${CXX:-ccache c++}"
fi
# The OpenAPI contract check's schemathesis, pinned, in its own virtual environment
# (scripts/setup.sh makes it; scripts/schemathesis.sh runs it).
export SCHEMATHESIS_VERSION=4.32.5
export SCHEMATHESIS_VENV="${SCHEMATHESIS_VENV:-$BOXOFFICE_CACHE/schemathesis-$SCHEMATHESIS_VERSION}"
