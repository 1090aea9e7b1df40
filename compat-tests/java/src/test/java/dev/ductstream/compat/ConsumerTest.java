package dev.ductstream.compat;

import static dev.ductstream.compat.Compat.TIMEOUT_S;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ConsumerTest {

    static void produce(String topic, int partitions, int perPartition, String prefix) throws Exception {
        try (KafkaProducer<String, String> p = Compat.producer(Map.of())) {
            for (int i = 0; i < perPartition; i++) {
                for (int part = 0; part < partitions; part++) {
                    p.send(new ProducerRecord<>(topic, part, "k" + i, prefix + part + "-" + i));
                }
            }
            p.flush();
        }
    }

    /** Every record of partition 0 from its first offset to its end. */
    static List<ConsumerRecord<String, String>> readAll(String topic) {
        TopicPartition tp = new TopicPartition(topic, 0);
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = Compat.consumer(Map.of())) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = c.endOffsets(List.of(tp)).get(tp);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (c.position(tp) < end && System.nanoTime() < deadline) {
                c.poll(Compat.POLL).forEach(out::add);
            }
            assertEquals(end, c.position(tp), "read to the end");
        }
        return out;
    }

    /**
     * A compacted topic written by producers of every codec, read from offset 0 once the
     * broker's log cleaner went over it: each key once, with its latest value, at the offset it
     * was written to.
     */
    @Test
    void readsACompactedTopicFromTheStart() throws Exception {
        String topic = Compat.unique("compacted");
        try (var admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 1,
                    Map.of("cleanup.policy", "compact", "segment.ms", "100", "min.cleanable.dirty.ratio", "0.01"));
        }
        Map<String, String> expected = new HashMap<>();
        Map<Long, String> valueAt = new HashMap<>();
        int round = 0;
        for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
            try (KafkaProducer<String, String> p = Compat.producer(Map.of("compression.type", codec, "linger.ms", 20))) {
                for (int r = 0; r < 4; r++, round++) {
                    Map<String, java.util.concurrent.Future<org.apache.kafka.clients.producer.RecordMetadata>> sent = new HashMap<>();
                    for (int k = 0; k < 20; k++) {
                        if ((k * 7 + round) % 5 < 3) {
                            String value = codec + "-" + round;
                            sent.put(value + "/k" + k, p.send(new ProducerRecord<>(topic, 0, "k" + k, value)));
                            expected.put("k" + k, value);
                        }
                    }
                    p.flush();
                    for (var e : sent.entrySet()) {
                        valueAt.put(e.getValue().get().offset(), e.getKey().substring(0, e.getKey().indexOf('/')));
                    }
                }
            }
        }
        // The last write, alone in the active segment once the one before rolled.
        Thread.sleep(300);
        try (KafkaProducer<String, String> p = Compat.producer(Map.of())) {
            valueAt.put(p.send(new ProducerRecord<>(topic, 0, "end", "end")).get().offset(), "end");
        }
        expected.put("end", "end");
        Compat.waitUntil("the topic compacted", 90, () -> readAll(topic).size() == expected.size());
        List<ConsumerRecord<String, String>> got = readAll(topic);
        Map<String, String> latest = new HashMap<>();
        long previous = -1;
        for (ConsumerRecord<String, String> r : got) {
            assertTrue(r.offset() > previous, "offsets ascend");
            assertEquals(valueAt.get(r.offset()), r.value(), "the record at offset " + r.offset());
            previous = r.offset();
            latest.put(r.key(), r.value());
        }
        assertEquals(expected, latest);
    }

    @Test
    void assignSeekAndPositions() throws Exception {
        String topic = Compat.unique("seek");
        Compat.createTopic(topic, 1);
        produce(topic, 1, 10, "v");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Compat.consumer(Map.of())) {
            c.assign(List.of(tp));
            assertEquals(Map.of(tp, 0L), c.beginningOffsets(List.of(tp)));
            assertEquals(Map.of(tp, 10L), c.endOffsets(List.of(tp)));
            c.seek(tp, 5);
            List<ConsumerRecord<String, String>> got = Compat.pollN(c, 5);
            assertEquals(5, got.get(0).offset());
            assertEquals("v0-5", got.get(0).value());
            assertEquals(10, c.position(tp));

            c.seekToBeginning(List.of(tp));
            assertEquals(0, c.position(tp));
            got = Compat.pollN(c, 10);
            assertEquals(0, got.get(0).offset());

            c.seekToEnd(List.of(tp));
            assertEquals(10, c.position(tp));
            c.seek(tp, new OffsetAndMetadata(8));
            got = Compat.pollN(c, 2);
            assertEquals(8, got.get(0).offset());
        }
    }

    @Test
    void offsetsForTimes() throws Exception {
        String topic = Compat.unique("times");
        Compat.createTopic(topic, 1);
        long t0 = System.currentTimeMillis() - 60_000;
        try (KafkaProducer<String, String> p = Compat.producer(Map.of())) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, t0 + i * 1000L, "k" + i, "v" + i));
            }
            p.flush();
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Compat.consumer(Map.of())) {
            Map<TopicPartition, OffsetAndTimestamp> r = c.offsetsForTimes(Map.of(tp, t0 + 2500));
            assertNotNull(r.get(tp));
            assertEquals(3, r.get(tp).offset());
            assertEquals(t0 + 3000, r.get(tp).timestamp());
            r = c.offsetsForTimes(Map.of(tp, t0));
            assertEquals(0, r.get(tp).offset());
            r = c.offsetsForTimes(Map.of(tp, t0 + 9000));
            assertEquals(9, r.get(tp).offset());
            r = c.offsetsForTimes(Map.of(tp, t0 + 9001));
            assertNull(r.get(tp), "no record at or after the last timestamp");

            c.assign(List.of(tp));
            c.seek(tp, c.offsetsForTimes(Map.of(tp, t0 + 7000)).get(tp).offset());
            List<ConsumerRecord<String, String>> got = Compat.pollN(c, 3);
            assertEquals(t0 + 7000, got.get(0).timestamp());
        }
    }

    /**
     * subscribe() in a group of one, commitSync, then a second consumer of the same group
     * resumes from the commits. Once with the classic protocol, once with KIP-848's.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"classic", "consumer"})
    void subscribeCommitSyncResume(String protocol) throws Exception {
        String topic = Compat.unique("sub-" + protocol);
        String group = Compat.unique("g-" + protocol);
        int parts = 3;
        Compat.createTopic(topic, parts);
        produce(topic, parts, 10, "a");
        Map<String, Object> cfg = new HashMap<>();
        cfg.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cfg.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        if (protocol.equals("classic")) {
            cfg.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            cfg.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        }
        try (KafkaConsumer<String, String> c = Compat.consumer(cfg)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Compat.pollN(c, parts * 10);
            Set<String> values = new HashSet<>();
            got.forEach(r -> values.add(r.value()));
            assertEquals(parts * 10, values.size());
            assertEquals(parts, c.assignment().size());
            c.commitSync(Duration.ofSeconds(TIMEOUT_S));
            Map<TopicPartition, OffsetAndMetadata> committed =
                    c.committed(new HashSet<>(Compat.partitions(topic, parts)), Duration.ofSeconds(TIMEOUT_S));
            for (TopicPartition tp : Compat.partitions(topic, parts)) {
                assertEquals(10, committed.get(tp).offset(), "committed offset of " + tp);
            }
        }
        produce(topic, parts, 2, "b");
        try (KafkaConsumer<String, String> c = Compat.consumer(cfg)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Compat.pollN(c, parts * 2);
            for (ConsumerRecord<String, String> r : got) {
                assertTrue(r.value().startsWith("b"), "resumed at an old record: " + r);
                assertTrue(r.offset() >= 10);
            }
            assertTrue(Compat.pollFor(c, Duration.ofMillis(500)).isEmpty());
        }
    }

    /** commitAsync with explicit offsets and metadata; the callback sees them, committed() too. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"classic", "consumer"})
    void commitAsync(String protocol) throws Exception {
        String topic = Compat.unique("async-" + protocol);
        String group = Compat.unique("g-async-" + protocol);
        Compat.createTopic(topic, 2);
        produce(topic, 2, 5, "v");
        Map<String, Object> cfg = Map.of(
                ConsumerConfig.GROUP_ID_CONFIG, group,
                ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        try (KafkaConsumer<String, String> c = Compat.consumer(cfg)) {
            c.subscribe(List.of(topic));
            Compat.pollN(c, 10);
            TopicPartition p0 = new TopicPartition(topic, 0);
            TopicPartition p1 = new TopicPartition(topic, 1);
            Map<TopicPartition, OffsetAndMetadata> offsets = Map.of(
                    p0, new OffsetAndMetadata(3, "meta-0"),
                    p1, new OffsetAndMetadata(5, "meta-1"));
            CompletableFuture<Map<TopicPartition, OffsetAndMetadata>> done = new CompletableFuture<>();
            c.commitAsync(offsets, (o, e) -> {
                if (e != null) {
                    done.completeExceptionally(e);
                } else {
                    done.complete(o);
                }
            });
            // the callback runs inside poll()/commitSync()/close()
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (!done.isDone() && System.nanoTime() < deadline) {
                c.poll(Compat.POLL);
            }
            assertEquals(offsets, done.get(1, TimeUnit.SECONDS));
            Map<TopicPartition, OffsetAndMetadata> committed =
                    c.committed(Set.of(p0, p1), Duration.ofSeconds(TIMEOUT_S));
            assertEquals(3, committed.get(p0).offset());
            assertEquals("meta-0", committed.get(p0).metadata());
            assertEquals(5, committed.get(p1).offset());
            assertEquals("meta-1", committed.get(p1).metadata());
        }
    }

    /**
     * Two members split a topic's partitions, then one leaves: classic with the client's
     * default assignors (range, then cooperative-sticky) and with cooperative-sticky alone;
     * KIP-848 with the broker's default assignor and with `range`.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"classic", "classic-cooperative-sticky", "consumer", "consumer-range"})
    void twoMembersShareTheTopic(String variant) throws Exception {
        String protocol = variant.startsWith("classic") ? "classic" : "consumer";
        String topic = Compat.unique("two-" + variant);
        String group = Compat.unique("g-two-" + variant);
        Compat.createTopic(topic, 4);
        Map<String, Object> cfg = new HashMap<>();
        cfg.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cfg.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        if (variant.equals("classic-cooperative-sticky")) {
            cfg.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
                    "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
        }
        if (variant.equals("consumer-range")) {
            cfg.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, "range");
        }
        if (protocol.equals("classic")) {
            cfg.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            cfg.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        }
        List<ConsumerRecord<?, ?>> sink = new ArrayList<>();
        try (KafkaConsumer<String, String> a = Compat.consumer(cfg)) {
            a.subscribe(List.of(topic));
            Compat.awaitAssignment(a, 4, sink);
            KafkaConsumer<String, String> b = Compat.consumer(cfg);
            try {
                b.subscribe(List.of(topic));
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
                while (!(a.assignment().size() == 2 && b.assignment().size() == 2)) {
                    assertTrue(System.nanoTime() < deadline,
                            "no 2+2 split: a=" + a.assignment() + " b=" + b.assignment());
                    a.poll(Compat.POLL);
                    b.poll(Compat.POLL);
                }
                Set<TopicPartition> all = new HashSet<>(a.assignment());
                all.addAll(b.assignment());
                assertEquals(new HashSet<>(Compat.partitions(topic, 4)), all);
            } finally {
                b.close();
            }
            Compat.awaitAssignment(a, 4, sink);
        }
    }

    /** read_committed on a topic without transactions reads everything (LSO = HW). */
    @Test
    void readCommitted() throws Exception {
        String topic = Compat.unique("read-committed");
        Compat.createTopic(topic, 1);
        produce(topic, 1, 7, "v");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Compat.consumer(Map.of(
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            assertEquals(Map.of(tp, 7L), c.endOffsets(List.of(tp)));
            c.assign(List.of(tp));
            List<ConsumerRecord<String, String>> got = Compat.pollN(c, 7);
            assertEquals(6, got.get(6).offset());
        }
    }
}
