"""Certificates made with `openssl` for the TLS tests, and client settings for each security
protocol in the spelling of each client library."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "alice", "alice-secret"


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    # A client certificate from a CA the broker does not trust.
    rogue_cert: Path
    rogue_key: Path
    base: Path


def _openssl(*args: str, cwd: Path):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(base: Path, name: str, subject: str, ca: str, ca_key: str, ext: str | None = None):
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj", subject,
             "-out", f"{name}.csr", cwd=base)
    args = ["x509", "-req", "-in", f"{name}.csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "30", "-out", f"{name}.crt"]
    if ext:
        (base / f"{name}.ext").write_text(ext)
        args += ["-extfile", f"{name}.ext"]
    _openssl(*args, cwd=base)


def make_certs(base: Path, server_name: str = "server") -> Certs:
    """A CA, a server certificate for 127.0.0.1 and localhost, a client certificate it signs,
    and a client certificate of another CA."""
    base.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                 "-days", "30", "-subj", f"/CN=DuctStream test {ca}", cwd=base)
    _signed(base, server_name, "/CN=localhost", "ca.crt", "ca.key",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _signed(base, "client", "/C=US/O=DuctStream Tests/OU=compat/CN=alice-client", "ca.crt", "ca.key",
            "extendedKeyUsage=clientAuth\n")
    _signed(base, "rogue", "/CN=mallory", "rogue-ca.crt", "rogue-ca.key", "extendedKeyUsage=clientAuth\n")
    return Certs(base / "ca.crt", base / f"{server_name}.crt", base / f"{server_name}.key",
                 base / "client.crt", base / "client.key", base / "rogue.crt", base / "rogue.key", base)


def broker_args(certs: Certs, client_auth: str = "requested") -> list[str]:
    return [
        "--listeners",
        "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        "--ssl-certificate", str(certs.server_cert),
        "--ssl-key", str(certs.server_key),
        "--ssl-client-ca", str(certs.ca),
        "--ssl-client-auth", client_auth,
        "--ssl-reload-interval-ms", "200",
    ]


def librdkafka(protocol: str, certs: Certs, mechanism: str = "SCRAM-SHA-256", user: str = USER,
               password: str = PASSWORD, client_cert: bool = False) -> dict[str, str]:
    """confluent-kafka / kcat (-X) settings."""
    conf = {"security.protocol": protocol.lower()}
    if "SSL" in protocol:
        conf["ssl.ca.location"] = str(certs.ca)
        if client_cert:
            conf["ssl.certificate.location"] = str(certs.client_cert)
            conf["ssl.key.location"] = str(certs.client_key)
    if "SASL" in protocol:
        conf.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
    return conf
