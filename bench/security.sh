#!/usr/bin/env bash
# The cost of TLS and SASL on one DuctStream: produce and consume with ductstream-bench
# (librdkafka with OpenSSL) over its PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512) listeners, same
# settings (1 KiB values, acks=all, 8 partitions), one after the other; then logins per second:
# a fresh librdkafka client connecting and fetching metadata, one at a time, over PLAINTEXT,
# SASL_PLAINTEXT (SCRAM-SHA-256) and SASL_SSL (SCRAM-SHA-512). Certificates are made here with
# openssl; the user is made with AlterUserScramCredentials through confluent-kafka. Then the
# same produce and consume against a reference Apache Kafka (compat-tests/kafka) over its
# PLAINTEXT and SSL listeners, with the same certificate: how much of TLS's cost is the
# client's and the machine's.
#
#   bench/security.sh [STORAGE=embedded] [MESSAGES=200000] [LOGINS=200]
#
# BROKER_CPUS=0 CLIENT_CPUS=1 pins the brokers and the load generator to cores of their own
# (taskset), so that the client's encryption does not take the broker's core.
#
# Release binaries in $CARGO_TARGET_DIR/release; Python with confluent-kafka in $DUCTSTREAM_VENV
# (compat-tests/setup.sh makes it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STORAGE="${1:-embedded}"
MESSAGES="${2:-200000}"
LOGINS="${3:-200}"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/ductstream/target}/release"
PY="${DUCTSTREAM_VENV:-$HOME/.cache/ductstream/venv}/bin/python"
WORK="$(mktemp -d)"
# Unquoted on purpose: empty, or the words `taskset -c CPUS` (which execs the command, so a
# background broker's PID stays its own).
PIN_BROKER="${BROKER_CPUS:+taskset -c $BROKER_CPUS}"
PIN_CLIENT="${CLIENT_CPUS:+taskset -c $CLIENT_CPUS}"
cleanup() {
    [[ -n "${DS_PID:-}" ]] && kill "$DS_PID" 2>/dev/null || true
    [[ -d "$WORK/kafka" ]] && "$HERE/../compat-tests/kafka/stop.sh" "$WORK/kafka" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# A CA and a server certificate for 127.0.0.1.
(
    cd "$WORK"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=bench CA" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt 2>/dev/null
    # Kafka's PEM keystore: the PKCS#8 key and the certificate in one file.
    openssl pkcs8 -topk8 -nocrypt -in server.key -out server.pk8
    cat server.pk8 server.crt > kafka.pem
)

$PIN_BROKER "$BIN/ductstream" --listeners PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0 \
    --ssl-certificate "$WORK/server.crt" --ssl-key "$WORK/server.key" --num-partitions 8 \
    --grpc-listen off --storage "$STORAGE" --data-dir "$WORK/ds" >"$WORK/ds.out" 2>"$WORK/ds.err" &
DS_PID=$!
for _ in $(seq 1 500); do grep -q "listening kafka=" "$WORK/ds.out" 2>/dev/null && break; sleep 0.02; done
listener() { sed -n "s/.*listening kafka\.$1=\([^ ]*\).*/\1/p" "$WORK/ds.out" | head -n 1; }

"$PY" - "$(listener PLAINTEXT)" <<'PYEOF'
import sys
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
upserts = [UserScramCredentialUpsertion("bench", ScramCredentialInfo(m, 4096), b"bench-secret")
           for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
for f in admin.alter_user_scram_credentials(upserts).values():
    f.result(timeout=30)
PYEOF

run_bench() { # broker protocol bootstrap
    local settings=(--set security.protocol="${2,,}")
    [[ "$2" == *SSL ]] && settings+=(--set ssl.ca.location="$WORK/ca.crt")
    [[ "$2" == SASL_* ]] && settings+=(--set sasl.username=bench --set sasl.password=bench-secret --set sasl.mechanism=SCRAM-SHA-512)
    echo "== $1 $2 ($3)"
    $PIN_CLIENT "$BIN/ductstream-bench" "${settings[@]}" produce --bootstrap "$3" --topic "t-$2" --messages "$MESSAGES" --size 1024 --acks all | head -n 1
    $PIN_CLIENT "$BIN/ductstream-bench" "${settings[@]}" consume --bootstrap "$3" --topic "t-$2" --messages "$MESSAGES" | head -n 1
}
for protocol in PLAINTEXT SSL SASL_SSL; do
    run_bench DuctStream "$protocol" "$(listener "$protocol")"
done

echo "== logins (a new librdkafka client connecting and reading metadata, $LOGINS times each)"
"$PY" - "$LOGINS" "$(listener PLAINTEXT)" "$(listener SASL_PLAINTEXT)" "$(listener SASL_SSL)" "$WORK/ca.crt" <<'PYEOF'
import sys, time
from confluent_kafka import Producer
n, plain, sasl, sasl_ssl, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
user = {"sasl.username": "bench", "sasl.password": "bench-secret"}
cases = [
    ("PLAINTEXT", {"bootstrap.servers": plain}),
    ("SASL_PLAINTEXT SCRAM-SHA-256", {"bootstrap.servers": sasl, "security.protocol": "sasl_plaintext", "sasl.mechanism": "SCRAM-SHA-256", **user}),
    ("SASL_SSL SCRAM-SHA-512", {"bootstrap.servers": sasl_ssl, "security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "ssl.ca.location": ca, **user}),
]
for name, conf in cases:
    took = []
    for _ in range(n):
        start = time.perf_counter()
        Producer(conf).list_topics(timeout=10)
        took.append(time.perf_counter() - start)
    took.sort()
    print(f"{name}: {n / sum(took):,.0f} logins/s, p50 {took[n // 2] * 1000:.1f} ms, p99 {took[int(n * 0.99)] * 1000:.1f} ms")
PYEOF

kill "$DS_PID"; wait "$DS_PID" 2>/dev/null || true; DS_PID=
KAFKA_BS="$(DUCTSTREAM_KAFKA_PROPS=num.partitions=8 DUCTSTREAM_KAFKA_SSL_PEM="$WORK/kafka.pem" $PIN_BROKER "$HERE/../compat-tests/kafka/start.sh" "$WORK/kafka" | tail -n 1)"
run_bench "Apache Kafka 4.1.2" PLAINTEXT "$KAFKA_BS"
run_bench "Apache Kafka 4.1.2" SSL "$(cat "$WORK/kafka/ssl_bootstrap")"
