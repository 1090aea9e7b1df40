//! Admin APIs against the real binary: topics, partitions, configs, records, offsets, cluster.

#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::requests::{create_topic, fetch_now, produce_one};
use common::{name, str, Broker};
use ductstream_storage::testsuite::make_batch;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;

fn broker() -> (tempfile::TempDir, Broker) {
    common::temp_broker(&["--num-partitions", "3"])
}

fn create(topic: &str, partitions: i32, rf: i16, configs: &[(&str, &str)], validate_only: bool) -> CreateTopicsRequest {
    CreateTopicsRequest::default().with_validate_only(validate_only).with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
        .with_configs(configs.iter().map(|(k, v)| CreatableTopicConfig::default().with_name(str(k)).with_value(Some(str(v)))).collect())])
}

fn describe_topic(topic: &str) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(str(topic))
        .with_configuration_keys(None)])
}

fn config_value(response: &DescribeConfigsResponse, key: &str) -> Option<(String, i8)> {
    response.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .map(|c| (c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(), c.config_source))
}

#[test]
fn create_topics_validates_and_reports() {
    let (_dir, broker) = broker();
    let mut c = broker.client();
    for version in 2..=7 {
        let topic = format!("created-v{version}");
        let r = expect_kind!(c.call(ApiKey::CreateTopics, version, &create(&topic, -1, -1, &[("retention.ms", "1000")], false)), CreateTopics);
        assert_eq!(r.topics[0].error_code, 0, "v{version}: {:?}", r.topics[0].error_message);
        if version >= 5 {
            assert_eq!(r.topics[0].num_partitions, 3, "the broker default");
            let configs = r.topics[0].configs.as_ref().expect("configs");
            assert!(configs.iter().any(|c| c.name.as_str() == "retention.ms" && c.value.as_deref() == Some("1000")));
        }
    }
    let cases: &[(CreateTopicsRequest, i16)] = &[
        (create("created-v7", 1, 1, &[], false), 36),        // TOPIC_ALREADY_EXISTS
        (create("bad name", 1, 1, &[], false), 17),          // INVALID_TOPIC_EXCEPTION
        (create("zero", 0, 1, &[], false), 37),              // INVALID_PARTITIONS
        (create("rf3", 1, 3, &[], false), 38),               // INVALID_REPLICATION_FACTOR
        (create("cfg", 1, 1, &[("retention.ms", "x")], false), 40), // INVALID_CONFIG
        (create("cfg", 1, 1, &[("no.such", "1")], false), 40),
    ];
    for (request, code) in cases {
        let r = expect_kind!(c.call(ApiKey::CreateTopics, 7, request), CreateTopics);
        assert_eq!(r.topics[0].error_code, *code, "{:?}", r.topics[0].name);
        assert!(r.topics[0].error_message.is_some());
    }
    let r = expect_kind!(c.call(ApiKey::CreateTopics, 7, &create("dry", 4, 1, &[], true)), CreateTopics);
    assert_eq!((r.topics[0].error_code, r.topics[0].num_partitions), (0, 4));
    let metadata = MetadataRequest::default().with_topics(None);
    let m = expect_kind!(c.call(ApiKey::Metadata, 12, &metadata), Metadata);
    assert!(!m.topics.iter().any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("dry")), "validate_only creates nothing");
}

#[test]
fn metadata_every_version_lists_topics_and_partitions() {
    let (_dir, broker) = broker();
    let mut c = broker.client();
    create_topic(&mut c, "meta", 2, &[]);
    for version in 0..=12 {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name("meta")))]));
        let r = expect_kind!(c.call(ApiKey::Metadata, version, &request), Metadata);
        assert_eq!(r.brokers[0].port as u16, broker.addr.port(), "v{version}");
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].partitions.len(), 2, "v{version}");
        assert_eq!(r.topics[0].partitions[1].leader_id.0, 1);
    }
    // Auto-creation through metadata, with the broker's partition count.
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name("auto")))]));
    let r = expect_kind!(c.call(ApiKey::Metadata, 12, &request), Metadata);
    assert_eq!((r.topics[0].error_code, r.topics[0].partitions.len()), (0, 3));
    let no_auto = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name("not-auto")))]));
    let r = expect_kind!(c.call(ApiKey::Metadata, 12, &no_auto), Metadata);
    assert_eq!(r.topics[0].error_code, 3, "the client asked not to create it");
}

