//! The HTTP webhook destination: one request per record (or per batch with `batch=true`).
//! A key's records are sent one after another in offset order, so order per key is kept;
//! different keys go side by side, `concurrency` requests at a time (default 16).
//!
//! Options: `url` (required), `method` (POST, PUT or PATCH), `format` (json, or proto: the record
//! as a `ductstream.v1.SinkRecord` message), `body` (`record`: the record as a JSON object, or
//! proto; `value`: the value as it is), `headers` (comma-separated
//! `Key:Value`), `timeout`, `max_retries`, `backoff_base`, `backoff_max`, `backoff_factor`,
//! `idempotency_header` (default `Idempotency-Key`), `signing_secret` (a `whsec_` secret:
//! Standard Webhooks `webhook-id`, `webhook-timestamp` and `webhook-signature` headers),
//! `batch`, `concurrency`.
//!
//! Answers: 2xx is delivered; 429 and 503 wait for `Retry-After` (or back off) and retry; other
//! 5xx, 408 and timeouts back off and retry, `max_retries` times, then the record is refused
//! (dead-lettered); other 4xx are refused at once; 410 Gone disables the destination (the
//! sink fails with the reason). A URL that cannot be reached after the retries fails the sink,
//! with nothing committed past what was delivered.

mod signature;

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};

use crate::format::{record_json, record_message};
use crate::retry::Backoff;
use crate::runtime::BatchLimits;
use crate::{Options, Refusal, Result, Sink, SinkBatch, SinkError, SinkRecord};
pub use signature::Signer;

/// Defaults of the runtime's batching for webhooks: small batches, sent soon.
pub const LIMITS: BatchLimits = BatchLimits { records: 500, bytes: 4 << 20, interval: Duration::from_millis(100) };

/// The header CDC records carry their commit LSN in.
const LSN_HEADER: &str = "ductstream.lsn";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// The record as a JSON object.
    Record,
    /// The value as it is.
    Value,
    /// The record as a `ductstream.v1.SinkRecord` message (`format=proto`).
    Proto,
}

pub struct HttpSink {
    client: reqwest::Client,
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: Body,
    max_retries: u32,
    backoff: Backoff,
    idempotency_header: HeaderName,
    signer: Option<Signer>,
    batch: bool,
    /// Requests in flight at once, each for a different key.
    concurrency: usize,
}

/// How one request ended.
enum Answer {
    Delivered,
    /// Try again after this long (Retry-After), or after the backoff.
    Retry { after: Option<Duration>, reason: String },
    /// Refused for good: dead-letter the record(s).
    Refused(String),
    Gone,
}

