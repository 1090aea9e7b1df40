"""Fixtures that run the real DuctStream broker binary for the client tests.

Each test gets a freshly started broker (port 0, fresh data dir) so a crash or
bad state in one test cannot leak into another.  The broker's stderr goes to a
file in the test's tmp dir; on failure its tail is attached to the pytest report
under "broker stderr" so the failure report shows what the broker logged.

Environment:
  DUCTSTREAM_BIN              broker binary (default
                              $HOME/.cache/ductstream/target/debug/ductstream)
  DUCTSTREAM_COMPAT_STORAGES  storage engines for the parametrized
                              `any_broker` fixture (default "embedded,memory,postgres")
  DUCTSTREAM_COMPAT_LOG       RUST_LOG for the broker (default "info")
  DUCTSTREAM_COMPAT_PG_BINDIR folder with initdb/pg_ctl/createdb (default: PATH,
                              then /usr/lib/postgresql/*/bin, newest first)
  DUCTSTREAM_COMPAT_KEEP_PG   1: keep the session's Postgres data dir (/tmp/ds-pg-*)
"""

from __future__ import annotations

import glob
import os
import queue
import shutil
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import helpers  # noqa: E402

DEFAULT_BIN = Path.home() / ".cache" / "ductstream" / "target" / "debug" / "ductstream"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LISTEN_RE = re.compile(r"listening kafka=(\S+)")
NAMED_LISTEN_RE = re.compile(r"listening kafka\.(\S+)=(\S+)")
METRICS_RE = re.compile(r"listening metrics=(\S+)")
GRPC_RE = re.compile(r"listening grpc=(\S+)")
TS_RE = re.compile(r"^\S*\d{4}-\d\d-\d\dT[\d:.]+Z\S*\s*")


def broker_binary() -> Path:
    return Path(os.environ.get("DUCTSTREAM_BIN", str(DEFAULT_BIN)))


_SNAPSHOT: Path | None = None


def broker_snapshot(tmp_path_factory) -> Path:
    """Copy the binary once per session so a rebuild during a run cannot mix
    two broker versions into one set of results."""
    global _SNAPSHOT
    if _SNAPSHOT is None:
        src = broker_binary()
        if not src.exists():
            pytest.fail(
                f"broker binary {src} does not exist; build it with "
                "`cargo build -p ductstream-broker --bin ductstream` or set DUCTSTREAM_BIN",
                pytrace=False,
            )
        dst = tmp_path_factory.mktemp("bin") / "ductstream"
        shutil.copy2(src, dst)
        _SNAPSHOT = dst
    return _SNAPSHOT


def storages() -> list[str]:
    raw = os.environ.get("DUCTSTREAM_COMPAT_STORAGES", "embedded,memory,postgres")
    return [s.strip() for s in raw.split(",") if s.strip()]


# -- Postgres -----------------------------------------------------------------
# One throwaway Postgres cluster per session (initdb in a temp dir, trust auth,
# fsync off, listening on 127.0.0.1 at a free port); every broker on Postgres
# gets its own fresh database in it.
PG_START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_pg_binaries() -> tuple[dict[str, str] | None, str]:
    """initdb/pg_ctl/createdb from one Postgres installation: PATH first, then
    /usr/lib/postgresql/*/bin (newest first). Returns (paths, what was tried)."""
    names = ("initdb", "pg_ctl", "createdb")
    forced = os.environ.get("DUCTSTREAM_COMPAT_PG_BINDIR")
    if forced:
        d = Path(forced)
        missing = [n for n in names if not (d / n).is_file()]
        if missing:
            return None, f"missing {', '.join(missing)} in DUCTSTREAM_COMPAT_PG_BINDIR={forced}"
        return {n: str(d / n) for n in names}, ""
    candidates = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda d: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", d)],
                    reverse=True):
        candidates.append(Path(d))
    for d in candidates:
        if all((d / n).is_file() and os.access(d / n, os.X_OK) for n in names):
            return {n: str(d / n) for n in names}, ""
    # initdb/pg_ctl found but createdb only on PATH (e.g. Debian's pg_wrapper)
    found = {n: shutil.which(n) for n in names}
    if all(found.values()):
        return found, ""
    tried = ["PATH"] + [str(d) for d in candidates]
    missing = [n for n in names if not found[n]]
    return None, f"missing {', '.join(missing)} (looked on {', '.join(tried) or 'PATH'})"


