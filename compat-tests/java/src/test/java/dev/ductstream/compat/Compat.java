package dev.ductstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Shared set-up: the broker under test is named by KAFKA_BOOTSTRAP (host:port). */
final class Compat {
    static final Duration POLL = Duration.ofMillis(200);
    static final long TIMEOUT_S = 30;

    private Compat() {}

    static String bootstrap() {
        String b = System.getenv("KAFKA_BOOTSTRAP");
        if (b == null || b.isBlank()) {
            fail("set KAFKA_BOOTSTRAP to the broker's host:port");
        }
        return b;
    }

    static String unique(String hint) {
        return "java-" + hint + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    static Properties common(String clientId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap());
        p.put("client.id", clientId);
        return p;
    }

    static Admin admin() {
        Properties p = common("ductstream-compat-admin");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        return Admin.create(p);
    }

    static KafkaProducer<String, String> producer(Map<String, Object> extra) {
        Properties p = common("ductstream-compat-producer");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    static KafkaProducer<byte[], byte[]> bytesProducer(Map<String, Object> extra) {
        Properties p = common("ductstream-compat-producer");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<String, String> consumer(Map<String, Object> extra) {
        Properties p = common("ductstream-compat-consumer");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.putAll(extra);
        return new KafkaConsumer<>(p);
    }

    static KafkaConsumer<byte[], byte[]> bytesConsumer(Map<String, Object> extra) {
        Properties p = common("ductstream-compat-consumer");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.putAll(extra);
        return new KafkaConsumer<>(p);
    }

    static void createTopic(Admin admin, String topic, int partitions, Map<String, String> configs)
            throws Exception {
        NewTopic t = new NewTopic(topic, partitions, (short) 1).configs(configs);
        admin.createTopics(List.of(t)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
        // Apache Kafka answers CreateTopics before its metadata has the topic: wait until the
        // topic is listed and described, so tests start from the same state on both brokers.
        waitUntil("topic " + topic + " listed and described", () -> {
            try {
                return admin.listTopics().names().get(TIMEOUT_S, TimeUnit.SECONDS).contains(topic)
                        && admin.describeTopics(List.of(topic)).allTopicNames().get(TIMEOUT_S, TimeUnit.SECONDS).containsKey(topic);
            } catch (Exception e) {
                return false;
            }
        });
    }

    static void createTopic(String topic, int partitions) throws Exception {
        try (Admin admin = admin()) {
            createTopic(admin, topic, partitions, Map.of());
        }
    }

    /** Polls until `n` records arrived (or fails after TIMEOUT_S). */
    static <K, V> List<ConsumerRecord<K, V>> pollN(KafkaConsumer<K, V> c, int n) {
        List<ConsumerRecord<K, V>> out = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
        while (out.size() < n) {
            if (System.nanoTime() > deadline) {
                fail("received " + out.size() + " of " + n + " records within " + TIMEOUT_S + " s");
            }
            c.poll(POLL).forEach(out::add);
        }
        assertEquals(n, out.size(), "more records than produced");
        return out;
    }

    /** Polls for `d` and returns whatever arrived (to check that nothing does). */
    static <K, V> List<ConsumerRecord<K, V>> pollFor(KafkaConsumer<K, V> c, Duration d) {
        List<ConsumerRecord<K, V>> out = new ArrayList<>();
        long deadline = System.nanoTime() + d.toNanos();
        while (System.nanoTime() < deadline) {
            c.poll(POLL).forEach(out::add);
        }
        return out;
    }

    /** Polls (so that group membership progresses) until the consumer owns `n` partitions. */
    static void awaitAssignment(KafkaConsumer<?, ?> c, int n, List<ConsumerRecord<?, ?>> sink) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
        while (c.assignment().size() != n) {
            if (System.nanoTime() > deadline) {
                fail("consumer owns " + c.assignment() + ", expected " + n + " partitions");
            }
            c.poll(POLL).forEach(sink::add);
        }
    }

    static void waitUntil(String what, BooleanSupplier cond) throws InterruptedException {
        waitUntil(what, TIMEOUT_S, cond);
    }

    static void waitUntil(String what, long seconds, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("timed out after " + seconds + " s waiting for " + what);
            }
            Thread.sleep(100);
        }
    }

    static List<TopicPartition> partitions(String topic, int n) {
        List<TopicPartition> out = new ArrayList<>();
        for (int p = 0; p < n; p++) {
            out.add(new TopicPartition(topic, p));
        }
        return out;
    }

    static <T> List<T> list(Collection<T> c) {
        return new ArrayList<>(c);
    }
}
