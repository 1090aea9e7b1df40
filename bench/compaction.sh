#!/usr/bin/env bash
# Compaction against the reference Apache Kafka, one after the other, same settings: keyed
# 1 KiB records (MESSAGES over KEYS keys, acks=all, 4 partitions) produced with ductstream-bench
# (librdkafka) to a delete topic (the baseline) and twice to a compacted topic (cleanup.policy=
# compact, segment.bytes=16 MiB, min.cleanable.dirty.ratio=0.1), the second time while each
# broker's log cleaner (every second) compacts the first. Prints the produce runs (the
# cleaner's cost to produce latency), then the
# cleaner's own figures: MB of log processed and its rate (DuctStream from its metrics, Kafka
# from its LogCleaner log lines) and the records left.
#
#   bench/compaction.sh [STORAGE=embedded] [MESSAGES=1000000] [KEYS=10000]
#
# Release binaries in $CARGO_TARGET_DIR/release; Kafka's jars are fetched on first use.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STORAGE="${1:-embedded}"
MESSAGES="${2:-1000000}"
KEYS="${3:-10000}"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/ductstream/target}/release"
WORK="$(mktemp -d)"
cleanup() {
    [[ -n "${DS_PID:-}" ]] && kill "$DS_PID" 2>/dev/null || true
    [[ -d "$WORK/kafka" ]] && "$HERE/../compat-tests/kafka/stop.sh" "$WORK/kafka" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
TOPIC_CONFIGS=(--topic-config cleanup.policy=compact --topic-config segment.bytes=16777216 --topic-config min.cleanable.dirty.ratio=0.1)

produce_both() { # name bootstrap
    local name="$1" bs="$2"
    echo "== $name"
    "$BIN/ductstream-bench" produce --bootstrap "$bs" --topic plain --partitions 4 --messages "$MESSAGES" --keys "$KEYS" --size 1024 | head -n 1
    # Twice: the second run is measured while the cleaner compacts what the first wrote.
    for run in fill measured; do
        "$BIN/ductstream-bench" produce --bootstrap "$bs" --topic compacted --partitions 4 --messages "$MESSAGES" --keys "$KEYS" --size 1024 \
            "${TOPIC_CONFIGS[@]}" | head -n 1 | sed "s/^/($run) /"
    done
    # The cleaner catches up with what was written last.
    sleep 20
}

left() { # bootstrap: records left in the compacted topic
    "${DUCTSTREAM_VENV:-$HOME/.cache/ductstream/venv}/bin/python" - "$1" <<'PY'
import sys
from confluent_kafka import Consumer, TopicPartition, KafkaError
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "left", "enable.partition.eof": True})
c.assign([TopicPartition("compacted", p, 0) for p in range(4)])
n, eofs = 0, set()
while len(eofs) < 4:
    m = c.poll(5)
    if m is None:
        break
    if m.error():
        if m.error().code() == KafkaError._PARTITION_EOF:
            eofs.add(m.partition())
        continue
    n += 1
print(f"records left in the compacted topic: {n}")
PY
}

"$BIN/ductstream" --kafka-listen 127.0.0.1:0 --grpc-listen off --metrics-listen 127.0.0.1:0 --storage "$STORAGE" \
    --data-dir "$WORK/ds" --log-cleaner-backoff-ms 1000 >"$WORK/ds.out" 2>"$WORK/ds.err" &
DS_PID=$!
for _ in $(seq 1 500); do grep -q "listening kafka=" "$WORK/ds.out" 2>/dev/null && break; sleep 0.02; done
DS_BS="$(sed -n 's/.*listening kafka=\([^ ]*\).*/\1/p' "$WORK/ds.out" | head -n 1)"
METRICS="$(sed -n 's/.*listening metrics=\([^ ]*\).*/\1/p' "$WORK/ds.out" | head -n 1)"
produce_both "DuctStream ($STORAGE)" "$DS_BS"
curl -s "http://$METRICS/metrics" | awk '
    /^ductstream_log_cleaner_cleaned_bytes_total/ { read = $2 }
    /^ductstream_log_cleaner_written_bytes_total/ { written = $2 }
    /^ductstream_log_cleaner_milliseconds_total/ { ms = $2 }
    /^ductstream_log_cleaner_cleanings_total/ { n = $2 }
    END { printf "cleaner: %d cleanings, %.1f MB of log cleaned in %.1f s (%.1f MB/s), %.1f MB written back\n",
          n, read / 1e6, ms / 1000, (ms > 0 ? read / 1e3 / ms : 0), written / 1e6 }'
left "$DS_BS"
kill "$DS_PID"; wait "$DS_PID" 2>/dev/null || true; DS_PID=

KAFKA_BS="$(DUCTSTREAM_KAFKA_PROPS="log.cleaner.backoff.ms=1000" "$HERE/../compat-tests/kafka/start.sh" "$WORK/kafka" | tail -n 1)"
produce_both "Apache Kafka 4.1.2" "$KAFKA_BS"
grep -h "MB of log processed in" "$WORK/kafka/server.log" | sed 's/,//g' | awk '
    { mb += $1; s += $7; n += 1 }
    END { printf "cleaner: %d cleanings, %.1f MB of log processed in %.1f s (%.1f MB/s)\n", n, mb, s, (s > 0 ? mb / s : 0) }'
left "$KAFKA_BS"