class PostgresCluster:
    def __init__(self, bins: dict[str, str], base: Path):
        self.bins = bins
        self.base = base
        self.data = base / "data"
        self.sock = base / "sock"
        self.log = base / "postgres.log"
        self.port: int | None = None
        self.as_root = os.geteuid() == 0
        self.dbs = 0

    def _cmd(self, *args) -> list[str]:
        # initdb/pg_ctl/postgres refuse to run as root
        return ["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args)

    def _run(self, *args, timeout=PG_START_TIMEOUT_S, **kw):
        out = self.base / "cmd.out"
        with open(out, "ab") as f:
            f.write(f"$ {' '.join(args)}\n".encode())
            f.flush()
            # output to a file, not a pipe: pg_ctl's postmaster must not hold our pipe open
            rc = subprocess.run(self._cmd(*args), stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT, cwd=self.base, timeout=timeout, **kw).returncode
        return rc

    def _fail(self, what: str):
        def tail(p: Path) -> str:
            try:
                return "\n".join(p.read_text("utf-8", "replace").splitlines()[-40:])
            except OSError:
                return "(none)"
        raise RuntimeError(f"{what}\ncommands:\n{tail(self.base / 'cmd.out')}\n"
                           f"postgres.log:\n{tail(self.log)}")

    def start(self):
        self.sock.mkdir()
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        if self._run(self.bins["initdb"], "-D", str(self.data), "-A", "trust", "-U", "postgres",
                     "-E", "UTF8", "--locale=C") != 0:
            self._fail("initdb failed")
        for attempt in range(3):
            self.port = _free_port()
            opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=400 "
                    # CDC flows read some of these databases (logical replication)
                    "-c wal_level=logical -c max_replication_slots=40 -c max_wal_senders=40")
            if self._run(self.bins["pg_ctl"], "-D", str(self.data), "-l", str(self.log), "-w",
                         "-t", str(PG_START_TIMEOUT_S), "-o", opts, "start") == 0:
                return self
        self._fail(f"pg_ctl start failed 3 times (last port {self.port})")

    def createdb(self, hint: str = "db") -> str:
        """A fresh database; returns its postgres:// URL."""
        self.dbs += 1
        name = re.sub(r"[^a-z0-9_]+", "_", hint.lower()).strip("_")[:40] or "db"
        name = f"ds_{self.dbs}_{name}_{uuid.uuid4().hex[:6]}"
        if self._run(self.bins["createdb"], "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                     name, timeout=30) != 0:
            self._fail(f"createdb {name} failed")
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self):
        if self.port is not None and (self.data / "postmaster.pid").exists():
            try:
                self._run(self.bins["pg_ctl"], "-D", str(self.data), "-m", "immediate", "-w",
                          "-t", "30", "stop", timeout=40)
            except subprocess.TimeoutExpired:
                pass
        if os.environ.get("DUCTSTREAM_COMPAT_KEEP_PG") != "1":
            shutil.rmtree(self.base, ignore_errors=True)


class _PgUnavailable:
    def __init__(self, why: str):
        self.why = why
        self.message = f"storage 'postgres' needs a Postgres server: {why}"

    def createdb(self, hint: str = "db") -> str:
        pytest.fail(self.message, pytrace=False)


@pytest.fixture(scope="session")
def postgres_cluster():
    """One throwaway Postgres for the whole session. Without the server binaries
    (or when it cannot start) every test that needs it FAILS with the reason."""
    bins, why = find_pg_binaries()
    if bins is None:
        yield _PgUnavailable(f"Postgres server binaries not found: {why}; install the "
                             "`postgresql` package (setup.sh does)")
        return
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        yield _PgUnavailable("running as root needs `runuser` to start Postgres as user postgres")
        return
    # Not under pytest's basetemp: that is mode 0700 root-owned, and Postgres
    # runs as user `postgres` when we are root. Short path: the socket lives here.
    base = Path(tempfile.mkdtemp(prefix="ds-pg-"))
    os.chmod(base, 0o755)
    cluster = PostgresCluster(bins, base)
    try:
        cluster.start()
    except Exception as e:  # noqa: BLE001 - reported by every test that needs it
        cluster.stop()
        yield _PgUnavailable(str(e))
        return
    try:
        yield cluster
    finally:
        cluster.stop()


