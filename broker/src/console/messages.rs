//! The message browser: a partition's records from an offset or a time (the latest by
//! default), or those with a given key; values shown as JSON when they are JSON, as text when
//! they are text, else as hex; and a form that produces a test record.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, Response};
use axum::Form;
use bytes::Bytes;
use serde::Deserialize;

use super::kafka::{offset_at, produce_record};
use super::page::{escape, page, segment, table};
use super::forms::{after, Notice};
use super::topics::link;
use super::visitor::Visitor;
use super::PageResult;
use crate::batch_builder::NewRecord;
use crate::records::decode;
use crate::security::acl::{Operation, ResourceType};
use crate::{Broker, BrokerError};

/// The header naming a CDC record's wire format.
const FORMAT_HEADER: &str = "ductstream.format";
/// Most records one page shows.
const MOST: i64 = 500;
/// Most records one page reads looking for a key; the page links to where it stopped.
const KEY_SCAN_MOST: i64 = 100_000;

#[derive(Deserialize)]
pub struct Position {
    #[serde(default)]
    partition: i32,
    offset: Option<String>,
    /// `2026-12-05 14:00:00` (UTC, seconds optional) or milliseconds since the epoch.
    time: Option<String>,
    limit: Option<String>,
    /// Only records with this key (its exact text).
    key: Option<String>,
    #[serde(flatten)]
    notice: Notice,
}

pub async fn browse(State(broker): State<Arc<Broker>>, visitor: Visitor, Path(name): Path<String>, Query(at): Query<Position>) -> PageResult {
    visitor.require(Operation::Read, ResourceType::Topic, &name)?;
    let topic = broker.storage().topic(&name).await?.ok_or_else(|| BrokerError::NotFound(format!("topic {name:?} does not exist")))?;
    if !(0..topic.partitions).contains(&at.partition) {
        return Err(BrokerError::InvalidArgument(format!("topic {name:?} has no partition {}", at.partition)));
    }
    let number = |text: &Option<String>, what: &str| -> Result<Option<i64>, BrokerError> {
        match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) => t.parse().map(Some).map_err(|_| BrokerError::InvalidArgument(format!("{what} {t:?} is not a number"))),
        }
    };
    let limit = number(&at.limit, "limit")?.unwrap_or(50).clamp(1, MOST);
    let bounds = broker.log.offsets(&topic, at.partition).await?;
    let by_time = match at.time.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(text) => {
            let ms = parse_time(text).ok_or_else(|| BrokerError::InvalidArgument(format!("time {text:?}: write 2026-12-05 14:00:00 (UTC) or milliseconds")))?;
            // No record that late: start at the end.
            Some(offset_at(&broker, &visitor, &name, at.partition, ms).await.map_err(BrokerError::FailedPrecondition)?.unwrap_or(bounds.high_watermark))
        }
    };
    let wanted = match by_time {
        Some(offset) => Some(offset),
        None => number(&at.offset, "offset")?,
    };
    let key = at.key.as_deref().filter(|k| !k.is_empty());
    // A key is looked for from the start; otherwise the latest records are shown.
    let default_from = if key.is_some() { bounds.log_start } else { bounds.high_watermark - limit };
    let from = wanted.unwrap_or(default_from).max(bounds.log_start).min(bounds.high_watermark);
    let wanted_key = key.map(str::as_bytes);

    let mut rows = Vec::new();
    let mut next = from;
    while (rows.len() as i64) < limit && next < bounds.high_watermark && next - from < KEY_SCAN_MOST {
        let read = broker.log.read(&topic, at.partition, next, 1 << 20).await?;
        let reading_from = next;
        for batch in &read.batches {
            let batch_next = batch.next_offset();
            if !batch.is_control() {
                for record in decode(batch)?.into_iter().filter(|r| r.offset >= from) {
                    if rows.len() as i64 >= limit {
                        break;
                    }
                    next = record.offset + 1;
                    if wanted_key.is_some_and(|k| record.key.as_deref() != Some(k)) {
                        continue;
                    }
                    let headers: Vec<String> =
                        record.headers.iter().map(|(k, v)| format!("{}={}", escape(k), v.as_ref().map_or("null".into(), shown))).collect();
                    rows.push(vec![
                        record.offset.to_string(),
                        escape(&timestamp(record.timestamp)),
                        record.key.as_ref().map_or("<i>null</i>".into(), shown),
                        record.value.as_ref().map_or("<i>null</i>".into(), |v| value_shown(&record.headers, v)),
                        headers.join("<br>"),
                    ]);
                }
            }
            if rows.len() as i64 >= limit {
                break;
            }
            next = next.max(batch_next);
        }
        if next == reading_from {
            break;
        }
    }
    let path = format!("/topics/{}/messages", segment(&name));
    let p = at.partition;
    let key_query = key.map_or_else(String::new, |k| format!("&key={}", segment(k)));
    // Older records with a key would need a scan backwards: a key search goes forwards only.
    let older = (from > bounds.log_start && key.is_none())
        .then(|| format!("<a href=\"{path}?partition={p}&offset={}&limit={limit}\">older</a>", (from - limit).max(bounds.log_start)));
    let newer = (next < bounds.high_watermark).then(|| format!("<a href=\"{path}?partition={p}&offset={next}&limit={limit}{key_query}\">newer</a>"));
    let showing = match key {
        Some(k) => format!("records with key <code>{}</code> among offsets {from} to {next}", escape(k)),
        None => format!("showing from {from}"),
    };
    let body = format!(
        "{}<p>{} partition {p}: offsets {} to {} · {showing}</p>\
<form method=\"get\" action=\"{path}\"><input type=\"hidden\" name=\"partition\" value=\"{p}\">\
from offset <input name=\"offset\" value=\"{from}\" style=\"width:8em\"> limit <input name=\"limit\" value=\"{limit}\" style=\"width:5em\"> \
or from time <input name=\"time\" placeholder=\"2026-12-05 14:00:00 UTC\" style=\"width:13em\"> \
<button type=\"submit\">Show</button> {} {}</form>\
<form method=\"get\" action=\"{path}\"><input type=\"hidden\" name=\"partition\" value=\"{p}\">\
records with key <input name=\"key\" value=\"{}\" style=\"width:14em\"> <button type=\"submit\">Find</button></form>{}\
<h2>Produce a test record</h2><form method=\"post\" action=\"/topics/{}/produce\"><input type=\"hidden\" name=\"partition\" value=\"{p}\">\
<input name=\"key\" placeholder=\"key (none if empty)\"> <input name=\"value\" placeholder=\"value\" size=\"50\"> \
<input name=\"header\" placeholder=\"header name=value\"> <button type=\"submit\">Produce</button></form>",
        at.notice.html(),
        link(&name),
        bounds.log_start,
        bounds.high_watermark,
        older.unwrap_or_default(),
        newer.unwrap_or_default(),
        escape(key.unwrap_or_default()),
        table(&["Offset", "Timestamp", "Key", "Value", "Headers"], &rows),
        segment(&name),
    );
    Ok(Html(page(&format!("Messages of {name}"), &body)))
}

