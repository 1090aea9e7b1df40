//! The identity provider's keys from its JWKS endpoint (Kafka's
//! `sasl.oauthbearer.jwks.endpoint.url`): fetched when the broker starts, again every refresh
//! interval, and at once when a token names a key not yet seen (a rotation), but not more
//! often than every few seconds, so a stream of tokens with made-up key ids cannot turn the
//! broker against its identity provider.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::{BrokerError, Result};

/// Fetches closer together than this are skipped (the keys just read are as new).
pub const MIN_BETWEEN_FETCHES: Duration = Duration::from_secs(10);
/// How long one fetch may take.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct JwksEndpoint {
    url: reqwest::Url,
    client: reqwest::Client,
    pub refresh: Duration,
    /// When keys were last fetched; held while fetching, so concurrent asks wait for one fetch.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwksEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksEndpoint").field("url", &self.url.as_str()).field("refresh", &self.refresh).finish_non_exhaustive()
    }
}

impl JwksEndpoint {
    /// `ca_file`: a PEM certificate to trust beside the system's (a private identity provider).
    pub fn new(url: &str, refresh: Duration, ca_file: Option<&Path>) -> Result<JwksEndpoint> {
        let bad = |why: String| BrokerError::Config(format!("--sasl-oauthbearer-jwks-endpoint-url {url}: {why}"));
        let url = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(bad("must be https:// (or http://)".into()));
        }
        let mut client = reqwest::Client::builder().timeout(TIMEOUT);
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| bad(format!("CA file {}: {e}", path.display())))?;
            let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| bad(format!("CA file {}: {e}", path.display())))?;
            client = client.add_root_certificate(ca);
        }
        let client = client.build().map_err(|e| bad(e.to_string()))?;
        Ok(JwksEndpoint { url, client, refresh: refresh.max(MIN_BETWEEN_FETCHES), last_fetch: Default::default() })
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The key set's text, unless keys were fetched less than [`MIN_BETWEEN_FETCHES`] ago
    /// (`Ok(None)`).
    pub async fn fetch(&self) -> Result<Option<String>> {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < MIN_BETWEEN_FETCHES) {
            return Ok(None);
        }
        *last = Some(Instant::now());
        let failed = |e: reqwest::Error| BrokerError::Config(format!("JWKS endpoint {}: {e}", self.url));
        let response = self.client.get(self.url.clone()).send().await.map_err(failed)?.error_for_status().map_err(failed)?;
        Ok(Some(response.text().await.map_err(failed)?))
    }
}
