#!/usr/bin/env bash
# The whole DuctStream test suite: Rust unit and integration tests (they start the real broker
# binary on port 0, and throwaway Postgres clusters), then the real-client compatibility suite
# (kcat, confluent-kafka, kafka-python, aiokafka, kafkajs, sarama), then each fuzz target for a
# bounded time. Installs what the tests need on first run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ductstream/target}"
export CARGO_TERM_COLOR=never

bash compat-tests/setup.sh

# The Postgres engine's tests start throwaway clusters with the server binaries.
# (compat-tests/setup.sh installs Debian's postgresql; its binaries live off PATH.)
if ! command -v initdb >/dev/null 2>&1; then
    PG_BIN="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")"
    export PATH="$PG_BIN:$PATH"
fi

# The DuckDB destination links the libduckdb.so that setup.sh installed (not a default feature:
# a plain `cargo build` needs no DuckDB); the suite builds and tests the broker with it.
FEATURES=(--features ductstream-broker/duckdb)
cargo build --workspace --all-targets "${FEATURES[@]}"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "${FEATURES[@]}"
else
    cargo test --workspace --no-fail-fast "${FEATURES[@]}"
fi

DUCTSTREAM_BIN="$CARGO_TARGET_DIR/debug/ductstream" bash compat-tests/run.sh

# The fuzzers (libFuzzer needs the nightly toolchain; the stable run above already replayed
# their committed corpus in broker/tests/fuzz_corpus.rs). A crash fails the run.
if cargo +nightly --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal; then
    bash fuzz/run.sh "${DUCTSTREAM_FUZZ_SECONDS:-30}"
else
    echo "fuzz: SKIPPED, no nightly toolchain could be installed (the corpus replay ran on stable)"
fi
