"""The HTTP webhook sink against a real local server that fails, throttles and goes away:
retries as configured, order per key, Standard Webhooks signatures checked by the reference
library, dead letters after the last retry, FAILED on 410 and on an unreachable URL, and
definitions refused with the reason."""

from __future__ import annotations

import base64
import json
import os

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from standardwebhooks.webhooks import Webhook

import helpers
from sink_support import WebhookServer, admin, create_sink, create_topic, produce, sink_state, wait_caught_up


@pytest.fixture
def hooks():
    servers = []

    def make(respond=None):
        s = WebhookServer(respond)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def test_every_record_delivered_signed_and_in_order_per_key(broker, hooks, tmp_path, topic):
    # Every 7th request fails with 503, one is throttled with Retry-After: the sink retries.
    def respond(n, body, headers):
        if n == 3:
            return 429, {"Retry-After": "1"}
        return (503, {}) if n % 7 == 6 else (200, {})

    server = hooks(respond)
    create_topic(broker.bootstrap, topic, 3)
    produce(broker.bootstrap, topic, [(f"k{i % 10}".encode(), f"v{i}".encode(), None) for i in range(200)])
    key = secret()
    create_sink(broker, tmp_path, {
        "id": "hooks", "topics": [topic],
        "destination": {"name": "hooks", "type": "http", "options": {
            "url": server.url, "signing_secret": key, "backoff_base": "10ms", "max_retries": 5,
            "headers": "X-Team: data"}},
    })
    state = wait_caught_up(broker, "hooks")
    assert state["group"] == "ductstream-sink-hooks"
    assert state["progress"]["retries"] == 0  # the webhook retries inside the sink's write
    delivered = server.delivered()
    verifier = Webhook(key)
    seen = {}
    for r in delivered:
        verifier.verify(r["body"].decode(), {k: r["headers"][k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")})
        assert r["headers"]["x-team"] == "data"
        assert r["headers"]["idempotency-key"] == r["headers"]["webhook-id"]
        record = json.loads(r["body"])
        seen.setdefault((record["partition"], record["offset"]), record)
    assert len(seen) == 200, "every record once"
    assert sorted(int(r["value"][1:]) for r in seen.values()) == list(range(200))
    # Order per key: each key's values arrive in produce order (first deliveries).
    per_key = {}
    for r in delivered:
        record = json.loads(r["body"])
        values = per_key.setdefault(record["key"], [])
        n = int(record["value"][1:])
        if n not in values:
            values.append(n)
    for k, values in per_key.items():
        assert values == sorted(values), f"key {k} out of order: {values}"
    # The sink's group is a consumer group like any other.
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    groups = client.list_consumer_groups().result(30)
    assert "ductstream-sink-hooks" in [g.group_id for g in groups.valid]


def test_refused_records_are_dead_lettered_with_their_origin(broker, hooks, tmp_path, topic):
    def respond(n, body, headers):
        value = json.loads(body)["value"]
        if value.startswith("bad"):
            return 400, {}
        if value.startswith("flaky"):
            return 500, {}
        return 200, {}

    server = hooks(respond)
    produce(broker.bootstrap, topic, [(None, v.encode(), None) for v in ["ok0", "bad1", "ok2", "flaky3", "ok4"]])
    create_sink(broker, tmp_path, {
        "id": "dlq-test", "topics": [topic],
        "destination": {"name": "h", "type": "http", "options": {"url": server.url, "max_retries": 2, "backoff_base": "10ms"}},
    })
    state = wait_caught_up(broker, "dlq-test")
    assert state["progress"]["dead_letters"] == 2
    flaky_tries = [r for r in server.requests if json.loads(r["body"])["value"] == "flaky3"]
    assert len(flaky_tries) == 3, "one try and max_retries=2 retries"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "dlq-reader", "auto.offset.reset": "earliest"})
    c.subscribe(["dlq-test.dlq"])
    letters = []
    helpers.wait_until(lambda: letters.extend(m for m in c.consume(10, 1.0) if not m.error()) or len(letters) >= 2,
                       timeout=30, what="dead letters")
    c.close()
    by_value = {m.value(): dict(m.headers()) for m in letters}
    assert set(by_value) == {b"bad1", b"flaky3"}
    assert by_value[b"bad1"]["ductstream.sink.id"] == b"dlq-test"
    assert by_value[b"bad1"]["ductstream.sink.topic"] == topic.encode()
    assert by_value[b"bad1"]["ductstream.sink.offset"] == b"1"
    assert b"HTTP 400" in by_value[b"bad1"]["ductstream.sink.error"]
    assert b"HTTP 500" in by_value[b"flaky3"]["ductstream.sink.error"]


def test_410_gone_fails_the_sink_and_commits_nothing_past_it(broker, hooks, tmp_path, topic):
    server = hooks(lambda n, body, headers: (200, {}) if n < 2 else (410, {}))
    produce(broker.bootstrap, topic, [(None, f"v{i}".encode(), None) for i in range(5)])
    create_sink(broker, tmp_path, {
        "id": "gone", "topics": [topic],
        "destination": {"name": "h", "type": "http", "options": {"url": server.url}},
    })
    helpers.wait_until(lambda: sink_state(broker, "gone")["state"] == "FAILED", timeout=30, what="FAILED")
    state = sink_state(broker, "gone")
    assert "410" in state["last_error"]
    assert state["partitions"][0]["committed"] in (-1, 0), "nothing committed past what was delivered"
    # Started again once the endpoint is back, it delivers everything.
    server.respond = lambda n, body, headers: (200, {})
    admin(broker, "sink", "start", "gone")
    wait_caught_up(broker, "gone")
    values = {json.loads(r["body"])["value"] for r in server.delivered()}
    assert values == {f"v{i}" for i in range(5)}


def test_unreachable_url_fails_with_the_reason(broker, tmp_path, topic):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    produce(broker.bootstrap, topic, [(None, b"v", None)])
    create_sink(broker, tmp_path, {
        "id": "nowhere", "topics": [topic],
        "destination": {"name": "h", "type": "http", "options": {"url": f"http://127.0.0.1:{port}/x", "max_retries": 1, "backoff_base": "10ms"}},
    })
    helpers.wait_until(lambda: sink_state(broker, "nowhere")["state"] == "FAILED", timeout=30, what="FAILED")
    assert "cannot reach" in sink_state(broker, "nowhere")["last_error"]


@pytest.mark.parametrize("destination, message", [
    ({"name": "x", "type": "ftp", "options": {}}, "unknown destination type \\\"ftp\\\""),
    ({"name": "x", "type": "http", "options": {"url": "http://h/x", "max_retry": "3"}}, "unknown option(s) max_retry"),
    ({"name": "x", "type": "http", "options": {"url": "not a url"}}, "url \\\"not a url\\\""),
    ({"name": "x", "type": "http", "options": {}}, "option \\\"url\\\" is required"),
    ({"name": "x", "type": "http", "options": {"url": "http://h/x", "signing_secret": "whsec_!!"}}, "signing_secret"),
])
def test_bad_definitions_are_refused_with_the_reason(broker, tmp_path, destination, message):
    code, out = create_sink(broker, tmp_path, {"id": "bad", "topics": ["t"], "destination": destination}, check=False)
    assert code == 1
    assert "InvalidArgument" in out and message.replace("\\", "") in out.replace("\\", ""), out
    assert admin(broker, "sink", "list")[1] == []


def test_keys_go_side_by_side_and_each_key_in_order(broker, hooks, tmp_path, topic):
    import threading
    import time

    lock = threading.Lock()
    in_flight, per_key, peak = [0], {}, {"all": 0, "key": 0}

    def respond(n, body, headers):
        key = json.loads(body)["key"]
        with lock:
            in_flight[0] += 1
            per_key[key] = per_key.get(key, 0) + 1
            peak["all"] = max(peak["all"], in_flight[0])
            peak["key"] = max(peak["key"], per_key[key])
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
            per_key[key] -= 1
        return 200, {}

    server = hooks(respond)
    produce(broker.bootstrap, topic, [(f"k{i % 8}".encode(), f"v{i}".encode(), None) for i in range(160)])
    create_sink(broker, tmp_path, {
        "id": "side", "topics": [topic],
        "destination": {"name": "h", "type": "http", "options": {"url": server.url, "concurrency": 4}},
    })
    wait_caught_up(broker, "side")
    assert 1 < peak["all"] <= 4, peak
    assert peak["key"] == 1, peak
    for k in range(8):
        values = [int(json.loads(r["body"])["value"][1:]) for r in server.delivered() if json.loads(r["body"])["key"] == f"k{k}"]
        assert values == sorted(values) and len(values) == 20


def test_a_slow_answer_times_out_and_is_retried(broker, hooks, tmp_path, topic):
    import time

    def respond(n, body, headers):
        if n == 0:
            time.sleep(1.5)  # past the sink's timeout: the answer comes too late to count
        return 200, {}

    server = hooks(respond)
    produce(broker.bootstrap, topic, [(None, b"slow", None)])
    create_sink(broker, tmp_path, {
        "id": "slow", "topics": [topic],
        "destination": {"name": "h", "type": "http", "options": {
            "url": server.url, "timeout": "300ms", "backoff_base": "10ms"}},
    })
    wait_caught_up(broker, "slow")
    helpers.wait_until(lambda: len(server.requests) >= 2, timeout=10, what="the timed-out request to be recorded")
    keys = {r["headers"]["idempotency-key"] for r in server.requests}
    assert len(server.requests) == 2 and len(keys) == 1, "one retry, with the same idempotency key"
    assert sink_state(broker, "slow")["progress"]["dead_letters"] == 0
