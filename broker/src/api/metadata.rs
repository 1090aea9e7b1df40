//! Metadata (v0–v12): brokers, and topics with their partitions, creating topics on demand.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use ductstream_storage::Topic;

use super::Ctx;
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::security::not_authorized;
use crate::Result;

pub async fn handle(ctx: &Ctx, request: MetadataRequest) -> Result<MetadataResponse> {
    let broker = &ctx.broker;
    let config = &broker.config;
    // v0 asks for all topics with an empty list; later versions with null.
    let wanted = match request.topics {
        Some(topics) if !(ctx.version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let auto_create = ctx.version < 4 || request.allow_auto_topic_creation;
    let topics = match wanted {
        // Listing shows only the topics the client may describe.
        None => broker
            .storage()
            .topics()
            .await?
            .iter()
            .filter(|t| ctx.allowed(Operation::Describe, ResourceType::Topic, &t.name))
            .map(|t| describe(ctx, t, request.include_topic_authorized_operations))
            .collect(),
        Some(requested) => {
            let mut out = Vec::with_capacity(requested.len());
            let mut all = None;
            for want in requested {
                // A topic id names the topic whatever the name field holds: the Java client
                // asks by id with the name left at its default, "" (Kafka looks ids up first).
                let by_name = want.name.as_ref().filter(|_| want.topic_id.is_nil());
                let found = match by_name {
                    // A topic the client may not describe is refused whether it exists or not,
                    // so its existence is not told; creating one needs CREATE too.
                    Some(name) if !ctx.allowed(Operation::Describe, ResourceType::Topic, name) => {
                        Err(not_authorized(ResourceType::Topic, name))
                    }
                    Some(name) => {
                        let may_create = ctx.allowed_on_cluster(Operation::Create) || ctx.allowed(Operation::Create, ResourceType::Topic, name);
                        broker.topic_or_create(name, auto_create && may_create).await
                    }
                    None => {
                        if all.is_none() {
                            all = Some(broker.storage().topics().await?);
                        }
                        match all.iter().flatten().find(|t| t.id == want.topic_id) {
                            Some(t) if ctx.allowed(Operation::Describe, ResourceType::Topic, &t.name) => Ok(t.clone()),
                            Some(t) => Err(not_authorized(ResourceType::Topic, &t.name)),
                            None => Err(crate::BrokerError::kafka(ResponseError::UnknownTopicId, "no topic with that id")),
                        }
                    }
                };
                out.push(match found {
                    Ok(topic) => describe(ctx, &topic, request.include_topic_authorized_operations),
                    Err(e) => MetadataResponseTopic::default()
                        .with_error_code(ctx.error_code(&e))
                        .with_name(want.name.clone())
                        .with_topic_id(want.topic_id),
                });
            }
            out
        }
    };
    let live = broker.cluster.brokers();
    let brokers = live
        .iter()
        .map(|b| {
            let (host, port) = ctx.address_of(b);
            MetadataResponseBroker::default().with_node_id(BrokerId(b.node_id)).with_host(host).with_port(port)
        })
        .collect();
    // There is no controller of our own; the lowest live node id stands in for one.
    let controller = live.first().map_or(config.node_id, |b| b.node_id);
    // v8-10 carry the cluster's operations here (later versions ask DescribeCluster).
    let cluster_operations = match request.include_cluster_authorized_operations && (8..=10).contains(&ctx.version) {
        true => ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME),
        false => i32::MIN,
    };
    Ok(MetadataResponse::default()
        .with_cluster_authorized_operations(cluster_operations)
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(config.cluster_id.clone())))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics))
}

fn describe(ctx: &Ctx, topic: &Topic, with_operations: bool) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions)
        .map(|index| {
            let node = BrokerId(ctx.broker.cluster.leader(topic.id, index).node_id);
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    let operations = if with_operations { ctx.authorized_operations(ResourceType::Topic, &topic.name) } else { i32::MIN };
    MetadataResponseTopic::default()
        .with_topic_authorized_operations(operations)
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_partitions(partitions)
}
