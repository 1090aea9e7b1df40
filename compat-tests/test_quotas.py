"""Client quotas: DescribeClientQuotas and AlterClientQuotas through Kafka's own kafka-configs,
answered as Apache Kafka answers them (the same output from both), and produce and fetch
byte rates and request time enforced: a throttled client is told (`throttle_time_ms`,
librdkafka's throttle callback) and held back, another client is not."""

from __future__ import annotations

import sys
import time
import uuid

from confluent_kafka import Consumer, Producer

from conftest import HERE

CONFIGS = "kafka.admin.ConfigCommand"


def configs(bootstrap: str, *args: str, check: bool = True):
    """kafka-configs.sh; returns (exit code, stdout lines, stderr)."""
    sys.path.insert(0, str(HERE / "kafka"))
    try:
        import reference_kafka as ref
    finally:
        sys.path.remove(str(HERE / "kafka"))
    p = ref.run_tool(CONFIGS, "--bootstrap-server", bootstrap, *args)
    if check:
        assert p.returncode == 0, f"kafka-configs {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}"
    return p.returncode, [line.rstrip() for line in p.stdout.splitlines()], p.stderr


def test_kafka_configs_sets_and_describes_quotas_as_on_apache_kafka(broker, reference_kafka):
    user, client = f"alice-{uuid.uuid4().hex[:6]}", f"app-{uuid.uuid4().hex[:6]}"
    seen = {}
    for name, bootstrap in (("ductstream", broker.bootstrap), ("kafka", reference_kafka.bootstrap)):
        configs(bootstrap, "--alter", "--entity-type", "users", "--entity-name", user,
                "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152,request_percentage=50")
        configs(bootstrap, "--alter", "--entity-type", "users", "--entity-name", user, "--entity-type", "clients",
                "--entity-name", client, "--add-config", "producer_byte_rate=4096")
        configs(bootstrap, "--alter", "--entity-type", "users", "--entity-name", user,
                "--delete-config", "consumer_byte_rate")
        seen[name] = [
            configs(bootstrap, "--describe", "--entity-type", "users", "--entity-name", user)[1],
            configs(bootstrap, "--describe", "--entity-type", "users", "--entity-name", user,
                    "--entity-type", "clients", "--entity-name", client)[1],
            configs(bootstrap, "--describe", "--entity-type", "clients", "--entity-name", client)[1],
        ]
        # Every quota removed: the entity is gone.
        configs(bootstrap, "--alter", "--entity-type", "users", "--entity-name", user, "--entity-type", "clients",
                "--entity-name", client, "--delete-config", "producer_byte_rate")
        seen[name].append(configs(bootstrap, "--describe", "--entity-type", "users", "--entity-name", user,
                                  "--entity-type", "clients", "--entity-name", client)[1])
    # The values of one entity in any order (Apache Kafka lists them in hash order).
    def normalized(outputs):
        def line(text):
            head, sep, values = text.partition(" are ")
            return head + sep + ", ".join(sorted(values.split(", ")))
        return [[line(text) for text in lines] for lines in outputs]
    assert normalized(seen["ductstream"]) == normalized(seen["kafka"]), seen
    assert any("producer_byte_rate=1048576.0" in line for line in seen["ductstream"][0]), seen
    assert not any("consumer_byte_rate" in line for line in seen["ductstream"][0]), seen


def test_kafka_configs_describes_every_user_with_its_credentials(broker):
    user = f"bob-{uuid.uuid4().hex[:6]}"
    # kafka-configs alters credentials and quotas in separate calls.
    configs(broker.bootstrap, "--alter", "--entity-type", "users", "--entity-name", user, "--add-config", "SCRAM-SHA-256=[password=bob-secret]")
    configs(broker.bootstrap, "--alter", "--entity-type", "users", "--entity-name", user, "--add-config", "producer_byte_rate=2048")
    _, lines, _ = configs(broker.bootstrap, "--describe", "--entity-type", "users")
    text = "\n".join(lines)
    assert f"Quota configs for user-principal '{user}' are producer_byte_rate=2048.0" in text, text
    assert f"SCRAM credential configs for user-principal '{user}' are SCRAM-SHA-256=iterations=4096" in text, text
    _, lines, _ = configs(broker.bootstrap, "--describe", "--entity-type", "clients", "--entity-default")
    assert lines == [], lines