impl HttpSink {
    pub fn new(mut options: Options) -> Result<HttpSink> {
        let url_text = options.required("url")?;
        let url = Url::parse(&url_text).map_err(|e| SinkError::Config(format!("http destination: url {url_text:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SinkError::Config(format!("http destination: url {url_text:?} must be http or https")));
        }
        let method = match options.choice("method", "POST", &["post", "put", "patch"])?.as_str() {
            "put" => Method::PUT,
            "patch" => Method::PATCH,
            _ => Method::POST,
        };
        let proto = options.choice("format", "json", &["json", "proto"])? == "proto";
        let body = match (options.choice("body", "record", &["record", "value"])?.as_str(), proto) {
            ("value", _) => Body::Value,
            (_, true) => Body::Proto,
            _ => Body::Record,
        };
        let headers = parse_headers(&options.string_or("headers", ""))?;
        let timeout = options.duration("timeout", Duration::from_secs(10))?;
        let max_retries = options.parse("max_retries", 5u32)?;
        let backoff = Backoff {
            base: options.duration("backoff_base", Duration::from_millis(100))?,
            max: options.duration("backoff_max", Duration::from_secs(10))?,
            factor: options.parse("backoff_factor", 2.0f64)?,
        };
        let idempotency_header = options.string_or("idempotency_header", "Idempotency-Key");
        let idempotency_header = HeaderName::from_bytes(idempotency_header.as_bytes())
            .map_err(|e| SinkError::Config(format!("http destination: idempotency_header {idempotency_header:?}: {e}")))?;
        let signer = options.string("signing_secret").map(|s| Signer::new(&s)).transpose()?;
        let batch = options.parse("batch", false)?;
        let concurrency = options.parse("concurrency", 16usize)?.max(1);
        options.finish()?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| SinkError::Config(format!("http destination: cannot build a client: {e}")))?;
        Ok(HttpSink { client, url, method, headers, body, max_retries, backoff, idempotency_header, signer, batch, concurrency })
    }

    /// Sends one body until it is delivered, refused, or the retries run out.
    async fn deliver(&self, key: &str, body: Bytes, content_type: &'static str) -> Result<Option<String>> {
        let mut attempt = 0u32;
        loop {
            let answer = self.send(key, body.clone(), content_type).await;
            let (after, reason) = match answer {
                Ok(Answer::Delivered) => return Ok(None),
                Ok(Answer::Refused(reason)) => return Ok(Some(reason)),
                Ok(Answer::Gone) => {
                    return Err(SinkError::Fatal(format!("{} answered 410 Gone: the destination is disabled", self.url)));
                }
                Ok(Answer::Retry { after, reason }) => (after, reason),
                Err(unreachable) => {
                    if attempt >= self.max_retries {
                        return Err(SinkError::Fatal(format!("cannot reach {} after {} retries: {unreachable}", self.url, attempt)));
                    }
                    (None, unreachable)
                }
            };
            if attempt >= self.max_retries {
                return Ok(Some(format!("{reason} (after {attempt} retries)")));
            }
            attempt += 1;
            tracing::debug!(url = %self.url, attempt, reason = %reason, "webhook retry");
            tokio::time::sleep(after.unwrap_or_else(|| self.backoff.delay(attempt))).await;
        }
    }

    /// One request. Err: the server could not be reached or did not answer in time.
    async fn send(&self, key: &str, body: Bytes, content_type: &'static str) -> Result<Answer, String> {
        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, content_type)
            .header(self.idempotency_header.clone(), key);
        if let Some(signer) = &self.signer {
            let timestamp = now_seconds();
            request = request
                .header("webhook-id", key)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signer.sign(key, timestamp, &body));
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Ok(Answer::Retry { after: None, reason: "timed out".into() }),
            Err(e) => return Err(describe(&e)),
        };
        let status = response.status();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        if status.is_success() {
            return Ok(Answer::Delivered);
        }
        let text = response.text().await.unwrap_or_default();
        let reason = format!("HTTP {}: {}", status.as_u16(), text.chars().take(200).collect::<String>());
        Ok(match status {
            StatusCode::GONE => Answer::Gone,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Answer::Retry { after: retry_after, reason },
            StatusCode::REQUEST_TIMEOUT => Answer::Retry { after: None, reason },
            s if s.is_server_error() => Answer::Retry { after: None, reason },
            _ => Answer::Refused(reason),
        })
    }

    /// Sends records one after another; the reasons of those refused.
    async fn send_in_order(&self, records: Vec<&SinkRecord>) -> Result<Vec<Refusal>> {
        let mut refused = Vec::new();
        for record in records {
            let (body, content_type) = self.body_of(record);
            if let Some(reason) = self.deliver(&idempotency_key(record), body, content_type).await? {
                refused.push(Refusal { offset: record.offset, reason });
            }
        }
        Ok(refused)
    }

    fn body_of(&self, record: &SinkRecord) -> (Bytes, &'static str) {
        match self.body {
            Body::Record => (Bytes::from(record_json(record).to_string()), "application/json"),
            Body::Proto => (Bytes::from(prost::Message::encode_to_vec(&record_message(record))), "application/x-protobuf"),
            Body::Value => {
                let value = record.value.clone().unwrap_or_default();
                let is_json = serde_json::from_slice::<serde_json::Value>(&value).is_ok();
                (value, if is_json { "application/json" } else { "application/octet-stream" })
            }
        }
    }
}

#[async_trait]
impl Sink for HttpSink {
    async fn open(&mut self) -> Result<()> {
        Ok(())
    }

