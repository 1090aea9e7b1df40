//! Prometheus metrics: requests by API and error code, bytes in and out, open connections,
//! and each partition's high watermark, served as text on `GET /metrics`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::Broker;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, i16), u64>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    connections: AtomicI64,
    cleaner_cleaned: AtomicU64,
    cleaner_written: AtomicU64,
    cleaner_ms: AtomicU64,
    cleanings: AtomicU64,
    tls_handshake_failures: AtomicU64,
    sasl_failures: AtomicU64,
    throttle_ms: AtomicU64,
    connections_refused: AtomicU64,
    tier_segments: AtomicU64,
    tier_bytes: AtomicU64,
    tier_failures: AtomicU64,
}

impl Metrics {
    pub fn request(&self, api: ApiKey, error_code: i16) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((format!("{api:?}"), error_code)).or_default() += 1;
        }
    }
    pub fn bytes_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn bytes_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
    /// Bytes received and sent on Kafka connections since the broker started.
    pub fn bytes_totals(&self) -> (u64, u64) {
        (self.bytes_in.load(Ordering::Relaxed), self.bytes_out.load(Ordering::Relaxed))
    }
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }
    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }
    pub fn sasl_failed(&self) {
        self.sasl_failures.fetch_add(1, Ordering::Relaxed);
    }
    /// A client held back this long by a quota.
    pub fn throttled(&self, ms: u64) {
        self.throttle_ms.fetch_add(ms, Ordering::Relaxed);
    }
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
    /// One object uploaded to the remote tier, holding `bytes` of batches.
    pub fn tier_uploaded(&self, bytes: u64) {
        self.tier_segments.fetch_add(1, Ordering::Relaxed);
        self.tier_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn tier_upload_failed(&self) {
        self.tier_failures.fetch_add(1, Ordering::Relaxed);
    }
    /// One partition cleaned by the log cleaner.
    pub fn cleaned(&self, cleaned: u64, written: u64, ms: u64) {
        self.cleaner_cleaned.fetch_add(cleaned, Ordering::Relaxed);
        self.cleaner_written.fetch_add(written, Ordering::Relaxed);
        self.cleaner_ms.fetch_add(ms, Ordering::Relaxed);
        self.cleanings.fetch_add(1, Ordering::Relaxed);
    }
}

/// The metrics in Prometheus text format.
pub async fn render(broker: &Broker) -> String {
    let m = &broker.metrics;
    let mut out = String::new();
    out.push_str("# HELP ductstream_requests_total Kafka requests answered, by API and error code.\n");
    out.push_str("# TYPE ductstream_requests_total counter\n");
    if let Ok(requests) = m.requests.lock() {
        for ((api, code), n) in requests.iter() {
            let error = ResponseError::try_from_code(*code).map_or_else(|| "NONE".to_string(), |e| format!("{e:?}"));
            let _ = writeln!(out, "ductstream_requests_total{{api=\"{api}\",error=\"{error}\"}} {n}");
        }
    }
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
    };
    counter(&mut out, "ductstream_bytes_in_total", "Request bytes received.", m.bytes_in.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_bytes_out_total", "Response bytes sent.", m.bytes_out.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_log_cleaner_cleanings_total", "Partitions the log cleaner compacted.", m.cleanings.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_log_cleaner_cleaned_bytes_total", "Bytes of log the cleaner went over (as they were before cleaning).", m.cleaner_cleaned.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_tls_handshake_failures_total", "Connections closed because their TLS handshake failed.", m.tls_handshake_failures.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_connections_refused_total", "Connections closed at accept: past --max-connections(-per-ip).", m.connections_refused.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_sasl_authentication_failures_total", "SASL exchanges that failed.", m.sasl_failures.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_quota_throttle_ms_total", "Milliseconds clients were held back by quotas.", m.throttle_ms.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_log_cleaner_written_bytes_total", "What the cleaned log takes after cleaning.", m.cleaner_written.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_log_cleaner_milliseconds_total", "Time the cleaner spent compacting.", m.cleaner_ms.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_tier_uploaded_segments_total", "Objects uploaded to the remote tier.", m.tier_segments.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_tier_uploaded_bytes_total", "Bytes of batches uploaded to the remote tier.", m.tier_bytes.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_tier_upload_failures_total", "Partition uploads to the remote tier that failed (retried at the next pass).", m.tier_failures.load(Ordering::Relaxed));
    counter(&mut out, "ductstream_request_memory_waits_total", "Requests that waited for memory (--queued-max-request-bytes).", broker.request_memory.waits());
    for (name, help, value) in [
        ("ductstream_request_memory_used_bytes", "Bytes in-flight requests hold.", broker.request_memory.used()),
        ("ductstream_request_memory_limit_bytes", "Bytes in-flight requests may hold (--queued-max-request-bytes).", broker.request_memory.limit()),
    ] {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
    }
    let _ = write!(
        out,
        "# HELP ductstream_connections Open client connections.\n# TYPE ductstream_connections gauge\nductstream_connections {}\n",
        m.connections.load(Ordering::Relaxed)
    );
    out.push_str("# HELP ductstream_high_watermark Durable high watermark of each partition served since start.\n");
    out.push_str("# TYPE ductstream_high_watermark gauge\n");
    let names: HashMap<_, _> = match broker.storage().topics().await {
        Ok(topics) => topics.into_iter().map(|t| (t.id, t.name)).collect(),
        Err(_) => HashMap::new(),
    };
    let mut partitions = broker.log.open_partitions();
    partitions.sort();
    for ((id, partition), hw) in partitions {
        if let Some(topic) = names.get(&id) {
            let _ = writeln!(out, "ductstream_high_watermark{{topic=\"{topic}\",partition=\"{partition}\"}} {hw}");
        }
    }
    durable_consumers(&mut out, broker).await;
    sinks(&mut out, broker);
    out
}

