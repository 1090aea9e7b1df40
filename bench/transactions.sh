#!/usr/bin/env bash
# Transactional produce and read_committed consume with ductstream-bench (librdkafka) against a
# fresh DuctStream and a fresh reference Apache Kafka (compat-tests/kafka, KRaft, one node), one
# after the other, same settings: 1 KiB values, acks=all, 8 partitions. Per broker: plain
# (idempotent off) produce as the baseline, transactions of 100 and of 1,000 records, then a
# read_committed consume of the last topic.
#
#   bench/transactions.sh [STORAGE=embedded] [MESSAGES=200000]
#
# Release binaries in $CARGO_TARGET_DIR/release; Kafka's jars are fetched on first use.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STORAGE="${1:-embedded}"
MESSAGES="${2:-200000}"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/ductstream/target}/release"
WORK="$(mktemp -d)"
cleanup() {
    [[ -n "${DS_PID:-}" ]] && kill "$DS_PID" 2>/dev/null || true
    [[ -d "$WORK/kafka" ]] && "$HERE/../compat-tests/kafka/stop.sh" "$WORK/kafka" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

run_bench() { # name bootstrap
    local name="$1" bs="$2"
    echo "== $name"
    "$BIN/ductstream-bench" produce --bootstrap "$bs" --topic plain --messages "$MESSAGES" --size 1024 --acks all | head -n 1
    for size in 100 1000; do
        "$BIN/ductstream-bench" produce --bootstrap "$bs" --topic "txn$size" --messages "$MESSAGES" --size 1024 --acks all \
            --transaction-size "$size" | head -n 1
    done
    "$BIN/ductstream-bench" --set isolation.level=read_committed consume --bootstrap "$bs" --topic txn1000 --messages "$MESSAGES" | head -n 1
}

"$BIN/ductstream" --kafka-listen 127.0.0.1:0 --grpc-listen off --storage "$STORAGE" --data-dir "$WORK/ds" >"$WORK/ds.out" 2>"$WORK/ds.err" &
DS_PID=$!
for _ in $(seq 1 500); do grep -q "listening kafka=" "$WORK/ds.out" 2>/dev/null && break; sleep 0.02; done
DS_BS="$(sed -n 's/.*listening kafka=\([^ ]*\).*/\1/p' "$WORK/ds.out" | head -n 1)"
run_bench "DuctStream ($STORAGE)" "$DS_BS"
kill "$DS_PID"; wait "$DS_PID" 2>/dev/null || true; DS_PID=

KAFKA_BS="$("$HERE/../compat-tests/kafka/start.sh" "$WORK/kafka" | tail -n 1)"
run_bench "Apache Kafka 4.1.2" "$KAFKA_BS"