class BrokerDied(Exception):
    pass


class Broker:
    """One broker process. `restart()` keeps the data dir (to test persistence)."""

    def __init__(self, binary: Path, storage: str, data_dir: Path, log_dir: Path, extra_args=(),
                 storage_url: str | None = None):
        self.binary = binary
        self.storage = storage
        # what --storage gets: the engine name, or a postgres:// URL
        self.storage_url = storage_url or storage
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.bootstrap: str | None = None
        self.metrics: str | None = None
        self.grpc: str | None = None
        # host:port of each listener by name (--listeners), e.g. {"SASL_SSL": "127.0.0.1:40123"}
        self.listeners: dict[str, str] = {}
        self.starts = 0
        self.stderr_paths: list[Path] = []
        self.stdout_lines: list[str] = []
        self.expected_exit = False
        self.listen = "127.0.0.1:0"

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "Broker":
        binary = self.binary
        self.starts += 1
        stderr_path = self.log_dir / f"broker-{self.storage}-{self.starts}.stderr"
        self.stderr_paths.append(stderr_path)
        args = [
            str(binary),
            "--kafka-listen", self.listen,
            "--storage", self.storage_url,
            "--data-dir", str(self.data_dir),
            "--metrics-listen", "127.0.0.1:0",
            *([] if "--grpc-listen" in self.extra_args else ["--grpc-listen", "127.0.0.1:0"]),
            *self.extra_args,
        ]
        # The broker reads DUCTSTREAM_* variables as flag defaults; don't let
        # the caller's environment change what the tests run against.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUCTSTREAM_")}
        env.setdefault("RUST_LOG", os.environ.get("DUCTSTREAM_COMPAT_LOG", "info"))
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        self._stderr_file = open(stderr_path, "wb")
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._stderr_file, stdin=subprocess.DEVNULL,
            env=env,
        )
        lines: queue.Queue = queue.Queue()

        def drain(stream, sink, record):
            # Keep draining stdout for the broker's whole life so it never blocks.
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                record.append(line)
                sink.put(line)
            sink.put(None)

        threading.Thread(
            target=drain, args=(self.proc.stdout, lines, self.stdout_lines), daemon=True
        ).start()

        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        self.bootstrap = None
        self.metrics = None
        self.grpc = None
        while self.bootstrap is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                pytest.fail(
                    f"broker did not print 'listening kafka=' within {STARTUP_TIMEOUT_S}s\n"
                    f"args: {args}\nstdout: {self.stdout_lines}\nstderr:\n{self.stderr_tail()}",
                    pytrace=False,
                )
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None:
                    line = None
                else:
                    continue
            if line is None:
                rc = self.proc.wait()
                pytest.fail(
                    f"broker exited with code {rc} before listening\nargs: {args}\n"
                    f"stdout: {self.stdout_lines}\nstderr:\n{self.stderr_tail()}",
                    pytrace=False,
                )
            m = NAMED_LISTEN_RE.search(line)
            if m:
                self.listeners[m.group(1)] = m.group(2)
            m = LISTEN_RE.search(line)
            if m:
                self.bootstrap = m.group(1)
            m = METRICS_RE.search(line)
            if m:
                self.metrics = m.group(1)
            m = GRPC_RE.search(line)
            if m:
                self.grpc = m.group(1)
        # The metrics line may come right after the kafka line; don't wait for it.
        return self

    def describe(self) -> str:
        args = self.extra_args
        node = args[args.index("--node-id") + 1] if "--node-id" in args[:-1] else None
        return self.storage + (f", node {node}" if node else "") + (f", {self.bootstrap}" if self.bootstrap else "")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        rc = proc.poll()
        if rc is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait(timeout=STOP_TIMEOUT_S)
                self._stderr_file.close()
                raise BrokerDied(
                    f"broker ignored SIGTERM for {STOP_TIMEOUT_S}s and had to be killed\n"
                    f"stderr:\n{self.stderr_tail()}"
                )
        self._stderr_file.close()
        return rc

    def restart(self, keep_port: bool = False) -> "Broker":
        """Stop and start on the same data dir; keep_port re-binds the same
        address so connected clients can reconnect to it.

        On Postgres the port is always kept: the stopped broker's lease on its
        --node-id stays live in ductstream_brokers for --broker-lease-ms, and
        only a broker at the same host:port may take it over before then (a
        fresh node id instead would leave the dead one leading half of the
        partitions until its lease ran out)."""
        old = self.bootstrap
        if self.storage == "postgres":
            keep_port = True
        self.stop()
        self.listen = old if keep_port and old else "127.0.0.1:0"
        try:
            return self.start()
        finally:
            self.listen = "127.0.0.1:0"

    # -- diagnostics -------------------------------------------------------
    def stderr_text(self) -> str:
        parts = []
        for p in self.stderr_paths:
            try:
                parts.append(f"--- {p.name} ---\n" + p.read_text("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(parts)

    def stderr_tail(self, n: int = 120) -> str:
        """Last n lines, with runs of lines that differ only in their
        timestamp collapsed into one line plus a repeat count."""
        out: list[str] = []
        last_key, repeats = None, 0
        for line in self.stderr_text().splitlines():
            key = TS_RE.sub("", line)
            if key == last_key:
                repeats += 1
                continue
            if repeats:
                out.append(f"    ... previous line repeated {repeats} more times")
            out.append(line)
            last_key, repeats = key, 0
        if repeats:
            out.append(f"    ... previous line repeated {repeats} more times")
        return "\n".join(out[-n:])

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise BrokerDied(
                f"broker process died with exit code {self.proc.returncode}\n"
                f"stderr:\n{self.stderr_tail()}"
            )


def _make_broker(request, tmp_path_factory, storage, extra_args=(), storage_url=None, start=True):
    """storage "postgres" gets a fresh database in the session's Postgres
    cluster, unless storage_url names one (brokers sharing a database)."""
    base = tmp_path_factory.mktemp(f"broker-{storage}")
    data_dir = base / "data"
    data_dir.mkdir()
    if storage == "postgres" and storage_url is None:
        storage_url = request.getfixturevalue("postgres_cluster").createdb(request.node.name)
    b = Broker(broker_snapshot(tmp_path_factory), storage, data_dir, base, extra_args, storage_url)
    request.node._ductstream_brokers = getattr(request.node, "_ductstream_brokers", []) + [b]
    if start:
        b.start()
    return b


def _finish_broker(b: Broker):
    died = None
    if b.proc is not None and b.proc.poll() is not None and not b.expected_exit:
        died = b.proc.returncode
    b.stop()
    if died is not None:
        why = "crashed"
        if "signal received" in b.stderr_text():
            why = "was stopped by a signal the test did not send (someone else killed it?)"
        raise BrokerDied(
            f"broker {why} during the test (exit code {died})\nstderr:\n{b.stderr_tail()}"
        )


@pytest.fixture
def broker(request, tmp_path_factory):
    """A broker on the embedded store; yields the Broker (use `.bootstrap`)."""
    b = _make_broker(request, tmp_path_factory, "embedded")
    yield b
    _finish_broker(b)


@pytest.fixture(params=storages())
def any_broker(request, tmp_path_factory):
    """Same as `broker`, parametrized over the storage engines."""
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres_cluster")
        if isinstance(pg, _PgUnavailable):
            # fail the test itself (pytest_pyfunc_call below), not its setup
            request.node._ductstream_fail = pg.message
            yield None
            return
    b = _make_broker(request, tmp_path_factory, request.param)
    yield b
    _finish_broker(b)


@pytest.fixture(scope="module")
def module_group_broker(request, tmp_path_factory):
    """An embedded-store broker with the short group rebalance delay, shared by one test module."""
    require_group_support(broker_snapshot(tmp_path_factory))
    b = _make_broker(request, tmp_path_factory, "embedded", group_args())
    yield b
    _finish_broker(b)


@pytest.fixture(scope="module")
def module_broker(request, tmp_path_factory):
    """An embedded-store broker shared by one test module (for drivers that run once)."""
    b = _make_broker(request, tmp_path_factory, "embedded")
    yield b
    _finish_broker(b)


@pytest.fixture
def broker_factory(request, tmp_path_factory):
    """Start brokers with extra args: broker_factory('--num-partitions', '3').
    storage='postgres' gets a fresh database unless storage_url= names one
    (several brokers on one database: give each its own '--node-id')."""
    made = []

    def make(*extra_args, storage="embedded", storage_url=None):
        b = _make_broker(request, tmp_path_factory, storage, extra_args, storage_url)
        made.append(b)
        return b

    yield make
    for b in made:
        _finish_broker(b)


# -- consumer groups ---------------------------------------------------------
# Kafka's group.initial.rebalance.delay.ms defaults to 3 s; the group tests run the
# broker with a short delay so that every first join does not cost 3 s.
GROUP_REBALANCE_DELAY_MS = os.environ.get("DUCTSTREAM_COMPAT_GROUP_DELAY_MS", "200")
GROUP_FLAG = "--group-initial-rebalance-delay-ms"
_GROUP_SUPPORT: dict[Path, bool] = {}


def group_args() -> list[str]:
    return [GROUP_FLAG, GROUP_REBALANCE_DELAY_MS]


def require_group_support(binary: Path):
    """Fail fast (instead of every client timing out) on a broker built before
    the consumer-group APIs: those builds do not know the rebalance-delay flag."""
    if binary not in _GROUP_SUPPORT:
        out = subprocess.run([str(binary), "--help"], capture_output=True, timeout=30)
        _GROUP_SUPPORT[binary] = GROUP_FLAG.encode() in out.stdout + out.stderr
    if not _GROUP_SUPPORT[binary]:
        pytest.fail(
            f"broker binary {broker_binary()} has no {GROUP_FLAG} flag: it was built "
            "without consumer groups (FindCoordinator/JoinGroup/...)",
            pytrace=False,
        )


@pytest.fixture
def group_broker_factory(request, tmp_path_factory):
    """Start brokers for consumer-group tests: the short initial rebalance delay
    plus any extra flags, e.g. group_broker_factory('--num-partitions', '3',
    storage='postgres')."""
    require_group_support(broker_snapshot(tmp_path_factory))
    made = []

    def make(*extra_args, storage="embedded", storage_url=None):
        b = _make_broker(request, tmp_path_factory, storage, [*group_args(), *extra_args], storage_url)
        made.append(b)
        return b

    yield make
    for b in made:
        _finish_broker(b)


@pytest.fixture
def group_broker(group_broker_factory):
    """An embedded-store broker with the short group rebalance delay."""
    return group_broker_factory()


# -- reference Apache Kafka --------------------------------------------------
@pytest.fixture(scope="session")
def reference_kafka(tmp_path_factory):
    """One Apache Kafka broker (KRaft, one node; compat-tests/kafka) for the whole session,
    the reference that tests run beside DuctStream. Started on first use (the jars are
    fetched then, if setup.sh has not), stopped at the end of the session."""
    sys.path.insert(0, str(HERE / "kafka"))
    try:
        import reference_kafka as ref
    finally:
        sys.path.remove(str(HERE / "kafka"))
    # The log cleaner every second (Kafka's default is 15 s), as the compaction tests run ours.
    kafka = ref.ReferenceKafka(tmp_path_factory.mktemp("reference-kafka"), {"log.cleaner.backoff.ms": "1000"})
    try:
        kafka.start()
    except Exception as e:  # noqa: BLE001 - reported by every test that needs it
        kafka.stop()
        pytest.fail(f"reference Kafka did not start: {e}", pytrace=False)
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def topic(request):
    return helpers.unique_topic(request.node.name)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    msg = getattr(pyfuncitem, "_ductstream_fail", None)
    if msg:
        pytest.fail(msg, pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        brokers = []
        for node in item.listchain():
            brokers.extend(getattr(node, "_ductstream_brokers", []))
        for b in brokers:
            tail = b.stderr_tail(150)
            if tail:
                report.sections.append((f"broker stderr ({b.describe()})", tail))


def pytest_report_header(config):
    b = broker_binary()
    if b.exists():
        st = b.stat()
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime))
        return f"ductstream broker: {b} (mtime {when}, {st.st_size} bytes)"
    return f"ductstream broker: {b} (MISSING)"
