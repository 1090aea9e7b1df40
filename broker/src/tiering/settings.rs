//! The remote tier's flags, and what each topic asks of it (Kafka's topic configs
//! `remote.storage.enable`, `local.retention.ms` and `local.retention.bytes`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::ArgAction;
use ductstream_storage::tiered::LocalRetention;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, RetryConfig};

use crate::config::BrokerConfig;
use crate::topic_config::{is_compacted, retention_bytes, retention_ms};
use crate::{BrokerError, Result};

pub const REMOTE_STORAGE_ENABLE: &str = "remote.storage.enable";
pub const LOCAL_RETENTION_MS: &str = "local.retention.ms";
pub const LOCAL_RETENTION_BYTES: &str = "local.retention.bytes";

/// Where the remote tier lives and how it behaves (`--tier-*`), and the defaults of the
/// topic configs that use it.
#[derive(Debug, Clone, clap::Args)]
pub struct TierArgs {
    /// S3 bucket of the remote tier: old segments of topics with `remote.storage.enable` move
    /// there. Without it there is no remote tier and topics cannot enable it.
    #[arg(long, env = "DUCTSTREAM_TIER_S3_BUCKET")]
    pub tier_s3_bucket: Option<String>,

    /// Folder inside the bucket for the objects.
    #[arg(long, env = "DUCTSTREAM_TIER_S3_PREFIX", default_value = "")]
    pub tier_s3_prefix: String,

    /// Endpoint of an S3-compatible store (`http://127.0.0.1:8333`); path-style requests.
    #[arg(long, env = "DUCTSTREAM_TIER_S3_ENDPOINT")]
    pub tier_s3_endpoint: Option<String>,

    #[arg(long, env = "DUCTSTREAM_TIER_S3_REGION", default_value = "us-east-1")]
    pub tier_s3_region: String,

    /// Credentials; by default the usual AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "DUCTSTREAM_TIER_S3_ACCESS_KEY_ID")]
    pub tier_s3_access_key_id: Option<String>,

    #[arg(long, env = "DUCTSTREAM_TIER_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub tier_s3_secret_access_key: Option<String>,

    /// Memory for recently read remote data, so consumers reading the same old stretch go to
    /// the object store once.
    #[arg(long, env = "DUCTSTREAM_TIER_CACHE_BYTES", default_value_t = 64 << 20)]
    pub tier_cache_bytes: u64,

    /// How often each broker uploads the sealed segments of the partitions it leads and trims
    /// what is past local retention (Kafka's `remote.log.manager.task.interval.ms`).
    #[arg(long, env = "DUCTSTREAM_TIER_INTERVAL_MS", default_value_t = 30_000)]
    pub tier_interval_ms: u64,

    /// Iceberg REST catalog (`http://host:8181`): tiered topics are also appended, as Parquet
    /// files partitioned by day, to a table per topic there as they are uploaded.
    #[arg(long, env = "DUCTSTREAM_TIER_ICEBERG_CATALOG_URL")]
    pub tier_iceberg_catalog_url: Option<String>,

    /// The catalog's warehouse (an S3 Tables bucket on SeaweedFS or AWS).
    #[arg(long, env = "DUCTSTREAM_TIER_ICEBERG_WAREHOUSE", default_value = "")]
    pub tier_iceberg_warehouse: String,

    /// Namespace of the topics' tables; a topic's table is its name in lower case with `_`
    /// for anything but letters and digits.
    #[arg(long, env = "DUCTSTREAM_TIER_ICEBERG_NAMESPACE", default_value = "ductstream")]
    pub tier_iceberg_namespace: String,

    /// OAuth2 client id and secret for the catalog; by default the S3 credentials, none if
    /// those are not given either.
    #[arg(long, env = "DUCTSTREAM_TIER_ICEBERG_CLIENT_ID")]
    pub tier_iceberg_client_id: Option<String>,

    #[arg(long, env = "DUCTSTREAM_TIER_ICEBERG_CLIENT_SECRET", hide_env_values = true)]
    pub tier_iceberg_client_secret: Option<String>,

    /// `remote.storage.enable` of topics that do not set it.
    #[arg(long, env = "DUCTSTREAM_REMOTE_STORAGE_ENABLE", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub remote_storage_enable: bool,

    /// How long uploaded records stay on local storage too, unless a topic's
    /// `local.retention.ms` says otherwise (Kafka's `log.local.retention.ms`); -2: as long as
    /// `retention.ms`.
    #[arg(long, env = "DUCTSTREAM_LOG_LOCAL_RETENTION_MS", default_value_t = -2, allow_hyphen_values = true)]
    pub log_local_retention_ms: i64,

