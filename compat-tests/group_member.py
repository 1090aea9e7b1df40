"""One consumer-group member in its own process, for tests that need to close
or kill -9 a member.  Run by groups.MemberProc as

    python group_member.py '{"client": "confluent"|"kafka-python", "bootstrap": ...,
                            "group": ..., "topics": [...], "conf": {...}, "name": ...}'

It prints one JSON line per event on stdout (flushed at once):

    {"ev": "started", "name": ..., "pid": ...}
    {"ev": "assigned", "parts": [[topic, partition], ...], "member_id": ...}
    {"ev": "revoked",  "parts": [...]}
    {"ev": "msg", "t": topic, "p": partition, "o": offset, "v": value (utf-8)}
    {"ev": "committed", "offsets": [[topic, partition, next_offset], ...]}
    {"ev": "error", "where": ..., "error": ...}
    {"ev": "closed"}

After every poll that returned records it commits them synchronously (the
offset after the last record of each partition); a failed commit is reported
and retried with the next poll.  Commands on stdin, one per line:
"close" (leave the group with close() and exit 0).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time


def out(**ev):
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def stdin_commands(flags: dict):
    for line in sys.stdin:
        cmd = line.strip()
        if cmd:
            flags[cmd] = True
    flags["close"] = True  # parent went away


def run_confluent(cfg, flags):
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": cfg["bootstrap"],
        "group.id": cfg["group"],
        "client.id": cfg.get("name", "member"),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    conf.update(cfg.get("conf", {}))
    c = Consumer(conf)

    def on_assign(consumer, parts):
        out(ev="assigned", parts=[[p.topic, p.partition] for p in parts],
            member_id=consumer.memberid())

    def on_revoke(consumer, parts):
        out(ev="revoked", parts=[[p.topic, p.partition] for p in parts])

    c.subscribe(cfg["topics"], on_assign=on_assign, on_revoke=on_revoke)
    pending = {}
    while not flags.get("close"):
        msgs = c.consume(num_messages=100, timeout=0.2)
        for m in msgs:
            if m.error():
                out(ev="error", where="consume", error=str(m.error()))
                continue
            out(ev="msg", t=m.topic(), p=m.partition(), o=m.offset(),
                v=m.value().decode("utf-8", "replace") if m.value() is not None else None)
            pending[(m.topic(), m.partition())] = m.offset() + 1
        if pending:
            offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(pending.items())]
            try:
                res = c.commit(offsets=offsets, asynchronous=False)
                bad = [str(r.error) for r in res or [] if r.error]
                if bad:
                    out(ev="error", where="commit", error=bad)
                else:
                    out(ev="committed", offsets=[[t, p, o] for (t, p), o in sorted(pending.items())])
                    pending.clear()
            except KafkaException as e:
                out(ev="error", where="commit", error=str(e))
                # keep only offsets of partitions we still own; retry next round
                owned = {(tp.topic, tp.partition) for tp in c.assignment()}
                pending = {k: v for k, v in pending.items() if k in owned}
    c.close()
    out(ev="closed")


def run_kafka_python(cfg, flags):
    from kafka import KafkaConsumer
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.structs import OffsetAndMetadata

    conf = dict(
        bootstrap_servers=cfg["bootstrap"],
        group_id=cfg["group"],
        client_id=cfg.get("name", "member"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        metadata_max_age_ms=2000,
    )
    conf.update(cfg.get("conf", {}))
    c = KafkaConsumer(**conf)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            out(ev="revoked", parts=sorted([tp.topic, tp.partition] for tp in revoked))

        def on_partitions_assigned(self, assigned):
            out(ev="assigned", parts=sorted([tp.topic, tp.partition] for tp in assigned),
                member_id=c.group_metadata().member_id)

    c.subscribe(cfg["topics"], listener=Listener())
    pending = {}
    while not flags.get("close"):
        batch = c.poll(timeout_ms=200)
        for tp, recs in batch.items():
            for r in recs:
                out(ev="msg", t=r.topic, p=r.partition, o=r.offset,
                    v=r.value.decode("utf-8", "replace") if r.value is not None else None)
                pending[tp] = r.offset + 1
        if pending:
            try:
                c.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in pending.items()})
                out(ev="committed", offsets=sorted([tp.topic, tp.partition, o] for tp, o in pending.items()))
                pending.clear()
            except Exception as e:  # noqa: BLE001 - reported to the test
                out(ev="error", where="commit", error=repr(e))
                owned = c.assignment()
                pending = {tp: o for tp, o in pending.items() if tp in owned}
    c.close()
    out(ev="closed")


def main():
    cfg = json.loads(sys.argv[1])
    flags: dict = {}
    threading.Thread(target=stdin_commands, args=(flags,), daemon=True).start()
    out(ev="started", name=cfg.get("name"), pid=os.getpid(), t=time.time())
    try:
        if cfg["client"] == "confluent":
            run_confluent(cfg, flags)
        elif cfg["client"] == "kafka-python":
            run_kafka_python(cfg, flags)
        else:
            raise SystemExit(f"unknown client {cfg['client']}")
    except Exception as e:  # noqa: BLE001
        out(ev="error", where="fatal", error=repr(e))
        raise


if __name__ == "__main__":
    main()
