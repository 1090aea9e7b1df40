#!/usr/bin/env bash
# ductstream-bench (librdkafka) against a fresh DuctStream and a fresh reference Apache Kafka
# (compat-tests/kafka, KRaft, one node), one after the other, same settings: 1 KiB values,
# acks=all, 8 partitions, client batching. Per broker: end-to-end latency at RATE msgs/s,
# produce (ROUNDS runs of MESSAGES), consume of the first topic, RSS at idle and after.
#
#   bench/vs_kafka.sh [STORAGE=embedded] [MESSAGES=1000000] [ROUNDS=2] [RATE=10000]
#
# Release binaries in $CARGO_TARGET_DIR/release; Kafka's jars are fetched on first use.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STORAGE="${1:-embedded}"
MESSAGES="${2:-1000000}"
ROUNDS="${3:-2}"
RATE="${4:-10000}"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/ductstream/target}/release"
WORK="$(mktemp -d)"
cleanup() {
    [[ -n "${DS_PID:-}" ]] && kill "$DS_PID" 2>/dev/null || true
    [[ -d "$WORK/kafka" ]] && "$HERE/../compat-tests/kafka/stop.sh" "$WORK/kafka" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

run_bench() { # name bootstrap pid
    local name="$1" bs="$2" pid="$3"
    echo "== $name: rss idle $(rss_mib "$pid") MiB"
    # Latency first, on an idle machine: after the produce runs, the kernel writes gigabytes
    # of dirty pages back for a while. The topic is made (and its leaders elected) beforehand.
    "$BIN/ductstream-bench" produce --bootstrap "$bs" --topic lat --messages 1000 --size 1024 --acks all >/dev/null
    sleep 2
    "$BIN/ductstream-bench" latency --bootstrap "$bs" --topic lat --partitions 8 --rate "$RATE" --seconds 15 --size 1024 --acks all | head -n 1
    for r in $(seq 1 "$ROUNDS"); do
        "$BIN/ductstream-bench" produce --bootstrap "$bs" --topic "p$r" --messages "$MESSAGES" --size 1024 --acks all | head -n 1
    done
    echo "rss after produce $(rss_mib "$pid") MiB"
    "$BIN/ductstream-bench" consume --bootstrap "$bs" --topic p1 --messages "$MESSAGES" | head -n 1
    echo "rss after all $(rss_mib "$pid") MiB"
}

"$BIN/ductstream" --kafka-listen 127.0.0.1:0 --grpc-listen off --storage "$STORAGE" --data-dir "$WORK/ds" >"$WORK/ds.out" 2>"$WORK/ds.err" &
DS_PID=$!
for _ in $(seq 1 500); do grep -q "listening kafka=" "$WORK/ds.out" 2>/dev/null && break; sleep 0.02; done
DS_BS="$(sed -n 's/.*listening kafka=\([^ ]*\).*/\1/p' "$WORK/ds.out" | head -n 1)"
run_bench "DuctStream ($STORAGE)" "$DS_BS" "$DS_PID"
kill "$DS_PID"; wait "$DS_PID" 2>/dev/null || true; DS_PID=
rm -rf "$WORK/ds"

KAFKA_BS="$("$HERE/../compat-tests/kafka/start.sh" "$WORK/kafka" | tail -n 1)"
KAFKA_PID="$(cat "$WORK/kafka/kafka.pid")"
run_bench "Apache Kafka 4.1.2" "$KAFKA_BS" "$KAFKA_PID"
