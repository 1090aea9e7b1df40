"""DuctStream beside the reference Apache Kafka under Kafka's own load tools, in one run.

Starts a DuctStream broker (the binary given, fresh data dir) and the reference Kafka
(reference_kafka.py, fresh dir), one after the other, and runs against each the same
ProducerPerformance, ConsumerPerformance and EndToEndLatency (kafka-tools 4.1.2) with the
settings of issue 12's benchmark: 1 KiB values, acks=all, 8 partitions, client batching.
Prints one table with each figure and DuctStream's ratio to Kafka, plus each broker's RSS
at idle (before a warm-up run) and its peak under load.

    python3 compat-tests/kafka/perf.py --ductstream target/release/ductstream \\
        [--storage embedded|memory] [--records 300000] [--e2e-records 2000]

Not part of the test suite: a measurement to run by hand on a quiet machine (a release
build of the broker; the 2-core machines here give noisy numbers).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import reference_kafka as ref  # noqa: E402

TOPIC = "perf-1k"
PARTITIONS = 8
RECORD_SIZE = 1024


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakRss:
    """Samples a process's RSS every 200 ms while running."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def tool(main_class: str, *args: str, timeout: float = 900) -> str:
    p = ref.run_tool(main_class, *args, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{main_class} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


def measure(bootstrap: str, pid: int, records: int, e2e_records: int) -> dict[str, float]:
    out: dict[str, float] = {}
    tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap, "--create",
         "--topic", TOPIC, "--partitions", str(PARTITIONS))
    time.sleep(1)
    out["rss idle MiB"] = rss_kib(pid) / 1024
    # warm-up (both JVMs' JIT, the broker's caches): a fifth of the records to another topic
    tool("org.apache.kafka.tools.ProducerPerformance", "--topic", f"{TOPIC}-warmup",
         "--num-records", str(max(records // 5, 1000)), "--record-size", str(RECORD_SIZE),
         "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}",
         "acks=all", "linger.ms=5", "batch.size=65536")
    with PeakRss(pid) as peak:
        text = tool("org.apache.kafka.tools.ProducerPerformance", "--topic", TOPIC,
                    "--num-records", str(records), "--record-size", str(RECORD_SIZE),
                    "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}",
                    "acks=all", "linger.ms=5", "batch.size=65536")
        last = text.strip().splitlines()[-1]
        out["produce msgs/s"] = float(re.search(r"([\d.]+) records/sec", last).group(1))
        out["produce p50 ms"] = float(re.search(r"(\d+) ms 50th", last).group(1))
        out["produce p99 ms"] = float(re.search(r"(\d+) ms 99th", last).group(1))
        text = tool("org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap,
                    "--topic", TOPIC, "--messages", str(records), "--timeout", "60000")
        fields = [f.strip() for f in text.strip().splitlines()[-1].split(",")]
        # ..., rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
        out["consume msgs/s"] = float(fields[-1])
    out["rss peak MiB"] = peak.peak / 1024
    text = tool("org.apache.kafka.tools.EndToEndLatency", bootstrap, f"{TOPIC}-e2e",
                str(e2e_records), "all", str(RECORD_SIZE))
    for name, pct in (("e2e p50 ms", "50th"), ("e2e p99 ms", "99th")):
        m = re.search(rf"Percentiles: .*?{pct} = ([\d.]+)", text)
        if m:
            out[name] = float(m.group(1))
    return out


def run_ductstream(binary: Path, storage: str, base: Path, records: int, e2e: int) -> dict[str, float]:
    data = base / "ductstream-data"
    data.mkdir(parents=True)
    proc = subprocess.Popen(
        [str(binary), "--kafka-listen", "127.0.0.1:0", "--storage", storage, "--data-dir", str(data),
         "--grpc-listen", "off", "--group-initial-rebalance-delay-ms", "0"],
        stdout=subprocess.PIPE, stderr=open(base / "ductstream.stderr", "wb"), text=True)
    try:
        bootstrap = None
        deadline = time.monotonic() + 60
        while bootstrap is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"ductstream exited early; see {base / 'ductstream.stderr'}")
            m = re.search(r"listening kafka=(\S+)", line)
            if m:
                bootstrap = m.group(1)
        if bootstrap is None:
            raise RuntimeError("ductstream did not print its address")
        return measure(bootstrap, proc.pid, records, e2e)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_kafka(base: Path, records: int, e2e: int) -> dict[str, float]:
    kafka = ref.ReferenceKafka(base / "kafka").start()
    try:
        return measure(kafka.bootstrap, kafka.proc.pid, records, e2e)
    finally:
        kafka.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ductstream", required=True, type=Path, help="broker binary (a release build)")
    ap.add_argument("--storage", default="embedded")
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--e2e-records", type=int, default=2_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ductstream-perf-") as tmp:
        base = Path(tmp)
        ds = run_ductstream(args.ductstream, args.storage, base, args.records, args.e2e_records)
        kafka = run_kafka(base, args.records, args.e2e_records)
    print(f"{'':18} {'DuctStream (' + args.storage + ')':>20} {'Apache Kafka 4.1.2':>20} {'ratio':>8}")
    for key in ds:
        k = kafka.get(key)
        ratio = f"{ds[key] / k:.2f}" if k else "-"
        print(f"{key:18} {ds[key]:>20.1f} {k if k is not None else float('nan'):>20.1f} {ratio:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
