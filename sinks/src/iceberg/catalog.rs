//! An Iceberg REST catalog client: the calls a writer that appends needs (config, namespace,
//! load or create a table, commit a snapshot), with OAuth2 client credentials when given.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::schema::{TableSchema, PARTITION_SPEC};
use crate::{Result, SinkError};

/// Where the catalog is and who DuctStream is to it.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// `http://host:8181`.
    pub uri: String,
    pub warehouse: String,
    pub namespace: String,
    /// OAuth2 client id and secret, exchanged at `/v1/oauth/tokens`.
    pub credential: Option<(String, String)>,
}

/// What a writer needs of a table's metadata.
#[derive(Debug, Clone)]
pub struct TableMetadata {
    pub location: String,
    pub current_snapshot_id: Option<i64>,
    pub last_sequence_number: i64,
    /// The current snapshot's manifest list and summary.
    pub manifest_list: Option<String>,
    pub summary: BTreeMap<String, String>,
    /// The current schema, and the highest schema id the table has had.
    pub schema: TableSchema,
    pub last_schema_id: i32,
}

pub struct Catalog {
    config: CatalogConfig,
    http: reqwest::Client,
    /// The bearer token and the path prefix from `/v1/config`, once fetched.
    session: Mutex<Option<(Option<String>, String)>>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> SinkError {
    SinkError::Retriable(format!("iceberg catalog {what}: {e}"))
}

impl Catalog {
    pub fn new(config: CatalogConfig) -> Result<Catalog> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| SinkError::Config(format!("iceberg catalog client: {e}")))?;
        Ok(Catalog { config, http, session: Mutex::new(None) })
    }

    /// The token and prefix, fetched (and the namespace created) on first use or after a 401.
    async fn session(&self, renew: bool) -> Result<(Option<String>, String)> {
        let mut session = self.session.lock().await;
        if let Some(s) = session.as_ref().filter(|_| !renew) {
            return Ok(s.clone());
        }
        let base = self.config.uri.trim_end_matches('/');
        let token = match &self.config.credential {
            None => None,
            Some((id, secret)) => {
                let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret), ("scope", "catalog")];
                let resp = self.http.post(format!("{base}/v1/oauth/tokens")).form(&form).send().await.map_err(|e| unavailable("token", e))?;
                let status = resp.status();
                let body: Value = resp.json().await.map_err(|e| unavailable("token", e))?;
                if !status.is_success() {
                    return Err(SinkError::Fatal(format!("iceberg catalog refused the credentials ({status}): {body}")));
                }
                body["access_token"].as_str().map(str::to_owned)
            }
        };
        let mut req = self.http.get(format!("{base}/v1/config")).query(&[("warehouse", &self.config.warehouse)]);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let config: Value = check(req.send().await.map_err(|e| unavailable("config", e))?, "config").await?;
        let prefix = config["overrides"]["prefix"].as_str().or(config["defaults"]["prefix"].as_str()).unwrap_or("").to_owned();
        let fresh = (token, prefix);
        *session = Some(fresh.clone());
        drop(session);
        let body = json!({"namespace": [self.config.namespace]});
        match self.call(reqwest::Method::POST, "namespaces", Some(body), &fresh).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("409") => {}
            Err(e) => return Err(e),
        }
        Ok(fresh)
    }

    fn url(&self, prefix: &str, path: &str) -> String {
        let base = self.config.uri.trim_end_matches('/');
        if prefix.is_empty() { format!("{base}/v1/{path}") } else { format!("{base}/v1/{prefix}/{path}") }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>, session: &(Option<String>, String)) -> Result<(reqwest::StatusCode, Value)> {
        let mut req = self.http.request(method, self.url(&session.1, path));
        if let Some(t) = &session.0 {
            req = req.bearer_auth(t);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| unavailable(path, e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| unavailable(path, e))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok((status, value));
        }
        let message = format!("iceberg catalog {path}: {status} {value}");
        Err(match status.as_u16() {
            401 | 403 => SinkError::Fatal(message),
            400 | 406 | 422 => SinkError::Fatal(message),
            // 409: another writer committed first; 5xx: the catalog is away.
            _ => SinkError::Retriable(message),
        })
    }

    /// `call`, renewing the token once on a 401.
    async fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(reqwest::StatusCode, Value)> {
        let session = self.session(false).await?;
        match self.call(method.clone(), path, body.clone(), &session).await {
            Err(SinkError::Fatal(m)) if m.contains("401") && session.0.is_some() => {
                let session = self.session(true).await?;
                self.call(method, path, body, &session).await
            }
            other => other,
        }
    }

    /// The table, created with DuctStream's schema if it does not exist.
    pub async fn load_or_create(&self, table: &str) -> Result<TableMetadata> {
        let path = format!("namespaces/{}/tables/{table}", self.config.namespace);
        let (status, body) = self.request(reqwest::Method::GET, &path, None).await?;
        if status != reqwest::StatusCode::NOT_FOUND {
            return parse_metadata(&body);
        }
        let create = json!({
            "name": table,
            "schema": TableSchema::records_only().to_json(),
            "partition-spec": {"spec-id": 0, "fields": serde_json::from_str::<Value>(PARTITION_SPEC).map_err(|e| SinkError::Config(e.to_string()))?},
            "properties": {"write.format.default": "parquet", "created-by": "ductstream"},
        });
        let (_, body) = self.request(reqwest::Method::POST, &format!("namespaces/{}/tables", self.config.namespace), Some(create)).await?;
        parse_metadata(&body)
    }

    /// Drops the table and its files; one already gone is fine.
    pub async fn drop_table(&self, table: &str) -> Result<()> {
        let path = format!("namespaces/{}/tables/{table}?purgeRequested=true", self.config.namespace);
        self.request(reqwest::Method::DELETE, &path, None).await.map(|_| ())
    }

    /// Adds `snapshot` and points `main` at it, if `main` is still at `parent`; with
    /// `new_schema`, first makes it the current schema, if the current one is still `schema_id`.
    pub async fn commit(&self, table: &str, parent: Option<i64>, snapshot: Value, schema_id: i32, new_schema: Option<&TableSchema>) -> Result<TableMetadata> {
        let snapshot_id = snapshot["snapshot-id"].clone();
        let mut requirements = vec![json!({"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": parent})];
        let mut updates = Vec::new();
        if let Some(schema) = new_schema {
            requirements.push(json!({"type": "assert-current-schema-id", "current-schema-id": schema_id}));
            updates.push(json!({"action": "add-schema", "schema": schema.to_json(), "last-column-id": schema.last_column_id()}));
            updates.push(json!({"action": "set-current-schema", "schema-id": -1}));
        }
        updates.push(json!({"action": "add-snapshot", "snapshot": snapshot}));
        updates.push(json!({"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": snapshot_id}));
        let body = json!({
            "identifier": {"namespace": [self.config.namespace], "name": table},
            "requirements": requirements,
            "updates": updates,
        });
        let path = format!("namespaces/{}/tables/{table}", self.config.namespace);
        let (_, body) = self.request(reqwest::Method::POST, &path, Some(body)).await?;
        parse_metadata(&body)
    }
}

