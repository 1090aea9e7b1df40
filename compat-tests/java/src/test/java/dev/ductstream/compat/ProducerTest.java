package dev.ductstream.compat;

import static dev.ductstream.compat.Compat.TIMEOUT_S;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

@Timeout(value = 90, unit = TimeUnit.SECONDS)
class ProducerTest {

    /** The client's defaults: idempotence on, acks=all. Offsets come back dense and in order. */
    @Test
    void idempotentByDefault() throws Exception {
        String topic = Compat.unique("idem");
        Compat.createTopic(topic, 1);
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<String, String> p = Compat.producer(Map.of())) {
            for (int i = 0; i < 50; i++) {
                sent.add(p.send(new ProducerRecord<>(topic, "k" + i, "v" + i)));
            }
            p.flush();
        }
        for (int i = 0; i < sent.size(); i++) {
            RecordMetadata md = sent.get(i).get(TIMEOUT_S, TimeUnit.SECONDS);
            assertEquals(i, md.offset());
            assertEquals(0, md.partition());
        }
        try (KafkaConsumer<String, String> c = Compat.consumer(Map.of())) {
            c.assign(List.of(new TopicPartition(topic, 0)));
            List<ConsumerRecord<String, String>> got = Compat.pollN(c, 50);
            for (int i = 0; i < 50; i++) {
                assertEquals(i, got.get(i).offset());
                assertEquals("k" + i, got.get(i).key());
                assertEquals("v" + i, got.get(i).value());
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void compression(String codec) throws Exception {
        String topic = Compat.unique("compress-" + codec);
        Compat.createTopic(topic, 2);
        int n = 200;
        try (KafkaProducer<String, String> p = Compat.producer(Map.of(
                ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                ProducerConfig.LINGER_MS_CONFIG, "20",
                ProducerConfig.BATCH_SIZE_CONFIG, "65536"))) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                // compressible values, so each codec really has something to do
                String v = ("value-" + i + "-").repeat(20);
                sent.add(p.send(new ProducerRecord<>(topic, i % 2, "k" + i, v)));
            }
            p.flush();
            for (Future<RecordMetadata> f : sent) {
                f.get(TIMEOUT_S, TimeUnit.SECONDS);
            }
        }
        try (KafkaConsumer<String, String> c = Compat.consumer(Map.of())) {
            c.assign(Compat.partitions(topic, 2));
            List<ConsumerRecord<String, String>> got = Compat.pollN(c, n);
            long[] next = new long[2];
            for (ConsumerRecord<String, String> r : got) {
                assertEquals(next[r.partition()]++, r.offset(), "offsets of partition " + r.partition());
                int i = Integer.parseInt(r.key().substring(1));
                assertEquals(r.partition(), i % 2);
                assertEquals(("value-" + i + "-").repeat(20), r.value());
            }
        }
    }

    @Test
    void headers() throws Exception {
        String topic = Compat.unique("headers");
        Compat.createTopic(topic, 1);
        List<Header> hs = List.of(
                new RecordHeader("trace", "abc".getBytes(StandardCharsets.UTF_8)),
                new RecordHeader("trace", "second value, same key".getBytes(StandardCharsets.UTF_8)),
                new RecordHeader("empty", new byte[0]),
                new RecordHeader("null", (byte[]) null),
                new RecordHeader("bin\u00e9", new byte[] {0, (byte) 0xff, 1}));
        try (KafkaProducer<String, String> p = Compat.producer(Map.of())) {
            p.send(new ProducerRecord<>(topic, 0, null, "k", "with headers", hs)).get(TIMEOUT_S, TimeUnit.SECONDS);
            p.send(new ProducerRecord<>(topic, "k2", "no headers")).get(TIMEOUT_S, TimeUnit.SECONDS);
            p.send(new ProducerRecord<>(topic, null, (String) null)).get(TIMEOUT_S, TimeUnit.SECONDS);
        }
        try (KafkaConsumer<String, String> c = Compat.consumer(Map.of())) {
            c.assign(List.of(new TopicPartition(topic, 0)));
            List<ConsumerRecord<String, String>> got = Compat.pollN(c, 3);
            Header[] back = got.get(0).headers().toArray();
            assertEquals(hs.size(), back.length);
            for (int i = 0; i < hs.size(); i++) {
                assertEquals(hs.get(i).key(), back[i].key());
                assertArrayEquals(hs.get(i).value(), back[i].value(), "header " + i);
            }
            assertEquals(0, got.get(1).headers().toArray().length);
            assertNull(got.get(2).key());
            assertNull(got.get(2).value());
        }
    }

