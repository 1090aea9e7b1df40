package dev.ductstream.compat;

import static dev.ductstream.compat.Compat.TIMEOUT_S;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.Optional;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

@Timeout(value = 120, unit = TimeUnit.SECONDS)
class AdminTest {

    static <T> T get(org.apache.kafka.common.KafkaFuture<T> f) throws Exception {
        return f.get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    @Test
    void createDescribeGrowDeleteTopics() throws Exception {
        String topic = Compat.unique("admin-topic");
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 3, Map.of("retention.ms", "3600000"));
            assertTrue(get(admin.listTopics().names()).contains(topic));

            ExecutionException dup = assertThrows(ExecutionException.class,
                    () -> Compat.createTopic(admin, topic, 3, Map.of()));
            assertInstanceOf(TopicExistsException.class, dup.getCause());

            TopicDescription d = get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
            assertEquals(3, d.partitions().size());
            assertNotNull(d.topicId());
            assertFalse(d.isInternal());
            Set<Integer> brokers = get(admin.describeCluster().nodes()).stream()
                    .map(Node::id).collect(Collectors.toSet());
            d.partitions().forEach(p -> {
                assertNotNull(p.leader(), "leader of partition " + p.partition());
                assertTrue(brokers.contains(p.leader().id()));
                assertEquals(1, p.replicas().size());
                assertEquals(1, p.isr().size());
            });

            get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all());
            Compat.waitUntil("5 partitions", () -> {
                try {
                    return get(admin.describeTopics(List.of(topic)).allTopicNames())
                            .get(topic).partitions().size() == 5;
                } catch (Exception e) {
                    return false;
                }
            });

