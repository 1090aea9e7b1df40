//! `ductstream-admin sink ...`: sinks through SinkService.

use clap::Subcommand;
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::sink_service_client::SinkServiceClient;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::connect::{connect, Target};
use crate::flow::{endpoint, failed, EndpointFile};
use crate::output::{self, time_text, Format};

#[derive(Debug, Subcommand)]
pub enum SinkCommand {
    /// Create a sink from a JSON file: {"id", "topics": [...] or "topic_pattern", "destination":
    /// {"name", "type", "options"}}. It starts at once unless --paused.
    Create {
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
        #[arg(long)]
        paused: bool,
    },
    /// One sink, with its lag per partition.
    Get { id: String },
    /// Every sink: state, lag, last error.
    List,
    Start { id: String },
    Stop { id: String },
    /// Stop and forget a sink with its committed offsets.
    Delete { id: String },
    /// Move a stopped sink to the start or the end of its topics.
    Reset {
        id: String,
        #[arg(long, default_value = "earliest", value_parser = ["earliest", "latest"])]
        to: String,
    },
}

/// A sink as its JSON file gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkFile {
    id: String,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    topic_pattern: String,
    destination: EndpointFile,
}

fn read_sink(path: &std::path::Path) -> Result<pb::Sink, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: SinkFile = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(pb::Sink { id: file.id, topics: file.topics, topic_pattern: file.topic_pattern, destination: Some(endpoint(file.destination)), ..Default::default() })
}

pub async fn run(target: &Target, command: SinkCommand, format: Format) -> Result<(), String> {
    let mut client = SinkServiceClient::new(connect(target).await?);
    let reference = |id: String| pb::SinkRef { id };
    let sink = match command {
        SinkCommand::Create { file, paused } => {
            client.create_sink(pb::CreateSinkRequest { sink: Some(read_sink(&file)?), paused }).await.map_err(failed)?.into_inner()
        }
        SinkCommand::Get { id } => client.get_sink(reference(id)).await.map_err(failed)?.into_inner(),
        SinkCommand::List => {
            let sinks = client.list_sinks(pb::ListSinksRequest {}).await.map_err(failed)?.into_inner().sinks;
            print_sinks(format, &sinks, true);
            return Ok(());
        }
        SinkCommand::Start { id } => client.start_sink(reference(id)).await.map_err(failed)?.into_inner(),
        SinkCommand::Stop { id } => client.stop_sink(reference(id)).await.map_err(failed)?.into_inner(),
        SinkCommand::Delete { id } => {
            let deleted = client.delete_sink(reference(id)).await.map_err(failed)?.into_inner();
            output::print(format, &json!({"deleted": deleted.id}), &["DELETED"], vec![vec![deleted.id]]);
            return Ok(());
        }
        SinkCommand::Reset { id, to } => client.reset_sink(pb::ResetSinkRequest { id, to }).await.map_err(failed)?.into_inner(),
    };
    print_sinks(format, &[sink], false);
    Ok(())
}

fn state_text(state: i32) -> &'static str {
    match pb::SinkState::try_from(state) {
        Ok(pb::SinkState::Running) => "RUNNING",
        Ok(pb::SinkState::Paused) => "PAUSED",
        Ok(pb::SinkState::Failed) => "FAILED",
        _ => "UNSPECIFIED",
    }
}

fn sink_json(s: &pb::Sink) -> Value {
    let destination = s.destination.clone().unwrap_or_default();
    let progress = s.progress.clone().map(|p| {
        json!({
            "phase": p.phase,
            "records_written": p.records_written,
            "bytes_written": p.bytes_written,
            "batches_written": p.batches_written,
            "retries": p.retries,
            "dead_letters": p.dead_letters,
            "flush_mean_ms": p.flush_mean_ms,
            "flush_max_ms": p.flush_max_ms,
        })
    });
    json!({
        "id": s.id,
        "topics": s.topics,
        "topic_pattern": s.topic_pattern,
        "destination": {"name": destination.name, "type": destination.r#type, "options": destination.options},
        "state": state_text(s.state),
        "last_error": s.last_error,
        "flow_id": s.flow_id,
        "group": s.group,
        "lag": s.lag,
        "partitions": s.partitions.iter().map(|p| json!({
            "topic": p.topic, "partition": p.partition, "committed": p.committed,
            "high_watermark": p.high_watermark, "lag": p.lag,
        })).collect::<Vec<_>>(),
        "progress": progress,
        "created_at": time_text(s.created_at.as_ref()),
        "updated_at": time_text(s.updated_at.as_ref()),
    })
}

/// A list prints one row per sink; one sink also prints its partitions.
fn print_sinks(format: Format, sinks: &[pb::Sink], as_list: bool) {
    let items: Vec<Value> = sinks.iter().map(sink_json).collect();
    let json = output::one_or_list(&items, as_list);
    let rows = sinks
        .iter()
        .map(|s| {
            let kind = s.destination.as_ref().map(|d| d.r#type.clone()).unwrap_or_default();
            let written = s.progress.as_ref().map(|p| p.records_written.to_string()).unwrap_or_default();
            vec![s.id.clone(), kind, state_text(s.state).into(), s.lag.to_string(), written, s.last_error.clone()]
        })
        .collect();
    output::print(format, &json, &["ID", "TYPE", "STATE", "LAG", "WRITTEN", "LAST ERROR"], rows);
    if format == Format::Table && !as_list {
        for s in sinks {
            let partitions = s
                .partitions
                .iter()
                .map(|p| vec![p.topic.clone(), p.partition.to_string(), p.committed.to_string(), p.high_watermark.to_string(), p.lag.to_string()])
                .collect::<Vec<_>>();
            if !partitions.is_empty() {
                print!("\n{}", output::table(&["TOPIC", "PARTITION", "COMMITTED", "HIGH WATERMARK", "LAG"], &partitions));
            }
        }
    }
}