    async fn write(&mut self, batch: &SinkBatch) -> Result<Vec<Refusal>> {
        if self.batch {
            let Some(first) = batch.records.first() else { return Ok(Vec::new()) };
            let body: Vec<serde_json::Value> = batch.records.iter().map(record_json).collect();
            let key = digest(&format!("{}\0{}\0{}\0{}", batch.topic, batch.partition, first.offset, batch.last_offset));
            let refused = self.deliver(&key, Bytes::from(serde_json::Value::Array(body).to_string()), "application/json").await?;
            return Ok(refused.map_or_else(Vec::new, |reason| {
                batch.records.iter().map(|r| Refusal { offset: r.offset, reason: reason.clone() }).collect()
            }));
        }
        // Records of one key go one after another, in offset order; different keys (and
        // records without a key) go side by side, up to `concurrency` requests at a time.
        let mut by_key: Vec<Vec<&SinkRecord>> = Vec::new();
        let mut index: std::collections::HashMap<&Bytes, usize> = std::collections::HashMap::new();
        for record in &batch.records {
            match record.key.as_ref() {
                Some(key) => match index.get(key) {
                    Some(&i) => by_key[i].push(record),
                    None => {
                        index.insert(key, by_key.len());
                        by_key.push(vec![record]);
                    }
                },
                None => by_key.push(vec![record]),
            }
        }
        let mut sends: Vec<futures::future::BoxFuture<'_, Result<Vec<Refusal>>>> = Vec::with_capacity(by_key.len());
        for records in by_key {
            sends.push(Box::pin(self.send_in_order(records)));
        }
        let mut refusals = Vec::new();
        let mut results = futures::stream::iter(sends).buffer_unordered(self.concurrency);
        while let Some(outcome) = results.next().await {
            refusals.extend(outcome?);
        }
        refusals.sort_by_key(|r| r.offset);
        Ok(refusals)
    }
}

/// The same record always gets the same key: for CDC records, from the table (topic), the
/// primary key (record key) and the commit LSN, so a change read again by another flow run
/// keeps its key; otherwise from topic, partition and offset.
pub fn idempotency_key(record: &SinkRecord) -> String {
    match record.header(LSN_HEADER) {
        Some(lsn) => {
            let key = record.key.as_deref().unwrap_or_default();
            digest(&format!("{}\0{}\0{}", record.topic, String::from_utf8_lossy(key), String::from_utf8_lossy(lsn)))
        }
        None => digest(&format!("{}\0{}\0{}", record.topic, record.partition, record.offset)),
    }
}

fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    format!("msg_{}", hash.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>())
}

/// `Key:Value,Key2:Value2`.
fn parse_headers(text: &str) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |e: String| SinkError::Config(format!("http destination: header {pair:?}: {e}"));
        let (name, value) = pair.split_once(':').ok_or_else(|| bad("use Key:Value".into()))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| bad(e.to_string()))?;
        let value = HeaderValue::from_str(value.trim()).map_err(|e| bad(e.to_string()))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Seconds (`Retry-After: 2`); an HTTP date is taken as a short wait.
fn parse_retry_after(value: &str) -> Option<Duration> {
    match value.trim().parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds.min(3600))),
        Err(_) => Some(Duration::from_secs(1)),
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_keys() -> Result<()> {
        let h = parse_headers("Authorization: Bearer x, X-Team:data")?;
        assert_eq!(h.get("authorization").map(|v| v.as_bytes()), Some(&b"Bearer x"[..]));
        assert!(parse_headers("nocolon").is_err());
        let mut r = SinkRecord { topic: "app.public.users".into(), partition: 0, offset: 5, timestamp: 0, key: Some(Bytes::from_static(br#"{"id":1}"#)), value: None, headers: vec![] };
        let plain = idempotency_key(&r);
        r.offset = 6;
        assert_ne!(plain, idempotency_key(&r));
        r.headers.push((LSN_HEADER.into(), Some(Bytes::from_static(b"0/16B3748"))));
        let cdc = idempotency_key(&r);
        r.offset = 99; // read again elsewhere: same change, same key
        assert_eq!(cdc, idempotency_key(&r));
        Ok(())
    }
}