            get(admin.deleteTopics(List.of(topic)).all());
            Compat.waitUntil("topic gone from listTopics", () -> {
                try {
                    return !get(admin.listTopics().names()).contains(topic);
                } catch (Exception e) {
                    return false;
                }
            });
            ExecutionException gone = assertThrows(ExecutionException.class,
                    () -> get(admin.describeTopics(List.of(topic)).allTopicNames()));
            assertInstanceOf(UnknownTopicOrPartitionException.class, gone.getCause());
        }
    }

    static Map<String, ConfigEntry> topicConfig(Admin admin, String topic) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config c = get(admin.describeConfigs(List.of(r)).all()).get(r);
        return c.entries().stream().collect(Collectors.toMap(ConfigEntry::name, e -> e));
    }

    @Test
    void describeAndAlterConfigs() throws Exception {
        String topic = Compat.unique("admin-configs");
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 1, Map.of("retention.ms", "3600000"));
            Map<String, ConfigEntry> cfg = topicConfig(admin, topic);
            assertEquals("3600000", cfg.get("retention.ms").value());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cfg.get("retention.ms").source());
            assertEquals("delete", cfg.get("cleanup.policy").value());
            assertTrue(cfg.get("cleanup.policy").isDefault());
            assertNotNull(cfg.get("max.message.bytes"));

            ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Map<ConfigResource, Collection<AlterConfigOp>> ops = Map.of(r, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE),
                    new AlterConfigOp(new ConfigEntry("segment.ms", "600000"), AlterConfigOp.OpType.SET)));
            get(admin.incrementalAlterConfigs(ops).all());
            Compat.waitUntil("altered configs described", () -> {
                try {
                    Map<String, ConfigEntry> c = topicConfig(admin, topic);
                    return c.get("cleanup.policy").value().equals("compact")
                            && c.get("retention.ms").value().equals("604800000")
                            && c.get("segment.ms").value().equals("600000");
                } catch (Exception e) {
                    return false;
                }
            });
            cfg = topicConfig(admin, topic);
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cfg.get("cleanup.policy").source());
            assertFalse(cfg.get("retention.ms").source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG);

            // APPEND to a list config
            get(admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                    new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.APPEND)))).all());
            Compat.waitUntil("appended cleanup.policy", () -> {
                try {
                    return Set.of("compact", "delete").equals(
                            Set.of(topicConfig(admin, topic).get("cleanup.policy").value().split(",")));
                } catch (Exception e) {
                    return false;
                }
            });

            // the broker's own configs
            Node node = get(admin.describeCluster().nodes()).iterator().next();
            ConfigResource br = new ConfigResource(ConfigResource.Type.BROKER, node.idString());
            Config bc = get(admin.describeConfigs(List.of(br)).all()).get(br);
            assertFalse(bc.entries().isEmpty(), "broker configs");
        }
    }

    @Test
    void describeCluster() throws Exception {
        try (Admin admin = Compat.admin()) {
            DescribeClusterResult r = admin.describeCluster();
            Collection<Node> nodes = get(r.nodes());
            assertEquals(1, nodes.size());
            Node n = nodes.iterator().next();
            assertEquals(Compat.bootstrap(), n.host() + ":" + n.port());
            String clusterId = get(r.clusterId());
            assertNotNull(clusterId);
            assertFalse(clusterId.isEmpty());
            assertNotNull(get(r.controller()));
        }
    }

    @Test
    void deleteRecords() throws Exception {
        String topic = Compat.unique("admin-delrec");
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 1, Map.of());
            ConsumerTest.produce(topic, 1, 10, "v");
            TopicPartition tp = new TopicPartition(topic, 0);
            long low = get(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4)))
                    .lowWatermarks().get(tp)).lowWatermark();
            assertEquals(4, low);
            try (KafkaConsumer<String, String> c = Compat.consumer(Map.of())) {
                assertEquals(4L, c.beginningOffsets(List.of(tp)).get(tp));
                c.assign(List.of(tp));
                c.seekToBeginning(List.of(tp));
                List<ConsumerRecord<String, String>> got = Compat.pollN(c, 6);
                assertEquals(4, got.get(0).offset());
            }
            // -1: everything up to the high watermark
            low = get(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(-1)))
                    .lowWatermarks().get(tp)).lowWatermark();
            assertEquals(10, low);
        }
    }

    /** A group with committed offsets, as the admin client lists, describes and reads it. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"classic", "consumer"})
    void consumerGroups(String protocol) throws Exception {
        String topic = Compat.unique("admin-groups-" + protocol);
        String group = Compat.unique("g-admin-" + protocol);
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 2, Map.of());
            ConsumerTest.produce(topic, 2, 3, "v");
            Map<String, Object> cfg = new HashMap<>();
            cfg.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            cfg.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
            cfg.put(ConsumerConfig.CLIENT_ID_CONFIG, "admin-test-member");
            try (KafkaConsumer<String, String> c = Compat.consumer(cfg)) {
                c.subscribe(List.of(topic));
                Compat.pollN(c, 6);
                c.commitSync(Duration.ofSeconds(TIMEOUT_S));

                Compat.waitUntil("group listed", () -> {
                    try {
                        return get(admin.listConsumerGroups().all()).stream()
                                .map(ConsumerGroupListing::groupId).anyMatch(group::equals);
                    } catch (Exception e) {
                        return false;
                    }
                });
                GroupListing listed = get(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all())
                        .stream().filter(g -> g.groupId().equals(group)).findFirst().orElseThrow();
                GroupType type = protocol.equals("classic") ? GroupType.CLASSIC : GroupType.CONSUMER;
                assertEquals(type, listed.type().orElseThrow());

                ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
                assertEquals(group, d.groupId());
                assertEquals(type, d.type());
                assertEquals(GroupState.STABLE, d.groupState());
                assertEquals(1, d.members().size());
                MemberDescription m = d.members().iterator().next();
                assertEquals("admin-test-member", m.clientId());
                assertEquals(Set.copyOf(Compat.partitions(topic, 2)), m.assignment().topicPartitions());
                assertNotNull(d.coordinator());

                Map<TopicPartition, OffsetAndMetadata> offsets =
                        get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
                assertEquals(3, offsets.get(new TopicPartition(topic, 0)).offset());
                assertEquals(3, offsets.get(new TopicPartition(topic, 1)).offset());

                // a group with a member cannot be deleted, and keeps its commits
                ExecutionException busy = assertThrows(ExecutionException.class,
                        () -> get(admin.deleteConsumerGroups(List.of(group)).all()));
                assertInstanceOf(GroupNotEmptyException.class, busy.getCause(), busy.getCause().toString());
                assertEquals(3, get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata())
                        .get(new TopicPartition(topic, 0)).offset());
            }
            Compat.waitUntil("group empty after close", () -> {
                try {
                    return get(admin.describeConsumerGroups(List.of(group)).all()).get(group).groupState()
                            == GroupState.EMPTY;
                } catch (Exception e) {
                    return false;
                }
            });
        }
    }

    /** An empty group is deleted: gone from the listing, its commits with it. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"classic", "consumer"})
    void deleteEmptyGroup(String protocol) throws Exception {
        String topic = Compat.unique("admin-delgroup-" + protocol);
        String group = Compat.unique("g-del-" + protocol);
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 1, Map.of());
            ConsumerTest.produce(topic, 1, 3, "v");
            try (KafkaConsumer<String, String> c = Compat.consumer(Map.of(
                    ConsumerConfig.GROUP_ID_CONFIG, group,
                    ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol))) {
                c.subscribe(List.of(topic));
                Compat.pollN(c, 3);
                c.commitSync(Duration.ofSeconds(TIMEOUT_S));
            }
            Compat.waitUntil("group empty after close", () -> {
                try {
                    return get(admin.describeConsumerGroups(List.of(group)).all()).get(group).groupState()
                            == GroupState.EMPTY;
                } catch (Exception e) {
                    return false;
                }
            });
            get(admin.deleteConsumerGroups(List.of(group)).all());
            assertTrue(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()).isEmpty(),
                    "commits of a deleted group");
            Compat.waitUntil("group gone from listConsumerGroups", 5, () -> {
                try {
                    return get(admin.listConsumerGroups().all()).stream()
                            .map(ConsumerGroupListing::groupId).noneMatch(group::equals);
                } catch (Exception e) {
                    return false;
                }
            });
        }
    }

    /** listOffsets: earliest, latest, by timestamp, max timestamp. */
    @Test
    void listOffsets() throws Exception {
        String topic = Compat.unique("admin-listoffsets");
        long t0 = System.currentTimeMillis() - 100_000;
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 1, Map.of());
            try (KafkaProducer<String, String> p = Compat.producer(Map.of())) {
                for (int i = 0; i < 5; i++) {
                    // the largest timestamp is at offset 3
                    long ts = t0 + (i == 3 ? 90_000 : i * 10_000L);
                    p.send(new ProducerRecord<>(topic, 0, ts, "k", "v" + i));
                }
                p.flush();
            }
            TopicPartition tp = new TopicPartition(topic, 0);
            Map<String, OffsetSpec> specs = Map.of(
                    "earliest", OffsetSpec.earliest(),
                    "latest", OffsetSpec.latest(),
                    "t0+15s", OffsetSpec.forTimestamp(t0 + 15_000),
                    "max", OffsetSpec.maxTimestamp());
            Map<String, ListOffsetsResultInfo> got = new HashMap<>();
            for (Map.Entry<String, OffsetSpec> e : specs.entrySet()) {
                got.put(e.getKey(), get(admin.listOffsets(Map.of(tp, e.getValue())).partitionResult(tp)));
            }
            assertEquals(0, got.get("earliest").offset());
            assertEquals(5, got.get("latest").offset());
            assertEquals(2, got.get("t0+15s").offset());
            assertEquals(t0 + 20_000, got.get("t0+15s").timestamp());
            assertEquals(3, got.get("max").offset());
            assertEquals(t0 + 90_000, got.get("max").timestamp());
        }
    }

    /** describeTopics by topic id (Metadata with topic ids). */
    @Test
    void describeTopicsById() throws Exception {
        String topic = Compat.unique("admin-byid");
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 2, Map.of());
            Uuid id = get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic).topicId();
            assertNotNull(id);
            assertFalse(Uuid.ZERO_UUID.equals(id));
            TopicDescription d = get(admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds()).get(id);
            assertEquals(topic, d.name());
            assertEquals(2, d.partitions().size());
            get(admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all());
            Compat.waitUntil("topic deleted by id", () -> {
                try {
                    return !get(admin.listTopics().names()).contains(topic);
                } catch (Exception e) {
                    return false;
                }
            });
        }
    }

    /** alterConsumerGroupOffsets and deleteConsumerGroupOffsets (OffsetDelete) of an empty group. */
    @Test
    void alterAndDeleteGroupOffsets() throws Exception {
        String topic = Compat.unique("admin-groupoffsets");
        String group = Compat.unique("g-offsets");
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 2, Map.of());
            ConsumerTest.produce(topic, 2, 5, "v");
            TopicPartition p0 = new TopicPartition(topic, 0);
            TopicPartition p1 = new TopicPartition(topic, 1);
            get(admin.alterConsumerGroupOffsets(group, Map.of(
                    p0, new OffsetAndMetadata(2, "set-by-admin"), p1, new OffsetAndMetadata(4))).all());
            Map<TopicPartition, OffsetAndMetadata> offsets =
                    get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            assertEquals(2, offsets.get(p0).offset());
            assertEquals("set-by-admin", offsets.get(p0).metadata());
            assertEquals(4, offsets.get(p1).offset());

            // a consumer of the group starts where the admin put it
            try (KafkaConsumer<String, String> c = Compat.consumer(Map.of(
                    ConsumerConfig.GROUP_ID_CONFIG, group, ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer"))) {
                c.subscribe(List.of(topic));
                List<ConsumerRecord<String, String>> got = Compat.pollN(c, 3 + 1);
                for (ConsumerRecord<String, String> r : got) {
                    assertTrue(r.offset() >= (r.partition() == 0 ? 2 : 4), r.toString());
                }
                // a group member subscribes to the topic: its offsets cannot be deleted
                ExecutionException busy = assertThrows(ExecutionException.class,
                        () -> get(admin.deleteConsumerGroupOffsets(group, Set.of(p0)).all()));
                assertInstanceOf(GroupSubscribedToTopicException.class, busy.getCause(), busy.getCause().toString());
            }
            Compat.waitUntil("group empty", () -> {
                try {
                    return get(admin.describeConsumerGroups(List.of(group)).all()).get(group).groupState()
                            == GroupState.EMPTY;
                } catch (Exception e) {
                    return false;
                }
            });
            get(admin.deleteConsumerGroupOffsets(group, Set.of(p0)).all());
            offsets = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            assertFalse(offsets.containsKey(p0) && offsets.get(p0) != null, "p0's commit deleted: " + offsets);
            assertEquals(4, offsets.get(p1).offset());
        }
    }

    /** removeMembersFromConsumerGroup of a static member (LeaveGroup by group.instance.id). */
    @Test
    void removeStaticMember() throws Exception {
        String topic = Compat.unique("admin-remove");
        String group = Compat.unique("g-remove");
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 1, Map.of());
            KafkaConsumer<String, String> c = Compat.consumer(Map.of(
                    ConsumerConfig.GROUP_ID_CONFIG, group,
                    ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic",
                    ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "static-1",
                    ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "60000"));
            try {
                c.subscribe(List.of(topic));
                Compat.awaitAssignment(c, 1, new java.util.ArrayList<>());
                ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
                assertEquals(Optional.of("static-1"), d.members().iterator().next().groupInstanceId());
            } finally {
                // a static member's close sends no LeaveGroup: it stays in the group
                c.close(java.time.Duration.ofSeconds(5));
            }
            assertEquals(1, get(admin.describeConsumerGroups(List.of(group)).all()).get(group).members().size());
            get(admin.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions(
                    List.of(new MemberToRemove("static-1")))).all());
            Compat.waitUntil("static member removed", () -> {
                try {
                    return get(admin.describeConsumerGroups(List.of(group)).all()).get(group).members().isEmpty();
                } catch (Exception e) {
                    return false;
                }
            });
        }
    }

    /** describeLogDirs: what UIs (e.g. topic sizes) ask for. */
    @Test
    void describeLogDirs() throws Exception {
        String topic = Compat.unique("admin-logdirs");
        try (Admin admin = Compat.admin()) {
            Compat.createTopic(admin, topic, 1, Map.of());
            ConsumerTest.produce(topic, 1, 10, "v");
            int node = get(admin.describeCluster().nodes()).iterator().next().id();
            Map<Integer, Map<String, LogDirDescription>> dirs =
                    get(admin.describeLogDirs(List.of(node)).allDescriptions());
            assertEquals(Set.of(node), dirs.keySet());
            assertFalse(dirs.get(node).isEmpty());
            long size = dirs.get(node).values().stream()
                    .map(d -> d.replicaInfos().get(new TopicPartition(topic, 0)))
                    .filter(java.util.Objects::nonNull)
                    .mapToLong(r -> r.size()).sum();
            assertTrue(size > 0, "size of " + topic + " in " + dirs);
        }
    }
}
