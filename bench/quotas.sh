#!/usr/bin/env bash
# Byte-rate quotas held: a client id given producer_byte_rate and consumer_byte_rate (with
# Kafka's kafka-configs) produces RECORDS of 10 KB as fast as librdkafka (confluent-kafka) can,
# then reads them back; the rate each side reached, against the quota. Each quota in its
# turn (MiB/s).
#
#   bench/quotas.sh [MIB=24] [QUOTAS="1 4"]
#
# Release binary in $CARGO_TARGET_DIR/release (debug if there is none; or $DUCTSTREAM_BIN); Python with
# confluent-kafka in $DUCTSTREAM_VENV; Kafka's tools from compat-tests/kafka.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MIB="${1:-24}"
QUOTAS="${2:-1 4}"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/ductstream/target}"
BIN="${DUCTSTREAM_BIN:-$TARGET/release/ductstream}"
[[ -x "$BIN" ]] || BIN="$TARGET/debug/ductstream"
PY="${DUCTSTREAM_VENV:-$HOME/.cache/ductstream/venv}/bin/python"
WORK="$(mktemp -d)"
cleanup() {
    [[ -n "${DS_PID:-}" ]] && kill "$DS_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" --data-dir "$WORK/data" --kafka-listen 127.0.0.1:0 --grpc-listen off >"$WORK/out" 2>"$WORK/err" &
DS_PID=$!
for _ in $(seq 100); do grep -q '^listening kafka=' "$WORK/out" && break; sleep 0.1; done
BOOTSTRAP="$(sed -n 's/^listening kafka=//p' "$WORK/out")"

cd "$HERE/../compat-tests"
"$PY" - "$BOOTSTRAP" "$MIB" $QUOTAS <<'PYTHON'
import sys, time
sys.path.insert(0, "kafka")
import reference_kafka as ref
from confluent_kafka import Consumer, Producer

bootstrap, mib, quotas = sys.argv[1], int(sys.argv[2]), [int(q) for q in sys.argv[3:]]
payload = b"x" * 10_000
records = (mib << 20) // len(payload)
print(f"{'quota MiB/s':>12} {'produced MiB/s':>15} {'consumed MiB/s':>15}")
for quota in quotas:
    client = f"quota-{quota}"
    rate = quota << 20
    p = ref.run_tool("kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap, "--alter", "--entity-type", "clients",
                     "--entity-name", client, "--add-config", f"producer_byte_rate={rate},consumer_byte_rate={rate}")
    assert p.returncode == 0, p.stderr
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": client, "linger.ms": 5})
    started = time.monotonic()
    for _ in range(records):
        while True:
            try:
                producer.produce(client, payload)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(600) == 0
    produced = records * len(payload) / 1048576 / (time.monotonic() - started)
    consumer = Consumer({"bootstrap.servers": bootstrap, "client.id": client, "group.id": client, "auto.offset.reset": "earliest"})
    consumer.subscribe([client])
    got = 0
    while got == 0:  # the clock starts with the first record, after the group is joined
        m = consumer.poll(1)
        got += m is not None and m.error() is None
    started = time.monotonic()
    while got < records:
        m = consumer.poll(1)
        got += m is not None and m.error() is None
    consumed = (records - 1) * len(payload) / 1048576 / (time.monotonic() - started)
    consumer.close()
    print(f"{quota:>12} {produced:>15.2f} {consumed:>15.2f}")
PYTHON
