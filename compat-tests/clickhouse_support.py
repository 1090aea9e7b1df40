"""A throwaway ClickHouse server for the sink tests: Debian's clickhouse-server (18.16), on free
loopback ports, with its data, logs and config in one folder, and a small HTTP query helper.

Users: `default` with no password, `writer` with password `secret`. 18.16 runs as root as it
is, so no user switch is needed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

STARTUP_TIMEOUT_S = 30.0


def clickhouse_binary() -> str | None:
    """The clickhouse-server program (Debian installs it in /usr/sbin), or None."""
    found = shutil.which("clickhouse-server")
    if found:
        return found
    for candidate in ("/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"):
        if Path(candidate).is_file():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClickHouseError(RuntimeError):
    """A query the server refused: its HTTP status and its error text ("Code: 193, ...")."""

    def __init__(self, status: int, text: str):
        super().__init__(f"ClickHouse answered HTTP {status}: {text.strip()}")
        self.status = status
        self.text = text


CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{dir}/log/server.log</log>
        <errorlog>{dir}/log/server.err.log</errorlog>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
</yandex>
"""

USER = """<{name}><password>{password}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\
<profile>default</profile><quota>default</quota></{name}>"""

USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users>
        {users}
    </users>
    <quotas><default></default></quotas>
</yandex>
"""


class ClickHouseServer:
    """One clickhouse-server on free loopback ports, everything under `workdir`; `stop()` then
    `start()` keeps its data and its ports (a restart: clients that know its URL reconnect),
    unless another process took them meanwhile."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.http_port = 0
        self.tcp_port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> "ClickHouseServer":
        binary = clickhouse_binary()
        if not binary:
            raise RuntimeError("clickhouse-server is not installed; run compat-tests/setup.sh")
        d = self.workdir
        for sub in ("data", "tmp", "log", "user_files", "format_schemas"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        users = "\n        ".join(USER.format(name=n, password=escape(p)) for n, p in (("default", ""), ("writer", "secret")))
        (d / "users.xml").write_text(USERS.format(users=users))
        # Ports are picked free and then released, so another process may take one in between:
        # a server that exits before it answers is retried on new ports.
        for attempt in range(3):
            if attempt or not self.http_port:
                self.http_port, self.tcp_port = _free_port(), _free_port()
            (d / "config.xml").write_text(CONFIG.format(dir=escape(str(d.resolve())), http_port=self.http_port, tcp_port=self.tcp_port))
            with open(d / "log" / "stdout.log", "ab") as out:
                self.proc = subprocess.Popen([binary, f"--config-file={d / 'config.xml'}"], cwd=d,
                                             stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if self._wait_ready():
                return self
        raise RuntimeError(f"clickhouse-server exited {self.proc.returncode}: {self.log_tail()}")

    def _wait_ready(self) -> bool:
        """True once /ping answers "Ok."; False if the server exited first."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as r:
                    if r.read().strip() == b"Ok.":
                        return True
            except OSError:  # not listening yet
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"clickhouse-server did not answer /ping in {STARTUP_TIMEOUT_S:.0f} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        logs = [self.workdir / "log" / name for name in ("stdout.log", "server.err.log")]
        return "\n".join(p.read_text(errors="replace")[-chars:] for p in logs if p.exists())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def query(self, sql: str, user: str = "default", password: str = "", data: bytes | None = None,
              **settings) -> str:
        """Runs `sql` over HTTP and returns the answer's text. Without `data` the SQL is the POST
        body; with `data` (e.g. JSONEachRow rows for an INSERT ... FORMAT JSONEachRow) the SQL
        goes in the URL's `query` and `data` is the body. Keyword arguments are settings
        (`date_time_input_format="best_effort"`). Raises ClickHouseError on a non-200 answer."""
        params = {k: str(v) for k, v in settings.items()}
        if data is None:
            body = sql.encode()
        else:
            params["query"] = sql
            body = data
        url = f"{self.url}/?{urllib.parse.urlencode(params)}" if params else f"{self.url}/"
        headers = {"X-ClickHouse-User": user, "X-ClickHouse-Key": password}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise ClickHouseError(e.code, e.read().decode(errors="replace")) from None
