"""The web console (`--console-listen`) in headless Chromium (Debian's `chromium`, driven by
Playwright with the system browser): every page loads against a real broker with real data;
records are browsed by offset, time and key; a topic is created, a record produced and the
topic deleted through the forms, and Kafka clients see each change; bad input shows the
broker's own error and changes nothing; a form posted from another site is refused; durable
consumers are replayed, a flow's DDL change is approved and a sink stopped and started from
their pages; visitors log in as broker users and see and do what their ACLs allow.
Screenshots of each page are saved for review (`DUCTSTREAM_CONSOLE_SCREENSHOTS`, by default
`compat-tests/screenshots/`)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AclOperation, AdminClient, ConfigResource, NewTopic, ResourcePatternType, ResourceType

import helpers
from security_support import make_certs
from sink_support import WebhookServer, admin, create_sink, produce, wait_caught_up
from test_acls import PASSWORDS, allow, create_acls
from test_acls import start as start_acl_broker

SHOTS = Path(os.environ.get("DUCTSTREAM_CONSOLE_SCREENSHOTS", Path(__file__).parent / "screenshots"))


def console_url(broker) -> str:
    line = next((l for l in broker.stdout_lines if l.startswith("listening console=")), None)
    assert line, f"no console line in {broker.stdout_lines}"
    return "http://" + line.split("=", 1)[1].strip()


@pytest.fixture
def console(broker_factory):
    broker = broker_factory("--console-listen", "127.0.0.1:0")
    return broker, console_url(broker)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (compat-tests/setup.sh installs it)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    yield p
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def created(bootstrap: str, topic: str, partitions: int) -> Producer:
    """The topic, made with a Kafka client; a producer to fill it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    return Producer({"bootstrap.servers": bootstrap})


def topics(bootstrap: str) -> dict[str, int]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in metadata.topics.items()}


def test_every_page_shows_the_brokers_data(console, page, topic):
    broker, url = console
    p = created(broker.bootstrap, topic, 2)
    for i in range(10):
        p.produce(topic, key=f"order-{i}", value=json.dumps({"id": i, "total": i * 1.5}), partition=0, headers=[("source", b"test")])
    p.produce(topic, value=b"\x00\x01binary", partition=0)
    assert p.flush(30) == 0

    page.goto(url + "/")
    assert page.title() == "Cluster · DuctStream"
    facts = page.locator("table").first.inner_text()
    assert "embedded" in facts and re.search(r"Topics\s+1 \(2 partitions\)", facts), facts
    assert broker.bootstrap in page.locator("table").nth(1).inner_text()
    shot(page, "cluster")

    page.click("nav >> text=Topics")
    row = page.locator("tr", has_text=topic)
    assert row.locator("td").all_inner_texts() == [topic, "2", "11"]
    shot(page, "topics")

    row.locator("a").click()
    assert page.locator("h1").inner_text() == f"Topic {topic}"
    partitions = page.locator("table").first.locator("tr")
    assert partitions.nth(1).locator("td").all_inner_texts()[:5] == ["0", "1", "0", "11", "11"]
    assert partitions.nth(2).locator("td").all_inner_texts()[:6] == ["1", "1", "0", "0", "0", "0 B"]
    assert re.fullmatch(r"\d+ B", partitions.nth(1).locator("td").nth(5).inner_text())
    shot(page, "topic")

    partitions.nth(1).locator("a", has_text="messages").click()
    rows = page.locator("table tr")
    assert rows.count() == 12
    first = rows.nth(1).locator("td").all_inner_texts()
    assert first[0] == "0" and first[2] == "order-0" and first[4] == "source=test"
    assert json.loads(first[3]) == {"id": 0, "total": 0.0}
    assert rows.nth(11).locator("td").nth(3).inner_text() == "0x000162696e617279"
    shot(page, "messages")

    # Paging: from offset 5, three records, and a link to the older ones.
    page.fill("input[name=offset]", "5")
    page.fill("input[name=limit]", "3")
    page.click("button:has-text('Show')")
    assert [r.locator("td").first.inner_text() for r in page.locator("table tr").all()[1:]] == ["5", "6", "7"]
    assert page.locator("a", has_text="older").count() == 1 and page.locator("a", has_text="newer").count() == 1

    # By time: records produced an hour apart, browsed from the third one's time.
    base = 1_700_000_000_000
    for i in range(5):
        p.produce(topic, value=f"t{i}", partition=1, timestamp=base + i * 3_600_000)
    assert p.flush(30) == 0
    page.goto(f"{url}/topics/{topic}/messages?partition=1")
    page.fill("input[name=time]", "2023-11-15 00:13:20")  # base + 2 hours, in UTC
    page.click("button:has-text('Show')")
    assert [r.locator("td").nth(3).inner_text() for r in page.locator("table tr").all()[1:]] == ["t2", "t3", "t4"]
    page.fill("input[name=time]", "next tuesday")
    page.click("button:has-text('Show')")
    assert "write 2026-12-05 14:00:00" in page.locator(".error").inner_text()

    # By key: from the partition's start, only the records with that key.
    page.goto(f"{url}/topics/{topic}/messages?partition=0")
    page.fill("form[method=get] input[name=key]", "order-7")
    page.click("button:has-text('Find')")
    assert [r.locator("td").first.inner_text() for r in page.locator("table tr").all()[1:]] == ["7"]
    assert "records with key order-7 among offsets 0 to 11" in page.locator("main").inner_text()
    shot(page, "messages-by-key")

    for name in ("flows", "sinks"):
        page.goto(f"{url}/{name}")
        assert page.locator("h1").inner_text() == name.capitalize()
        shot(page, name)

    page.goto(f"{url}/topics/no-such-topic")
    assert "does not exist" in page.locator(".error").inner_text()


