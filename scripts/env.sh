# Sourced by the scripts: one cache outside the clone for Cargo's target directory and
# the Kafka jars, so a second run on the same machine builds incrementally.
export BOXOFFICE_CACHE="${BOXOFFICE_CACHE:-$HOME/.cache/boxoffice}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BOXOFFICE_CACHE/target}"
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p "$BOXOFFICE_CACHE"
