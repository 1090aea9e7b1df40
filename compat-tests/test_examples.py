"""Every program in examples/ run against the real broker, as its doc comment says to run it
(`cargo build --workspace --all-targets` builds them beside the broker binary)."""

from __future__ import annotations

import subprocess

import pytest

from conftest import broker_binary

EXAMPLES = broker_binary().parent / "examples"


def example(name: str) -> str:
    path = EXAMPLES / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build with `cargo build --workspace --all-targets`", pytrace=False)
    return str(path)


def test_produce_consume(broker, topic):
    run = subprocess.run([example("produce_consume"), "--bootstrap", broker.bootstrap, "--topic", topic, "--count", "3"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"created topic {topic}"
    assert lines[1:4] == [f"produced order-{i} at partition 0 offset {i}" for i in range(3)]
    assert lines[4:] == [
        f'consumed offset {i} key order-{i} value {{"order":{i},"total":{i * 10}}} header source=example' for i in range(3)
    ]