def test_the_cluster_page_shows_brokers_sharing_postgres_and_their_leases(broker_factory, postgres_cluster, page, topic):
    url = postgres_cluster.createdb("console_cluster")
    common = ("--broker-lease-ms", "3000")
    one = broker_factory("--node-id", "1", "--console-listen", "127.0.0.1:0", *common, storage="postgres", storage_url=url)
    broker_factory("--node-id", "2", *common, storage="postgres", storage_url=url)
    created(one.bootstrap, topic, 8)

    def both_listed():
        page.goto(console_url(one) + "/")
        return page.locator("table").nth(1).locator("tr").count() == 3
    helpers.wait_until(both_listed, timeout=30, what="both brokers on the cluster page")
    assert "a lease of 3 s in the shared store and renews it every 1.0 s" in page.locator("main").inner_text()
    rows = [r.locator("td").all_inner_texts() for r in page.locator("table").nth(1).locator("tr").all()[1:]]
    assert [r[0] for r in rows] == ["1 (this one)", "2"], rows
    assert sum(int(r[3]) for r in rows) == 8, rows
    shot(page, "cluster-postgres")


def test_create_produce_and_delete_through_the_forms(console, page, topic):
    broker, url = console
    page.goto(url + "/topics")
    page.fill("input[name=name]", topic)
    page.fill("input[name=partitions]", "3")
    page.click("button:has-text('Create')")
    assert page.locator(".ok").inner_text() == f"created topic {topic}"
    assert topics(broker.bootstrap)[topic] == 3

    # Configs: set one, see it in the page and through Kafka's DescribeConfigs; bad ones are
    # refused with the broker's words; back to the default.
    page.fill("input[name=name][placeholder^=config]", "retention.ms")
    page.fill("input[name=value]", "3600000")
    page.click("button:has-text('Set config')")
    assert page.locator(".ok").inner_text() == "set retention.ms=3600000"
    assert ["retention.ms", "3600000"] == page.locator("table").nth(1).locator("tr").nth(1).locator("td").all_inner_texts()[:2]
    resource = ConfigResource("topic", topic)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = admin.describe_configs([resource])[resource].result(30)
    assert described["retention.ms"].value == "3600000"
    for name, value in [("retention.ms", "soon"), ("no.such.config", "1")]:
        page.fill("input[name=name][placeholder^=config]", name)
        page.fill("input[name=value]", value)
        page.click("button:has-text('Set config')")
        assert "InvalidConfig" in page.locator(".error").inner_text() or "InvalidRequest" in page.locator(".error").inner_text(), name
    page.click("button:has-text('Back to default')")
    assert page.locator(".ok").inner_text() == "retention.ms is back to its default"
    assert "every config has its broker default" in page.content()
    shot(page, "topic-configs")

    page.goto(f"{url}/topics/{topic}/messages?partition=2")
    page.fill("form[action$=produce] input[name=key]", "k-42")
    page.fill("input[name=value]", '{"hello": "console"}')
    page.fill("input[name=header]", "origin=browser")
    page.click("button:has-text('Produce')")
    assert page.locator(".ok").inner_text() == "produced at offset 0 of partition 2"
    cells = page.locator("table tr").nth(1).locator("td").all_inner_texts()
    assert cells[2] == "k-42" and json.loads(cells[3]) == {"hello": "console"} and cells[4] == "origin=browser"
    shot(page, "produced")

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "console-check", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 2, 0)])
    m = c.poll(15)
    c.close()
    assert m is not None and m.error() is None
    assert (m.key(), json.loads(m.value()), m.headers()) == (b"k-42", {"hello": "console"}, [("origin", b"browser")])

    page.goto(f"{url}/topics/{topic}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Delete topic')")
    assert page.locator(".ok").inner_text() == f"deleted topic {topic}"
    assert topic not in topics(broker.bootstrap)


