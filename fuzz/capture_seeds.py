#!/usr/bin/env python3
"""Seeds for the fuzz corpus, from real peers rather than invented bytes.

Kafka requests: a broker runs behind a recording proxy (the broker advertises the proxy, so
every connection passes through it) while kcat, confluent-kafka, kafka-python and aiokafka
produce (every compression codec), consume in groups and administer topics. Each connection's
client-to-broker stream is a `frames` seed, each frame a `request` seed, and each record batch
found in a produce request a `record_batch` seed.

pgoutput: a throwaway Postgres cluster (run as root: initdb and the server run as the
`postgres` user) decodes a workload of every kind of change with pgoutput, and each message is
a `pgoutput` seed.

    fuzz/capture_seeds.py --broker target/debug/ductstream --out /tmp/seeds

then merge into the committed corpus with `fuzz/run.sh merge /tmp/seeds`.
"""

import argparse
import asyncio
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save(out: Path, target: str, data: bytes) -> None:
    folder = out / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


# -- Kafka -----------------------------------------------------------------------------------

def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def batches_in(frame: bytes):
    """Every v2 record batch inside a frame: found by its magic byte and a CRC that matches."""
    for at in range(0, len(frame) - 61):
        if frame[at + 16] != 2:
            continue
        (length,) = struct.unpack_from(">i", frame, at + 8)
        end = at + 12 + length
        if length < 49 or end > len(frame):
            continue
        (crc,) = struct.unpack_from(">I", frame, at + 17)
        if crc == crc32c(frame[at + 21:end]):
            yield frame[at:end]


class RecordingProxy:
    """Forwards connections to the broker and keeps what each client sent."""

    def __init__(self, listen_port: int, broker_port: int, out: Path):
        self.listen_port, self.broker_port, self.out = listen_port, broker_port, out
        self.server = socket.create_server(("127.0.0.1", listen_port))
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.server.accept()
            upstream = socket.create_connection(("127.0.0.1", self.broker_port))
            threading.Thread(target=self.pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self.pipe, args=(upstream, client, False), daemon=True).start()

    def pipe(self, src, dst, record):
        stream = bytearray()
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
                if record:
                    stream += chunk
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if record and stream:
            self.keep(bytes(stream))

    def keep(self, stream: bytes):
        save(self.out, "frames", stream[:64 * 1024])
        at = 0
        while at + 4 <= len(stream):
            (length,) = struct.unpack_from(">i", stream, at)
            frame = stream[at + 4:at + 4 + length]
            at += 4 + length
            save(self.out, "request", frame)
            if frame[:2] == b"\x00\x00":  # Produce
                for batch in batches_in(frame):
                    save(self.out, "record_batch", batch)


def kafka_workload(bootstrap: str):
    topic = "seeds"
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        lines = "".join(f"key{i}:value {codec} {i}\n" for i in range(20))
        subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-K:", "-z", codec, "-H", "h=1"],
                       input=lines.encode(), check=True, timeout=60)
    subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-o", "beginning", "-q"],
                   check=True, timeout=60, stdout=subprocess.DEVNULL)
    subprocess.run(["kcat", "-L", "-b", bootstrap], check=True, timeout=60, stdout=subprocess.DEVNULL)

    import confluent_kafka
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic("seeds-admin", 3, 1, config={"cleanup.policy": "compact"})]).values():
        f.result(30)
    for f in admin.describe_configs([ConfigResource("topic", "seeds-admin")]).values():
        f.result(30)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                         "compression.type": "zstd", "linger.ms": 5})
    for i in range(50):
        producer.produce("seeds-admin", key=f"k{i % 7}", value=f"v{i}", headers=[("h", b"x")])
    producer.flush(30)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "seeds-group",
                                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["seeds-admin"])
    got, deadline = 0, time.time() + 30
    while got < 50 and time.time() < deadline:
        if (m := consumer.poll(1)) is not None and not m.error():
            got += 1
    consumer.commit(asynchronous=False)
    consumer.close()

    import kafka
    kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip")
    for i in range(20):
        kp.send(topic, key=b"k", value=b"kafka-python %d" % i)
    kp.flush()
    kp.close()
    kc = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="seeds-kp",
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    for _ in kc:
        pass
    kc.close()

    import aiokafka

    async def aio():
        p = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type="lz4")
        await p.start()
        for i in range(10):
            await p.send_and_wait(topic, b"aiokafka %d" % i, key=b"a")
        await p.stop()

    asyncio.run(aio())


