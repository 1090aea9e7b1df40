"""Listeners with Kafka's four security protocols on one broker: PLAINTEXT, SSL (TLS, with
optional client certificates), SASL_PLAINTEXT and SASL_SSL with PLAIN, SCRAM-SHA-256 and
SCRAM-SHA-512. SCRAM credentials are made with AlterUserScramCredentials (as kafka-configs
does) and checked by every mechanism. Clients: confluent-kafka (librdkafka), kcat (librdkafka
2.0.2), kafka-python, aiokafka, kafkajs, sarama (SaslHandshake v0 and v1), franz-go, the Java
client. Refusals: wrong password, unknown user, unknown mechanism,
plaintext to a TLS port, TLS to a plaintext port, a request before authenticating, a client
certificate from an unknown CA."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

import helpers
from security_support import PASSWORD, USER, broker_args, librdkafka, make_certs

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def add_user(bootstrap: str, user: str, password: str, mechanisms=(ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    alterations = [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 4096), password.encode()) for m in mechanisms]
    for future in admin.alter_user_scram_credentials(alterations).values():
        future.result(timeout=30)


@pytest.fixture
def secure_broker(broker_factory, certs):
    b = broker_factory(*broker_args(certs))
    add_user(b.listeners["PLAINTEXT"], USER, PASSWORD)
    return b


def round_trip(bootstrap: str, conf: dict[str, str], topic: str, n: int = 20, patience: float = 30):
    """Produces n records and reads them back with librdkafka over `conf`, within `patience`
    seconds for the reading."""
    producer = Producer({"bootstrap.servers": bootstrap, **conf, "acks": "all"})
    for i in range(n):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, **conf, "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest", "enable.partition.eof": False})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + patience
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                got.append((m.key(), m.value()))
    finally:
        consumer.close()
    assert got == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(n)]


def auth_error(bootstrap: str, conf: dict[str, str], timeout: float = 15) -> str:
    """The errors a librdkafka client reports connecting over `conf` (it must fail)."""
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, **conf, "error_cb": lambda e: errors.append(str(e))})
    deadline = time.monotonic() + timeout
    while not errors and time.monotonic() < deadline:
        producer.poll(0.1)
    return " | ".join(errors)


@pytest.mark.parametrize("protocol,mechanism", [
    ("PLAINTEXT", None),
    ("SSL", None),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
    ("SASL_SSL", "PLAIN"),
    ("SASL_SSL", "SCRAM-SHA-512"),
])
def test_librdkafka_produces_and_consumes_on_every_listener(secure_broker, certs, topic, protocol, mechanism):
    conf = librdkafka(protocol, certs, mechanism or "PLAIN")
    round_trip(secure_broker.listeners[protocol], conf, topic)


def test_metadata_advertises_the_listener_the_client_came_in_by(secure_broker, certs):
    for protocol in ("PLAINTEXT", "SSL", "SASL_SSL"):
        admin = AdminClient({"bootstrap.servers": secure_broker.listeners[protocol], **librdkafka(protocol, certs)})
        brokers = admin.list_topics(timeout=15).brokers
        assert [f"{b.host}:{b.port}" for b in brokers.values()] == [secure_broker.listeners[protocol]]


def test_wrong_password_unknown_user_and_unknown_mechanism_are_refused(secure_broker, certs):
    bootstrap = secure_broker.listeners["SASL_PLAINTEXT"]
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        for user, password in ((USER, "wrong"), ("nobody", PASSWORD)):
            error = auth_error(bootstrap, librdkafka("SASL_PLAINTEXT", certs, mechanism, user, password))
            assert "Authentication failed" in error and mechanism in error, error
    error = auth_error(bootstrap, librdkafka("SASL_PLAINTEXT", certs, "OAUTHBEARER")
                       | {"enable.sasl.oauthbearer.unsecure.jwt": "true", "sasl.oauthbearer.config": "principal=alice"})
    assert "OAUTHBEARER" in error and "PLAIN" in error, error  # the broker's list is in the message
    metrics = helpers_metrics(secure_broker)
    assert metrics["ductstream_sasl_authentication_failures_total"] >= 6


def helpers_metrics(broker) -> dict[str, float]:
    import urllib.request
    text = urllib.request.urlopen(f"http://{broker.metrics}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def kafka_frame(api_key: int, version: int, body: bytes = b"", correlation: int = 7, client: bytes = b"raw") -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def read_frame(sock: socket.socket) -> bytes | None:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (size,) = struct.unpack(">i", head)
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return None
        body += chunk
    return body


def closed(sock: socket.socket, timeout: float = 10) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except (socket.timeout, ssl.SSLError):
        return False


def test_a_request_before_authentication_closes_the_connection(secure_broker):
    host, port = secure_broker.listeners["SASL_PLAINTEXT"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # ApiVersions is allowed before authenticating; Metadata v1 (all topics) is not.
        sock.sendall(kafka_frame(18, 0))
        assert read_frame(sock) is not None
        sock.sendall(kafka_frame(3, 1, struct.pack(">i", -1)))
        assert closed(sock)
    # SaslHandshake on a listener without SASL: ILLEGAL_SASL_STATE (34).
    host, port = secure_broker.listeners["PLAINTEXT"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        mechanism = b"PLAIN"
        sock.sendall(kafka_frame(17, 1, struct.pack(">h", len(mechanism)) + mechanism))
        response = read_frame(sock)
        assert response is not None and struct.unpack(">h", response[4:6])[0] == 34


def test_plaintext_to_a_tls_port_and_tls_to_a_plaintext_port_are_closed(secure_broker, certs):
    host, port = secure_broker.listeners["SSL"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(kafka_frame(18, 0))
        assert closed(sock)
    error = auth_error(secure_broker.listeners["PLAINTEXT"], librdkafka("SSL", certs))
    assert "SSL" in error or "ssl" in error or "Disconnected" in error, error
    # And the broker goes on serving.
    round_trip(secure_broker.listeners["SSL"], librdkafka("SSL", certs), helpers.unique_topic("after"), 3)
    assert helpers_metrics(secure_broker)["ductstream_tls_handshake_failures_total"] >= 1


def test_client_certificates_are_checked_against_the_ca(broker_factory, certs, topic):
    b = broker_factory(*broker_args(certs, client_auth="required"))
    bootstrap = b.listeners["SSL"]
    round_trip(bootstrap, librdkafka("SSL", certs, client_cert=True), topic)
    error = auth_error(bootstrap, librdkafka("SSL", certs))  # no certificate
    assert "SSL" in error or "Disconnected" in error, error
    rogue = librdkafka("SSL", certs) | {"ssl.certificate.location": str(certs.rogue_cert),
                                        "ssl.key.location": str(certs.rogue_key)}
    assert auth_error(bootstrap, rogue)


def test_certificates_are_reloaded_without_a_restart(broker_factory, certs, tmp_path, topic):
    live = tmp_path / "live"
    live.mkdir()
    for f in (certs.server_cert, certs.server_key):
        shutil.copy(f, live / f.name)
    args = broker_args(certs)
    args[args.index("--ssl-certificate") + 1] = str(live / certs.server_cert.name)
    args[args.index("--ssl-key") + 1] = str(live / certs.server_key.name)
    b = broker_factory(*args)
    bootstrap = b.listeners["SSL"]
    round_trip(bootstrap, librdkafka("SSL", certs), topic, 3)
    # A new certificate from another CA: clients trusting only that CA connect once it is loaded.
    other = make_certs(tmp_path / "other")
    shutil.copy(other.server_key, live / certs.server_key.name)
    shutil.copy(other.server_cert, live / certs.server_cert.name)

    def trusted_by_new_ca():
        try:
            AdminClient({"bootstrap.servers": bootstrap, **librdkafka("SSL", other)}).list_topics(timeout=3)
            return True
        except KafkaException:
            return False
    helpers.wait_until(trusted_by_new_ca, timeout=30, what="the new certificate in service")
    assert "TLS certificate reloaded" in b.stderr_text()


def test_scram_credentials_are_described_altered_and_deleted(secure_broker, certs):
    admin = AdminClient({"bootstrap.servers": secure_broker.listeners["PLAINTEXT"]})
    futures = admin.describe_user_scram_credentials([USER])
    description = futures[USER].result(timeout=30)
    assert sorted((i.mechanism, i.iterations) for i in description.scram_credential_infos) == [
        (ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 4096)]
    with pytest.raises(KafkaException) as unknown:
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(timeout=30)
    assert "RESOURCE_NOT_FOUND" in str(unknown.value) or "does not exist" in str(unknown.value)
    # Too few iterations: refused, and the user's other credential is untouched.
    bad = admin.alter_user_scram_credentials([UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"x")])
    with pytest.raises(KafkaException) as few:
        bad["bob"].result(timeout=30)
    assert "iterations" in str(few.value).lower()
    # Deleting one mechanism: that one no longer logs in, the other still does.
    admin.alter_user_scram_credentials([UserScramCredentialDeletion(USER, ScramMechanism.SCRAM_SHA_512)])[USER].result(timeout=30)
    bootstrap = secure_broker.listeners["SASL_PLAINTEXT"]
    assert "Authentication failed" in auth_error(bootstrap, librdkafka("SASL_PLAINTEXT", certs, "SCRAM-SHA-512"))
    AdminClient({"bootstrap.servers": bootstrap, **librdkafka("SASL_PLAINTEXT", certs, "SCRAM-SHA-256")}).list_topics(timeout=15)
    # A changed password: the old one is refused from then on.
    add_user(secure_broker.listeners["PLAINTEXT"], USER, "new-secret", (ScramMechanism.SCRAM_SHA_256,))
    assert "Authentication failed" in auth_error(bootstrap, librdkafka("SASL_PLAINTEXT", certs, "SCRAM-SHA-256"))
    AdminClient({"bootstrap.servers": bootstrap, **librdkafka("SASL_PLAINTEXT", certs, "SCRAM-SHA-256", password="new-secret")}).list_topics(timeout=15)


@pytest.mark.parametrize("protocol,mechanism", [("SASL_SSL", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SSL", None)])
def test_kcat(secure_broker, certs, topic, protocol, mechanism):
    conf = librdkafka(protocol, certs, mechanism or "PLAIN")
    flags = [x for k, v in conf.items() for x in ("-X", f"{k}={v}")]
    bootstrap = secure_broker.listeners[protocol]
    helpers.run([helpers.kcat_bin(), "-P", "-b", bootstrap, "-t", topic, "-K", ":", *flags],
                input=b"a:1\nb:2\nc:3\n", timeout=60)
    out = helpers.run([helpers.kcat_bin(), "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-c", "3", "-e",
                       "-f", "%k=%s\n", *flags], timeout=60)
    assert out.stdout.decode().split() == ["a=1", "b=2", "c=3"]
    bad = helpers.run([helpers.kcat_bin(), "-L", "-b", bootstrap, *flags, "-X", "sasl.password=nope", "-m", "3"],
                      timeout=60, check=False)
    if mechanism:
        assert bad.returncode != 0 and b"Authentication failed" in bad.stderr, bad.stderr


@pytest.mark.parametrize("protocol,mechanism", [("SASL_SSL", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-512"), ("SSL", None)])
def test_kafka_python(secure_broker, certs, topic, protocol, mechanism):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError
    conf = {"security_protocol": protocol}
    if "SSL" in protocol:
        conf["ssl_cafile"] = str(certs.ca)
    if mechanism:
        conf.update(sasl_mechanism=mechanism, sasl_plain_username=USER, sasl_plain_password=PASSWORD)
    bootstrap = secure_broker.listeners[protocol]
    producer = KafkaProducer(bootstrap_servers=bootstrap, **conf)
    for i in range(5):
        producer.send(topic, key=b"k", value=f"v{i}".encode()).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=20000, **conf)
    values = []
    for m in consumer:
        values.append(m.value)
        if len(values) == 5:
            break
    consumer.close()
    assert values == [f"v{i}".encode() for i in range(5)]
    if mechanism:
        before = helpers_metrics(secure_broker)["ductstream_sasl_authentication_failures_total"]
        # kafka-python retries a refused login until the send's wait for metadata ends.
        producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=(2, 5), max_block_ms=3000,
                                 **{**conf, "sasl_plain_password": "nope"})
        with pytest.raises(KafkaError):
            producer.send(topic, b"refused").get(timeout=5)
        producer.close(timeout=5)
        assert helpers_metrics(secure_broker)["ductstream_sasl_authentication_failures_total"] > before


@pytest.mark.parametrize("protocol,mechanism", [
    ("SASL_SSL", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SSL", None), ("SASL_SSL", "SCRAM-SHA-512")])
def test_aiokafka(secure_broker, certs, topic, protocol, mechanism):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context

    async def main():
        conf = {"security_protocol": protocol}
        if mechanism:
            conf.update(sasl_mechanism=mechanism, sasl_plain_username=USER, sasl_plain_password=PASSWORD)
        if "SSL" in protocol:
            conf["ssl_context"] = create_ssl_context(cafile=str(certs.ca))
        bootstrap = secure_broker.listeners[protocol]
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **conf)
        await producer.start()
        try:
            for i in range(5):
                await producer.send_and_wait(topic, f"v{i}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", **conf)
        await consumer.start()
        try:
            got = []
            async with asyncio.timeout(30):
                while len(got) < 5:
                    batch = await consumer.getmany(timeout_ms=500)
                    got += [m.value for ms in batch.values() for m in ms]
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(main()) == [f"v{i}".encode() for i in range(5)]


@pytest.mark.parametrize("protocol,mechanism", [
    ("SASL_SSL", "plain"), ("SASL_PLAINTEXT", "scram-sha-256"), ("SSL", ""), ("SASL_SSL", "scram-sha-512")])
def test_kafkajs(secure_broker, certs, topic, protocol, mechanism):
    bootstrap = secure_broker.listeners[protocol]
    ca = str(certs.ca) if "SSL" in protocol else ""
    out = helpers.run(["node", str(HERE / "node" / "kafkajs_secure.js"), bootstrap, topic, ca, mechanism, USER, PASSWORD],
                      timeout=120)
    result = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert result["values"] == [f"v{i}" for i in range(5)]
    if mechanism:
        assert "Authentication failed" in result["wrongPassword"], result


def test_brokers_on_one_postgres_share_credentials_and_advertise_each_listener(broker_factory, postgres_cluster, certs, topic):
    url = postgres_cluster.createdb("security_shared")
    one = broker_factory(*broker_args(certs), "--node-id", "1", storage="postgres", storage_url=url)
    two = broker_factory(*broker_args(certs), "--node-id", "2", storage="postgres", storage_url=url)
    add_user(one.listeners["PLAINTEXT"], "carol", "carol-secret")
    conf = librdkafka("SASL_SSL", certs, "SCRAM-SHA-512", "carol", "carol-secret")
    # Broker two checks a credential made through broker one. Each broker learns of the other
    # at its next lease renewal: wait until both see both, so that the group and the partition
    # do not move while the round trip runs.
    admin = AdminClient({"bootstrap.servers": two.listeners["SASL_SSL"], **conf})
    admin_one = AdminClient({"bootstrap.servers": one.listeners["SASL_SSL"], **conf})
    helpers.wait_until(lambda: all(len(a.list_topics(timeout=10).brokers) == 2 for a in (admin, admin_one)),
                       timeout=30, what="both brokers live, seen from each")
    advertised = sorted(f"{b.host}:{b.port}" for b in admin.list_topics(timeout=10).brokers.values())
    assert advertised == sorted([one.listeners["SASL_SSL"], two.listeners["SASL_SSL"]])
    round_trip(two.listeners["SASL_SSL"], conf, topic, patience=60)


def sasl_handshake(sock: socket.socket, version: int, mechanism: bytes = b"PLAIN") -> int:
    sock.sendall(kafka_frame(17, version, struct.pack(">h", len(mechanism)) + mechanism))
    response = read_frame(sock)
    assert response is not None
    return struct.unpack(">h", response[4:6])[0]


def plain_token(user: str, password: str) -> bytes:
    return b"\0" + user.encode() + b"\0" + password.encode()


def sasl_authenticate_v1(sock: socket.socket, token: bytes) -> tuple[int, str | None, int]:
    """(error code, error message, session lifetime ms) of a SaslAuthenticate v1."""
    sock.sendall(kafka_frame(36, 1, struct.pack(">i", len(token)) + token))
    response = read_frame(sock)
    assert response is not None
    body = response[4:]
    code, message_len = struct.unpack(">hh", body[:4])
    message = body[4:4 + message_len].decode() if message_len >= 0 else None
    rest = body[4 + max(message_len, 0):]
    (auth_len,) = struct.unpack(">i", rest[:4])
    (lifetime,) = struct.unpack(">q", rest[4 + max(auth_len, 0):12 + max(auth_len, 0)])
    return code, message, lifetime


def metadata_answered(sock: socket.socket) -> bool:
    sock.sendall(kafka_frame(3, 1, struct.pack(">i", -1)))
    return read_frame(sock) is not None


def test_sasl_handshake_v0_takes_bare_tokens(secure_broker):
    host, port = secure_broker.listeners["SASL_PLAINTEXT"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        assert sasl_handshake(sock, 0) == 0
        token = plain_token(USER, PASSWORD)
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert read_frame(sock) == b""  # PLAIN's empty last reply, framed without a header
        assert metadata_answered(sock)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        assert sasl_handshake(sock, 0) == 0
        token = plain_token(USER, "wrong")
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert closed(sock)  # v0 has no error field: the connection closes
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        assert sasl_handshake(sock, 1, b"GSSAPI") == 33  # UNSUPPORTED_SASL_MECHANISM


def test_a_session_past_its_lifetime_is_closed_unless_reauthenticated(broker_factory, certs, topic):
    b = broker_factory(*broker_args(certs), "--connections-max-reauth-ms", "1500")
    add_user(b.listeners["PLAINTEXT"], USER, PASSWORD)
    host, port = b.listeners["SASL_PLAINTEXT"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        assert sasl_handshake(sock, 1) == 0
        code, message, lifetime = sasl_authenticate_v1(sock, plain_token(USER, PASSWORD))
        assert (code, lifetime) == (0, 1500), message
        assert metadata_answered(sock)
        # Re-authenticating (KIP-368) renews the session, as the same user only.
        time.sleep(1.0)
        assert sasl_handshake(sock, 1) == 0
        assert sasl_authenticate_v1(sock, plain_token(USER, PASSWORD))[0] == 0
        time.sleep(1.0)
        assert metadata_answered(sock)  # 2 s after the first login, 1 s after the second
        time.sleep(1.0)
        assert not metadata_answered(sock)  # expired: closed
    # librdkafka re-authenticates by itself and keeps producing.
    conf = librdkafka("SASL_PLAINTEXT", certs, "SCRAM-SHA-256")
    producer = Producer({"bootstrap.servers": b.listeners["SASL_PLAINTEXT"], **conf})
    failures = []
    for i in range(40):
        producer.produce(topic, value=str(i).encode(), on_delivery=lambda err, _: err and failures.append(err))
        producer.poll(0.1)
    assert producer.flush(30) == 0 and not failures, failures
    logins = sum(v for k, v in helpers_requests(b).items() if k == ("SaslAuthenticate", "NONE"))
    assert logins >= 6, logins  # SCRAM takes 2 requests: the first login and at least 2 renewals


def helpers_requests(broker) -> dict[tuple[str, str], float]:
    import re
    import urllib.request
    text = urllib.request.urlopen(f"http://{broker.metrics}/metrics", timeout=10).read().decode()
    out = {}
    for m in re.finditer(r'ductstream_requests_total\{api="(\w+)",error="(\w+)"\} (\d+)', text):
        out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def go_driver(name: str, *args: str) -> dict:
    binary = helpers.COMPAT_BIN / name
    assert binary.exists(), f"{binary} missing: run compat-tests/setup.sh"
    out = helpers.run([str(binary), *args], timeout=120, check=False)
    lines = [l for l in out.stdout.decode().splitlines() if l.startswith("{")]
    assert lines, f"{name} printed nothing\nstderr:\n{out.stderr.decode()[-3000:]}"
    return json.loads(lines[-1])


@pytest.mark.parametrize("protocol,mechanism,handshake", [
    ("SASL_SSL", "PLAIN", "0"), ("SASL_PLAINTEXT", "PLAIN", "1"), ("SASL_SSL", "SCRAM-SHA-256", "1"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512", "1"), ("SSL", "", "1")])
def test_sarama(secure_broker, certs, topic, protocol, mechanism, handshake):
    ca = str(certs.ca) if "SSL" in protocol else ""
    result = go_driver("sarama-secure-compat", secure_broker.listeners[protocol], topic, ca, mechanism, USER, PASSWORD, handshake)
    assert result.get("values") == [f"v{i}" for i in range(5)], result
    if mechanism:
        assert result["wrongPassword"] != "connected", result


@pytest.mark.parametrize("protocol,mechanism", [
    ("SASL_SSL", "SCRAM-SHA-512"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SASL_SSL", "PLAIN"), ("SSL", "")])
def test_franz_go(secure_broker, certs, topic, protocol, mechanism):
    ca = str(certs.ca) if "SSL" in protocol else ""
    result = go_driver("franz-go-secure-compat", secure_broker.listeners[protocol], topic, ca, mechanism, USER, PASSWORD)
    assert result.get("values") == [f"v{i}" for i in range(5)], result
    if mechanism:
        assert "SASL_AUTHENTICATION_FAILED" in result["wrongPassword"] or "Authentication failed" in result["wrongPassword"], result


def kafka_tool(main_class: str, *args: str, input: str | None = None) -> list[str]:
    import sys
    sys.path.insert(0, str(HERE / "kafka"))
    try:
        import reference_kafka as ref
    finally:
        sys.path.remove(str(HERE / "kafka"))
    p = ref.run_tool(main_class, *args, input=input)
    assert p.returncode == 0, f"{main_class} {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr[-4000:]}"
    return [line.rstrip() for line in p.stdout.splitlines()]


def test_kafka_configs_manages_users_and_the_java_client_logs_in(secure_broker, reference_kafka, certs, topic, tmp_path):
    """kafka-configs.sh adds SCRAM users (AlterUserScramCredentials) on DuctStream as on Apache
    Kafka, and both describe them alike; the Java client (console producer and consumer) logs
    in with SCRAM-SHA-512 over SASL_SSL. (The description is read with confluent-kafka's admin;
    test_quotas.py reads kafka-configs' own.)"""
    configs = "kafka.admin.ConfigCommand"
    user = f"dave-{topic[-8:]}"
    described = {}
    for name, bootstrap in (("ductstream", secure_broker.listeners["PLAINTEXT"]), ("kafka", reference_kafka.bootstrap)):
        # One mechanism per request: Apache Kafka 4.1 (KRaft) refuses two alterations of one user in
        # a request with DUPLICATE_RESOURCE; DuctStream refuses only the same user and mechanism
        # twice, as KIP-554 describes.
        for mechanism in ("SCRAM-SHA-256=[iterations=8192,password=dave-secret]", "SCRAM-SHA-512=[password=dave-secret]"):
            kafka_tool(configs, "--bootstrap-server", bootstrap, "--alter", "--entity-type", "users", "--entity-name", user,
                       "--add-config", mechanism)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        description = admin.describe_user_scram_credentials([user])[user].result(timeout=30)
        described[name] = sorted((str(i.mechanism), i.iterations) for i in description.scram_credential_infos)
    assert described["ductstream"] == described["kafka"], described
    assert ("ScramMechanism.SCRAM_SHA_256", 8192) in described["ductstream"], described

    java_round_trip(secure_broker, certs, topic, tmp_path, "SASL_SSL", "SCRAM-SHA-512", user, "dave-secret")


@pytest.mark.parametrize("protocol,mechanism", [("SSL", None), ("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SASL_SSL", "PLAIN")])
def test_the_java_client(secure_broker, certs, topic, tmp_path, protocol, mechanism):
    java_round_trip(secure_broker, certs, topic, tmp_path, protocol, mechanism, USER, PASSWORD)


def java_round_trip(b, certs, topic, tmp_path, protocol, mechanism, user, password):
    """The Java client (console producer and consumer) writes three records and reads them back."""
    module = {"PLAIN": "plain.PlainLoginModule", "SCRAM-SHA-256": "scram.ScramLoginModule",
              "SCRAM-SHA-512": "scram.ScramLoginModule"}
    lines = [f"security.protocol={protocol}"]
    if mechanism:
        lines += [f"sasl.mechanism={mechanism}",
                  f"sasl.jaas.config=org.apache.kafka.common.security.{module[mechanism]} required "
                  f'username="{user}" password="{password}";']
    if "SSL" in protocol:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={certs.ca}"]
    client = tmp_path / "client.properties"
    client.write_text("\n".join(lines) + "\n")
    bootstrap = b.listeners[protocol]
    kafka_tool("org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", bootstrap, "--topic", topic,
               "--producer.config", str(client), input="one\ntwo\nthree\n")
    out = kafka_tool("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap, "--topic", topic,
                     "--from-beginning", "--max-messages", "3", "--timeout-ms", "30000", "--consumer.config", str(client))
    assert out == ["one", "two", "three"]


def test_connections_past_the_per_address_limit_are_closed(broker_factory):
    b = broker_factory("--max-connections-per-ip", "3")
    host, port = b.bootstrap.rsplit(":", 1)

    def api_versions_answered(sock: socket.socket) -> bool:
        try:
            sock.sendall(kafka_frame(18, 0))
            return read_frame(sock) is not None
        except (ConnectionResetError, BrokenPipeError):
            return False

    held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
    assert all(api_versions_answered(s) for s in held)
    with socket.create_connection((host, int(port)), timeout=10) as fourth:
        assert not api_versions_answered(fourth)
    held.pop().close()
    # The freed place is taken again (the broker notices the close shortly after).
    def one_more():
        with socket.create_connection((host, int(port)), timeout=10) as s:
            return api_versions_answered(s)
    helpers.wait_until(one_more, timeout=15, what="a connection in the freed place")
    assert helpers_metrics(b)["ductstream_connections_refused_total"] >= 1
    for s in held:
        s.close()