def test_a_groups_lag_shows_and_a_reset_changes_it(console, page, topic):
    broker, url = console
    p = created(broker.bootstrap, topic, 1)
    for i in range(10):
        p.produce(topic, value=f"r{i}", partition=0)
    assert p.flush(30) == 0
    group = f"g-{topic}"[:200]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    while len(got) < 4:
        m = c.poll(15)
        assert m is not None, "no record within 15 s"
        if m.error() is None:
            got.append(m)
    c.commit(message=got[-1], asynchronous=False)

    page.goto(url + "/groups")
    row = page.locator("tr", has_text=group)
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == group and cells[1] == "Stable" and cells[4] == "6", cells
    row.locator("a").click()
    assert c.memberid() in page.locator("table").first.inner_text()
    assert page.locator("table").nth(1).locator("tr").nth(1).locator("td").all_inner_texts()[:5] == [topic, "0", "4", "10", "6"]
    shot(page, "group")

    # While the consumer is a member, the coordinator refuses a reset and nothing changes.
    page.select_option("select[name=to]", "earliest")
    page.click("button:has-text('Reset')")
    assert "UnknownMemberId" in page.locator(".error").inner_text() or "RebalanceInProgress" in page.locator(".error").inner_text()
    c.close()
    page.reload()
    assert "No members." in page.content()
    assert page.locator("table").first.locator("tr").nth(1).locator("td").all_inner_texts()[2:5] == ["4", "10", "6"]

    page.select_option("select[name=to]", "offset")
    page.fill("input[name=offset]", "2")
    page.click("button:has-text('Reset')")
    assert page.locator(".ok").inner_text() == f"reset {topic} to offset on 1 partitions"
    assert page.locator("table").first.locator("tr").nth(1).locator("td").all_inner_texts()[2:5] == ["2", "10", "8"]
    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    assert check.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 2
    check.close()
    page.select_option("select[name=to]", "offset")
    page.fill("input[name=offset]", "-5")
    page.click("button:has-text('Reset')")
    assert "is not an offset" in page.locator(".error").inner_text()


def test_a_kip848_groups_members_show_with_their_assignments(group_broker_factory, page, topic):
    broker = group_broker_factory("--console-listen", "127.0.0.1:0", "--group-consumer-heartbeat-interval-ms", "300")
    url = console_url(broker)
    created(broker.bootstrap, topic, 2)
    group = f"k-{topic}"[:200]
    members = [Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "group.protocol": "consumer",
                         "group.remote.assignor": "range", "client.id": f"worker-{i}"}) for i in range(2)]
    try:
        for c in members:
            c.subscribe([topic])

        def settled():
            for c in members:
                c.poll(0.1)
            return all(len(c.assignment()) == 1 for c in members)

        helpers.wait_until(settled, timeout=40, what="each member owning one partition")
        page.goto(f"{url}/groups/{group}")
        assert re.search(r"Consumer group \(KIP-848\) · state Stable · group epoch \d+ · assignment epoch \d+ · assignor range",
                         page.locator("main").inner_text())
        rows = {}
        for r in page.locator("table").first.locator("tr").all()[1:]:
            cells = r.locator("td").all_inner_texts()
            rows[cells[0]] = cells
        for c in members:
            cells = rows[c.memberid()]
            owned = c.assignment()[0].partition
            assert cells[1].startswith("worker-") and cells[4] == topic and cells[5] == f"{topic} {owned}", cells
        shot(page, "group-kip848")
    finally:
        for c in members:
            c.close()


