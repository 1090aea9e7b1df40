"""kafkajs 2.2.4 consumer groups (node/kafkajs_group.js, run once per module):
two consumers share a 4-partition topic, consume everything and auto-commit;
admin describeGroups / listGroups / fetchOffsets / deleteGroups; a new member
resumes at the committed offsets.  kafkajs has no KIP-848 support."""

from __future__ import annotations

import json
import shutil

import pytest

import helpers
from helpers import HERE, run

SCRIPT = HERE / "node" / "kafkajs_group.js"


@pytest.fixture(scope="module")
def js(module_group_broker):
    node = shutil.which("node")
    assert node, "node not installed (run compat-tests/setup.sh)"
    topic = helpers.unique_topic("kafkajs-group")
    group = f"g-{topic}"
    proc = run([node, str(SCRIPT), module_group_broker.bootstrap, topic, group], timeout=200, check=False)
    lines = [l for l in proc.stdout.decode().splitlines() if l.startswith("{")]
    assert proc.returncode == 0 and lines, (
        f"kafkajs group driver failed rc={proc.returncode}\nstdout:\n{proc.stdout.decode()}\n"
        f"stderr:\n{proc.stderr.decode()}")
    return topic, group, json.loads(lines[-1])


def ok(out, name):
    s = out["steps"].get(name)
    assert "fatal" not in out["steps"], out["steps"]["fatal"]
    assert s is not None, f"step {name} did not run: {sorted(out['steps'])}"
    assert s["ok"], f"kafkajs step {name} failed: {json.dumps(s['error'])}"
    return s.get("value")


def test_kafkajs_group_two_members_share_and_consume(js):
    topic, group, out = js
    shared = ok(out, "shared_assignment")
    p0, p1 = shared["c0"]["partitions"], shared["c1"]["partitions"]
    assert sorted(p0 + p1) == [0, 1, 2, 3] and p0 and p1, shared
    ok(out, "produce")
    ok(out, "consume_all")
    first = [m for m in out["consumed"] if not m["value"].endswith("|more")]
    by = {}
    for m in first:
        by.setdefault(m["partition"], {})[m["offset"]] = m["value"]
    assert by == {p: {i: f"{topic}|{p}|{i}" for i in range(10)} for p in range(4)}
    for m in first:
        owner = "c0" if m["partition"] in p0 else "c1"
        assert m["consumer"] == owner, (m, shared)


def test_kafkajs_group_commits_and_admin(js):
    topic, group, out = js
    ok(out, "committed")
    [g] = ok(out, "describe_groups")
    assert (g["groupId"], g["state"], g["protocolType"], g["errorCode"]) == (group, "Stable", "consumer", 0), g
    assert g["protocol"] == "RoundRobinAssigner", g  # kafkajs' default assigner
    assert sorted(p for m in g["members"] for p in m["partitions"]) == [0, 1, 2, 3], g
    assert {m["memberId"] for m in g["members"]} == {
        ok(out, "shared_assignment")[n]["memberId"] for n in ("c0", "c1")}
    assert {"groupId": group, "protocolType": "consumer"} in ok(out, "list_groups")
    [t] = ok(out, "fetch_offsets")
    assert t["topic"] == topic
    assert [(p["partition"], p["offset"]) for p in t["partitions"]] == [(p, "10") for p in range(4)]
    s = out["steps"]["delete_active_group"]
    assert not s["ok"] and s["error"]["groups"] == [
        {"groupId": group, "errorCode": 68, "type": "NON_EMPTY_GROUP"}], s


def test_kafkajs_group_resume_after_restart_and_delete(js):
    topic, group, out = js
    ok(out, "stop_consumers")
    [d] = ok(out, "describe_after_stop")
    assert d == {"state": "Empty", "members": 0}, d
    ok(out, "produce_more")
    resumed = ok(out, "resume")
    assert sorted((m["partition"], m["offset"], m["value"]) for m in resumed) == \
        [(p, 10, f"{topic}|{p}|more") for p in range(4)]
    ok(out, "delete_group")
    assert group not in [g["groupId"] for g in ok(out, "list_groups_after_delete")]