async fn check(resp: reqwest::Response, what: &str) -> Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| unavailable(what, e))?;
    if !status.is_success() {
        return Err(SinkError::Retriable(format!("iceberg catalog {what}: {status} {body}")));
    }
    Ok(body)
}

fn parse_metadata(body: &Value) -> Result<TableMetadata> {
    let m = &body["metadata"];
    let bad = || SinkError::Fatal(format!("iceberg catalog answered without table metadata: {body}"));
    let location = m["location"].as_str().ok_or_else(bad)?.trim_end_matches('/').to_owned();
    let current = m["current-snapshot-id"].as_i64().filter(|id| *id >= 0);
    let snapshot = current.and_then(|id| m["snapshots"].as_array()?.iter().find(|s| s["snapshot-id"].as_i64() == Some(id)));
    let summary = snapshot
        .and_then(|s| s["summary"].as_object())
        .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    let schemas = m["schemas"].as_array().map(Vec::as_slice).unwrap_or_default();
    let current_schema = m["current-schema-id"].as_i64();
    let schema = schemas.iter().find(|s| s["schema-id"].as_i64() == current_schema).unwrap_or(&m["schema"]);
    Ok(TableMetadata {
        schema: TableSchema::from_json(schema)?,
        last_schema_id: schemas.iter().filter_map(|s| s["schema-id"].as_i64()).max().unwrap_or(0) as i32,
        location,
        current_snapshot_id: current,
        last_sequence_number: m["last-sequence-number"].as_i64().unwrap_or(0),
        manifest_list: snapshot.and_then(|s| s["manifest-list"].as_str()).map(str::to_owned),
        summary,
    })
}
