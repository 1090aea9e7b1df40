#!/usr/bin/env bash
# The fuzz targets (libFuzzer through cargo-fuzz, on the nightly toolchain):
#
#   fuzz/run.sh [SECONDS]      each target for SECONDS (default 60) from the committed corpus;
#                              fails on a crash, leaving the input under $FUZZ_WORK/artifacts
#   fuzz/run.sh merge DIR...   folds new inputs (DIR/<target>/*, e.g. from capture_seeds.py
#                              or a long run) into fuzz/corpus, keeping only those that add
#                              coverage
#
# Targets: frames (a connection's byte stream), request (one request frame), record_batch (a
# produce request's records), pgoutput (a CDC replication message), sasl (an exchange before
# authentication, on a broker with one user). A crash found becomes a
# test: its input goes in fuzz/regressions/<target>/, which the broker's tests/fuzz_corpus.rs
# replays on every run with the committed corpus.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
TARGETS=(frames request record_batch pgoutput sasl)
TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/ductstream/fuzz-target}"
WORK="${FUZZ_WORK:-$(mktemp -d /tmp/ductstream-fuzz.XXXXXX)}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# No sanitizer: the project's code forbids `unsafe`, and the build stays a few minutes.
cargo +nightly fuzz build -s none --target-dir "$TARGET_DIR"
BIN="$TARGET_DIR/x86_64-unknown-linux-gnu/release"

if [[ "${1:-}" == "merge" ]]; then
    shift
    for target in "${TARGETS[@]}"; do
        mkdir -p "corpus/$target" "$WORK/merged/$target"
        extra=()
        for dir in "$@"; do [[ -d "$dir/$target" ]] && extra+=("$dir/$target"); done
        "$BIN/$target" -set_cover_merge=1 "$WORK/merged/$target" "corpus/$target" "${extra[@]}" 2>&1 | grep -E "MERGE-OUTER: [0-9]+ new files" || true
        rm -rf "corpus/$target" && mv "$WORK/merged/$target" "corpus/$target"
        echo "$target: $(ls "corpus/$target" | wc -l) inputs"
    done
    exit 0
fi

SECONDS_EACH="${1:-60}"
failed=()
for target in "${TARGETS[@]}"; do
    mkdir -p "$WORK/new/$target" "$WORK/artifacts" "corpus/$target"
    # New inputs go to the scratch folder (listed first); the committed corpus is only read.
    if "$BIN/$target" "$WORK/new/$target" "corpus/$target" -max_total_time="$SECONDS_EACH" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$target-" \
        > "$WORK/$target.log" 2>&1; then
        runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$WORK/$target.log" | grep -oE "[0-9]+$" || echo 0)
        echo "fuzz $target: ${SECONDS_EACH}s, $runs executions ($((runs / SECONDS_EACH))/s), no crash"
    else
        echo "fuzz $target: FAILED; the input is in $WORK/artifacts/ (copy it into fuzz/regressions/$target/)"
        grep -E "panicked|ERROR|SUMMARY" "$WORK/$target.log" | head -5
        failed+=("$target")
    fi
done
[[ ${#failed[@]} -eq 0 ]] || { echo "fuzz: crashes in ${failed[*]}"; exit 1; }