    /** A 1 MiB value: the producer's max.request.size and the topic's max.message.bytes raised. */
    @Test
    void oneMebibyteRecord() throws Exception {
        String topic = Compat.unique("big");
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 1, Map.of("max.message.bytes", String.valueOf(2 << 20)));
        }
        byte[] value = new byte[1 << 20];
        new Random(42).nextBytes(value);
        try (KafkaProducer<byte[], byte[]> p = Compat.bytesProducer(Map.of(
                ProducerConfig.MAX_REQUEST_SIZE_CONFIG, String.valueOf(4 << 20)))) {
            RecordMetadata md = p.send(new ProducerRecord<>(topic, "big".getBytes(StandardCharsets.UTF_8), value))
                    .get(TIMEOUT_S, TimeUnit.SECONDS);
            assertEquals(0, md.offset());
            assertEquals(value.length, md.serializedValueSize());
            p.send(new ProducerRecord<>(topic, null, "small".getBytes(StandardCharsets.UTF_8)))
                    .get(TIMEOUT_S, TimeUnit.SECONDS);
        }
        // default fetch sizes: the first batch is returned even when larger (KIP-74)
        try (KafkaConsumer<byte[], byte[]> c = Compat.bytesConsumer(Map.of(
                "max.partition.fetch.bytes", "65536", "fetch.max.bytes", "65536"))) {
            c.assign(List.of(new TopicPartition(topic, 0)));
            List<ConsumerRecord<byte[], byte[]>> got = Compat.pollN(c, 2);
            assertTrue(Arrays.equals(value, got.get(0).value()), "1 MiB value differs");
            assertEquals("small", new String(got.get(1).value(), StandardCharsets.UTF_8));
        }
    }

    /** Past the topic's default max.message.bytes (1 MiB + 12): the broker refuses the batch. */
    @Test
    void recordTooLargeForTopic() throws Exception {
        String topic = Compat.unique("too-big");
        Compat.createTopic(topic, 1);
        byte[] value = new byte[(1 << 20) + 1024];
        try (KafkaProducer<byte[], byte[]> p = Compat.bytesProducer(Map.of(
                ProducerConfig.MAX_REQUEST_SIZE_CONFIG, String.valueOf(4 << 20)))) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(topic, value)).get(TIMEOUT_S, TimeUnit.SECONDS));
            assertInstanceOf(RecordTooLargeException.class, e.getCause(), e.getCause().toString());
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"0", "1", "all"})
    void acks(String acks) throws Exception {
        String topic = Compat.unique("acks-" + acks);
        Compat.createTopic(topic, 1);
        try (KafkaProducer<String, String> p = Compat.producer(Map.of(
                ProducerConfig.ACKS_CONFIG, acks,
                // idempotence needs acks=all
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, acks.equals("all") ? "true" : "false"))) {
            for (int i = 0; i < 20; i++) {
                RecordMetadata md = p.send(new ProducerRecord<>(topic, "k", "v" + i)).get(TIMEOUT_S, TimeUnit.SECONDS);
                // acks=0: the client is never told the offset
                assertEquals(acks.equals("0") ? -1 : i, md.offset());
            }
        }
        try (KafkaConsumer<String, String> c = Compat.consumer(Map.of())) {
            c.assign(List.of(new TopicPartition(topic, 0)));
            List<ConsumerRecord<String, String>> got = Compat.pollN(c, 20);
            assertEquals("v19", got.get(19).value());
        }
    }

    /** A transactional producer: commit, then a read_committed consumer sees the records. */
    @Test
    void transactions() throws Exception {
        String topic = Compat.unique("txn");
        Compat.createTopic(topic, 1);
        try (KafkaProducer<String, String> p = Compat.producer(Map.of(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, Compat.unique("txn-id"),
                ProducerConfig.MAX_BLOCK_MS_CONFIG, "5000"))) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 5; i++) {
                p.send(new ProducerRecord<>(topic, "k", "committed-" + i));
            }
            p.commitTransaction();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, "k", "aborted"));
            p.abortTransaction();
        }
        try (KafkaConsumer<String, String> c = Compat.consumer(Map.of(
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            c.assign(List.of(new TopicPartition(topic, 0)));
            List<ConsumerRecord<String, String>> got = Compat.pollN(c, 5);
            for (ConsumerRecord<String, String> r : got) {
                assertTrue(r.value().startsWith("committed-"), r.toString());
            }
            assertTrue(Compat.pollFor(c, java.time.Duration.ofMillis(500)).isEmpty());
        }
    }
}
