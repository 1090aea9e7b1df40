use std::collections::BTreeMap;
use std::sync::Arc;

use ductstream_sinks::runtime::SinkStatus;

use ductstream_storage::{Storage, Topic, TopicSpec};
use kafka_protocol::error::ResponseError;
use tokio_util::sync::CancellationToken;

use crate::config::{AuthorizerKind, BrokerConfig};
use crate::cluster::Cluster;
use crate::quotas::Quotas;
use crate::request_memory::RequestMemory;
use crate::security::authorizer::Authorizer;
use crate::groups::{Coordinator, GroupConfig};
use crate::log::Log;
use crate::metrics::Metrics;
use crate::transactions::TxnCoordinator;
use crate::{topic_config, BrokerError, Result};

/// What every request handler shares.
pub struct Broker {
    pub config: BrokerConfig,
    pub log: Arc<Log>,
    pub metrics: Metrics,
    pub groups: Arc<Coordinator>,
    pub cluster: Cluster,
    /// Cancelled when the broker starts shutting down: long polls return early.
    pub shutdown: CancellationToken,
    /// Transactional ids and their transactions.
    pub txns: Arc<TxnCoordinator>,
    /// Decides what each principal may do (or lets everyone do everything).
    pub authorizer: Arc<Authorizer>,
    /// Produce and fetch byte-rate quotas, and the traffic counted against them.
    pub quotas: Arc<Quotas>,
    /// The memory in-flight requests hold, bounded (`--queued-max-request-bytes`).
    pub(crate) request_memory: RequestMemory,
    /// The sinks this broker runs, by id, for metrics.
    pub sink_statuses: std::sync::Mutex<BTreeMap<String, Arc<SinkStatus>>>,
}

impl Broker {
    /// A broker on `storage`, with its saved consumer groups restored.
    pub async fn start(config: BrokerConfig, storage: Arc<dyn Storage>, groups: GroupConfig) -> Result<Arc<Broker>> {
        let cluster = Cluster::join(&storage, config.me(), config.broker_lease).await?;
        let authorizer = Arc::new(match config.authorizer {
            AuthorizerKind::None => Authorizer::disabled(),
            AuthorizerKind::Acl => Authorizer::new(&config.super_users, config.allow_everyone_if_no_acl_found),
        });
        // The first requests are decided with the stored ACLs, not with none.
        if authorizer.enabled() {
            authorizer.refresh(storage.as_ref()).await?;
        }
        // Likewise the first requests are held to the stored quotas.
        let quotas = Arc::new(Quotas::default());
        quotas.refresh(storage.as_ref()).await?;
        let groups = Coordinator::new(storage.clone(), groups);
        let log = Arc::new(Log::new(storage.clone()));
        let txns = TxnCoordinator::new(storage, log.clone());
        let request_memory = RequestMemory::new(config.queued_max_request_bytes);
        Ok(Arc::new(Broker {
            cluster,
            config,
            log,
            txns,
            metrics: Metrics::default(),
            groups,
            shutdown: CancellationToken::new(),
            authorizer,
            quotas,
            request_memory,
            sink_statuses: Default::default(),
        }))
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        self.log.storage()
    }

    /// The topic, created with the broker defaults when it does not exist and `auto_create`
    /// allows it (and the broker's `auto.create.topics.enable` does too).
    pub async fn topic_or_create(&self, name: &str, auto_create: bool) -> Result<Topic> {
        if let Some(topic) = self.storage().topic(name).await? {
            return Ok(topic);
        }
        if !(auto_create && self.config.auto_create_topics) {
            return Err(BrokerError::kafka(ResponseError::UnknownTopicOrPartition, format!("topic {name:?} does not exist")));
        }
        topic_config::validate_topic_name(name)?;
        let spec = TopicSpec { name: name.to_owned(), partitions: self.config.num_partitions, configs: Default::default() };
        match self.storage().create_topic(spec).await {
            Ok(topic) => {
                tracing::info!(topic = name, partitions = topic.partitions, "auto-created topic");
                Ok(topic)
            }
            // Another request created it first.
            Err(ductstream_storage::StorageError::TopicExists(_)) => self
                .storage()
                .topic(name)
                .await?
                .ok_or_else(|| BrokerError::kafka(ResponseError::UnknownTopicOrPartition, "topic vanished")),
            Err(e) => Err(e.into()),
        }
    }
}