def capture_kafka(broker: str, out: Path):
    broker_port, proxy_port = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="seeds-broker-")
    proc = subprocess.Popen([broker, "--kafka-listen", f"127.0.0.1:{broker_port}",
                             "--advertised-listener", f"127.0.0.1:{proxy_port}",
                             "--grpc-listen", "off", "--data-dir", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", broker_port)).close()
                break
            except OSError:
                time.sleep(0.1)
        RecordingProxy(proxy_port, broker_port, out)
        kafka_workload(f"127.0.0.1:{proxy_port}")
        time.sleep(1)  # let the proxy's threads see the last connections close
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


# -- pgoutput --------------------------------------------------------------------------------

PG_WORKLOAD = """
CREATE TABLE seeds (id int PRIMARY KEY, name text, n numeric, at timestamptz, doc jsonb,
                    tags text[], big text, blob bytea);
CREATE TABLE seeds_full (id int, note text);
ALTER TABLE seeds_full REPLICA IDENTITY FULL;
CREATE PUBLICATION seeds_pub FOR ALL TABLES;
SELECT pg_create_logical_replication_slot('seeds_slot', 'pgoutput');
INSERT INTO seeds VALUES (1, 'one', 1.5, now(), '{"a": [1, 2]}', '{x,y}', repeat('t', 5000), '\\x00ff');
INSERT INTO seeds VALUES (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
UPDATE seeds SET name = 'uno' WHERE id = 1;
UPDATE seeds SET id = 3 WHERE id = 2;
DELETE FROM seeds WHERE id = 3;
INSERT INTO seeds_full VALUES (1, 'a');
UPDATE seeds_full SET note = 'b';
DELETE FROM seeds_full;
TRUNCATE seeds_full;
SELECT pg_logical_emit_message(true, 'seeds', 'transactional');
SELECT pg_logical_emit_message(false, 'seeds', 'not transactional');
"""


def capture_pgoutput(out: Path):
    bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    root = Path(tempfile.mkdtemp(prefix="seeds-pg-"))
    shutil.chown(root, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_pg, bin_dir / "initdb", "-D", root / "data", "-A", "trust"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([*as_pg, bin_dir / "pg_ctl", "-D", root / "data", "-w", "-l", root / "log", "-o",
                    f"-p {port} -k {root} -c wal_level=logical -c listen_addresses=''", "start"], check=True,
                   stdout=subprocess.DEVNULL)
    psql = [*as_pg, bin_dir / "psql", "-h", str(root), "-p", str(port), "-d", "postgres", "-X", "-q",
            "-v", "ON_ERROR_STOP=1"]
    try:
        subprocess.run([*psql], input=PG_WORKLOAD.encode(), check=True, stdout=subprocess.DEVNULL)
        rows = subprocess.run([*psql, "-A", "-t", "-c",
                               "SELECT encode(data, 'hex') FROM pg_logical_slot_get_binary_changes("
                               "'seeds_slot', NULL, NULL, 'proto_version', '1', "
                               "'publication_names', 'seeds_pub', 'messages', 'true')"],
                              check=True, capture_output=True).stdout.decode().split()
        for row in rows:
            save(out, "pgoutput", bytes.fromhex(row))
    finally:
        subprocess.run([*as_pg, bin_dir / "pg_ctl", "-D", root / "data", "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", required=True, help="the ductstream binary")
    parser.add_argument("--out", required=True, type=Path, help="a folder per fuzz target goes here")
    args = parser.parse_args()
    capture_kafka(args.broker, args.out)
    capture_pgoutput(args.out)
    for target in sorted(os.listdir(args.out)):
        print(target, len(os.listdir(args.out / target)))


if __name__ == "__main__":
    main()
