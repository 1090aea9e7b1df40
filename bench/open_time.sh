#!/usr/bin/env bash
# Open time and memory of the embedded store with a lot of data: produce GIB gibibytes of
# 1 KiB values into PARTITIONS partitions with ductstream-bench, stop the broker with kill -9
# (no clean shutdown), and time how long a restart takes to answer, with its RSS after the
# restart and after reading every partition's tail.
#
#   bench/open_time.sh [GIB=4] [PARTITIONS=8]   (release binaries in $CARGO_TARGET_DIR/release)
#
# COLD=1 empties the page cache before the restart (root only), so the open reads the disk.
set -euo pipefail
GIB="${1:-4}"
PARTITIONS="${2:-8}"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/ductstream/target}/release"
DATA="$(mktemp -d)"
trap 'kill -9 "${PID:-0}" 2>/dev/null || true; rm -rf "$DATA"' EXIT

start() {
    local out="$DATA/stdout.$1"
    "$BIN/ductstream" --kafka-listen 127.0.0.1:0 --grpc-listen off --data-dir "$DATA/data" >"$out" 2>"$DATA/stderr.$1" &
    PID=$!
    for _ in $(seq 1 6000); do
        if grep -q "listening kafka=" "$out" 2>/dev/null; then
            BOOTSTRAP="$(sed -n 's/.*listening kafka=\([^ ]*\).*/\1/p' "$out" | head -n 1)"
            return
        fi
        sleep 0.01
    done
    echo "broker did not start" >&2
    exit 1
}

rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$PID/status"; }

start 1
MESSAGES=$((GIB * 1024 * 1024))
"$BIN/ductstream-bench" produce --bootstrap "$BOOTSTRAP" --topic opentime --partitions "$PARTITIONS" \
    --messages "$MESSAGES" --size 1024 --json
echo "rss_after_produce_mib=$(rss_mib)"
kill -9 "$PID"
wait "$PID" 2>/dev/null || true
du -sh "$DATA/data" | awk '{print "data=" $1}'
echo "segments=$(find "$DATA/data" -name '*.log' | wc -l) indexes=$(find "$DATA/data" -name '*.index' | wc -l)"

if [[ "${COLD:-0}" == 1 ]]; then
    sync
    echo 3 > /proc/sys/vm/drop_caches
fi
T0=$(date +%s.%N)
start 2
T1=$(date +%s.%N)
echo "open_seconds=$(echo "$T1 - $T0" | bc)"
echo "rss_after_open_mib=$(rss_mib)"