def test_bad_quotas_are_refused_and_change_nothing(broker):
    user = f"carol-{uuid.uuid4().hex[:6]}"
    configs(broker.bootstrap, "--alter", "--entity-type", "users", "--entity-name", user, "--add-config", "producer_byte_rate=1024")
    for bad, why in (("controller_mutation_rate=5", "controller_mutation_rate is not supported"),
                     ("request_percentage=0", "above 0"),
                     ("producer_byte_rate=0", "at least 1"),
                     ("consumer_byte_rate=10.5", "whole number")):
        # With a good value beside it, which must not be applied either.
        good = "producer_byte_rate=999" if bad.startswith("consumer") else "consumer_byte_rate=999"
        code, _, err = configs(broker.bootstrap, "--alter", "--entity-type", "users", "--entity-name", user,
                               "--add-config", f"{bad},{good}", check=False)
        assert code != 0 and why in err, err
    code, _, err = configs(broker.bootstrap, "--alter", "--entity-type", "ips", "--entity-name", "10.0.0.1",
                           "--add-config", "connection_creation_rate=10", check=False)
    assert code != 0 and "ip quotas are not supported" in err, err
    _, lines, _ = configs(broker.bootstrap, "--describe", "--entity-type", "users", "--entity-name", user)
    assert lines == [f"Quota configs for user-principal '{user}' are producer_byte_rate=1024.0"], lines


def test_a_throttled_producer_and_consumer_are_told_and_held_back(broker, topic):
    rate = 100 * 1024
    for client in ("slow-producer", "slow-consumer"):
        key = "producer_byte_rate" if client == "slow-producer" else "consumer_byte_rate"
        configs(broker.bootstrap, "--alter", "--entity-type", "clients", "--entity-name", client, "--add-config", f"{key}={rate}")
    throttles = {"slow-producer": [], "fast-producer": [], "slow-consumer": []}

    def produce(client: str, records: int) -> float:
        """Produces `records` of 10 KB, then one more; returns how long the last one took."""
        producer = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client, "linger.ms": 5,
                             "throttle_cb": lambda e: throttles[client].append(e.throttle_time)})
        for _ in range(records):
            producer.produce(topic, b"x" * 10_000)
            producer.poll(0)
        assert producer.flush(60) == 0
        started = time.monotonic()
        producer.produce(topic, b"x" * 10_000)
        assert producer.flush(60) == 0
        producer.poll(0.5)
        return time.monotonic() - started

    # 600 KB at 100 KiB/s: about 5 s of debt beyond the first second's allowance, which the
    # next request waits out.
    slow = produce("slow-producer", 59)
    produce("fast-producer", 59)
    assert throttles["slow-producer"] and max(throttles["slow-producer"]) > 0, throttles
    assert throttles["fast-producer"] == [], throttles
    # A lower bound only: the throttle is a wait the client cannot skip.
    assert slow >= 2.0, slow

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "client.id": "slow-consumer", "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest", "throttle_cb": lambda e: throttles["slow-consumer"].append(e.throttle_time)})
    consumer.subscribe([topic])
    got, deadline = 0, time.monotonic() + 120
    while got < 120 and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            got += 1
    consumer.close()
    assert got == 120
    assert throttles["slow-consumer"] and max(throttles["slow-consumer"]) > 0, throttles


def test_a_request_percentage_quota_throttles_a_busy_client(broker):
    # A hundredth of a percent of a thread: 100 µs of request handling a second.
    configs(broker.bootstrap, "--alter", "--entity-type", "clients", "--entity-name", "busy", "--add-config", "request_percentage=0.01")
    throttles = {"busy": [], "idle": []}
    for client in throttles:
        producer = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client,
                             "throttle_cb": lambda e, client=client: throttles[client].append(e.throttle_time)})
        for _ in range(50):
            producer.list_topics(timeout=30)
            producer.poll(0)
        producer.poll(0.5)
    assert throttles["busy"] and max(throttles["busy"]) > 0, throttles
    assert throttles["idle"] == [], throttles