/// A value as the user reads it: a CDC change event in `avro` or `proto` (the record's
/// `ductstream.format` header says which) decoded to JSON, else as [`shown`].
fn value_shown(headers: &[(String, Option<Bytes>)], value: &Bytes) -> String {
    let format = headers.iter().find(|(k, _)| k == FORMAT_HEADER).and_then(|(_, v)| v.as_deref()).and_then(|v| std::str::from_utf8(v).ok());
    match format.and_then(|f| Some((f, ductstream_cdc::wire_json::decoded(f, value)?))) {
        Some((format, event)) => {
            let pretty = serde_json::to_string_pretty(&event).unwrap_or_default();
            format!("<small>{} change event, decoded</small><pre>{}</pre>", escape(format), escape(&pretty))
        }
        None => shown(value),
    }
}

/// Bytes as the user reads them: pretty JSON, text, or hex.
fn shown(bytes: &Bytes) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes)
        && (json.is_object() || json.is_array())
    {
        return format!("<pre>{}</pre>", escape(&serde_json::to_string_pretty(&json).unwrap_or_default()));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(|c| c.is_control() && !c.is_whitespace()) => escape(text),
        _ => {
            let hex: String = bytes.iter().take(256).map(|b| format!("{b:02x}")).collect();
            format!("<code>0x{hex}{}</code>", if bytes.len() > 256 { "…" } else { "" })
        }
    }
}

/// `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DDTHH:MM[:SS]` in UTC, or milliseconds since the epoch.
pub(super) fn parse_time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let text = text.trim_end_matches(" UTC").trim_end_matches('Z').replacen('T', " ", 1);
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(&text, format).ok())
        .map(|t| t.and_utc().timestamp_millis())
}

fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
}

#[derive(Deserialize)]
pub struct TestRecord {
    #[serde(default)]
    partition: i32,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    header: String,
}

pub async fn produce(State(broker): State<Arc<Broker>>, visitor: Visitor, Path(name): Path<String>, Form(r): Form<TestRecord>) -> Response {
    let headers = match r.header.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => vec![(Cow::Owned(k.trim().to_owned()), Some(Bytes::from(v.to_owned())))],
        _ if r.header.trim().is_empty() => Vec::new(),
        _ => return after(&format!("/topics/{}/messages", segment(&name)), Err(format!("header {:?}: write name=value", r.header))),
    };
    let record = NewRecord {
        key: (!r.key.is_empty()).then(|| Bytes::from(r.key.clone())),
        value: Some(Bytes::from(r.value.clone())),
        headers,
        timestamp: 0,
    };
    let back = format!("/topics/{}/messages", segment(&name));
    match produce_record(&broker, &visitor, &name, r.partition, record).await {
        Ok(offset) => after(&format!("{back}?partition={}", r.partition), Ok(format!("produced at offset {offset} of partition {}", r.partition))),
        // The topic's page, since the partition may be the one that does not exist.
        Err(e) => after(&format!("/topics/{}", segment(&name)), Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_utc_or_milliseconds() {
        assert_eq!(parse_time("1796472000000"), Some(1_796_472_000_000));
        assert_eq!(parse_time("2026-12-05 12:00:00"), Some(1_796_472_000_000));
        assert_eq!(parse_time("2026-12-05T12:00Z"), Some(1_796_472_000_000));
        assert_eq!(parse_time("2026-12-05 12:00:00.250 UTC"), Some(1_796_472_000_250));
        assert_eq!(parse_time("yesterday"), None);
    }
}
