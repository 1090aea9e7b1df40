#!/usr/bin/env bash
# Creates a CDC flow through the gRPC API with grpcurl, which learns the API from the broker's
# server reflection (no .proto files needed), and prints the flow as created.
#
#   examples/grpc/create_flow.sh [FLOW_FILE] [ENDPOINT]
#
# FLOW_FILE: a flow as in examples/flows/ (default: postgres_to_topics.json; a flow without an
# id gets one made from its name). ENDPOINT: the broker's gRPC address (default:
# $DUCTSTREAM_GRPC, else localhost:8080). Needs grpcurl and jq; $GRPCURL names another grpcurl.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FLOW="${1:-$HERE/../flows/postgres_to_topics.json}"
ENDPOINT="${2:-${DUCTSTREAM_GRPC:-localhost:8080}}"
jq '{flow: .}' "$FLOW" | "${GRPCURL:-grpcurl}" -plaintext -d @ "$ENDPOINT" ductstream.v1.FlowService/CreateFlow
