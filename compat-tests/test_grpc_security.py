"""The gRPC API and ductstream-admin with security on: TLS (`--grpc-tls`), callers known by
a client certificate or a SCRAM user's name and password, and the ACL authorizer deciding
each call, with flows and sinks as resources. The first user is made by a certificate super
user through the CLI, then logs in to Kafka with SCRAM: one user store for both."""

from __future__ import annotations

import json
import subprocess

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, AdminClient, ResourcePatternType, ResourceType

from security_support import make_certs
from sink_support import admin_binary
from test_grpcurl import GRPCURL

CERT_SUPER_USER = "User:CN=alice-client,OU=compat,O=DuctStream Tests,C=US"
ADMIN, ALICE = ("admin", "admin-secret"), ("alice", "alice-secret")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("grpc-certs"))


@pytest.fixture
def secured(broker_factory, certs):
    return broker_factory(
        "--listeners", "SASL_PLAINTEXT://127.0.0.1:0",
        "--grpc-tls", "--ssl-certificate", str(certs.server_cert), "--ssl-key", str(certs.server_key),
        "--ssl-client-ca", str(certs.ca), "--ssl-client-auth", "requested",
        "--authorizer", "acl", "--super-users", f"User:admin;{CERT_SUPER_USER}")


def cli(b, certs, *args, login=None, cert=False, server=None):
    """ductstream-admin against the TLS API; returns (exit code, stdout, stderr)."""
    cmd = [str(admin_binary(b)), "--server", server or f"https://{b.grpc}", "--ca-cert", str(certs.ca), "--json"]
    if login:
        cmd += ["--user", login[0], "--password", login[1]]
    if cert:
        cmd += ["--cert", str(certs.client_cert), "--key", str(certs.client_key)]
    p = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def ok(result) -> str:
    code, out, err = result
    assert code == 0, err
    return out


def denied(result, status: str = "PermissionDenied"):
    code, _, err = result
    assert code != 0 and status in err, err


def with_users(b, certs):
    """The certificate super user makes admin; admin makes alice."""
    ok(cli(b, certs, "user", "set", "admin", "--new-password", ADMIN[1], cert=True))
    ok(cli(b, certs, "user", "set", "alice", "--new-password", ALICE[1], "--mechanism", "SCRAM-SHA-256", login=ADMIN))


