//! The S3 destination (any S3-compatible store), through `object_store`.
//!
//! Options: `bucket` (required), `prefix`, `region` (default us-east-1), `endpoint` (for
//! S3-compatible stores; plain http allowed), `path_style` (default true with an endpoint),
//! `access_key_id`, `secret_access_key`, `session_token` (default: the usual AWS_* variables),
//! `format` (parquet by default, or json), `compression` (parquet: snappy, zstd, none),
//! `partition_by` (see [`layout::PartitionBy`]). Rotation is the runtime's batching:
//! `rotate_records`, `rotate_bytes`, `rotate_interval` — one batch per object (per directory).

mod layout;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, RetryConfig};

use crate::format::Format;
use crate::runtime::BatchLimits;
use crate::{Options, Refusal, Result, Sink, SinkBatch, SinkError};
pub use layout::{object_name, PartitionBy};

/// Default rotation: 100,000 records, 64 MiB held, or 10 s.
pub const LIMITS: BatchLimits = BatchLimits { records: 100_000, bytes: 64 << 20, interval: Duration::from_secs(10) };

pub struct S3Sink {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    format: Format,
    partition_by: PartitionBy,
}

impl S3Sink {
    pub fn new(mut options: Options) -> Result<S3Sink> {
        let bucket = options.required("bucket")?;
        let prefix = options.string_or("prefix", "");
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        builder = builder.with_region(options.string_or("region", "us-east-1"));
        let endpoint = options.string("endpoint");
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        let path_style = options.parse("path_style", endpoint.is_some())?;
        builder = builder.with_virtual_hosted_style_request(!path_style);
        if let Some(key) = options.string("access_key_id") {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = options.string("secret_access_key") {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = options.string("session_token") {
            builder = builder.with_token(token);
        }
        let format_name = options.choice("format", "parquet", crate::format::FORMATS)?;
        let compression = options.string("compression");
        let format = Format::parse(&format_name, compression.as_deref())?;
        let partition_by = PartitionBy::parse(&options.string_or("partition_by", ""))?;
        options.finish()?;
        // Few quick retries inside object_store: the runtime retries with backoff and shows
        // the error meanwhile, instead of one put hanging for minutes.
        let retry = RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(10), ..RetryConfig::default() };
        let store = builder
            .with_retry(retry)
            .build()
            .map_err(|e| SinkError::Config(format!("s3 destination: {e}")))?;
        Ok(S3Sink { store: Arc::new(store), bucket, prefix, format, partition_by })
    }

    fn classify(&self, e: object_store::Error) -> SinkError {
        let text = e.to_string();
        let fatal = matches!(e, object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })
            || ["NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"].iter().any(|m| text.contains(m));
        if fatal {
            SinkError::Fatal(format!("s3 bucket {:?}: {text}", self.bucket))
        } else {
            SinkError::Retriable(format!("s3 bucket {:?}: {text}", self.bucket))
        }
    }
}

#[async_trait]
impl Sink for S3Sink {
    /// Lists the prefix once: a missing bucket or wrong credentials fail here, with the reason.
    async fn open(&mut self) -> Result<()> {
        let prefix = Path::from(self.prefix.trim_matches('/'));
        match self.store.list_with_delimiter(Some(&prefix)).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => {
                Err(SinkError::Fatal(format!("s3 bucket {:?} does not exist", self.bucket)))
            }
            Err(e) => Err(self.classify(e)),
        }
    }

    async fn write(&mut self, batch: &SinkBatch) -> Result<Vec<Refusal>> {
        for (directory, records) in self.partition_by.group(&batch.records) {
            let owned: Vec<_> = records.into_iter().cloned().collect();
            let bytes = self.format.encode(&owned)?;
            let name = object_name(&self.prefix, &batch.topic, batch.partition, &directory, batch.first_offset, batch.last_offset, self.format.extension());
            match self.store.put(&Path::from(name), PutPayload::from_bytes(bytes)).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(SinkError::Fatal(format!("s3 bucket {:?} does not exist", self.bucket)));
                }
                Err(e) => return Err(self.classify(e)),
            }
        }
        Ok(Vec::new())
    }
}
