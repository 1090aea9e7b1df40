#!/usr/bin/env bash
# The web console with a thousand topics and a hundred groups: one DuctStream (release,
# embedded store) with --console-listen; TOPICS topics of 2 partitions, one record each, and
# NGROUPS groups each with committed offsets on 10 topics (confluent-kafka). Each page is then
# loaded LOADS times over HTTP, one after another: p50, p99 and max load time, bytes, and the
# broker's CPU time per load; the broker's resident memory before and after the loads. Pages
# are static HTML (no polling): an open page costs nothing once loaded. What the console costs
# with no page open is its sampling for the charts (every topic's end offsets and every
# group's lag, every SAMPLE_MS): the broker's CPU over IDLE_S seconds without a request.
#
#   bench/console.sh [TOPICS=1000] [GROUPS=100] [LOADS=20] [SAMPLE_MS=10000] [IDLE_S=30]
#
# Release binary in $CARGO_TARGET_DIR/release; Python with confluent-kafka in $DUCTSTREAM_VENV.
set -euo pipefail
TOPICS="${1:-1000}"
NGROUPS="${2:-100}"
LOADS="${3:-20}"
SAMPLE_MS="${4:-10000}"
IDLE_S="${5:-30}"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/ductstream/target}/release"
PY="${DUCTSTREAM_VENV:-$HOME/.cache/ductstream/venv}/bin/python"
WORK="$(mktemp -d)"
cleanup() {
    [[ -n "${DS_PID:-}" ]] && kill "$DS_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
KAFKA=$(free_port)
CONSOLE=$(free_port)
(cd "$WORK" && exec "$BIN/ductstream" --kafka-listen 127.0.0.1:$KAFKA --grpc-listen 127.0.0.1:0 --console-listen 127.0.0.1:$CONSOLE \
    --console-sample-interval-ms "$SAMPLE_MS" \
    >"$WORK/ds.out" 2>"$WORK/ds.err") &
DS_PID=$!
for _ in $(seq 100); do grep -q "listening kafka=" "$WORK/ds.out" 2>/dev/null && break; sleep 0.1; done

"$PY" - "$KAFKA" "$CONSOLE" "$DS_PID" "$TOPICS" "$NGROUPS" "$LOADS" "$SAMPLE_MS" "$IDLE_S" <<'PYEOF'
import os, statistics, sys, time, urllib.request
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

kafka, console, pid, topics, groups, loads, sample_ms, idle_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), *map(int, sys.argv[4:])
bootstrap = f"127.0.0.1:{kafka}"
names = [f"bench.topic-{i:04d}" for i in range(topics)]
admin = AdminClient({"bootstrap.servers": bootstrap})
for i in range(0, topics, 100):
    for f in admin.create_topics([NewTopic(n, 2, 1) for n in names[i:i + 100]]).values():
        f.result(60)
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
for n in names:
    p.produce(n, key=b"k", value=b'{"order": 1, "total": 12.5}', partition=0)
assert p.flush(60) == 0
for g in range(groups):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-group-{g:03d}"})
    c.commit(offsets=[TopicPartition(names[(g * 10 + k) % topics], 0, 1) for k in range(10)], asynchronous=False)
    c.close()

def clock_ticks():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

def rss_mib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

hz = os.sysconf("SC_CLK_TCK")
print(f"{topics} topics (2 partitions), {groups} groups with 10 committed partitions each; {loads} loads per page")
print(f"broker RSS before the loads: {rss_mib():.1f} MiB")
print(f"{'page':<52}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'KiB':>9}{'CPU ms/load':>13}")
pages = ["/", "/topics", f"/topics/{names[0]}", f"/topics/{names[0]}/messages?partition=0",
         f"/topics/{names[0]}/messages?partition=0&key=k", "/groups", "/groups/bench-group-000", "/consumers", "/flows", "/sinks"]
for path in pages:
    times, size = [], 0
    before = clock_ticks()
    for _ in range(loads):
        t = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{console}{path}", timeout=60) as r:
            size = len(r.read())
        times.append((time.perf_counter() - t) * 1000)
    cpu = (clock_ticks() - before) * 1000 / hz / loads
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{path.replace(names[0], '<topic>')[:51]:<52}{statistics.median(times):>9.1f}{p99:>9.1f}{times[-1]:>9.1f}{size / 1024:>9.1f}{cpu:>13.1f}")
print(f"broker RSS after the loads: {rss_mib():.1f} MiB")
before = clock_ticks()
time.sleep(idle_s)
cpu_ms = (clock_ticks() - before) * 1000 / hz
samples = idle_s * 1000 / sample_ms
print(f"idle with the console sampling every {sample_ms} ms: {cpu_ms / idle_s:.1f} ms CPU per second, "
      f"{cpu_ms / samples:.1f} ms per sample of {topics} topics and {groups} groups; RSS {rss_mib():.1f} MiB")
PYEOF
