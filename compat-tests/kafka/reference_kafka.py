"""A reference Apache Kafka broker for the compatibility tests and the bench.

One node in KRaft combined mode (broker and controller in one JVM), plaintext on 127.0.0.1
at free ports, data in a fresh folder. Its jars come from Maven Central through fetch.sh
(nothing from Kafka is in the repository).

As a module (the pytest fixture `reference_kafka` in compat-tests/conftest.py uses it):

    kafka = ReferenceKafka(Path("/tmp/somewhere")).start()   # waits until it answers
    kafka.bootstrap                                          # "127.0.0.1:PORT"
    kafka.stop()

From the shell (start.sh / stop.sh call this):

    python3 reference_kafka.py start DIR    # prints the bootstrap address, leaves it running
    python3 reference_kafka.py stop DIR

Environment:
  DUCTSTREAM_KAFKA_HOME   where fetch.sh put the jars (default ~/.cache/ductstream/kafka-<version>)
  DUCTSTREAM_KAFKA_HEAP   JVM heap (default 512m)
  DUCTSTREAM_KAFKA_PROPS  extra broker properties for `start`, name=value,name=value
  DUCTSTREAM_KAFKA_SSL_PEM  a PEM file with a private key (PKCS#8) and its certificate chain:
                          `start` adds an SSL listener with it, its address in DIR/ssl_bootstrap
  JAVA                    java binary (default: java on PATH)
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
FETCH = HERE / "fetch.sh"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
READY_LINE = "Kafka Server started"

LOG4J2_YAML = """\
Configuration:
  Appenders:
    File:
      name: FILE
      fileName: "{log}"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: FILE
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
      - name: org.apache.kafka.clients
        level: WARN
"""


_LIBS: Path | None = None


def fetch() -> Path:
    """Run fetch.sh (a second when already fetched); returns the libs folder."""
    global _LIBS
    if _LIBS is not None and _LIBS.is_dir():
        return _LIBS
    out = subprocess.run(["bash", str(FETCH)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"compat-tests/kafka/fetch.sh failed (exit {out.returncode}):\n{out.stderr}")
    _LIBS = Path(out.stdout.strip().splitlines()[-1])
    return _LIBS


def classpath(libs: Path | None = None) -> str:
    return str((libs or fetch()) / "*")


def java_binary() -> str:
    return os.environ.get("JAVA") or shutil.which("java") or "java"


_CDS_TRIED = False


def _class_data_sharing() -> list[str]:
    """JVM flags for a class-data-sharing archive of the tools' classes (in the cache beside
    the jars): the first tool run of a session that finds none writes it at its exit, later
    runs map it and start in about half the time (0.8 s instead of 1.8 s here). A stale or
    unusable archive is ignored by the JVM (-Xshare:auto); JVM log lines go to stderr."""
    global _CDS_TRIED
    archive = fetch().parent / "tools-cds.jsa"
    flags = ["-Xshare:auto", "-Xlog:disable", "-Xlog:all=error:stderr"]
    if archive.is_file():
        return flags + [f"-XX:SharedArchiveFile={archive}"]
    if not _CDS_TRIED:
        _CDS_TRIED = True
        return flags + [f"-XX:ArchiveClassesAtExit={archive}"]
    return flags


def tool_command(main_class: str, *args: str) -> list[str]:
    """The command line that runs one of Kafka's command-line tools in its own JVM."""
    return [java_binary(), "-XX:TieredStopAtLevel=1", *_class_data_sharing(), "-Xmx256m",
            f"-Dlog4j2.configurationFile={HERE / 'tools-log4j2.yaml'}",
            "-cp", classpath(), main_class, *args]


def run_tool(main_class: str, *args: str, input: str | None = None,
             timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run one of Kafka's command-line tools (e.g. org.apache.kafka.tools.TopicCommand, what
    kafka-topics.sh runs) in its own JVM; returns the finished process (text stdout/stderr)."""
    return subprocess.run(tool_command(main_class, *args), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api_versions_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send ApiVersions v0 and check the answer's error code is 0."""
    client_id = b"ductstream-ref-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = b""
            while len(head) < 4:
                chunk = s.recv(4 - len(head))
                if not chunk:
                    return False
                head += chunk
            (size,) = struct.unpack(">i", head)
            data = b""
            while len(data) < size:
                chunk = s.recv(size - len(data))
                if not chunk:
                    return False
                data += chunk
            correlation, error = struct.unpack(">ih", data[:6])
            return correlation == 1 and error == 0
    except OSError:
        return False