#[test]
fn configs_are_described_and_altered_incrementally() {
    let (_dir, broker) = broker();
    let mut c = broker.client();
    create_topic(&mut c, "cfg", 1, &[("cleanup.policy", "compact")]);
    for version in 1..=4 {
        let r = expect_kind!(c.call(ApiKey::DescribeConfigs, version, &describe_topic("cfg")), DescribeConfigs);
        assert_eq!(r.results[0].error_code, 0);
        assert_eq!(config_value(&r, "cleanup.policy"), Some(("compact".into(), 1)), "v{version}: a topic override");
        assert_eq!(config_value(&r, "retention.ms"), Some(("604800000".into(), 5)), "v{version}: a default");
    }
    let alter = |ops: Vec<(&str, i8, Option<&str>)>, validate_only| {
        IncrementalAlterConfigsRequest::default().with_validate_only(validate_only).with_resources(vec![
            AlterConfigsResource::default().with_resource_type(2).with_resource_name(str("cfg")).with_configs(
                ops.into_iter()
                    .map(|(k, op, v)| AlterableConfig::default().with_name(str(k)).with_config_operation(op).with_value(v.map(str)))
                    .collect(),
            ),
        ])
    };
    for version in 0..=1 {
        let r = expect_kind!(c.call(ApiKey::IncrementalAlterConfigs, version, &alter(vec![("retention.ms", 0, Some("5000"))], false)), IncrementalAlterConfigs);
        assert_eq!(r.responses[0].error_code, 0, "v{version}");
    }
    let r = expect_kind!(c.call(ApiKey::IncrementalAlterConfigs, 1, &alter(vec![("cleanup.policy", 2, Some("delete")), ("max.message.bytes", 0, Some("100"))], false)), IncrementalAlterConfigs);
    assert_eq!(r.responses[0].error_code, 0);
    let r = expect_kind!(c.call(ApiKey::IncrementalAlterConfigs, 1, &alter(vec![("retention.ms", 0, Some("soon"))], false)), IncrementalAlterConfigs);
    assert_eq!(r.responses[0].error_code, 40, "INVALID_CONFIG");
    let r = expect_kind!(c.call(ApiKey::IncrementalAlterConfigs, 1, &alter(vec![("retention.ms", 1, None)], true)), IncrementalAlterConfigs);
    assert_eq!(r.responses[0].error_code, 0);

    let r = expect_kind!(c.call(ApiKey::DescribeConfigs, 4, &describe_topic("cfg")), DescribeConfigs);
    assert_eq!(config_value(&r, "retention.ms"), Some(("5000".into(), 1)), "validate_only changed nothing");
    assert_eq!(config_value(&r, "cleanup.policy"), Some(("compact,delete".into(), 1)));
    assert_eq!(produce_one(&mut c, "cfg", 0, make_batch(20, 0, None)).0, 10, "max.message.bytes is enforced at once");

    let broker_resource = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default().with_resource_type(4).with_resource_name(str("1"))]);
    let r = expect_kind!(c.call(ApiKey::DescribeConfigs, 4, &broker_resource), DescribeConfigs);
    assert_eq!(config_value(&r, "num.partitions"), Some(("3".into(), 4)));
    let r = expect_kind!(c.call(ApiKey::DescribeConfigs, 4, &describe_topic("missing")), DescribeConfigs);
    assert_eq!(r.results[0].error_code, 3);
}

