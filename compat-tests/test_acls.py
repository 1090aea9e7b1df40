"""The ACL authorizer (`--authorizer acl`) with SASL/SCRAM principals: CreateAcls, DescribeAcls
and DeleteAcls through confluent-kafka's admin and Kafka's kafka-acls tool; produce, consume,
groups, transactions and admin requests allowed and denied as Kafka decides them (prefixed and
literal patterns, deny over allow, implied DESCRIBE, super users); a principal that may not
describe a topic cannot learn that it exists; ACLs made through one broker hold on another
sharing its Postgres."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)

import helpers
from test_security import add_user, helpers_requests, kafka_tool

PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}


def broker_args(*extra: str) -> list[str]:
    # The loopback PLAINTEXT listener is the administrators' (its principal, ANONYMOUS, is a
    # super user): it makes the first users. Clients use SASL_PLAINTEXT.
    return ["--listeners", "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0", "--authorizer", "acl",
            "--super-users", "User:admin;User:ANONYMOUS", *extra]


def conf(b, user: str) -> dict[str, str]:
    return {"bootstrap.servers": b.listeners["SASL_PLAINTEXT"], "security.protocol": "sasl_plaintext",
            "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user, "sasl.password": PASSWORDS[user]}


def start(broker_factory, *extra: str, **kw):
    b = broker_factory(*broker_args(*extra), **kw)
    for user, password in PASSWORDS.items():
        add_user(b.listeners["PLAINTEXT"], user, password)
    return b


@pytest.fixture
def acl_broker(broker_factory):
    return start(broker_factory)


def allow(principal: str, resource: ResourceType, name: str, operation: AclOperation,
          pattern=ResourcePatternType.LITERAL, permission=AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(resource, name, pattern, principal, "*", operation, permission)


def create_acls(b, user: str, bindings: list[AclBinding]):
    admin = AdminClient(conf(b, user))
    for future in admin.create_acls(bindings).values():
        future.result(timeout=30)


def create_topics(b, *names: str):
    admin = AdminClient({"bootstrap.servers": b.listeners["PLAINTEXT"]})
    for future in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        future.result(timeout=30)


def produce_error(b, user: str, topic: str) -> KafkaError | None:
    """None if the record was written, else the delivery error."""
    errors = []
    producer = Producer({**conf(b, user), "message.timeout.ms": 10000})
    producer.produce(topic, b"x", on_delivery=lambda err, _: errors.append(err))
    producer.flush(20)
    assert errors, "no delivery report"
    return errors[0]


def test_acls_are_created_described_and_deleted(acl_broker):
    bindings = [
        allow("User:alice", ResourceType.TOPIC, "alice-", AclOperation.WRITE, ResourcePatternType.PREFIXED),
        allow("User:alice", ResourceType.GROUP, "alice-group", AclOperation.READ),
        allow("User:bob", ResourceType.TOPIC, "shared", AclOperation.READ, permission=AclPermissionType.DENY),
    ]
    create_acls(acl_broker, "admin", bindings)
    admin = AdminClient(conf(acl_broker, "admin"))
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY)
    assert sorted(map(str, admin.describe_acls(everything).result(timeout=30))) == sorted(map(str, bindings))
    alices = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None, AclOperation.ANY, AclPermissionType.ANY)
    assert len(admin.describe_acls(alices).result(timeout=30)) == 2
    # MATCH: every binding that applies to the topic alice-orders.
    matching = AclBindingFilter(ResourceType.TOPIC, "alice-orders", ResourcePatternType.MATCH, None, None, AclOperation.ANY, AclPermissionType.ANY)
    assert [b.name for b in admin.describe_acls(matching).result(timeout=30)] == ["alice-"]
    deleted = list(admin.delete_acls([alices]).values())[0].result(timeout=30)
    assert len(deleted) == 2
    assert [b.principal for b in admin.describe_acls(everything).result(timeout=30)] == ["User:bob"]
    # An invalid binding is refused with the reason; the others in the request are stored.
    with pytest.raises(KafkaException) as bad:
        create_acls(acl_broker, "admin", [allow("User:alice", ResourceType.BROKER, "not-the-cluster", AclOperation.ALTER)])
    assert "kafka-cluster" in str(bad.value)
    # Only who may alter the cluster may change ACLs, and describe them with DESCRIBE on it.
    with pytest.raises(KafkaException) as refused:
        create_acls(acl_broker, "alice", [allow("User:alice", ResourceType.TOPIC, "*", AclOperation.ALL)])
    assert "CLUSTER_AUTHORIZATION_FAILED" in str(refused.value)
    # (librdkafka hands the refusal of a DescribeAcls back as an empty list: the broker's
    # answer is read from its request metrics.)
    alice_admin = AdminClient(conf(acl_broker, "alice"))
    assert alice_admin.describe_acls(everything).result(timeout=30) == []
    assert helpers_requests(acl_broker).get(("DescribeAcls", "ClusterAuthorizationFailed")) == 1


def test_produce_and_consume_follow_topic_and_group_acls(acl_broker):
    create_topics(acl_broker, "alice-orders", "bob-orders", "alice-secret")
    create_acls(acl_broker, "admin", [
        allow("User:alice", ResourceType.TOPIC, "alice-", AclOperation.ALL, ResourcePatternType.PREFIXED),
        allow("User:alice", ResourceType.TOPIC, "alice-secret", AclOperation.READ, permission=AclPermissionType.DENY),
        allow("User:alice", ResourceType.GROUP, "alice-", AclOperation.READ, ResourcePatternType.PREFIXED),
    ])
    assert produce_error(acl_broker, "alice", "alice-orders") is None
    assert produce_error(acl_broker, "alice", "bob-orders").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_error(acl_broker, "bob", "alice-orders").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    def consume(group: str, topic: str):
        consumer = Consumer({**conf(acl_broker, "alice"), "group.id": group, "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                m = consumer.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    return m.error().code()
                consumer.commit(m, asynchronous=False)
                return m.value()
            return None
        finally:
            consumer.close()

    assert consume("alice-group", "alice-orders") == b"x"
    assert consume("someone-elses-group", "alice-orders") == KafkaError.GROUP_AUTHORIZATION_FAILED
    # Deny wins over the prefixed ALL: alice may write alice-secret but not read it.
    assert produce_error(acl_broker, "alice", "alice-secret") is None
    assert consume("alice-group", "alice-secret") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The committed offset is there for alice's group, and described only with the group.
    admin = AdminClient(conf(acl_broker, "alice"))
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("alice-group")])["alice-group"].result(timeout=30)
    assert [(tp.topic, tp.offset) for tp in committed.topic_partitions] == [("alice-orders", 1)]


def test_a_principal_cannot_learn_that_a_topic_it_may_not_describe_exists(acl_broker):
    create_topics(acl_broker, "alice-visible", "hidden")
    create_acls(acl_broker, "admin", [allow("User:alice", ResourceType.TOPIC, "alice-", AclOperation.DESCRIBE, ResourcePatternType.PREFIXED)])
    admin = AdminClient(conf(acl_broker, "alice"))
    assert set(admin.list_topics(timeout=15).topics) == {"alice-visible"}
    for name in ("hidden", "does-not-exist"):
        topic = admin.list_topics(topic=name, timeout=15).topics[name]
        assert topic.error is not None and topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (name, topic.error)
    # Without CREATE, asking for an unknown topic it may describe does not create it.
    topic = admin.list_topics(topic="alice-new", timeout=15).topics["alice-new"]
    assert topic.error is not None and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    # A super user sees everything.
    assert {"alice-visible", "hidden"} <= set(AdminClient(conf(acl_broker, "admin")).list_topics(timeout=15).topics)


def test_admin_operations_need_their_acls(acl_broker):
    create_topics(acl_broker, "alice-t")
    admin = AdminClient(conf(acl_broker, "alice"))

    def error_of(futures) -> str:
        with pytest.raises(KafkaException) as raised:
            for f in futures.values():
                f.result(timeout=30)
        return str(raised.value)

    assert "TOPIC_AUTHORIZATION_FAILED" in error_of(admin.create_topics([NewTopic("alice-new", 1, 1)]))
    assert "TOPIC_AUTHORIZATION_FAILED" in error_of(admin.delete_topics(["alice-t"]))
    create_acls(acl_broker, "admin", [
        allow("User:alice", ResourceType.TOPIC, "alice-", AclOperation.CREATE, ResourcePatternType.PREFIXED),
        allow("User:alice", ResourceType.TOPIC, "alice-", AclOperation.DELETE, ResourcePatternType.PREFIXED),
    ])
    for f in admin.create_topics([NewTopic("alice-new", 1, 1)]).values():
        f.result(timeout=30)
    for f in admin.delete_topics(["alice-t"]).values():
        f.result(timeout=30)
    # Changing users needs ALTER on the cluster.
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
    upsert = UserScramCredentialUpsertion("mallory", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw")
    assert "CLUSTER_AUTHORIZATION_FAILED" in error_of(admin.alter_user_scram_credentials([upsert]))


def test_transactions_need_write_on_their_transactional_id(acl_broker):
    create_topics(acl_broker, "alice-txn")
    create_acls(acl_broker, "admin", [
        allow("User:alice", ResourceType.TOPIC, "alice-", AclOperation.ALL, ResourcePatternType.PREFIXED),
        allow("User:alice", ResourceType.TRANSACTIONAL_ID, "alice-", AclOperation.WRITE, ResourcePatternType.PREFIXED),
    ])
    producer = Producer({**conf(acl_broker, "alice"), "transactional.id": "alice-tx"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("alice-txn", b"in a transaction")
    producer.commit_transaction(30)
    denied = Producer({**conf(acl_broker, "alice"), "transactional.id": "bob-tx"})
    with pytest.raises(KafkaException) as raised:
        denied.init_transactions(15)
    assert raised.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_kafka_acls_tool_adds_and_lists(acl_broker, tmp_path):
    config = tmp_path / "admin.properties"
    config.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"
                      'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
                      'username="admin" password="admin-secret";\n')
    bootstrap = acl_broker.listeners["SASL_PLAINTEXT"]
    acls = "org.apache.kafka.tools.AclCommand"
    kafka_tool(acls, "--bootstrap-server", bootstrap, "--command-config", str(config), "--add",
               "--allow-principal", "User:alice", "--operation", "Read", "--operation", "Describe",
               "--topic", "tool-", "--resource-pattern-type", "prefixed")
    lines = kafka_tool(acls, "--bootstrap-server", bootstrap, "--command-config", str(config), "--list", "--topic", "tool-",
                       "--resource-pattern-type", "prefixed")
    text = "\n".join(lines)
    assert "name=tool-, patternType=PREFIXED" in text and "principal=User:alice" in text, text
    assert "operation=READ" in text and "operation=DESCRIBE" in text, text


def test_acls_made_through_one_broker_hold_on_another(broker_factory, postgres_cluster):
    url = postgres_cluster.createdb("acls_shared")
    one = start(broker_factory, "--node-id", "1", storage="postgres", storage_url=url)
    two = broker_factory(*broker_args("--node-id", "2"), storage="postgres", storage_url=url)
    create_topics(one, "alice-shared")
    assert produce_error(two, "alice", "alice-shared").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    create_acls(one, "admin", [allow("User:alice", ResourceType.TOPIC, "alice-shared", AclOperation.WRITE)])
    helpers.wait_until(lambda: produce_error(two, "alice", "alice-shared") is None, timeout=30, what="the ACL on broker two")


def test_authorized_operations_are_reported_per_principal(acl_broker):
    from confluent_kafka import TopicCollection
    create_topics(acl_broker, "alice-ops")
    create_acls(acl_broker, "admin", [
        allow("User:alice", ResourceType.TOPIC, "alice-", AclOperation.READ, ResourcePatternType.PREFIXED),
        allow("User:alice", ResourceType.TOPIC, "alice-ops", AclOperation.ALTER_CONFIGS),
        allow("User:alice", ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE),
    ])
    admin = AdminClient(conf(acl_broker, "alice"))
    topic = admin.describe_topics(TopicCollection(["alice-ops"]), include_authorized_operations=True)["alice-ops"].result(timeout=30)
    # READ implies DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    assert sorted(op.name for op in topic.authorized_operations) == ["ALTER_CONFIGS", "DESCRIBE", "DESCRIBE_CONFIGS", "READ"]
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=30)
    assert [op.name for op in cluster.authorized_operations] == ["DESCRIBE"]
    super_admin = AdminClient(conf(acl_broker, "admin"))
    everything = super_admin.describe_cluster(include_authorized_operations=True).result(timeout=30)
    assert {op.name for op in everything.authorized_operations} >= {"ALTER", "CREATE", "DESCRIBE", "IDEMPOTENT_WRITE"}
