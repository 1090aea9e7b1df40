"""SASL/OAUTHBEARER and bearer tokens on the gRPC API: JWTs made here (RS256, signed with
`openssl`) and checked by the broker against the identity provider's JWKS endpoint (HTTPS,
served here), a JWKS file or a PEM key. librdkafka (confluent-kafka), kafka-python, aiokafka,
kafkajs, sarama, franz-go and the Java client (its file token retriever) log in with them; the subject is the principal the ACLs decide by; expired, foreign,
unsigned and wrong-issuer tokens are refused with the reason; rotated keys (a rewritten file,
a new key at the endpoint) are used without a restart; an endpoint that is down keeps the
keys already fetched."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic, ResourcePatternType,
                                   ResourceType)

import helpers
from conftest import HERE
from security_support import make_certs
from sink_support import admin_binary
from test_security import go_driver, kafka_tool

ISSUER = "https://idp.example.test"
AUDIENCE = "ductstream"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdentityProvider:
    """An RSA key pair and the tokens it signs, as an identity provider would."""

    def __init__(self, base: Path, kid: str):
        base.mkdir(parents=True, exist_ok=True)
        self.kid, self.key = kid, base / f"{kid}.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(self.key)],
                       check=True, capture_output=True)
        modulus = subprocess.run(["openssl", "rsa", "-in", str(self.key), "-noout", "-modulus"],
                                 check=True, capture_output=True, text=True).stdout.strip().split("=", 1)[1]
        self.public_pem = base / f"{kid}.pub.pem"
        subprocess.run(["openssl", "rsa", "-in", str(self.key), "-pubout", "-out", str(self.public_pem)], check=True, capture_output=True)
        self.jwk = {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64url(bytes.fromhex(modulus)), "e": "AQAB"}

    def token(self, sub: str, expires_in: int = 600, iss: str = ISSUER, aud: str = AUDIENCE, alg: str = "RS256") -> str:
        now = int(time.time())
        header = {"alg": alg, "typ": "JWT", "kid": self.kid}
        claims = {"sub": sub, "iss": iss, "aud": aud, "iat": now, "exp": now + expires_in}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        if alg == "none":
            return signing_input + "."
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing_input.encode(),
                                   check=True, capture_output=True).stdout
        return f"{signing_input}.{b64url(signature)}"


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    return IdentityProvider(tmp_path_factory.mktemp("idp"), "key-1")


@pytest.fixture
def jwks(tmp_path, idp) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [idp.jwk]}))
    return path


@pytest.fixture
def oauth_broker(broker_factory, jwks):
    # PLAINTEXT on loopback is the administrators' (ANONYMOUS is a super user); clients log in
    # with tokens on SASL_PLAINTEXT.
    b = broker_factory("--listeners", "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                       "--sasl-enabled-mechanisms", "OAUTHBEARER,SCRAM-SHA-256",
                       "--sasl-oauthbearer-jwks-file", str(jwks), "--sasl-oauthbearer-expected-issuer", ISSUER,
                       "--sasl-oauthbearer-expected-audience", AUDIENCE,
                       "--authorizer", "acl", "--super-users", "User:ANONYMOUS")
    admin = AdminClient({"bootstrap.servers": b.listeners["PLAINTEXT"]})
    # The token's subject may write and read the topic, not create it.
    for future in admin.create_topics([NewTopic("orders", 1, 1)]).values():
        future.result(timeout=30)
    acls = [AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:svc-orders", "*", op, AclPermissionType.ALLOW)
            for op in (AclOperation.WRITE, AclOperation.READ)]
    acls.append(AclBinding(ResourceType.GROUP, "orders-", ResourcePatternType.PREFIXED, "User:svc-orders", "*",
                           AclOperation.READ, AclPermissionType.ALLOW))
    for future in admin.create_acls(acls).values():
        future.result(timeout=30)
    return b


def librdkafka_conf(b, token: str, expires_in: int = 600) -> dict:
    return {"bootstrap.servers": b.listeners["SASL_PLAINTEXT"], "security.protocol": "sasl_plaintext",
            "sasl.mechanisms": "OAUTHBEARER",
            # librdkafka takes the token's lifetime from here; the broker reads the JWT's own.
            "oauth_cb": lambda _config: (token, time.time() + expires_in)}


def produce(conf: dict, topic: str, n: int = 5, patience_ms: int = 10000) -> list:
    """Produces n records; returns the delivery and client errors."""
    errors = []
    producer = Producer({**conf, "error_cb": errors.append, "message.timeout.ms": patience_ms})
    delivered = []
    for i in range(n):
        producer.produce(topic, f"v{i}".encode(), on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(15)
    return [e for e in delivered if e is not None] + errors


def test_librdkafka_produces_and_consumes_as_the_token_subject(oauth_broker, idp):
    conf = librdkafka_conf(oauth_broker, idp.token("svc-orders"))
    assert produce(conf, "orders") == []
    consumer = Consumer({**conf, "group.id": "orders-readers", "auto.offset.reset": "earliest"})
    consumer.subscribe(["orders"])
    got, deadline = [], time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        m = consumer.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    consumer.close()
    assert sorted(got) == [f"v{i}".encode() for i in range(5)]
    # Another subject has no ACL on the topic: its token logs in, its writes are refused.
    refused = produce(librdkafka_conf(oauth_broker, idp.token("svc-billing")), "orders", n=1)
    assert refused and refused[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused


@pytest.mark.parametrize("case, why", [
    ("expired", "token expired"),
    ("issuer", "unexpected issuer"),
    ("audience", "unexpected audience"),
    ("foreign", "signature does not verify"),
    ("unsigned", "not accepted"),
])
def test_bad_tokens_are_refused_with_the_reason(oauth_broker, idp, tmp_path, case, why):
    token = {
        "expired": lambda: idp.token("svc-orders", expires_in=-600),
        "issuer": lambda: idp.token("svc-orders", iss="https://evil.example.test"),
        "audience": lambda: idp.token("svc-orders", aud="someone-else"),
        # Signed by a key of the same id the broker does not have.
        "foreign": lambda: IdentityProvider(tmp_path / "other", idp.kid).token("svc-orders"),
        "unsigned": lambda: idp.token("svc-orders", alg="none"),
    }[case]()
    # The refusal comes at once; the record's timeout only ends the wait.
    errors = produce(librdkafka_conf(oauth_broker, token), "orders", n=1, patience_ms=2000)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth and why in auth[0].str(), errors


def test_kafka_python_and_aiokafka_log_in_with_a_token_provider(oauth_broker, idp):
    from kafka import KafkaProducer
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class Tokens(AbstractTokenProvider):
        def token(self):
            return idp.token("svc-orders")

    producer = KafkaProducer(bootstrap_servers=oauth_broker.listeners["SASL_PLAINTEXT"], security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Tokens())
    producer.send("orders", b"from-kafka-python").get(timeout=30)
    producer.close()

    from aiokafka import AIOKafkaProducer
    from aiokafka.abc import AbstractTokenProvider as AioTokenProvider

    class AioTokens(AioTokenProvider):
        async def token(self):
            return idp.token("svc-orders")

    async def send():
        p = AIOKafkaProducer(bootstrap_servers=oauth_broker.listeners["SASL_PLAINTEXT"], security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=AioTokens())
        await p.start()
        try:
            await p.send_and_wait("orders", b"from-aiokafka")
        finally:
            await p.stop()

    asyncio.run(send())


def test_a_rotated_jwks_is_used_without_a_restart(oauth_broker, jwks, tmp_path, idp):
    rotated = IdentityProvider(tmp_path / "rotated", "key-2")
    token = rotated.token("svc-orders")
    assert produce(librdkafka_conf(oauth_broker, token), "orders", n=1, patience_ms=2000)
    jwks.write_text(json.dumps({"keys": [idp.jwk, rotated.jwk]}))
    assert produce(librdkafka_conf(oauth_broker, token), "orders", n=1) == []


def test_the_grpc_api_takes_the_same_tokens(oauth_broker, idp):
    def admin(*args, token):
        p = subprocess.run([str(admin_binary(oauth_broker)), "--server", f"http://{oauth_broker.grpc}", "--json",
                            "--token", token, *args], capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    code, out, err = admin("user", "whoami", token=idp.token("svc-orders"))
    assert code == 0, err
    assert json.loads(out) == {"principal": "User:svc-orders", "authenticated_by": "bearer"}
    code, _, err = admin("user", "whoami", token=idp.token("svc-orders", expires_in=-600))
    assert code != 0 and "Unauthenticated" in err and "token expired" in err, err
    # The token's subject is held to the ACLs: no cluster rights, no users.
    code, _, err = admin("user", "list", token=idp.token("svc-orders"))
    assert code != 0 and "PermissionDenied" in err, err


def test_a_pem_public_key_serves_as_well(broker_factory, idp):
    b = broker_factory("--listeners", "SASL_PLAINTEXT://127.0.0.1:0", "--sasl-enabled-mechanisms", "OAUTHBEARER",
                       "--sasl-oauthbearer-public-key-file", str(idp.public_pem))
    assert produce(librdkafka_conf(b, idp.token("anyone")), "pem-topic") == []


def test_oauthbearer_without_keys_does_not_start(broker_factory):
    with pytest.raises(pytest.fail.Exception) as failed:
        broker_factory("--listeners", "SASL_PLAINTEXT://127.0.0.1:0", "--sasl-enabled-mechanisms", "OAUTHBEARER")
    assert "OAUTHBEARER needs one of --sasl-oauthbearer-jwks-endpoint-url" in str(failed.value), failed.value


class JwksEndpoint:
    """The identity provider's JWKS endpoint over HTTPS; counts its requests, and can go down."""

    def __init__(self, certs, keys: list[dict]):
        self.keys, self.requests, self.down = keys, 0, False
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                endpoint.requests += 1
                if endpoint.down:
                    self.send_error(503)
                    return
                body = json.dumps({"keys": endpoint.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs.server_cert, certs.server_key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_keys_come_from_the_jwks_endpoint_and_rotate_there(broker_factory, idp, tmp_path):
    certs = make_certs(tmp_path / "certs")
    endpoint = JwksEndpoint(certs, [idp.jwk])
    try:
        b = broker_factory("--listeners", "SASL_PLAINTEXT://127.0.0.1:0", "--sasl-enabled-mechanisms", "OAUTHBEARER",
                           "--sasl-oauthbearer-jwks-endpoint-url", endpoint.url,
                           "--sasl-oauthbearer-jwks-endpoint-ca-file", str(certs.ca),
                           "--sasl-oauthbearer-expected-issuer", ISSUER, "--sasl-oauthbearer-expected-audience", AUDIENCE)
        assert produce(librdkafka_conf(b, idp.token("svc-orders")), "endpoint-topic") == []
        fetched = endpoint.requests
        assert fetched >= 1

        # The provider rotates: a token naming the new key makes the broker fetch again (at
        # most every 10 s, so this may wait for that).
        rotated = IdentityProvider(tmp_path / "rotated", "key-2")
        endpoint.keys = [idp.jwk, rotated.jwk]
        deadline = time.monotonic() + 30
        while produce(librdkafka_conf(b, rotated.token("svc-orders")), "endpoint-topic", n=1, patience_ms=3000):
            assert time.monotonic() < deadline, "the rotated key was never fetched"
        assert endpoint.requests > fetched

        # The endpoint goes down: the keys already fetched still serve; an unknown key is refused.
        endpoint.down = True
        assert produce(librdkafka_conf(b, idp.token("svc-orders")), "endpoint-topic", n=1) == []
        stranger = IdentityProvider(tmp_path / "stranger", "key-3")
        errors = produce(librdkafka_conf(b, stranger.token("svc-orders")), "endpoint-topic", n=1, patience_ms=2000)
        assert any("no key \"key-3\"" in str(e) for e in errors), errors
    finally:
        endpoint.close()


@pytest.fixture
def open_oauth_broker(broker_factory, jwks):
    """Tokens on SASL_PLAINTEXT, no authorizer: the clients' own topics and groups."""
    return broker_factory("--listeners", "SASL_PLAINTEXT://127.0.0.1:0", "--sasl-enabled-mechanisms", "OAUTHBEARER",
                          "--sasl-oauthbearer-jwks-file", str(jwks), "--sasl-oauthbearer-expected-issuer", ISSUER,
                          "--sasl-oauthbearer-expected-audience", AUDIENCE)


@pytest.mark.parametrize("client", ["kafkajs", "sarama", "franz-go"])
def test_kafkajs_sarama_and_franz_go_log_in_with_a_token(open_oauth_broker, idp, topic, client):
    bootstrap, token = open_oauth_broker.listeners["SASL_PLAINTEXT"], idp.token("svc-orders")
    # Each produces five records, reads them back, then tries again with a token that is no JWT.
    if client == "kafkajs":
        out = helpers.run(["node", str(HERE / "node" / "kafkajs_secure.js"), bootstrap, topic, "", "oauthbearer", "", token],
                          timeout=120)
        result = json.loads(out.stdout.decode().strip().splitlines()[-1])
    elif client == "sarama":
        result = go_driver("sarama-secure-compat", bootstrap, topic, "", "OAUTHBEARER", "", token, "1")
    else:
        result = go_driver("franz-go-secure-compat", bootstrap, topic, "", "OAUTHBEARER", "", token)
    assert result.get("values") == [f"v{i}" for i in range(5)], result
    assert result["wrongPassword"] != "connected", result
    if client != "sarama":  # sarama reports only that the connection failed
        assert "not a JWT" in result["wrongPassword"] or "Authentication failed" in result["wrongPassword"], result


def test_the_java_client_logs_in_with_a_token_from_a_file(open_oauth_broker, idp, topic, tmp_path, monkeypatch):
    token = tmp_path / "token.jwt"
    token.write_text(idp.token("svc-orders"))
    # Kafka's clients read a token endpoint only from URLs they are told to trust.
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={token.as_uri()}")
    client = tmp_path / "client.properties"
    client.write_text(
        "security.protocol=SASL_PLAINTEXT\n"
        "sasl.mechanism=OAUTHBEARER\n"
        "sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n"
        f"sasl.oauthbearer.token.endpoint.url={token.as_uri()}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;\n")
    bootstrap = open_oauth_broker.listeners["SASL_PLAINTEXT"]
    kafka_tool("org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", bootstrap, "--topic", topic,
               "--producer.config", str(client), input="one\ntwo\nthree\n")
    out = kafka_tool("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap, "--topic", topic,
                     "--from-beginning", "--max-messages", "3", "--timeout-ms", "30000", "--consumer.config", str(client))
    assert out == ["one", "two", "three"]
