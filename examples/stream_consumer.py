#!/usr/bin/env python3
"""A durable consumer in Python on the gRPC API (ductstream.v1.StreamService): pull a batch,
print each message as "<id> <value>", ack it. The first pull creates the group.

    python3 examples/stream_consumer.py --endpoint localhost:8080 --stream orders --group search \\
        [--max 10] [--visibility 30] [--idle-exit N]

--idle-exit N stops after N pulls in a row that found nothing (each waits up to a second).
Needs grpcio and grpcio-tools (pip install grpcio grpcio-tools): the client code is generated
from proto/ on first use, into ~/.cache/ductstream/python-stubs.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import pathlib
import sys

PROTO = pathlib.Path(__file__).resolve().parent.parent / "proto" / "proto"


def load_stubs():
    """Generates the Python client from the .proto files (again when they change)."""
    files = sorted((PROTO / "ductstream" / "v1").glob("*.proto"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]
    out = pathlib.Path.home() / ".cache" / "ductstream" / "python-stubs" / digest
    if not (out / "ductstream" / "v1" / "stream_pb2_grpc.py").exists():
        from grpc_tools import protoc

        out.mkdir(parents=True, exist_ok=True)
        well_known = str(importlib.resources.files("grpc_tools") / "_proto")
        code = protoc.main(["protoc", f"-I{PROTO}", f"-I{well_known}", f"--python_out={out}",
                            f"--grpc_python_out={out}", *(str(f.relative_to(PROTO)) for f in files)])
        if code != 0:
            sys.exit(f"protoc failed ({code}) on {PROTO}")
    sys.path.insert(0, str(out))
    from ductstream.v1 import stream_pb2, stream_pb2_grpc

    return stream_pb2, stream_pb2_grpc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default="localhost:8080")
    ap.add_argument("--stream", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--max", type=int, default=10)
    ap.add_argument("--visibility", type=float, default=30, help="seconds a pulled message stays claimed")
    ap.add_argument("--idle-exit", type=int, default=0)
    args = ap.parse_args()

    import grpc

    pb, pb_grpc = load_stubs()
    api = pb_grpc.StreamServiceStub(grpc.insecure_channel(args.endpoint))
    idle = 0
    while True:
        answer = api.Pull(pb.PullRequest(stream=args.stream, group=args.group, max_messages=args.max,
                                         visibility_timeout_ms=int(args.visibility * 1000), max_wait_ms=1000,
                                         consumer_id="stream_consumer.py"))
        if answer.created:
            print(f"created durable consumer {args.group!r} on stream {args.stream!r}", file=sys.stderr)
        if not answer.messages:
            idle += 1
            if args.idle_exit and idle >= args.idle_exit:
                return 0
            continue
        idle = 0
        for m in answer.messages:
            print(f"{m.id} {m.value.decode('utf-8', errors='replace')}", flush=True)
        api.Ack(pb.AckRequest(stream=args.stream, group=args.group, ids=[m.id for m in answer.messages]))


if __name__ == "__main__":
    sys.exit(main())