class ReferenceKafka:
    """One Kafka process; `base` is its own folder (config, data, logs)."""

    def __init__(self, base: Path, extra_props: dict[str, str] | None = None, ssl_pem: Path | None = None):
        self.base = Path(base)
        self.extra_props = dict(extra_props or {})
        self.ssl_pem = ssl_pem
        self.ssl_port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.controller_port: int | None = None
        self.libs: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def server_log(self) -> Path:
        return self.base / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.base / "stdout.log"

    def _java(self, *args: str) -> list[str]:
        heap = os.environ.get("DUCTSTREAM_KAFKA_HEAP", "512m")
        return [java_binary(), f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.base / 'log4j2.yaml'}",
                "-cp", classpath(self.libs), *args]

    def _write_config(self):
        data = self.base / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # KIP-848 members learn of assignment changes at their next heartbeat: 1 s
            # instead of 5 s keeps group tests short (the tests give DuctStream the same)
            "group.consumer.min.heartbeat.interval.ms": "1000",
            "group.consumer.heartbeat.interval.ms": "1000",
            "auto.create.topics.enable": "true",
            **self.extra_props,
        }
        if self.ssl_pem is not None:
            props["listeners"] += f",SSL://127.0.0.1:{self.ssl_port}"
            props["advertised.listeners"] += f",SSL://127.0.0.1:{self.ssl_port}"
            props["listener.security.protocol.map"] += ",SSL:SSL"
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.location"] = str(self.ssl_pem)
        (self.base / "server.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in props.items()))
        (self.base / "log4j2.yaml").write_text(LOG4J2_YAML.format(log=self.server_log))

    def start(self) -> "ReferenceKafka":
        self.libs = fetch()
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.controller_port = _free_port()
        while self.controller_port == self.port:
            self.controller_port = _free_port()
        if self.ssl_pem is not None:
            self.ssl_port = _free_port()
            while self.ssl_port in (self.port, self.controller_port):
                self.ssl_port = _free_port()
        self._write_config()
        # An id starting with "-" reads as an option to kafka-storage (one run in 64 failed
        # so); Kafka's own Uuid.randomUuid() avoids them for the same reason.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        fmt = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                       "-c", str(self.base / "server.properties"), "--ignore-formatted"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        if fmt.returncode != 0:
            raise RuntimeError(f"kafka StorageTool format failed:\n{fmt.stdout}")
        out = open(self.stdout_log, "ab")
        self.proc = subprocess.Popen(
            self._java("kafka.Kafka", str(self.base / "server.properties")),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.base,
            start_new_session=True)
        out.close()
        (self.base / "kafka.pid").write_text(f"{self.proc.pid}\n")
        self._wait_ready()
        (self.base / "bootstrap").write_text(self.bootstrap + "\n")
        if self.ssl_port is not None:
            (self.base / "ssl_bootstrap").write_text(f"127.0.0.1:{self.ssl_port}\n")
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"reference Kafka exited with code {self.proc.returncode} "
                                   f"before it was ready\n{self.log_tail()}")
            started = False
            try:
                started = READY_LINE in self.server_log.read_text("utf-8", "replace")
            except OSError:
                pass
            if started and _api_versions_ok("127.0.0.1", self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"reference Kafka did not answer within {START_TIMEOUT_S}s\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        parts = []
        for p in (self.stdout_log, self.server_log):
            try:
                lines = p.read_text("utf-8", "replace").splitlines()[-n:]
                parts.append(f"--- {p.name} ---\n" + "\n".join(lines))
            except OSError:
                pass
        return "\n".join(parts)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        try:
            (self.base / "kafka.pid").unlink()
        except OSError:
            pass
        return proc.returncode


def _stop_dir(base: Path) -> int:
    pid_file = base / "kafka.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        print(f"no reference Kafka running in {base}", file=sys.stderr)
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return 0
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: reference_kafka.py start|stop DIR", file=sys.stderr)
        return 2
    base = Path(argv[2]).resolve()
    if argv[1] == "stop":
        return _stop_dir(base)
    if (base / "kafka.pid").exists():
        print(f"{base} already has a running reference Kafka (kafka.pid); stop it first",
              file=sys.stderr)
        return 1
    # DUCTSTREAM_KAFKA_PROPS="name=value,name=value": broker properties beside the defaults
    # (the bench sets the log cleaner's with it).
    extra = dict(p.split("=", 1) for p in os.environ.get("DUCTSTREAM_KAFKA_PROPS", "").split(",") if "=" in p)
    ssl_pem = os.environ.get("DUCTSTREAM_KAFKA_SSL_PEM")
    k = ReferenceKafka(base, extra, Path(ssl_pem) if ssl_pem else None)
    try:
        k.start()
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    # leave it running: forget the Popen so nothing reaps or stops it
    k.proc = None
    print(k.bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