/// The counters of each sink this broker runs, since it started it.
fn sinks(out: &mut String, broker: &Broker) {
    let Ok(statuses) = broker.sink_statuses.lock() else { return };
    let snapshots: Vec<(String, ductstream_sinks::runtime::StatusSnapshot)> =
        statuses.iter().map(|(id, s)| (id.clone(), s.snapshot())).collect();
    drop(statuses);
    type Pick = fn(&ductstream_sinks::runtime::StatusSnapshot) -> f64;
    let series: [(&str, &str, &str, Pick); 7] = [
        ("ductstream_sink_lag", "gauge", "Records in the sink's topics not yet written to its destination.", |s| {
            s.partitions.values().map(|p| p.lag()).sum::<i64>() as f64
        }),
        ("ductstream_sink_records_written_total", "counter", "Records the destination has.", |s| s.records_written as f64),
        ("ductstream_sink_bytes_written_total", "counter", "Bytes of those records.", |s| s.bytes_written as f64),
        ("ductstream_sink_retries_total", "counter", "Steps retried after a failure that could pass.", |s| s.retries as f64),
        ("ductstream_sink_dead_letters_total", "counter", "Records the destination refused, moved to the dead-letter topic.", |s| {
            s.dead_letters as f64
        }),
        ("ductstream_sink_flush_seconds_mean", "gauge", "Mean time to write one batch.", |s| s.flush_mean.as_secs_f64()),
        ("ductstream_sink_flush_seconds_max", "gauge", "Longest time to write one batch.", |s| s.flush_max.as_secs_f64()),
    ];
    for (name, kind, help, pick) in series {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (id, snapshot) in &snapshots {
            let _ = writeln!(out, "{name}{{sink=\"{id}\"}} {}", pick(snapshot));
        }
    }
}

/// Each durable consumer's counters (kept in its stored state, so they are cluster-wide and
/// survive restarts), pending claims and lag.
async fn durable_consumers(out: &mut String, broker: &Broker) {
    let Ok(views) = crate::durable::list(broker, "").await else { return };
    type Pick = fn(&crate::durable::ConsumerView) -> i64;
    let series: [(&str, &str, &str, Pick); 6] = [
        ("ductstream_durable_pending", "gauge", "Messages delivered and not yet acked or terminated.", |v| v.pending as i64),
        ("ductstream_durable_lag", "gauge", "Messages not yet acked, from the ack floor to the high watermark.", |v| v.lag),
        ("ductstream_durable_delivered_total", "counter", "Deliveries, first and repeated.", |v| v.state.stats.delivered as i64),
        ("ductstream_durable_acked_total", "counter", "Messages acked.", |v| v.state.stats.acked as i64),
        ("ductstream_durable_redelivered_total", "counter", "Deliveries after a claim ended unacked or a nak.", |v| {
            v.state.stats.redelivered as i64
        }),
        ("ductstream_durable_dead_lettered_total", "counter", "Messages moved to the dead-letter topic.", |v| {
            v.state.stats.dead_lettered as i64
        }),
    ];
    for (name, kind, help, pick) in series {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for view in &views {
            let (stream, group) = (&view.state.stream, view.state.group.replace('\\', "\\\\").replace('"', "\\\""));
            let _ = writeln!(out, "{name}{{stream=\"{stream}\",group=\"{group}\"}} {}", pick(view));
        }
    }
}

/// Answers `GET /metrics` on `listener` until shutdown. Anything else gets a 404.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    loop {
        let (mut stream, _) = tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut head = [0u8; 2048];
            let n = match stream.read(&mut head).await {
                Ok(n) => n,
                Err(_) => return,
            };
            let request = String::from_utf8_lossy(&head[..n]);
            let (status, body) = if request.starts_with("GET /metrics ") {
                ("200 OK", render(&broker).await)
            } else {
                ("404 Not Found", "try GET /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