def test_charts_show_throughput_and_lag_over_time(broker_factory, page, topic):
    broker = broker_factory("--console-listen", "127.0.0.1:0", "--console-sample-interval-ms", "200")
    url = console_url(broker)
    p = created(broker.bootstrap, topic, 1)
    group = f"c-{topic}"[:200]
    for burst in range(4):
        for i in range(50):
            p.produce(topic, value=f"{burst}-{i}".encode() * 20)
        assert p.flush(30) == 0
        time.sleep(0.3)
    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    check.commit(offsets=[TopicPartition(topic, 0, 150)], asynchronous=False)
    check.close()

    def chart(caption: str) -> tuple[float, float]:
        figure = page.locator("figure.chart", has_text=caption)
        assert figure.locator("svg polyline").count() == 1, page.locator("main").inner_text()
        return float(figure.get_attribute("data-last")), float(figure.get_attribute("data-peak"))

    def lag_sampled():
        page.goto(f"{url}/groups/{group}")
        return page.locator("figure.chart svg polyline").count() == 1 and chart("Lag")[0] == 50
    helpers.wait_until(lag_sampled, timeout=30, what="the group's lag in the samples")

    page.goto(url + "/")
    assert chart("Records produced (all topics)")[1] > 0
    assert chart("Bytes in (this broker)")[1] > 200 * 50
    shot(page, "cluster-charts")
    page.goto(f"{url}/topics/{topic}")
    assert chart("Records produced")[1] > 0
    page.goto(f"{url}/groups/{group}")
    assert chart("Lag")[0] == 50
    # And on each partition, in the committed offsets' table.
    assert float(page.locator("table").first.locator("svg.spark").get_attribute("data-last")) == 50
    shot(page, "group-chart")


