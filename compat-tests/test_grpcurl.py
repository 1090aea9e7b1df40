"""The gRPC API through grpcurl itself (installed by setup.sh from the Go module proxy): it
knows the API only from the broker's server reflection."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

GRPCURL = Path(os.environ.get("DUCTSTREAM_COMPAT_BIN", Path.home() / ".cache" / "ductstream" / "compat-bin")) / "grpcurl"


def grpcurl(broker, *args, data: dict | None = None) -> subprocess.CompletedProcess:
    if not GRPCURL.exists():
        pytest.fail(f"{GRPCURL} is missing: run compat-tests/setup.sh", pytrace=False)
    cmd = [str(GRPCURL), "-plaintext"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    return subprocess.run([*cmd, broker.grpc, *args], capture_output=True, text=True, timeout=60)


def test_lists_and_describes_the_services(broker):
    listed = grpcurl(broker, "list")
    assert listed.returncode == 0, listed.stderr
    for service in ["ductstream.v1.StreamService", "ductstream.v1.FlowService", "ductstream.v1.SinkService",
                    "ductstream.v1.DDLService", "ductstream.v1.CheckpointService"]:
        assert service in listed.stdout.split(), listed.stdout
    described = grpcurl(broker, "describe", "ductstream.v1.SinkRecord")
    assert described.returncode == 0 and "optional bytes value = 6;" in described.stdout, described.stdout


def test_a_sink_created_and_listed_with_grpcurl(broker):
    sink = {"sink": {"id": "by-grpcurl", "topics": ["t"], "destination": {
        "name": "h", "type": "http", "options": {"url": "http://127.0.0.1:9/x"}}}, "paused": True}
    created = grpcurl(broker, "ductstream.v1.SinkService/CreateSink", data=sink)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["state"] == "SINK_STATE_PAUSED"
    listed = json.loads(grpcurl(broker, "ductstream.v1.SinkService/ListSinks", data={}).stdout)
    assert [s["id"] for s in listed["sinks"]] == ["by-grpcurl"]
    # A bad request gets the API's error, as grpcurl prints it.
    bad = grpcurl(broker, "ductstream.v1.SinkService/CreateSink",
                  data={"sink": {"id": "x", "topics": ["t"], "destination": {"type": "ftp"}}})
    assert bad.returncode != 0 and "InvalidArgument" in bad.stderr and "unknown destination type" in bad.stderr, bad.stderr
    missing = grpcurl(broker, "ductstream.v1.SinkService/GetSink", data={"id": "nope"})
    assert missing.returncode != 0 and "NotFound" in missing.stderr
