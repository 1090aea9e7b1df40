"""The Java client (org.apache.kafka:kafka-clients 4.1) against DuctStream and against the
reference Apache Kafka (compat-tests/kafka), from the JUnit tests in compat-tests/java.

Maven runs the whole JUnit suite once per target broker (with KAFKA_BOOTSTRAP naming it);
each JUnit case is then reported here as its own pytest test, e.g.
`test_java[ductstream-ProducerTest.compression[zstd]]`. A case failing on both targets is a
test or client problem; one failing on DuctStream alone is a DuctStream defect, listed in
DUCTSTREAM_XFAIL with its reason (and in FINDINGS.md) until fixed.

Environment: DUCTSTREAM_M2 (Maven repository cache, default ~/.cache/ductstream/m2),
DUCTSTREAM_COMPAT_JAVA_TARGETS (default "ductstream,kafka"; "ductstream" is the embedded
store, "ductstream-memory" and "ductstream-postgres" the others).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import _finish_broker, _make_broker, group_args, require_group_support, broker_snapshot

HERE = Path(__file__).resolve().parent
JAVA_DIR = HERE / "java"
SRC_DIR = JAVA_DIR / "src" / "test" / "java" / "dev" / "ductstream" / "compat"
M2 = Path(os.environ.get("DUCTSTREAM_M2", str(Path.home() / ".cache" / "ductstream" / "m2")))
MVN_TIMEOUT_S = 900

# JUnit cases that fail on DuctStream (and pass on Apache Kafka): case -> reason.
DUCTSTREAM_XFAIL: dict[str, str] = {}


def _java_cases() -> list[str]:
    """Every JUnit case in the Java sources: `Class.method`, or `Class.method[value]` for
    each value of a @ValueSource parameterized test."""
    cases = []
    pattern = re.compile(
        r"@(Test|ParameterizedTest[^\n]*)\s*(?:@ValueSource\(strings\s*=\s*\{([^}]*)\}\)\s*)?"
        r"(?:@\w+(?:\([^)]*\))?\s*)*void\s+(\w+)\s*\(")
    for src in sorted(SRC_DIR.glob("*Test.java")):
        cls = src.stem
        for m in pattern.finditer(src.read_text()):
            kind, values, method = m.groups()
            if kind.startswith("ParameterizedTest"):
                for v in re.findall(r'"([^"]*)"', values or ""):
                    cases.append(f"{cls}.{method}[{v}]")
            else:
                cases.append(f"{cls}.{method}")
    return cases


def _case_name(classname: str, name: str) -> str:
    """Surefire's phrased name `compression(String) zstd` -> `ProducerTest.compression[zstd]`."""
    cls = classname.rsplit(".", 1)[-1]
    m = re.match(r"^(\w+)\([^)]*\)\s+(.*)$", name)
    if m:
        return f"{cls}.{m.group(1)}[{m.group(2)}]"
    return f"{cls}.{name}"


def _targets() -> list[str]:
    raw = os.environ.get("DUCTSTREAM_COMPAT_JAVA_TARGETS", "ductstream,kafka")
    return [t.strip() for t in raw.split(",") if t.strip()]


class JavaRun:
    def __init__(self, target: str, bootstrap: str, reports: Path, rc: int, output: str, seconds: float):
        self.target = target
        self.bootstrap = bootstrap
        self.rc = rc
        self.output = output
        self.seconds = seconds
        self.results: dict[str, tuple[str, str]] = {}
        for xml in sorted(reports.glob("TEST-*.xml")):
            for tc in ET.parse(xml).getroot().iter("testcase"):
                name = _case_name(tc.get("classname", ""), tc.get("name", ""))
                status, detail = "passed", ""
                for kind in ("failure", "error"):
                    el = tc.find(kind)
                    if el is not None:
                        status = kind
                        detail = (el.get("message") or "") + "\n" + (el.text or "")
                if tc.find("skipped") is not None:
                    status = "skipped"
                out = tc.find("system-err")
                if status != "passed" and out is not None and out.text:
                    detail += "\n--- client stderr ---\n" + out.text[-4000:]
                self.results[name] = (status, detail)


def _run_maven(target: str, bootstrap: str, reports: Path) -> JavaRun:
    mvn = shutil.which("mvn")
    if mvn is None:
        pytest.fail("mvn not found: compat-tests/setup.sh installs Maven", pytrace=False)
    cmd = [mvn, "-B", "-o", "-q", f"-Dmaven.repo.local={M2}", f"-Dds.reports={reports}", "test"]
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap}
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=JAVA_DIR, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=MVN_TIMEOUT_S)
        rc, out = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = -1, f"mvn timed out after {MVN_TIMEOUT_S}s\n{e.stdout or ''}"
    run = JavaRun(target, bootstrap, reports, rc, out, time.monotonic() - started)
    print(f"java client suite against {target}: {len(run.results)} cases in {run.seconds:.0f}s",
          file=sys.stderr)
    return run


@pytest.fixture(scope="module", params=_targets())
def java_run(request, tmp_path_factory):
    target = request.param
    reports = tmp_path_factory.mktemp(f"java-reports-{target}")
    if target == "ductstream" or target.startswith("ductstream-"):
        # "ductstream" runs on the embedded store; "ductstream-postgres", ... on that engine
        storage = target.partition("-")[2] or "embedded"
        require_group_support(broker_snapshot(tmp_path_factory))
        broker = _make_broker(request, tmp_path_factory, storage,
                              [*group_args(), "--group-consumer-heartbeat-interval-ms", "1000",
                               "--log-cleaner-backoff-ms", "1000"])
        try:
            yield _run_maven(target, broker.bootstrap, reports)
        finally:
            _finish_broker(broker)
    elif target == "kafka":
        kafka = request.getfixturevalue("reference_kafka")
        yield _run_maven(target, kafka.bootstrap, reports)
    else:
        pytest.fail(f"unknown target {target!r} in DUCTSTREAM_COMPAT_JAVA_TARGETS", pytrace=False)


@pytest.mark.timeout(MVN_TIMEOUT_S + 120)
@pytest.mark.parametrize("case", _java_cases())
def test_java(java_run: JavaRun, case: str, request):
    if case in DUCTSTREAM_XFAIL and java_run.target.startswith("ductstream"):
        request.applymarker(pytest.mark.xfail(reason=DUCTSTREAM_XFAIL[case], strict=True))
    if case not in java_run.results:
        pytest.fail(f"JUnit reported no result for {case} against {java_run.target} "
                    f"(mvn exit {java_run.rc}); Maven's output:\n{java_run.output[-6000:]}",
                    pytrace=False)
    status, detail = java_run.results[case]
    if status != "passed":
        pytest.fail(f"{case} {status} against {java_run.target} ({java_run.bootstrap}):\n{detail}",
                    pytrace=False)


def test_java_cases_match_the_sources(java_run: JavaRun):
    """The cases parsed from the Java sources are the ones JUnit ran: none unlisted."""
    cases = _java_cases()
    assert len(cases) == len(set(cases))
    unlisted = sorted(set(java_run.results) - set(cases))
    assert not unlisted, f"JUnit ran cases this file did not parse from the sources: {unlisted}"
    for case in DUCTSTREAM_XFAIL:
        assert case in cases, f"DUCTSTREAM_XFAIL names {case}, which is not a JUnit case"