def test_bad_input_shows_the_brokers_error_and_changes_nothing(console, page, topic):
    broker, url = console
    before = topics(broker.bootstrap)
    for name, partitions, error in [
        ("bad/name", "1", "InvalidTopicException"),
        (topic, "-3", "InvalidPartitions"),
        (topic, "many", "is not a number"),
        ("x" * 250, "1", "InvalidTopicException"),
    ]:
        page.goto(url + "/topics")
        page.fill("input[name=name]", name)
        # The browser keeps letters out of a number field; the broker must refuse them anyway.
        page.evaluate("document.querySelector('input[name=partitions]').type = 'text'")
        page.fill("input[name=partitions]", partitions)
        page.click("button:has-text('Create')")
        assert error in page.locator(".error").inner_text(), (name, partitions)
    shot(page, "refused")
    # A record for a partition the topic lacks is refused as Kafka refuses it.
    page.goto(url + "/topics")
    page.fill("input[name=name]", topic)
    page.click("button:has-text('Create')")
    page.goto(f"{url}/topics/{topic}/messages?partition=0")
    page.evaluate("document.querySelector('form[action$=produce] input[name=partition]').value = '7'")
    page.fill("input[name=value]", "lost?")
    page.click("button:has-text('Produce')")
    assert "UnknownTopicOrPartition" in page.locator(".error").inner_text()
    page.goto(f"{url}/topics/{topic}/messages?partition=9")
    assert "has no partition 9" in page.locator(".error").inner_text()
    assert topics(broker.bootstrap) == {**before, topic: 1}

    # A form posted from another site does nothing.
    forged = urllib.request.Request(f"{url}/topics/{topic}/delete", data=b"", method="POST", headers={"Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 403
    assert topic in topics(broker.bootstrap)


def test_durable_consumers_show_redeliveries_and_replay(console, page, topic):
    broker, url = console
    p = created(broker.bootstrap, topic, 1)
    for i in range(5):
        p.produce(topic, value=f"job-{i}", partition=0)
    assert p.flush(30) == 0
    target = ["--stream", topic, "--group", "workers"]
    admin(broker, "stream", "create", *target, "--max-deliver", "2", "--ack-wait", "30s")
    pulled = admin(broker, "stream", "pull", *target, "--max", "3")[1]
    assert [m["value"] for m in pulled] == ["job-0", "job-1", "job-2"]
    admin(broker, "stream", "ack", *target, "--ids", pulled[0]["id"])
    admin(broker, "stream", "nak", *target, "--ids", pulled[1]["id"])
    again = admin(broker, "stream", "pull", *target, "--max", "1")[1]
    assert [(m["value"], m["delivery_count"]) for m in again] == [("job-1", 2)]
    admin(broker, "stream", "term", *target, "--ids", again[0]["id"], "--reason", "poison")

    page.goto(url + "/consumers")
    row = page.locator("tr", has_text="workers")
    # Pending job-2; 4 deliveries; 1 acked; 1 redelivered; job-1 dead-lettered; 3 not done.
    assert row.locator("td").all_inner_texts() == [topic, "workers", "1", "4", "1", "1", "1", "1", "3"]
    shot(page, "consumers")
    row.locator("a", has_text="workers").click()
    assert page.locator("h1").inner_text() == "Durable consumer workers"
    settings = page.locator("table").first.inner_text()
    assert re.search(r"Max deliveries\s+2", settings) and f"{topic}.dlq" in settings, settings
    assert page.locator("table").nth(2).locator("tr").nth(1).locator("td").all_inner_texts()[:4] == ["0", "2", "3", "5"]
    shot(page, "consumer")

    # The dead letter is one click away, with why it went there.
    page.locator("table").nth(1).locator("a").click()
    assert "job-1" in page.locator("table").inner_text() and "poison" in page.locator("table").inner_text()

    page.goto(f"{url}/consumers/{topic}/workers")
    page.fill("input[name=offset]", "lots")
    page.click("button:has-text('Replay')")
    assert "is not an offset" in page.locator(".error").inner_text()
    page.fill("input[name=offset]", "0")
    page.click("button:has-text('Replay')")
    assert page.locator(".ok").inner_text() == "replaying from 0"
    replayed = admin(broker, "stream", "pull", *target, "--max", "5")[1]
    assert [m["value"] for m in replayed] == [f"job-{i}" for i in range(5)]
    page.goto(f"{url}/consumers/{topic}/nobody")
    assert page.locator(".error").count() == 1


def psql(dsn: str, sql: str) -> None:
    subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], check=True, capture_output=True, timeout=60)


