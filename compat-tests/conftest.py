"""Fixtures that run the real DuctStream broker binary for the client tests.

Each test gets a freshly started broker (port 0, fresh data dir) so a crash or
bad state in one test cannot leak into another.  The broker's stderr goes to a
file in the test's tmp dir; on failure its tail is attached to the pytest report
under "broker stderr" so the failure report shows what the broker logged.

Environment:
  DUCTSTREAM_BIN              broker binary (default
                              $HOME/.cache/ductstream/target/debug/ductstream)
  DUCTSTREAM_COMPAT_STORAGES  storage engines for the parametrized
                              `any_broker` fixture (default "sled,memory")
  DUCTSTREAM_COMPAT_LOG       RUST_LOG for the broker (default "info")
"""

from __future__ import annotations

import os
import queue
import shutil
import re
import signal
import subprocess
import sys
import threading
import time
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
METRICS_RE = re.compile(r"listening metrics=(\S+)")
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
    raw = os.environ.get("DUCTSTREAM_COMPAT_STORAGES", "sled,memory")
    return [s.strip() for s in raw.split(",") if s.strip()]


class BrokerDied(Exception):
    pass


class Broker:
    """One broker process. `restart()` keeps the data dir (to test persistence)."""

    def __init__(self, binary: Path, storage: str, data_dir: Path, log_dir: Path, extra_args=()):
        self.binary = binary
        self.storage = storage
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.bootstrap: str | None = None
        self.metrics: str | None = None
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
            "--storage", self.storage,
            "--data-dir", str(self.data_dir),
            "--metrics-listen", "127.0.0.1:0",
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
            m = LISTEN_RE.search(line)
            if m:
                self.bootstrap = m.group(1)
            m = METRICS_RE.search(line)
            if m:
                self.metrics = m.group(1)
        # The metrics line may come right after the kafka line; don't wait for it.
        return self

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
        address so connected clients can reconnect to it."""
        old = self.bootstrap
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


def _make_broker(request, tmp_path_factory, storage, extra_args=()):
    base = tmp_path_factory.mktemp(f"broker-{storage}")
    data_dir = base / "data"
    data_dir.mkdir()
    b = Broker(broker_snapshot(tmp_path_factory), storage, data_dir, base, extra_args)
    request.node._ductstream_brokers = getattr(request.node, "_ductstream_brokers", []) + [b]
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
    """A sled-backed broker; yields the Broker (use `.bootstrap`)."""
    b = _make_broker(request, tmp_path_factory, "sled")
    yield b
    _finish_broker(b)


@pytest.fixture(params=storages())
def any_broker(request, tmp_path_factory):
    """Same as `broker`, parametrized over the storage engines."""
    b = _make_broker(request, tmp_path_factory, request.param)
    yield b
    _finish_broker(b)


@pytest.fixture(scope="module")
def module_broker(request, tmp_path_factory):
    """A sled broker shared by one test module (for drivers that run once)."""
    b = _make_broker(request, tmp_path_factory, "sled")
    yield b
    _finish_broker(b)


@pytest.fixture
def broker_factory(request, tmp_path_factory):
    """Start brokers with extra args: broker_factory('--num-partitions', '3')."""
    made = []

    def make(*extra_args, storage="sled"):
        b = _make_broker(request, tmp_path_factory, storage, extra_args)
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
    storage='segment')."""
    require_group_support(broker_snapshot(tmp_path_factory))
    made = []

    def make(*extra_args, storage="sled"):
        b = _make_broker(request, tmp_path_factory, storage, [*group_args(), *extra_args])
        made.append(b)
        return b

    yield make
    for b in made:
        _finish_broker(b)


@pytest.fixture
def group_broker(group_broker_factory):
    """A sled broker with the short group rebalance delay."""
    return group_broker_factory()


@pytest.fixture
def topic(request):
    return helpers.unique_topic(request.node.name)


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
                report.sections.append((f"broker stderr ({b.storage})", tail))


def pytest_report_header(config):
    b = broker_binary()
    if b.exists():
        st = b.stat()
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime))
        return f"ductstream broker: {b} (mtime {when}, {st.st_size} bytes)"
    return f"ductstream broker: {b} (MISSING)"
