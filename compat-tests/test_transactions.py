"""Kafka transactions (KIP-98, KIP-447) with confluent-kafka (librdkafka): committed records
seen once by read_committed consumers and aborted ones never; a consume-transform-produce
loop that commits its input offsets in its transactions; zombies fenced; a transaction past
its timeout aborted by the broker; a broker killed mid-transaction. The coordinator's error
codes for bad requests are compared with Apache Kafka's (raw requests: no client sends them
on purpose). The Java client's transactional producer runs in test_java_client.py."""

from __future__ import annotations

import signal
import struct
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

import helpers
from groups import Raw, create_topics


def read_all(bootstrap: str, topic: str, isolation: str, partitions: int, timeout: float = 30.0) -> list[str]:
    """Every value of `topic` from the beginning until each partition's end, as a consumer of
    this isolation level sees them."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
                  "isolation.level": isolation, "enable.partition.eof": True, "enable.auto.commit": False})
    c.subscribe([topic])
    got, ends = [], set()
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and len(ends) < partitions:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    ends.add(m.partition())
                continue
            got.append(m.value().decode())
    finally:
        c.close()
    assert len(ends) == partitions, f"only {sorted(ends)} of {partitions} partitions reached their end: {got}"
    return got


def transactional(bootstrap: str, txn_id: str, **extra) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, **extra})
    p.init_transactions(30)
    return p


@pytest.fixture(params=["embedded", "postgres"])
def any_broker(request, broker_factory):
    return broker_factory(storage=request.param)


def test_committed_records_are_read_once_and_aborted_ones_never(any_broker, topic):
    b = any_broker.bootstrap
    create_topics(b, {topic: 2})
    p = transactional(b, f"tx-{topic}")
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, key=b"k", value=f"c{i}".encode(), partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, key=b"k", value=f"a{i}".encode(), partition=i % 2)
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=f"d{i}".encode(), partition=0)
    p.commit_transaction(30)
    committed = sorted([f"c{i}" for i in range(10)] + [f"d{i}" for i in range(3)])
    assert sorted(read_all(b, topic, "read_committed", 2)) == committed
    assert sorted(read_all(b, topic, "read_uncommitted", 2)) == sorted(committed + [f"a{i}" for i in range(5)])


def test_an_open_transaction_holds_read_committed_consumers_at_its_start(broker, topic):
    b = broker.bootstrap
    create_topics(b, {topic: 1})
    plain = Producer({"bootstrap.servers": b})
    plain.produce(topic, value=b"before")
    plain.flush(30)
    p = transactional(b, f"tx-{topic}")
    p.begin_transaction()
    p.produce(topic, value=b"inside")
    p.flush(30)
    plain.produce(topic, value=b"after")
    plain.flush(30)
    c = Consumer({"bootstrap.servers": b, "group.id": f"g-{topic}", "isolation.level": "read_committed"})
    try:
        # The last stable offset is the open transaction's first record: ListOffsets and
        # the fetches stop there, until the transaction ends.
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=15)
        assert (low, high) == (0, 1)
        p.commit_transaction(30)
        helpers.wait_until(lambda: c.get_watermark_offsets(TopicPartition(topic, 0), timeout=15)[1] == 4, what="the stable offset past the marker")
    finally:
        c.close()
    assert read_all(b, topic, "read_committed", 1) == ["before", "inside", "after"]


def test_consume_transform_produce_commits_input_offsets_in_the_transaction(broker, topic):
    """The loop Kafka's exactly-once processing runs: read, write, send the consumer's
    offsets to the transaction, commit; a transaction aborted half-way is redone, and every
    input lands in the output exactly once."""
    b = broker.bootstrap
    source, sink, group = f"{topic}-in", f"{topic}-out", f"etl-{topic}"
    create_topics(b, {source: 2, sink: 2})
    feed = Producer({"bootstrap.servers": b})
    for i in range(100):
        feed.produce(source, key=str(i).encode(), value=str(i).encode(), partition=i % 2)
    feed.flush(30)

    def run(abort_first: bool) -> int:
        consumer = Consumer({"bootstrap.servers": b, "group.id": group, "auto.offset.reset": "earliest",
                             "enable.auto.commit": False, "isolation.level": "read_committed"})
        consumer.subscribe([source])
        producer = transactional(b, f"etl-{topic}")
        done, aborted, idle = 0, not abort_first, 0
        try:
            while idle < 6:
                batch = [m for m in consumer.consume(10, 1.0) if not m.error()]
                if not batch:
                    idle += 1
                    continue
                idle = 0
                producer.begin_transaction()
                for m in batch:
                    producer.produce(sink, key=m.key(), value=b"x" + m.value(), partition=m.partition())
                producer.send_offsets_to_transaction(consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30)
                if not aborted:
                    aborted = True
                    producer.abort_transaction(30)
                    # Start again from what the group committed.
                    for tp in consumer.committed(consumer.assignment(), timeout=15):
                        consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
                    continue
                producer.commit_transaction(30)
                done += len(batch)
        finally:
            consumer.close()
        return done

    assert run(abort_first=True) == 100
    out = read_all(b, sink, "read_committed", 2)
    assert sorted(out) == sorted(f"x{i}" for i in range(100)), "every input once"
    c = Consumer({"bootstrap.servers": b, "group.id": group})
    try:
        committed = c.committed([TopicPartition(source, 0), TopicPartition(source, 1)], timeout=15)
    finally:
        c.close()
    assert [tp.offset for tp in committed] == [50, 50]
    assert run(abort_first=False) == 0, "a restarted loop finds nothing left to do"


def test_offsets_an_open_transaction_holds_are_unstable_until_it_commits(broker, topic):
    """KIP-447: a read_committed consumer asking for the group's offsets (require_stable) waits
    while a transaction holds new ones, so it cannot start from the old ones."""
    b = broker.bootstrap
    create_topics(b, {topic: 1})
    group = f"g-{topic}"
    c = Consumer({"bootstrap.servers": b, "group.id": group, "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
        p = transactional(b, f"tx-{topic}")
        p.begin_transaction()
        p.produce(topic, value=b"v")
        metadata = c.consumer_group_metadata()
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 7)], metadata, 30)
        with pytest.raises(KafkaException):
            c.committed([TopicPartition(topic, 0)], timeout=3)
        # A consumer that does not ask for stable offsets gets the last committed ones.
        loose = Consumer({"bootstrap.servers": b, "group.id": group, "isolation.level": "read_uncommitted"})
        try:
            assert loose.committed([TopicPartition(topic, 0)], timeout=15)[0].offset == 3
        finally:
            loose.close()
        p.commit_transaction(30)
        assert c.committed([TopicPartition(topic, 0)], timeout=15)[0].offset == 7
    finally:
        c.close()


def test_a_new_producer_fences_the_old_one_and_aborts_its_transaction(broker, topic):
    b = broker.bootstrap
    create_topics(b, {topic: 1})
    zombie = transactional(b, f"tx-{topic}")
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie")
    zombie.flush(30)
    fresh = transactional(b, f"tx-{topic}")
    fresh.begin_transaction()
    fresh.produce(topic, value=b"fresh")
    fresh.commit_transaction(30)
    with pytest.raises(KafkaException) as fenced:
        zombie.commit_transaction(30)
    assert fenced.value.args[0].fatal() or fenced.value.args[0].txn_requires_abort(), fenced.value
    assert read_all(b, topic, "read_committed", 1) == ["fresh"]


def test_a_transaction_past_its_timeout_is_aborted_by_the_broker(broker, topic):
    b = broker.bootstrap
    create_topics(b, {topic: 1})
    slow = transactional(b, f"tx-{topic}", **{"transaction.timeout.ms": 2000})
    slow.begin_transaction()
    slow.produce(topic, value=b"late")
    slow.flush(30)
    plain = Producer({"bootstrap.servers": b})
    plain.produce(topic, value=b"other")
    plain.flush(30)
    # Held back until the broker aborts it; then the consumer moves on.
    assert read_all(b, topic, "read_committed", 1, timeout=30) == ["other"]
    with pytest.raises(KafkaException):
        slow.commit_transaction(10)


def test_a_transaction_open_when_the_broker_is_killed_is_aborted_after_restart(broker_factory, topic):
    b = broker_factory()
    create_topics(b.bootstrap, {topic: 1})
    p = transactional(b.bootstrap, f"tx-{topic}")
    p.begin_transaction()
    p.produce(topic, value=b"lost")
    p.flush(30)
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(timeout=30)
    b.restart(keep_port=True)
    # The same transactional id, started again, aborts what its predecessor left open.
    again = transactional(b.bootstrap, f"tx-{topic}")
    again.begin_transaction()
    again.produce(topic, value=b"kept")
    again.commit_transaction(30)
    assert read_all(b.bootstrap, topic, "read_committed", 1) == ["kept"]
    assert sorted(read_all(b.bootstrap, topic, "read_uncommitted", 1)) == ["kept", "lost"]


# -- the coordinator's answers to bad requests, against Apache Kafka's -----------------------
INIT_PRODUCER_ID, ADD_PARTITIONS, ADD_OFFSETS, END_TXN, TXN_OFFSET_COMMIT, FIND_COORDINATOR = 22, 24, 25, 26, 28, 10
RETRIABLE = {14, 15, 51}  # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, CONCURRENT_TRANSACTIONS


def txn_requests(bootstrap: str, topic: str) -> list[tuple[str, int]]:
    raw = Raw(bootstrap)
    s = Raw.s
    txn_id, group = f"raw-{uuid.uuid4().hex[:8]}", f"raw-group-{uuid.uuid4().hex[:8]}"
    steps: list[tuple[str, int]] = []

    def call(api: int, version: int, body: bytes, parse) -> tuple:
        for _ in range(100):
            answer = parse(raw.request(api, version, body))
            if answer[0] not in RETRIABLE:
                return answer
            time.sleep(0.2)
        return answer

    def init(timeout_ms: int):
        return call(INIT_PRODUCER_ID, 1, s(txn_id) + struct.pack(">i", timeout_ms),
                    lambda r: (r.i32(), r.i16(), r.i64(), r.i16())[1:])

    def add_partitions(pid: int, epoch: int, name: str):
        body = s(txn_id) + struct.pack(">qh", pid, epoch) + struct.pack(">i", 1) + s(name) + struct.pack(">ii", 1, 0)

        def parse(r):
            r.i32()
            assert r.i32() == 1
            r.string()
            assert r.i32() == 1
            r.i32()
            return (r.i16(),)
        return call(ADD_PARTITIONS, 2, body, parse)

    def add_offsets(pid: int, epoch: int):
        return call(ADD_OFFSETS, 2, s(txn_id) + struct.pack(">qh", pid, epoch) + s(group), lambda r: (r.i32(), r.i16())[1:])

    def end(pid: int, epoch: int, commit: bool):
        return call(END_TXN, 2, s(txn_id) + struct.pack(">qhb", pid, epoch, int(commit)), lambda r: (r.i32(), r.i16())[1:])

    def txn_commit(pid: int, epoch: int):
        body = (s(txn_id) + s(group) + struct.pack(">qh", pid, epoch) + struct.pack(">i", 1) + s(topic)
                + struct.pack(">i", 1) + struct.pack(">iqi", 0, 5, -1) + s(None))

        def parse(r):
            r.i32()
            assert r.i32() == 1
            r.string()
            assert r.i32() == 1
            r.i32()
            return (r.i16(),)
        return call(TXN_OFFSET_COMMIT, 2, body, parse)

    try:
        # Kafka creates its transaction and offsets logs on the first coordinator lookups.
        call(FIND_COORDINATOR, 1, s(txn_id) + struct.pack(">b", 1), lambda r: (r.i32(), r.i16())[1:])
        call(FIND_COORDINATOR, 1, s(group) + struct.pack(">b", 0), lambda r: (r.i32(), r.i16())[1:])
        steps.append(("init with a timeout past the maximum", init(3_600_000)[0]))
        code, pid, epoch = init(60_000)
        steps.append(("init", code))
        steps.append(("end with no transaction", end(pid, epoch, True)[0]))
        steps.append(("add a partition with a newer epoch", add_partitions(pid, epoch + 1, topic)[0]))
        steps.append(("add a partition with another producer id", add_partitions(pid + 1000, epoch, topic)[0]))
        steps.append(("add an unknown topic's partition", add_partitions(pid, epoch, f"{topic}-missing")[0]))
        steps.append(("add a partition", add_partitions(pid, epoch, topic)[0]))
        steps.append(("commit offsets for a group the transaction did not add", txn_commit(pid, epoch)[0]))
        steps.append(("add the group's offsets", add_offsets(pid, epoch)[0]))
        steps.append(("commit offsets in the transaction", txn_commit(pid, epoch)[0]))
        steps.append(("abort with an older epoch", end(pid, epoch - 1, False)[0]))
        steps.append(("commit", end(pid, epoch, True)[0]))
        steps.append(("commit again (a retry)", end(pid, epoch, True)[0]))
        steps.append(("abort what was committed", end(pid, epoch, False)[0]))
        code, pid2, epoch2 = init(60_000)
        steps.append(("init again bumps the epoch", code if (pid2, epoch2) == (pid, epoch + 1) else -1))
        steps.append(("the old epoch is fenced", add_partitions(pid, epoch, topic)[0]))
    finally:
        raw.close()
    return steps


def test_coordinator_errors_match_kafka(broker, reference_kafka, topic):
    results = {}
    for name, bootstrap in (("ductstream", broker.bootstrap), ("kafka", reference_kafka.bootstrap)):
        create_topics(bootstrap, {topic: 1})
        results[name] = txn_requests(bootstrap, topic)
    assert results["ductstream"] == results["kafka"]
    codes = dict(results["ductstream"])
    assert codes["end with no transaction"] == 48  # INVALID_TXN_STATE
    assert codes["add a partition with a newer epoch"] == 90  # PRODUCER_FENCED
    assert codes["init with a timeout past the maximum"] == 50  # INVALID_TRANSACTION_TIMEOUT


def test_transactions_across_two_brokers_on_one_postgres(postgres_cluster, broker_factory, topic):
    """The coordinator writes markers to partitions another broker leads: that broker's
    read_committed fetches see them end, and its own appends go on after them."""
    from confluent_kafka.admin import AdminClient

    url = postgres_cluster.createdb("txn_cluster")
    b1 = broker_factory("--node-id", "1", "--broker-lease-ms", "3000", storage="postgres", storage_url=url)
    b2 = broker_factory("--node-id", "2", "--broker-lease-ms", "3000", storage="postgres", storage_url=url)
    helpers.wait_until(lambda: len(AdminClient({"bootstrap.servers": b1.bootstrap}).list_topics(timeout=10).brokers) == 2,
                       timeout=20, what="both brokers in the cluster")
    create_topics(b1.bootstrap, {topic: 4})
    leaders = {p.id: p.leader for p in AdminClient({"bootstrap.servers": b1.bootstrap}).list_topics(topic, timeout=10).topics[topic].partitions.values()}
    assert set(leaders.values()) == {1, 2}, f"both brokers lead partitions: {leaders}"
    p = transactional(b1.bootstrap, f"tx-{topic}")
    expected = []
    for round_ in range(3):
        p.begin_transaction()
        for i in range(8):
            p.produce(topic, value=f"r{round_}-{i}".encode(), partition=i % 4)
        if round_ == 1:
            p.flush(30)
            p.abort_transaction(30)
        else:
            p.commit_transaction(30)
            expected += [f"r{round_}-{i}" for i in range(8)]
    # Plain records after the transactions, on every partition.
    plain = Producer({"bootstrap.servers": b2.bootstrap})
    for i in range(4):
        plain.produce(topic, value=f"plain-{i}".encode(), partition=i)
    plain.flush(30)
    expected += [f"plain-{i}" for i in range(4)]
    for b in (b1, b2):
        assert sorted(read_all(b.bootstrap, topic, "read_committed", 4)) == sorted(expected)


def test_aiokafka_transactions(broker, topic):
    """aiokafka's transactional producer (its own protocol code, not librdkafka's) and its
    read_committed consumer, with offsets sent in a transaction."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioPartition

    b = broker.bootstrap
    create_topics(b, {topic: 1})

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=b, transactional_id=f"aio-{topic}")
        await producer.start()
        try:
            async with producer.transaction():
                for i in range(5):
                    await producer.send(topic, f"kept-{i}".encode(), partition=0)
                await producer.send_offsets_to_transaction({AioPartition(topic, 0): 5}, f"aio-group-{topic}")
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"dropped", partition=0)
            await producer.abort_transaction()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=b, group_id=f"aio-group-{topic}", isolation_level="read_committed",
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = AioPartition(topic, 0)
            committed = await consumer.committed(tp)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got = []
            deadline = time.monotonic() + 20
            while len(got) < 5 and time.monotonic() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=250)
                got.extend(r.value.decode() for r in batch.get(tp, []))
            extra = await consumer.getmany(tp, timeout_ms=1000)
            got.extend(r.value.decode() for r in extra.get(tp, []))
            return committed, got
        finally:
            await consumer.stop()

    committed, got = asyncio.run(scenario())
    assert committed == 5
    assert got == [f"kept-{i}" for i in range(5)]


def test_kafka_python_transactions(broker, topic):
    """kafka-python's transactional producer and read_committed consumer (pure Python
    protocol code)."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KpPartition

    b = broker.bootstrap
    create_topics(b, {topic: 1})
    producer = KafkaProducer(bootstrap_servers=b, transactional_id=f"kp-{topic}")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for i in range(3):
            producer.send(topic, f"kept-{i}".encode(), partition=0)
        producer.commit_transaction()
        producer.begin_transaction()
        producer.send(topic, b"dropped", partition=0)
        producer.flush()
        producer.abort_transaction()
    finally:
        producer.close()
    consumer = KafkaConsumer(bootstrap_servers=b, isolation_level="read_committed", enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        consumer.assign([KpPartition(topic, 0)])
        got = [m.value.decode() for m in consumer]
    finally:
        consumer.close()
    assert got == [f"kept-{i}" for i in range(3)]