def test_a_flow_runs_and_its_ddl_change_is_approved_in_the_console(broker_factory, postgres_cluster, page, tmp_path):
    broker = broker_factory("--console-listen", "127.0.0.1:0", "--ddl-gate")
    url = console_url(broker)
    source = postgres_cluster.createdb("console_flow")
    psql(source, "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada');")
    flow = {"id": "shop", "name": "shop", "destinations": [{"name": "topics", "type": "topics"}],
            "source": {"name": "pg", "type": "postgres", "options": {
                "dsn": source, "slot": "shop_slot", "publication": "shop_pub", "publication_tables": "public.users",
                "batch_timeout": "100ms", "format": "avro"}}}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow))
    admin(broker, "flow", "create", "-f", str(path))

    page.goto(url + "/flows")
    row = page.locator("tr", has_text="shop")
    assert row.locator("td").nth(1).inner_text() == "created"
    row.locator("button:has-text('Start')").click()
    assert page.locator(".ok").inner_text() == "start: the flow is running"
    helpers.wait_until(lambda: records(broker.bootstrap, "shop.public.users", 1), timeout=60, what="the snapshot in the topic")

    psql(source, "ALTER TABLE users ADD COLUMN email text; INSERT INTO users VALUES (2, 'bob', 'b@c');")
    def pending_shown():
        page.goto(url + "/flows")
        return "1 to decide" in page.locator("tr", has_text="shop").inner_text()
    helpers.wait_until(pending_shown, timeout=60, what="the DDL change waiting in the console")
    cells = page.locator("tr", has_text="shop").locator("td").all_inner_texts()
    assert cells[1] == "running" and re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", cells[5]), cells
    assert re.match(r"[\d.]+ (B|KiB|MiB) \(server at [0-9A-F]+/[0-9A-F]+\)", cells[6]), cells
    shot(page, "flows")
    page.click("a:has-text('1 to decide')")
    assert page.locator("h1").inner_text() == "Flow shop"
    change = page.locator("table").nth(1).locator("tr").nth(1).locator("td").all_inner_texts()
    assert change[2] == "ALTER TABLE" and "ADD COLUMN email" in change[3] and change[4] == "pending", change
    # Held at the gate: the insert after the change has not arrived, and the source is ahead.
    assert len(records(broker.bootstrap, "shop.public.users", 1)) == 1
    behind = page.locator("tr", has_text="Behind source").locator("td").nth(1).inner_text()
    assert re.match(r"[1-9][\d.]* (B|KiB|MiB) ", behind), behind
    shot(page, "flow")
    page.click("button:has-text('Approve')")
    assert re.fullmatch(r"DDL change \d+ is approved", page.locator(".ok").inner_text())
    assert len(records(broker.bootstrap, "shop.public.users", 2)) == 2
    # The change after the DDL, in Avro, decoded in the message browser.
    page.goto(f"{url}/topics/shop.public.users/messages?partition=0")
    value = page.locator("table tr").nth(2).locator("td").nth(3)
    assert value.locator("small").inner_text() == "avro change event, decoded"
    event = json.loads(value.locator("pre").inner_text())
    assert (event["op"], event["after"]) == ("c", {"id": 2, "name": "bob", "email": "b@c"}), event
    shot(page, "messages-avro")
    page.goto(f"{url}/flows/shop")

    # Stopped from the console, as the CLI would.
    page.click("button:has-text('Stop')")
    assert page.locator(".ok").inner_text() == "stop: the flow is paused"
    assert page.locator("button:has-text('Resume')").count() == 1
    assert admin(broker, "flow", "get", "shop")[1]["state"] == "paused"