    /// Bytes of each partition kept on local storage once uploaded (Kafka's
    /// `log.local.retention.bytes`); -2: as `retention.bytes`.
    #[arg(long, env = "DUCTSTREAM_LOG_LOCAL_RETENTION_BYTES", default_value_t = -2, allow_hyphen_values = true)]
    pub log_local_retention_bytes: i64,
}

/// What the broker's config keeps of [`TierArgs`].
#[derive(Debug, Clone)]
pub struct TierDefaults {
    /// Whether there is a remote tier at all.
    pub configured: bool,
    pub remote_storage_enable: bool,
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
    pub interval: Duration,
}

impl TierArgs {
    pub fn defaults(&self) -> TierDefaults {
        TierDefaults {
            configured: self.tier_s3_bucket.is_some(),
            remote_storage_enable: self.remote_storage_enable,
            local_retention_ms: self.log_local_retention_ms,
            local_retention_bytes: self.log_local_retention_bytes,
            interval: Duration::from_millis(self.tier_interval_ms.max(10)),
        }
    }

    /// The bucket as an object store, when one is named.
    pub fn object_store(&self) -> Result<Option<Arc<dyn ObjectStore>>> {
        let Some(bucket) = &self.tier_s3_bucket else { return Ok(None) };
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_region(&self.tier_s3_region);
        if let Some(endpoint) = &self.tier_s3_endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(key) = &self.tier_s3_access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.tier_s3_secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        // A few quick retries: a fetch waiting on S3 holds its consumer, and the next fetch
        // (or the next upload pass) tries again anyway.
        let retry = RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(10), ..RetryConfig::default() };
        let store = builder
            .with_retry(retry)
            .build()
            .map_err(|e| BrokerError::Config(format!("--tier-s3-bucket {bucket}: {e}")))?;
        Ok(Some(Arc::new(store)))
    }
}

impl TierArgs {
    /// The Iceberg catalog's topics, when `--tier-iceberg-catalog-url` names one.
    #[cfg(feature = "sinks")]
    pub fn lake(&self) -> Result<Option<ductstream_sinks::iceberg::Lake>> {
        use ductstream_sinks::iceberg::{CatalogConfig, Lake, S3Access};
        let Some(uri) = &self.tier_iceberg_catalog_url else { return Ok(None) };
        if self.tier_s3_bucket.is_none() {
            return Err(BrokerError::Config("--tier-iceberg-catalog-url needs --tier-s3-bucket: tables are appended as data is uploaded".into()));
        }
        let id = self.tier_iceberg_client_id.clone().or_else(|| self.tier_s3_access_key_id.clone());
        let secret = self.tier_iceberg_client_secret.clone().or_else(|| self.tier_s3_secret_access_key.clone());
        let catalog = CatalogConfig {
            uri: uri.clone(),
            warehouse: self.tier_iceberg_warehouse.clone(),
            namespace: self.tier_iceberg_namespace.clone(),
            credential: id.zip(secret),
        };
        let s3 = S3Access {
            endpoint: self.tier_s3_endpoint.clone(),
            region: self.tier_s3_region.clone(),
            access_key_id: self.tier_s3_access_key_id.clone(),
            secret_access_key: self.tier_s3_secret_access_key.clone(),
        };
        Lake::new(catalog, s3).map(Some).map_err(|e| BrokerError::Config(format!("--tier-iceberg-catalog-url: {e}")))
    }
}

/// Whether `configs` (a topic's) ask for the remote tier.
/// Compacted topics never are (compaction rewrites what an object would hold), whatever the
/// broker's default.
pub fn remote_storage_enabled(configs: &BTreeMap<String, String>, broker: &BrokerConfig) -> bool {
    broker.tier.configured
        && !is_compacted(configs)
        && configs.get(REMOTE_STORAGE_ENABLE).map_or(broker.tier.remote_storage_enable, |v| v == "true")
}

/// The topic's local retention, resolved as Kafka does: -2 means the topic's `retention.*`,
/// -1 keeps everything locally.
pub fn local_retention(configs: &BTreeMap<String, String>, broker: &BrokerConfig, now_ms: i64) -> LocalRetention {
    let get = |name: &str, default: i64| configs.get(name).and_then(|v| v.parse::<i64>().ok()).unwrap_or(default);
    let ms = match get(LOCAL_RETENTION_MS, broker.tier.local_retention_ms) {
        -2 => retention_ms(configs, broker),
        ms if ms >= 0 => Some(ms),
        _ => None,
    };
    let bytes = match get(LOCAL_RETENTION_BYTES, broker.tier.local_retention_bytes) {
        -2 => retention_bytes(configs),
        b if b >= 0 => Some(b as u64),
        _ => None,
    };
    LocalRetention { older_than: ms.map(|ms| now_ms.saturating_sub(ms)), max_bytes: bytes }
}
