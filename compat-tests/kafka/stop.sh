#!/usr/bin/env bash
# Stop the reference Kafka that start.sh started in DIR (default /tmp/ductstream-ref-kafka).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$HERE/reference_kafka.py" stop "${1:-/tmp/ductstream-ref-kafka}"
