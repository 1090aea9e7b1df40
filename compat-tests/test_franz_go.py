"""franz-go's own integration suite (pkg/kgo of the release pinned in franz-go/go.mod)
against DuctStream and against the reference Apache Kafka.

setup.sh builds the package's test binary; it runs here with KGO_SEEDS naming the broker,
KGO_TEST_RF=1 (one broker) and a record count that fits CI, from the package's own folder
(some tests read its sources). franz-go/skip.txt lists the tests not run, with reasons; the
same list applies to both brokers, so a failure on both is franz-go's or the test's, and a
failure on DuctStream alone is a DuctStream defect. CI runs it on DuctStream only;
DUCTSTREAM_COMPAT_FRANZ_TARGETS=ductstream,kafka runs it on the reference Kafka too.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import _finish_broker, _make_broker, group_args, require_group_support, broker_snapshot

HERE = Path(__file__).resolve().parent
BIN_DIR = Path(os.environ.get("DUCTSTREAM_COMPAT_BIN", str(Path.home() / ".cache" / "ductstream" / "compat-bin")))
KGO_TEST = BIN_DIR / "franz-go-kgo.test"
RUN_TIMEOUT_S = 420
RECORDS = "5000"


def skipped() -> dict[str, str]:
    out = {}
    for line in (HERE / "franz-go" / "skip.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, why = line.partition(" ")
            out[name] = why.strip()
    return out


def run_kgo(bootstrap: str, log: Path) -> tuple[int, str]:
    if not KGO_TEST.exists():
        pytest.fail(f"{KGO_TEST} missing: compat-tests/setup.sh builds it", pytrace=False)
    pkg_dir = Path(Path(f"{KGO_TEST}.dir").read_text().strip()) / "pkg" / "kgo"
    skip = "^(" + "|".join(re.escape(n) for n in skipped()) + ")$"
    env = {**os.environ, "KGO_SEEDS": bootstrap, "KGO_TEST_RF": "1", "KGO_TEST_RECORDS": RECORDS,
           "KGO_TEST_MAX_TOPIC_PARTS": "3"}
    with open(log, "wb") as out:
        try:
            rc = subprocess.run([str(KGO_TEST), "-test.v", "-test.timeout", f"{RUN_TIMEOUT_S - 60}s",
                                 "-test.skip", skip], cwd=pkg_dir, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    return rc, log.read_text("utf-8", "replace")


def targets() -> list[str]:
    """DuctStream by default; DUCTSTREAM_COMPAT_FRANZ_TARGETS=ductstream,kafka adds the
    reference Kafka (all pass there; it costs another minute, so CI leaves it out)."""
    raw = os.environ.get("DUCTSTREAM_COMPAT_FRANZ_TARGETS", "ductstream")
    return [t.strip() for t in raw.split(",") if t.strip()]


@pytest.fixture(params=targets())
def kgo_target(request, tmp_path_factory):
    if request.param == "ductstream":
        require_group_support(broker_snapshot(tmp_path_factory))
        b = _make_broker(request, tmp_path_factory, "embedded",
                         [*group_args(), "--group-consumer-heartbeat-interval-ms", "1000"])
        yield b.bootstrap
        _finish_broker(b)
    else:
        yield request.getfixturevalue("reference_kafka").bootstrap


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_franz_go_kgo_suite(kgo_target, tmp_path):
    rc, text = run_kgo(kgo_target, tmp_path / "kgo.log")
    failed = re.findall(r"^--- FAIL: (\S+)", text, re.M)
    passed = re.findall(r"^--- PASS: (\S+)", text, re.M)
    timed_out = re.search(r"panic: test timed out.*?running tests:\n((?:\t\t.*\n)+)", text, re.S)
    detail = []
    for name in failed:
        m = re.search(rf"^=== (?:RUN|CONT|NAME)\s+{re.escape(name)}\n(.*?)^--- FAIL: {re.escape(name)}", text, re.M | re.S)
        if m:
            detail.append(f"--- {name}\n" + "\n".join(m.group(1).splitlines()[-20:]))
    assert rc == 0 and not failed, (
        f"franz-go kgo suite against {kgo_target}: exit {rc}, {len(passed)} passed, "
        f"failed: {failed}"
        + (f"\ntimed out while running:\n{timed_out.group(1)}" if timed_out else "")
        + "\n" + "\n".join(detail)[-8000:] + f"\n--- tail ---\n{text[-3000:]}")
    assert len(passed) >= 100, f"only {len(passed)} tests passed:\n{text[-3000:]}"