def records(bootstrap: str, topic: str, at_least: int) -> list[bytes]:
    """The values in the topic's partition 0 from the start, once it has `at_least` of them."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "console-reader", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    try:
        for _ in range(40):
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
            if m is None and len(got) >= at_least:
                break
    finally:
        c.close()
    return got


def test_a_sinks_progress_and_dead_letters_show_and_it_stops_and_starts(console, page, topic, tmp_path):
    broker, url = console
    server = WebhookServer(lambda n, body, headers: (400, {}) if json.loads(body)["value"].startswith("bad") else (200, {}))
    try:
        created(broker.bootstrap, topic, 1)
        produce(broker.bootstrap, topic, [(None, v.encode(), None) for v in ["ok0", "bad1", "ok2"]])
        create_sink(broker, tmp_path, {"id": "hook", "topics": [topic], "destination": {
            "name": "h", "type": "http", "options": {"url": server.url, "max_retries": 1, "backoff_base": "10ms"}}})
        wait_caught_up(broker, "hook")
        page.goto(url + "/sinks")
        cells = page.locator("tr", has_text="hook").locator("td").all_inner_texts()
        assert cells[:4] == ["hook", "http", topic, "running"] and cells[5] == "3" and cells[8] == "1" and cells[9] == "0", cells
        shot(page, "sinks")
        # The dead letter, one click from the list.
        page.locator("tr", has_text="hook").locator("td").nth(8).locator("a").click()
        assert "bad1" in page.locator("table").inner_text()
        page.goto(url + "/sinks")
        page.click("a:has-text('hook')")
        assert page.locator("table").nth(1).locator("tr").nth(1).locator("td").all_inner_texts() == [topic, "0", "3", "3", "0"]
        assert server.url in page.locator("table").nth(2).inner_text()
        shot(page, "sink")
        page.click("button:has-text('Stop')")
        assert page.locator(".ok").inner_text() == "stop: the sink is paused"
        produce(broker.bootstrap, topic, [(None, b"ok3", None)])
        page.reload()
        assert page.locator("table").nth(1).locator("tr").nth(1).locator("td").all_inner_texts() == [topic, "0", "3", "4", "1"]
        page.click("button:has-text('Start')")
        assert page.locator(".ok").inner_text() == "start: the sink is running"
        wait_caught_up(broker, "hook")
        # Keyless records go to the webhook side by side: in any order.
        assert sorted(json.loads(r["body"])["value"] for r in server.delivered()) == ["ok0", "ok2", "ok3"]
    finally:
        server.close()


def test_visitors_log_in_and_see_what_their_acls_allow(broker_factory, browser):
    b = start_acl_broker(broker_factory, "--console-listen", "127.0.0.1:0")
    url = console_url(b)
    operator = AdminClient({"bootstrap.servers": b.listeners["PLAINTEXT"]})
    for future in operator.create_topics([NewTopic(n, 1, 1) for n in ("public-news", "secret-payroll")]).values():
        future.result(30)
    create_acls(b, "admin", [allow("User:alice", ResourceType.TOPIC, "public-", AclOperation.READ, ResourcePatternType.PREFIXED)])

    # No credentials, or wrong ones: the browser is asked to log in, and sees nothing.
    for auth in (None, "Basic " + base64.b64encode(b"alice:wrong").decode(), "Basic !!!"):
        request = urllib.request.Request(url + "/topics", headers={"Authorization": auth} if auth else {})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401 and refused.value.headers["WWW-Authenticate"].startswith("Basic"), auth
        assert "public-news" not in refused.value.read().decode()

    alice = browser.new_context(http_credentials={"username": "alice", "password": PASSWORDS["alice"]})
    page = alice.new_page()
    page.goto(url + "/topics")
    shown = page.locator("table").inner_text()
    assert "public-news" in shown and "secret-payroll" not in shown, shown
    page.goto(url + "/topics/secret-payroll/messages")
    assert "may not" in page.locator(".error").inner_text()
    # Alice may read but not delete: the broker refuses her, as it would her Kafka client.
    page.goto(url + "/topics/public-news")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Delete topic')")
    assert "TopicAuthorizationFailed" in page.locator(".error").inner_text()
    alice.close()
    assert "public-news" in topics(b.listeners["PLAINTEXT"])

    boss = browser.new_context(http_credentials={"username": "admin", "password": PASSWORDS["admin"]})
    page = boss.new_page()
    page.goto(url + "/topics")
    assert "secret-payroll" in page.locator("table").inner_text()
    page.goto(url + "/topics/secret-payroll")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Delete topic')")
    assert page.locator(".ok").inner_text() == "deleted topic secret-payroll"
    boss.close()


def test_over_tls_a_client_certificate_logs_the_visitor_in(broker_factory, tmp_path_factory):
    certs = make_certs(tmp_path_factory.mktemp("console-certs"))
    super_user = "User:CN=alice-client,OU=compat,O=DuctStream Tests,C=US"
    b = broker_factory("--console-listen", "127.0.0.1:0", "--console-tls", "--authorizer", "acl",
                       "--super-users", f"User:ANONYMOUS;{super_user}", "--ssl-certificate", str(certs.server_cert),
                       "--ssl-key", str(certs.server_key), "--ssl-client-ca", str(certs.ca), "--ssl-client-auth", "requested")
    address = console_url(b).removeprefix("http://")
    operator = AdminClient({"bootstrap.servers": b.bootstrap})
    operator.create_topics([NewTopic("tls-visible", 1, 1)])["tls-visible"].result(30)

    def get(context: ssl.SSLContext):
        return urllib.request.urlopen(f"https://{address}/topics", context=context, timeout=10)

    trusting = ssl.create_default_context(cafile=str(certs.ca))
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(trusting)
    assert refused.value.code == 401
    with_certificate = ssl.create_default_context(cafile=str(certs.ca))
    with_certificate.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    with get(with_certificate) as answer:
        assert "tls-visible" in answer.read().decode()
    # A certificate of a CA the broker does not trust gets no page; nor does plain HTTP.
    rogue = ssl.create_default_context(cafile=str(certs.ca))
    rogue.load_cert_chain(str(certs.rogue_cert), str(certs.rogue_key))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        get(rogue).read()
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://{address}/topics", timeout=10).read()
    b.check_alive()