#[test]
fn partitions_grow_and_topics_delete() {
    let (_dir, broker) = broker();
    let mut c = broker.client();
    for version in 0..=3 {
        let topic = format!("grow{version}");
        create_topic(&mut c, &topic, 1, &[]);
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default().with_name(name(&topic)).with_count(4)]);
        let r = expect_kind!(c.call(ApiKey::CreatePartitions, version, &request), CreatePartitions);
        assert_eq!(r.results[0].error_code, 0, "v{version}");
        assert_eq!(produce_one(&mut c, &topic, 3, make_batch(1, 0, None)), (0, 0));
        let r = expect_kind!(c.call(ApiKey::CreatePartitions, version, &request), CreatePartitions);
        assert_eq!(r.results[0].error_code, 37, "cannot shrink or stay: INVALID_PARTITIONS");
    }
    for version in 1..=6 {
        let topic = format!("grow{}", (version - 1) % 4);
        let request = if version >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default().with_name(Some(name(&topic)))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
        };
        let r = expect_kind!(c.call(ApiKey::DeleteTopics, version, &request), DeleteTopics);
        let expected = if version <= 4 { 0 } else { 3 };
        assert_eq!(r.responses[0].error_code, expected, "v{version} deleting {topic}");
    }
    // A re-created topic starts empty.
    create_topic(&mut c, "grow0", 1, &[]);
    assert_eq!(fetch_now(&mut c, "grow0", 0, 0).1, 0);
}

#[test]
fn delete_records_and_list_offsets() {
    let (_dir, broker) = broker();
    let mut c = broker.client();
    create_topic(&mut c, "trim", 1, &[]);
    for ts in [1_000, 5_000, 3_000] {
        assert_eq!(produce_one(&mut c, "trim", 0, make_batch(3, ts, None)).0, 0);
    }
    let list = |timestamp: i64| {
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("trim"))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(timestamp)])])
    };
    let offset_at = |c: &mut common::Client, version: i16, timestamp: i64| {
        let r = expect_kind!(c.call(ApiKey::ListOffsets, version, &list(timestamp)), ListOffsets);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        (p.offset, p.timestamp)
    };
    for version in 1..=7 {
        assert_eq!(offset_at(&mut c, version, -2).0, 0, "earliest v{version}");
        assert_eq!(offset_at(&mut c, version, -1).0, 9, "latest v{version}");
        assert_eq!(offset_at(&mut c, version, 1_001), (1, 1_001), "by time v{version}");
        assert_eq!(offset_at(&mut c, version, 4_000), (3, 5_000), "the first record at or after v{version}");
        assert_eq!(offset_at(&mut c, version, 9_000).0, -1, "nothing that late v{version}");
    }
    assert_eq!(offset_at(&mut c, 7, -3), (5, 5_002), "max timestamp (KIP-734)");

    for version in 0..=2 {
        let request = DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name("trim"))
            .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(2 + version as i64)])]);
        let r = expect_kind!(c.call(ApiKey::DeleteRecords, version, &request), DeleteRecords);
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.low_watermark), (0, 2 + version as i64), "v{version}");
    }
    assert_eq!(offset_at(&mut c, 7, -2).0, 4);
    assert_eq!(fetch_now(&mut c, "trim", 0, 1).0, 1, "below the log start: OFFSET_OUT_OF_RANGE");
    let past_end = DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
        .with_name(name("trim"))
        .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(100)])]);
    let r = expect_kind!(c.call(ApiKey::DeleteRecords, 2, &past_end), DeleteRecords);
    assert_eq!(r.topics[0].partitions[0].error_code, 1);
    let to_end = DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
        .with_name(name("trim"))
        .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(-1)])]);
    let r = expect_kind!(c.call(ApiKey::DeleteRecords, 2, &to_end), DeleteRecords);
    assert_eq!(r.topics[0].partitions[0].low_watermark, 9, "-1 deletes up to the high watermark");
}

#[test]
fn describe_cluster_names_this_broker() {
    let (_dir, broker) = broker();
    let mut c = broker.client();
    for version in 0..=1 {
        let request = DescribeClusterRequest::default().with_endpoint_type(1);
        let r = expect_kind!(c.call(ApiKey::DescribeCluster, version, &request), DescribeCluster);
        assert_eq!(r.error_code, 0);
        assert_eq!(r.cluster_id.as_str(), "ductstream");
        assert_eq!((r.brokers.len(), r.brokers[0].port as u16), (1, broker.addr.port()));
    }
}
