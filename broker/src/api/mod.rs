//! One file per Kafka request. Each `handle` takes the decoded request and returns the
//! response; the connection decodes, dispatches and encodes.

mod acl_filter;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_client_quotas;
mod alter_user_scram_credentials;
mod alter_configs;
mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_transactions;
mod describe_user_scram_credentials;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod produce;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
pub(crate) mod throttle;
mod txn_offset_commit;

use std::sync::atomic::{AtomicI16, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::security::{Principal, Session};
use crate::{Broker, BrokerError, Result};

pub use api_versions::unsupported_version_response;
pub use crate::metrics::serve as serve_metrics;

/// Every API this broker implements, with the versions it implements and tests. ApiVersions
/// advertises exactly this table.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// Whether `version` of `key` is implemented.
pub fn is_supported(key: ApiKey, version: i16) -> bool {
    SUPPORTED.iter().any(|(k, min, max)| *k == key && (*min..=*max).contains(&version))
}

/// One request's context: who asked, at which version, and the first error code answered
/// (for metrics).
pub struct Ctx {
    pub broker: Arc<Broker>,
    pub api: ApiKey,
    pub version: i16,
    pub client_id: String,
    /// The client's address as Kafka shows it (`/127.0.0.1`).
    pub client_host: String,
    /// The connection's listener and who it authenticated as.
    pub session: Arc<Session>,
    first_error: AtomicI16,
}

impl Ctx {
    pub fn new(broker: Arc<Broker>, api: ApiKey, version: i16, client_id: String, session: Arc<Session>) -> Arc<Ctx> {
        let client_host = format!("/{}", session.peer.ip());
        Arc::new(Ctx { broker, api, version, client_id, client_host, session, first_error: AtomicI16::new(0) })
    }

    /// Who made the request (ANONYMOUS on a listener that authenticates nobody).
    pub fn principal(&self) -> Principal {
        self.session.principal().unwrap_or_else(Principal::anonymous)
    }

    /// Counts `amount` against the client's `key` quota (by user and client id) and holds its
    /// connection for the throttle; returns the throttle in ms for the response, 0 without
    /// a quota.
    pub fn throttle(&self, key: &str, amount: f64) -> i32 {
        if !self.broker.quotas.any() {
            return 0;
        }
        let wait = self.broker.quotas.record(key, &self.principal().name, &self.client_id, amount);
        if wait.is_zero() {
            return 0;
        }
        self.session.mute_for(wait);
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        self.broker.metrics.throttled(ms as u64);
        ms
    }

    /// Whether the authorizer lets this request's principal do `operation` on the resource.
    pub fn allowed(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        // Without an authorizer, the hot paths (produce, fetch) pay nothing for the question.
        if !self.broker.authorizer.enabled() {
            return true;
        }
        let host = self.session.peer.ip().to_string();
        self.broker.authorizer.authorize(&self.principal(), &host, operation, resource_type, name)
    }

    /// What the principal may do with the resource, as Kafka's authorized-operations fields
    /// carry it: bit `code` set for each allowed operation the resource type supports (all of
    /// them without an authorizer, as in Kafka).
    pub fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        resource_type
            .supported_operations()
            .iter()
            .filter(|op| self.allowed(**op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    /// [`Ctx::allowed`] on the cluster.
    pub fn allowed_on_cluster(&self, operation: Operation) -> bool {
        self.allowed(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Where the client reaches `broker`: its address on the listener this request came in
    /// by (brokers sharing a database are expected to name the same listeners), else its
    /// first.
    pub fn address_of(&self, broker: &ductstream_storage::BrokerInfo) -> (StrBytes, i32) {
        let (host, port) = broker.endpoint(&self.session.listener.name).unwrap_or((&broker.host, broker.port));
        (StrBytes::from_string(host.to_string()), port)
    }

    /// Notes an error code going into the response and returns it.
    pub fn code(&self, error: ResponseError) -> i16 {
        let code = error.code();
        let _ = self.first_error.compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
        code
    }

    /// The code of a broker error, noted.
    pub fn error_code(&self, error: &BrokerError) -> i16 {
        self.code(error.code())
    }

    /// The first error code this request answered with (0 for none).
    pub fn first_error(&self) -> i16 {
        self.first_error.load(Ordering::Relaxed)
    }
}

/// A handler's answer.
pub enum Outcome {
    /// Send this response.
    Now(Box<ResponseKind>),
    /// Send this response when it is ready; later requests may be processed meanwhile, but
    /// responses still go out in request order.
    Later(BoxFuture<'static, ResponseKind>),
    /// Send nothing (a produce with acks=0).
    Silent,
    /// A bare SASL token, framed but without a response header (after SaslHandshake v0).
    Raw(Vec<u8>),
}

/// Runs the handler for `request`.
pub async fn dispatch(ctx: &Arc<Ctx>, request: RequestKind) -> Result<Outcome> {
    let now = |r: ResponseKind| Ok(Outcome::Now(Box::new(r)));
    match request {
        RequestKind::ApiVersions(r) => now(ResponseKind::ApiVersions(api_versions::handle(ctx, r))),
        RequestKind::Metadata(r) => now(ResponseKind::Metadata(metadata::handle(ctx, r).await?)),
        RequestKind::Produce(r) => {
            let bytes = throttle::produced_bytes(&r);
            Ok(throttle::produce(ctx, bytes, produce::handle(ctx, r).await?))
        }
        RequestKind::Fetch(r) => now(ResponseKind::Fetch(throttle::fetch(ctx, fetch::handle(ctx, r).await?))),
        RequestKind::ListOffsets(r) => now(ResponseKind::ListOffsets(list_offsets::handle(ctx, r).await)),
        RequestKind::CreateTopics(r) => now(ResponseKind::CreateTopics(create_topics::handle(ctx, r).await)),
        RequestKind::DeleteTopics(r) => now(ResponseKind::DeleteTopics(delete_topics::handle(ctx, r).await)),
        RequestKind::CreatePartitions(r) => now(ResponseKind::CreatePartitions(create_partitions::handle(ctx, r).await)),
        RequestKind::DescribeConfigs(r) => now(ResponseKind::DescribeConfigs(describe_configs::handle(ctx, r).await)),
        RequestKind::IncrementalAlterConfigs(r) => {
            now(ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(ctx, r).await))
        }
        RequestKind::InitProducerId(r) => now(ResponseKind::InitProducerId(init_producer_id::handle(ctx, r).await)),
        RequestKind::DescribeCluster(r) => now(ResponseKind::DescribeCluster(describe_cluster::handle(ctx, r))),
        RequestKind::DeleteRecords(r) => now(ResponseKind::DeleteRecords(delete_records::handle(ctx, r).await)),
        RequestKind::FindCoordinator(r) => now(ResponseKind::FindCoordinator(find_coordinator::handle(ctx, r))),
        RequestKind::JoinGroup(r) => now(ResponseKind::JoinGroup(join_group::handle(ctx, r).await?)),
        RequestKind::SyncGroup(r) => now(ResponseKind::SyncGroup(sync_group::handle(ctx, r).await?)),
        RequestKind::Heartbeat(r) => now(ResponseKind::Heartbeat(heartbeat::handle(ctx, r).await?)),
        RequestKind::LeaveGroup(r) => now(ResponseKind::LeaveGroup(leave_group::handle(ctx, r).await?)),
        RequestKind::OffsetCommit(r) => now(ResponseKind::OffsetCommit(offset_commit::handle(ctx, r).await?)),
        RequestKind::OffsetFetch(r) => now(ResponseKind::OffsetFetch(offset_fetch::handle(ctx, r).await?)),
        RequestKind::DescribeGroups(r) => now(ResponseKind::DescribeGroups(describe_groups::handle(ctx, r).await?)),
        RequestKind::ListGroups(r) => now(ResponseKind::ListGroups(list_groups::handle(ctx, r).await?)),
        RequestKind::DeleteGroups(r) => now(ResponseKind::DeleteGroups(delete_groups::handle(ctx, r).await?)),
        RequestKind::OffsetDelete(r) => now(ResponseKind::OffsetDelete(offset_delete::handle(ctx, r).await?)),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            now(ResponseKind::ConsumerGroupHeartbeat(consumer_group_heartbeat::handle(ctx, r).await?))
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            now(ResponseKind::ConsumerGroupDescribe(consumer_group_describe::handle(ctx, r).await?))
        }
        RequestKind::AlterConfigs(r) => now(ResponseKind::AlterConfigs(alter_configs::handle(ctx, r).await)),
        RequestKind::DescribeLogDirs(r) => now(ResponseKind::DescribeLogDirs(describe_log_dirs::handle(ctx, r).await?)),
        RequestKind::CreateAcls(r) => now(ResponseKind::CreateAcls(create_acls::handle(ctx, r).await)),
        RequestKind::DescribeAcls(r) => now(ResponseKind::DescribeAcls(describe_acls::handle(ctx, r).await)),
        RequestKind::DeleteAcls(r) => now(ResponseKind::DeleteAcls(delete_acls::handle(ctx, r).await)),
        RequestKind::AddPartitionsToTxn(r) => now(ResponseKind::AddPartitionsToTxn(add_partitions_to_txn::handle(ctx, r).await?)),
        RequestKind::AddOffsetsToTxn(r) => now(ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(ctx, r).await)),
        RequestKind::EndTxn(r) => now(ResponseKind::EndTxn(end_txn::handle(ctx, r).await)),
        RequestKind::TxnOffsetCommit(r) => now(ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(ctx, r).await?)),
        RequestKind::DescribeTransactions(r) => now(ResponseKind::DescribeTransactions(describe_transactions::handle(ctx, r).await?)),
        RequestKind::ListTransactions(r) => now(ResponseKind::ListTransactions(list_transactions::handle(ctx, r).await?)),
        RequestKind::SaslHandshake(r) => now(ResponseKind::SaslHandshake(sasl_handshake::handle(ctx, r).await)),
        RequestKind::SaslAuthenticate(r) => now(ResponseKind::SaslAuthenticate(sasl_authenticate::handle(ctx, r).await)),
        RequestKind::DescribeUserScramCredentials(r) => {
            now(ResponseKind::DescribeUserScramCredentials(describe_user_scram_credentials::handle(ctx, r).await))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            now(ResponseKind::AlterUserScramCredentials(alter_user_scram_credentials::handle(ctx, r).await))
        }
        RequestKind::DescribeClientQuotas(r) => now(ResponseKind::DescribeClientQuotas(describe_client_quotas::handle(ctx, r))),
        RequestKind::AlterClientQuotas(r) => now(ResponseKind::AlterClientQuotas(alter_client_quotas::handle(ctx, r).await)),
        _ => Err(BrokerError::UnsupportedVersion { api: ctx.api, version: ctx.version }),
    }
}

/// NOT_COORDINATOR when another broker coordinates `group`.
pub fn not_coordinator(ctx: &Ctx, group: &str) -> Option<ResponseError> {
    (!ctx.broker.cluster.coordinates(group)).then_some(ResponseError::NotCoordinator)
}

/// GROUP_AUTHORIZATION_FAILED unless the client may do `operation` on `group`.
pub fn group_denied(ctx: &Ctx, operation: Operation, group: &str) -> Option<ResponseError> {
    (!ctx.allowed(operation, ResourceType::Group, group)).then_some(ResponseError::GroupAuthorizationFailed)
}

/// An optional message for a response's `error_message` field.
pub fn message(error: &BrokerError) -> Option<StrBytes> {
    match error {
        // The code travels in its own field; the message is the text alone, as Kafka sends it
        // (kafka-topics prints "Topic 'x' already exists.", not "TopicAlreadyExists: ...").
        BrokerError::Kafka { message, .. } => Some(StrBytes::from_string(message.clone())),
        other => Some(StrBytes::from_string(other.to_string())),
    }
}
