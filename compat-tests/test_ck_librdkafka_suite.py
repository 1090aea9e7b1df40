"""The scenarios of librdkafka's own test suite that failed on DuctStream, replayed with
confluent-kafka (bundled librdkafka) against the real broker, in librdkafka's default setting
(auto-created topics with 4 partitions):

- 0011 produce_batch: keyless records to a compacted topic fail alone (INVALID_RECORD), the
  rest of their batch with _INVALID_DIFFERENT_RECORD (KIP-467).
- 0081 admin: the ACL calls get SECURITY_DISABLED (no authorizer), as from Apache Kafka.
- 0102 static_group_rebalance: a static member replaced by a newer incarnation gets a fatal
  FENCED_INSTANCE_ID.
- 0113 cooperative_rebalance: commits while the group rebalances succeed or get
  ILLEGAL_GENERATION, never REBALANCE_IN_PROGRESS from a member of the current generation.
test_differential_librdkafka.py compares the same answers with Apache Kafka's.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, AlterConfigOpType,
    ConfigEntry, ConfigResource, ResourcePatternType, ResourceType,
)

import helpers
from groups import create_topics, produce, values


@pytest.fixture
def suite_broker(group_broker_factory):
    return group_broker_factory("--num-partitions", "4")


@pytest.mark.parametrize("batching", ["one batch", "a batch per record"])
def test_ck_produce_batch_keyless_records_to_a_compacted_topic(suite_broker, topic, batching):
    b = suite_broker.bootstrap
    create_topics(b, {topic: 4})
    admin = AdminClient({"bootstrap.servers": b})
    # as 0011 does: APPEND compact to the default "delete"
    compact = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)])
    list(admin.incremental_alter_configs([compact]).values())[0].result(timeout=30)
    conf = {"bootstrap.servers": b, "linger.ms": 5}
    if batching == "a batch per record":
        conf["batch.size"] = 1
    p = Producer(conf)
    results: dict[int, str] = {}
    for i in range(100):
        p.produce(topic, value=f"m{i}".encode(), key=None if i % 10 == 0 else f"k{i}".encode(), partition=2,
                  on_delivery=lambda err, msg, i=i: results.__setitem__(i, err.name() if err else "ok"))
    assert p.flush(30) == 0
    keyless = {i for i in range(100) if i % 10 == 0}
    assert {results[i] for i in keyless} == {"INVALID_RECORD"}
    others = Counter(results[i] for i in range(100) if i not in keyless)
    expected = "_INVALID_DIFFERENT_RECORD" if batching == "one batch" else "ok"
    assert others == {expected: 90}, others
    # a refused batch leaves nothing behind
    c = Consumer({"bootstrap.servers": b, "group.id": f"probe-{topic}"})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 2), timeout=15)
    finally:
        c.close()
    assert high == (0 if batching == "one batch" else 90)


def test_ck_acl_calls_without_an_authorizer(suite_broker):
    admin = AdminClient({"bootstrap.servers": suite_broker.bootstrap})
    binding = AclBinding(ResourceType.TOPIC, "t1", ResourcePatternType.LITERAL, "User:test1", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    any_acl = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                               AclOperation.ANY, AclPermissionType.ANY)
    with pytest.raises(KafkaException) as created:
        list(admin.create_acls([binding]).values())[0].result(timeout=30)
    assert created.value.args[0].code() == KafkaError.SECURITY_DISABLED
    assert "No Authorizer is configured" in created.value.args[0].str()
    with pytest.raises(KafkaException) as deleted:
        list(admin.delete_acls([any_acl]).values())[0].result(timeout=30)
    assert deleted.value.args[0].code() == KafkaError.SECURITY_DISABLED
    # librdkafka reads DescribeAcls' top-level error as an empty list, on Apache Kafka too
    assert admin.describe_acls(any_acl).result(timeout=30) == []


def test_ck_replaced_static_member_is_fenced(suite_broker, topic):
    """0102 do_test_fenced_member_classic: consumer2b takes consumer2a's group.instance.id;
    consumer2a gets a fatal FENCED_INSTANCE_ID, consumer1 and consumer2b carry on."""
    b = suite_broker.bootstrap
    create_topics(b, {topic: 3})

    def member(instance, client_id):
        c = Consumer({"bootstrap.servers": b, "group.id": f"g-{topic}", "group.instance.id": instance,
                      "client.id": client_id, "session.timeout.ms": 30000, "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        return c

    c1, c2a = member("consumer1", "consumer1"), member("consumer2", "consumer2a")
    c2b = None
    try:
        def both_assigned():
            c1.poll(0.1)
            c2a.poll(0.1)
            return bool(c1.assignment()) and bool(c2a.assignment())

        helpers.wait_until(both_assigned, timeout=45, interval=0, what="initial assignments")
        c2b = member("consumer2", "consumer2b")
        fatal = {}

        def c2a_fenced():
            c1.poll(0.1)
            c2b.poll(0.1)
            m = c2a.poll(0.1)
            if m is not None and m.error():
                fatal["error"] = m.error()
            return "error" in fatal

        helpers.wait_until(c2a_fenced, timeout=30, interval=0, what="consumer2a fenced")
        assert fatal["error"].code() == KafkaError._FATAL, fatal
        assert "fenced" in fatal["error"].str().lower(), fatal
        # and consumer1 and consumer2b still share the partitions
        produced = produce(b, topic, values(topic, range(3), 2))
        seen = set()

        def all_consumed():
            for c in (c1, c2b):
                m = c.poll(0.1)
                if m is not None and not m.error():
                    seen.add((m.partition(), m.offset()))
            return len(seen) == sum(len(v) for v in produced.values())

        helpers.wait_until(all_consumed, timeout=45, interval=0, what="records consumed by the survivors")
    finally:
        for c in (c1, c2b):
            if c is not None:
                c.close()
        try:
            c2a.close()
        except KafkaException:
            pass  # closing a fenced consumer reports the fatal error again


def test_ck_commits_during_a_cooperative_rebalance(suite_broker, topic):
    """0113 v_commit_during_rebalance (manual commits): c1 commits after each poll and in its
    revoke callback while c2 joins; every commit succeeds, finds nothing to commit, or is
    ILLEGAL_GENERATION; none gets REBALANCE_IN_PROGRESS."""
    b = suite_broker.bootstrap
    create_topics(b, {topic: 6})
    produce(b, topic, values(topic, range(6), 100))
    errors: list[str] = []

    def member():
        def on_assign(c, parts):
            c.incremental_assign(parts)

        def on_revoke(c, parts):
            time.sleep(2)  # as 0113 does: long enough for the generation to move on
            try:
                c.commit(asynchronous=False)
            except KafkaException as e:
                errors.append(e.args[0].name())
            c.incremental_unassign(parts)

        c = Consumer({"bootstrap.servers": b, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "partition.assignment.strategy": "cooperative-sticky"})
        c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        return c

    c1 = member()
    c2 = None
    try:
        consumed = [0]

        def c1_consumes():
            m = c1.poll(0.2)
            consumed[0] += m is not None and not m.error()
            return consumed[0] >= 50

        helpers.wait_until(c1_consumes, timeout=45, interval=0, what="c1 consuming")
        c2 = member()
        for _ in range(10):
            # as 0113's loop: poll both; commit whenever c1 got a record; until both got one
            def both_polled():
                m1, m2 = c1.poll(1.0), c2.poll(1.0)
                if m1 is not None and not m1.error():
                    try:
                        c1.commit(asynchronous=False)
                    except KafkaException as e:
                        errors.append(e.args[0].name())
                return m1 is not None and m2 is not None

            helpers.wait_until(both_polled, timeout=60, interval=0, what="both consumers getting records")
        assert set(errors) <= {"_NO_OFFSET", "ILLEGAL_GENERATION"}, errors
    finally:
        for c in (c1, c2):
            if c is not None:
                c.close()
