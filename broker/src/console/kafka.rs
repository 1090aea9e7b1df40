//! The console's changes, and what the group coordinator answers (groups, members, committed
//! offsets), go through the broker's Kafka API handlers as a client's requests would: the same
//! validation, the same errors (shown to the user as the broker words them), the same side
//! effects. The console is a client on a listener of its own, `CONSOLE`, with the visitor's
//! principal.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{
    consumer_group_describe_response, ApiKey, BrokerId, ConsumerGroupDescribeRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeGroupsRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
    ProduceRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::api::{dispatch, Ctx, Outcome};
use crate::batch_builder::{build, NewRecord};
use crate::clock::now_ms;
use crate::security::listeners::{Listener, SecurityProtocol};
use crate::security::session::Session;
use super::visitor::Visitor;
use crate::Broker;

/// What the user reads when a change fails.
pub type Refusal = String;

/// A request's outcome as the user reads it: the broker's message, or the error code's name.
fn outcome(code: i16, message: Option<&StrBytes>) -> Result<(), Refusal> {
    if code == 0 {
        return Ok(());
    }
    let name = ResponseError::try_from_code(code).map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
    Err(match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{name}: {m}"),
        None => name,
    })
}

/// Runs `request` as API `api` version `version` through the broker's dispatcher.
async fn call(broker: &Arc<Broker>, visitor: &Visitor, api: ApiKey, version: i16, request: RequestKind) -> Result<ResponseKind, Refusal> {
    let listener = Arc::new(Listener { name: "CONSOLE".into(), protocol: SecurityProtocol::Plaintext, tls: None });
    // The visitor's principal, so the broker's ACLs decide as for any client of theirs.
    let session = Session::new(listener, visitor.peer.addr, Some(visitor.principal()));
    let ctx = Ctx::new(broker.clone(), api, version, "ductstream-console".into(), Arc::new(session));
    match dispatch(&ctx, request).await.map_err(|e| e.to_string())? {
        Outcome::Now(response) => Ok(*response),
        Outcome::Later(response) => Ok(response.await),
        Outcome::Silent | Outcome::Raw(_) => Err(format!("{api:?} answered nothing")),
    }
}

/// Calls API `$api` (version `$version`) with `$request`; its response, of the same kind.
macro_rules! ask {
    ($broker:expr, $visitor:expr, $api:ident, $version:expr, $request:expr) => {
        match call($broker, $visitor, ApiKey::$api, $version, RequestKind::$api($request)).await? {
            ResponseKind::$api(response) => response,
            _ => return Err(concat!(stringify!($api), " answered with another response").into()),
        }
    };
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

pub async fn create_topic(broker: &Arc<Broker>, visitor: &Visitor, name: &str, partitions: i32) -> Result<(), Refusal> {
    let topic = CreatableTopic::default().with_name(topic_name(name)).with_num_partitions(partitions).with_replication_factor(-1);
    let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
    let response = ask!(broker, visitor, CreateTopics, 7, request);
    let result = response.topics.first().ok_or("no answer for the topic")?;
    outcome(result.error_code, result.error_message.as_ref())
}

pub async fn delete_topic(broker: &Arc<Broker>, visitor: &Visitor, name: &str) -> Result<(), Refusal> {
    let request = DeleteTopicsRequest::default().with_topic_names(vec![topic_name(name)]).with_timeout_ms(30_000);
    let response = ask!(broker, visitor, DeleteTopics, 5, request);
    let result = response.responses.first().ok_or("no answer for the topic")?;
    outcome(result.error_code, result.error_message.as_ref())
}

/// Produces one record (acks=all); its offset.
pub async fn produce_record(broker: &Arc<Broker>, visitor: &Visitor, topic: &str, partition: i32, record: NewRecord) -> Result<i64, Refusal> {
    let batch = build(&[NewRecord { timestamp: now_ms(), ..record }]).map_err(|e| e.to_string())?;
    let data = PartitionProduceData::default().with_index(partition).with_records(Some(Bytes::copy_from_slice(batch.bytes())));
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![data])]);
    let response = ask!(broker, visitor, Produce, 9, request);
    let result = response.responses.first().and_then(|t| t.partition_responses.first()).ok_or("no answer for the partition")?;
    outcome(result.error_code, result.error_message.as_ref()).map(|()| result.base_offset)
}

