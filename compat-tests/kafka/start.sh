#!/usr/bin/env bash
# Start a reference Apache Kafka (KRaft, one node, plaintext on 127.0.0.1, free ports) in DIR
# (default /tmp/ductstream-ref-kafka), wait until it answers, print its bootstrap address.
# The jars are fetched first (compat-tests/kafka/fetch.sh). Stop it with stop.sh DIR.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$HERE/reference_kafka.py" start "${1:-/tmp/ductstream-ref-kafka}"