def test_tls_is_required_and_reflection_works_over_it(secured, certs):
    listed = subprocess.run([str(GRPCURL), "-cacert", str(certs.ca), secured.grpc, "list"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "ductstream.v1.UserService" in listed.stdout and "ductstream.v1.AclService" in listed.stdout
    plaintext = subprocess.run([str(GRPCURL), "-plaintext", secured.grpc, "list"], capture_output=True, text=True, timeout=60)
    assert plaintext.returncode != 0
    # A client that does not trust the broker's CA gives up.
    untrusted = subprocess.run([str(GRPCURL), secured.grpc, "list"], capture_output=True, text=True, timeout=60)
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr.lower(), untrusted.stderr
    code, _, err = cli(secured, certs, "sink", "list", server=f"http://{secured.grpc}")
    assert code != 0, err


def test_a_certificate_super_user_makes_the_first_user_who_then_logs_in_to_kafka(secured, certs):
    me = json.loads(ok(cli(secured, certs, "user", "whoami", cert=True)))
    assert me == {"principal": CERT_SUPER_USER, "authenticated_by": "certificate"}
    with_users(secured, certs)
    me = json.loads(ok(cli(secured, certs, "user", "whoami", login=ALICE, cert=True)))
    # A user and password win over the certificate, as SASL does over TLS.
    assert me == {"principal": "User:alice", "authenticated_by": "basic"}
    users = {u["name"]: u for u in json.loads(ok(cli(secured, certs, "user", "list", login=ADMIN)))}
    assert users["admin"]["credentials"] == [{"mechanism": "SCRAM-SHA-512", "iterations": 4096}]
    assert users["alice"]["credentials"] == [{"mechanism": "SCRAM-SHA-256", "iterations": 4096}]
    # The user made over gRPC logs in to the Kafka listener.
    produce_as_admin(secured, "made-by-cli-user")
    # Deleting the credential ends the Kafka logins too.
    ok(cli(secured, certs, "user", "delete", "alice", login=ADMIN))
    denied(cli(secured, certs, "user", "delete", "alice", login=ADMIN), "no such credential")


def kafka_as_admin(b) -> dict[str, str]:
    return {"bootstrap.servers": b.listeners["SASL_PLAINTEXT"], "security.protocol": "sasl_plaintext",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": ADMIN[0], "sasl.password": ADMIN[1]}


def produce_as_admin(b, topic: str):
    producer = Producer(kafka_as_admin(b))
    producer.produce(topic, b"v")
    assert producer.flush(30) == 0


def test_wrong_credentials_are_refused_and_anonymous_may_do_nothing(secured, certs):
    with_users(secured, certs)
    denied(cli(secured, certs, "sink", "list", login=("alice", "wrong")), "Unauthenticated")
    denied(cli(secured, certs, "sink", "list", login=("nobody", "x")), "Unauthenticated")
    # Anonymous: lists show nothing, changes and user management are refused.
    assert json.loads(ok(cli(secured, certs, "user", "whoami")))["principal"] == "User:ANONYMOUS"
    denied(cli(secured, certs, "user", "list"))
    denied(cli(secured, certs, "user", "set", "eve", "--new-password", "x"))
    denied(cli(secured, certs, "acl", "list"))
    denied(cli(secured, certs, "stream", "pull", "--stream", "orders", "--group", "g"))


def sink_file(tmp_path, sink_id: str, topic: str):
    path = tmp_path / f"{sink_id}.json"
    path.write_text(json.dumps({"id": sink_id, "topics": [topic], "destination": {
        "name": "h", "type": "http", "options": {"url": "http://127.0.0.1:9/x"}}}))
    return str(path)


def test_flows_sinks_and_durable_consumers_follow_acls(secured, certs, tmp_path):
    with_users(secured, certs)
    produce_as_admin(secured, "orders")
    for sink_id in ("team-a-1", "team-b-1"):
        ok(cli(secured, certs, "sink", "create", "-f", sink_file(tmp_path, sink_id, "orders"), "--paused", login=ADMIN))
    assert json.loads(ok(cli(secured, certs, "sink", "list", login=ALICE))) == []

    ok(cli(secured, certs, "acl", "add", "--resource-type", "sink", "--resource-name", "team-a-", "--pattern-type", "prefixed",
           "--principal", "User:alice", "--operation", "describe", login=ADMIN))
    listed = json.loads(ok(cli(secured, certs, "sink", "list", login=ALICE)))
    assert [s["id"] for s in listed] == ["team-a-1"]
    denied(cli(secured, certs, "sink", "get", "team-b-1", login=ALICE))
    denied(cli(secured, certs, "sink", "start", "team-a-1", login=ALICE))

    # Creating a sink needs CREATE on it and READ on the topics it would read.
    new_sink = sink_file(tmp_path, "team-a-2", "orders")
    denied(cli(secured, certs, "sink", "create", "-f", new_sink, "--paused", login=ALICE))
    ok(cli(secured, certs, "acl", "add", "--resource-type", "sink", "--resource-name", "team-a-", "--pattern-type", "prefixed",
           "--principal", "User:alice", "--operation", "all", login=ADMIN))
    code, _, err = cli(secured, certs, "sink", "create", "-f", new_sink, "--paused", login=ALICE)
    assert code != 0 and "may not read topic" in err, err
    ok(cli(secured, certs, "acl", "add", "--resource-type", "topic", "--resource-name", "orders",
           "--principal", "User:alice", "--operation", "read", login=ADMIN))
    ok(cli(secured, certs, "sink", "create", "-f", new_sink, "--paused", login=ALICE))
    ok(cli(secured, certs, "sink", "delete", "team-a-2", login=ALICE))

    # Flows need CREATE on the flow, refused before anything about the source is looked at...
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "Team A orders", "source": {
        "type": "postgres", "options": {"dsn": "postgres://u:p@127.0.0.1:9/db"}},
        "destinations": [{"name": "topics", "type": "topics", "options": {"topic_prefix": "team-a.orders"}}]}))
    denied(cli(secured, certs, "flow", "create", "-f", str(flow), login=ALICE))
    ok(cli(secured, certs, "acl", "add", "--resource-type", "flow", "--resource-name", "team-a-", "--pattern-type", "prefixed",
           "--principal", "User:alice", "--operation", "create", login=ADMIN))
    # ...and WRITE on every topic it may come to write (one per table, named by its prefix).
    code, _, err = cli(secured, certs, "flow", "create", "-f", str(flow), login=ALICE)
    assert code != 0 and "may not write every topic named \"team-a.orders.\"" in err, err
    ok(cli(secured, certs, "acl", "add", "--resource-type", "topic", "--resource-name", "team-a.", "--pattern-type", "prefixed",
           "--principal", "User:alice", "--operation", "write", login=ADMIN))
    code, _, err = cli(secured, certs, "flow", "create", "-f", str(flow), login=ALICE)
    assert "PermissionDenied" not in err, err
    assert code == 0 or "InvalidArgument" in err or "FailedPrecondition" in err, err

    # A durable consumer needs READ on its topic and its group.
    denied(cli(secured, certs, "stream", "pull", "--stream", "orders", "--group", "alice-reader", login=ALICE))
    ok(cli(secured, certs, "acl", "add", "--resource-type", "group", "--resource-name", "alice-reader",
           "--principal", "User:alice", "--operation", "read", login=ADMIN))
    ok(cli(secured, certs, "stream", "pull", "--stream", "orders", "--group", "alice-reader", login=ALICE))

    # The CLI shows every ACL; Kafka's DescribeAcls only the types Kafka knows.
    acls = json.loads(ok(cli(secured, certs, "acl", "list", login=ADMIN)))
    assert {a["resource_type"] for a in acls} == {"sink", "flow", "topic", "group"}
    kafka_admin = AdminClient(kafka_as_admin(secured))
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY)
    seen = kafka_admin.describe_acls(everything).result(timeout=30)
    assert sorted({b.restype.name for b in seen}) == ["GROUP", "TOPIC"]
    removed = json.loads(ok(cli(secured, certs, "acl", "remove", "--resource-type", "sink", login=ADMIN)))
    assert len(removed) == 2
    assert json.loads(ok(cli(secured, certs, "sink", "list", login=ALICE))) == []