/// The groups the coordinator knows: (id, state, protocol type, group type).
pub async fn list_groups(broker: &Arc<Broker>, visitor: &Visitor) -> Result<Vec<ListedGroup>, Refusal> {
    let response = ask!(broker, visitor, ListGroups, 5, ListGroupsRequest::default());
    outcome(response.error_code, None)?;
    Ok(response.groups)
}

/// A classic group's state and members.
pub async fn describe_group(broker: &Arc<Broker>, visitor: &Visitor, group: &str) -> Result<DescribedGroup, Refusal> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
    let response = ask!(broker, visitor, DescribeGroups, 5, request);
    let described = response.groups.into_iter().next().ok_or("no answer for the group")?;
    outcome(described.error_code, described.error_message.as_ref())?;
    Ok(described)
}

/// A KIP-848 group's epochs, assignor and members with their assignments; GroupIdNotFound for
/// a classic group.
pub async fn describe_consumer_group(broker: &Arc<Broker>, visitor: &Visitor, group: &str) -> Result<consumer_group_describe_response::DescribedGroup, Refusal> {
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
    let response = ask!(broker, visitor, ConsumerGroupDescribe, 1, request);
    let described = response.groups.into_iter().next().ok_or("no answer for the group")?;
    outcome(described.error_code, described.error_message.as_ref())?;
    Ok(described)
}

/// The group's committed offsets: (topic, partition, offset).
pub async fn committed(broker: &Arc<Broker>, visitor: &Visitor, group: &str) -> Result<Vec<(String, i32, i64)>, Refusal> {
    let request = OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_string(group.to_owned()))).with_topics(None);
    let response = ask!(broker, visitor, OffsetFetch, 7, request);
    outcome(response.error_code, None)?;
    let mut offsets = Vec::new();
    for topic in response.topics {
        for p in topic.partitions.into_iter().filter(|p| p.committed_offset >= 0) {
            outcome(p.error_code, None)?;
            offsets.push((topic.name.0.to_string(), p.partition_index, p.committed_offset));
        }
    }
    Ok(offsets)
}

/// Commits `offsets` of `topic` (partition, offset) for the group, as a tool outside the group
/// does (no member, no generation): the coordinator refuses while the group has members.
pub async fn commit(broker: &Arc<Broker>, visitor: &Visitor, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<(), Refusal> {
    let partitions = offsets
        .iter()
        .map(|(p, o)| OffsetCommitRequestPartition::default().with_partition_index(*p).with_committed_offset(*o).with_committed_leader_epoch(-1))
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(topic_name(topic)).with_partitions(partitions)]);
    let response = ask!(broker, visitor, OffsetCommit, 8, request);
    for p in response.topics.iter().flat_map(|t| &t.partitions) {
        outcome(p.error_code, None)?;
    }
    Ok(())
}

/// Sets `name` on the topic to `value`, or deletes it (back to the broker default) when
/// `value` is `None`.
pub async fn alter_topic_config(broker: &Arc<Broker>, visitor: &Visitor, topic: &str, name: &str, value: Option<&str>) -> Result<(), Refusal> {
    const TOPIC: i8 = 2;
    let (operation, value) = match value {
        Some(v) => (0, Some(StrBytes::from_string(v.to_owned()))),
        None => (1, None),
    };
    let config = AlterableConfig::default().with_name(StrBytes::from_string(name.to_owned())).with_config_operation(operation).with_value(value);
    let resource = AlterConfigsResource::default().with_resource_type(TOPIC).with_resource_name(StrBytes::from_string(topic.to_owned())).with_configs(vec![config]);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let response = ask!(broker, visitor, IncrementalAlterConfigs, 1, request);
    let result = response.responses.first().ok_or("no answer for the topic")?;
    outcome(result.error_code, result.error_message.as_ref())
}

/// The first offset of `partition` whose record's timestamp is `timestamp_ms` or later, as
/// ListOffsets finds it; `None` when no record is that late.
pub async fn offset_at(broker: &Arc<Broker>, visitor: &Visitor, topic: &str, partition: i32, timestamp_ms: i64) -> Result<Option<i64>, Refusal> {
    let wanted = ListOffsetsPartition::default().with_partition_index(partition).with_current_leader_epoch(-1).with_timestamp(timestamp_ms);
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(vec![wanted])]);
    let response = ask!(broker, visitor, ListOffsets, 7, request);
    let found = response.topics.first().and_then(|t| t.partitions.first()).ok_or("no answer for the partition")?;
    outcome(found.error_code, None)?;
    Ok((found.offset >= 0).then_some(found.offset))
}
