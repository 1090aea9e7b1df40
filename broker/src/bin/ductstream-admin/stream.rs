//! `ductstream-admin stream ...`: durable consumers through StreamService.

use clap::{Args, Subcommand};
use ductstream_proto::v1 as pb;
use ductstream_proto::v1::stream_service_client::StreamServiceClient;
use ductstream_proto::timestamp_from_ms;
use serde_json::{json, Value};

use crate::connect::{connect, Target as ApiTarget};
use crate::durations::{parse_ms, parse_time_ms};
use crate::output::{self, bytes_text, time_text, Format};

#[derive(Debug, Args)]
pub struct Target {
    /// The stream (topic).
    #[arg(long)]
    stream: String,
    /// The durable consumer's name.
    #[arg(long)]
    group: String,
}

#[derive(Debug, Args)]
pub struct ConsumerSettings {
    #[command(flatten)]
    target: Target,
    /// Where a new consumer starts: all, new, offset:N, time:2025-01-01T00:00:00Z, last-per-key.
    #[arg(long, default_value = "all")]
    deliver: String,
    /// How long a pulled message stays claimed unless the pull says otherwise (30, 30s, 500ms).
    #[arg(long, value_parser = parse_ms)]
    ack_wait: Option<u64>,
    /// Deliveries before a message goes to the dead-letter topic; 0 for no limit.
    #[arg(long, default_value_t = 0)]
    max_deliver: u32,
    /// Visibility timeouts of the 1st, 2nd... redelivery, comma-separated (1s,5s,30s).
    #[arg(long, value_delimiter = ',', value_parser = parse_ms)]
    backoff: Vec<u64>,
    /// Pulls hand out no new messages while this many are unacked (default 1000).
    #[arg(long, default_value_t = 0)]
    max_ack_pending: u32,
    /// Default: <stream>.dlq.
    #[arg(long, default_value = "")]
    dead_letter_topic: String,
}

#[derive(Debug, Args)]
pub struct Ids {
    #[command(flatten)]
    target: Target,
    /// Message ids, comma-separated: 0-17,0-18.
    #[arg(long, value_delimiter = ',', required = true)]
    ids: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create a durable consumer.
    Create(ConsumerSettings),
    /// Replace a consumer's settings (its position and claims stay).
    Update(ConsumerSettings),
    /// Show a consumer.
    Get(Target),
    /// List consumers, of one stream or all.
    List {
        #[arg(long, default_value = "")]
        stream: String,
    },
    /// Delete a consumer.
    Delete(Target),
    /// Claim messages for a visibility timeout.
    Pull {
        #[command(flatten)]
        target: Target,
        /// Most messages to hand out.
        #[arg(long, default_value_t = 1)]
        max: u32,
        /// How long they stay claimed (seconds, or 500ms, 5m...); default: the consumer's ack wait.
        #[arg(long, value_parser = parse_ms)]
        visibility: Option<u64>,
        /// Wait up to this long for a first message.
        #[arg(long, value_parser = parse_ms, default_value = "0")]
        wait: u64,
        /// Who is pulling, for the broker's logs.
        #[arg(long, default_value = "ductstream-admin")]
        consumer_id: String,
        /// Fail on a group that does not exist instead of creating it with the defaults.
        #[arg(long)]
        no_create: bool,
    },
    /// Done with these messages.
    Ack(Ids),
    /// Deliver these messages again, after an optional delay.
    Nak {
        #[command(flatten)]
        ids: Ids,
        #[arg(long, value_parser = parse_ms, default_value = "0")]
        delay: u64,
    },
    /// Still working on these messages: restart their visibility timeouts.
    Progress(Ids),
    /// Never deliver these again; they go to the dead-letter topic.
    Term {
        #[command(flatten)]
        ids: Ids,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Restart the consumer from an offset, a time or a Postgres LSN.
    Replay {
        #[command(flatten)]
        target: Target,
        #[arg(long, conflicts_with_all = ["since", "from_lsn"], required_unless_present_any = ["since", "from_lsn"])]
        offset: Option<i64>,
        /// RFC 3339 time: 2025-01-01T00:00:00Z.
        #[arg(long, conflicts_with = "from_lsn")]
        since: Option<String>,
        /// A Postgres LSN: 0/16B6C50.
        #[arg(long)]
        from_lsn: Option<String>,
    },
}

pub async fn run(target: &ApiTarget, command: StreamCommand, format: Format) -> Result<(), String> {
    let mut client = StreamServiceClient::new(connect(target).await?);
    let failed = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
    match command {
        StreamCommand::Create(settings) => {
            let config = config(settings)?;
            let consumer = client.create_consumer(pb::CreateConsumerRequest { config: Some(config) }).await.map_err(failed)?;
            print_consumers(format, &[consumer.into_inner()], false);
        }
        StreamCommand::Update(settings) => {
            let config = config(settings)?;
            let consumer = client.update_consumer(pb::UpdateConsumerRequest { config: Some(config) }).await.map_err(failed)?;
            print_consumers(format, &[consumer.into_inner()], false);
        }
        StreamCommand::Get(t) => {
            let consumer = client.get_consumer(pb::ConsumerRef { stream: t.stream, group: t.group }).await.map_err(failed)?;
            print_consumers(format, &[consumer.into_inner()], false);
        }
        StreamCommand::List { stream } => {
            let list = client.list_consumers(pb::ListConsumersRequest { stream }).await.map_err(failed)?.into_inner();
            print_consumers(format, &list.consumers, true);
        }
        StreamCommand::Delete(t) => {
            client.delete_consumer(pb::ConsumerRef { stream: t.stream.clone(), group: t.group.clone() }).await.map_err(failed)?;
            let json = json!({"deleted": {"stream": t.stream, "group": t.group}});
            output::print(format, &json, &["deleted"], vec![vec![format!("{}/{}", t.stream, t.group)]]);
        }
        StreamCommand::Pull { target, max, visibility, wait, consumer_id, no_create } => {
            let (stream, group) = (target.stream.clone(), target.group.clone());
            let request = pb::PullRequest {
                stream: target.stream,
                group: target.group,
                max_messages: max,
                visibility_timeout_ms: visibility,
                consumer_id,
                max_wait_ms: wait,
                no_create,
            };
            let answer = client.pull(request).await.map_err(failed)?.into_inner();
            if answer.created {
                eprintln!("created durable consumer {group:?} on stream {stream:?} with the defaults (deliver all, ack wait 30s)");
            }
            print_messages(format, &answer.messages);
        }
        StreamCommand::Ack(ids) => {
            let r = client.ack(pb::AckRequest { stream: ids.target.stream, group: ids.target.group, ids: ids.ids }).await;
            print_applied(format, "acked", r.map_err(failed)?.into_inner());
        }
        StreamCommand::Nak { ids, delay } => {
            let request = pb::NakRequest { stream: ids.target.stream, group: ids.target.group, ids: ids.ids, delay_ms: delay };
            print_applied(format, "nak'd", client.nak(request).await.map_err(failed)?.into_inner());
        }
        StreamCommand::Progress(ids) => {
            let request = pb::AckRequest { stream: ids.target.stream, group: ids.target.group, ids: ids.ids };
            print_applied(format, "extended", client.in_progress(request).await.map_err(failed)?.into_inner());
        }
        StreamCommand::Term { ids, reason } => {
            let request = pb::TermRequest { stream: ids.target.stream, group: ids.target.group, ids: ids.ids, reason };
            print_applied(format, "terminated", client.term(request).await.map_err(failed)?.into_inner());
        }
        StreamCommand::Replay { target, offset, since, from_lsn } => {
            let from = match (offset, since, from_lsn) {
                (Some(offset), _, _) => pb::replay_request::From::Offset(offset),
                (_, Some(since), _) => pb::replay_request::From::Since(timestamp_from_ms(parse_time_ms(&since)?)),
                (_, _, Some(lsn)) => pb::replay_request::From::Lsn(lsn),
                _ => return Err("give --offset, --since or --from-lsn".into()),
            };
            let request = pb::ReplayRequest { stream: target.stream, group: target.group, from: Some(from) };
            let consumer = client.replay(request).await.map_err(failed)?.into_inner();
            print_consumers(format, &[consumer], false);
        }
    }
    Ok(())
}

fn config(s: ConsumerSettings) -> Result<pb::ConsumerConfig, String> {
    let mut config = pb::ConsumerConfig {
        stream: s.target.stream,
        group: s.target.group,
        ack_wait_ms: s.ack_wait.unwrap_or(0),
        max_deliver: s.max_deliver,
        backoff_ms: s.backoff,
        max_ack_pending: s.max_ack_pending,
        dead_letter_topic: s.dead_letter_topic,
        ..Default::default()
    };
    let policy = match s.deliver.split_once(':') {
        None if s.deliver == "all" => pb::DeliverPolicy::All,
        None if s.deliver == "new" => pb::DeliverPolicy::New,
        None if s.deliver == "last-per-key" => pb::DeliverPolicy::LastPerKey,
        Some(("offset", n)) => {
            config.start_offset = n.parse().map_err(|_| format!("--deliver offset:{n}: not an offset"))?;
            pb::DeliverPolicy::ByStartOffset
        }
        Some(("time", t)) => {
            config.start_time = Some(timestamp_from_ms(parse_time_ms(t)?));
            pb::DeliverPolicy::ByStartTime
        }
        _ => return Err(format!("--deliver {:?}: use all, new, offset:N, time:RFC3339 or last-per-key", s.deliver)),
    };
    config.deliver_policy = policy as i32;
    Ok(config)
}

fn consumer_json(c: &pb::Consumer) -> Value {
    let config = c.config.clone().unwrap_or_default();
    let stats = c.stats.unwrap_or_default();
    let policy = pb::DeliverPolicy::try_from(config.deliver_policy).map_or("unknown".to_string(), |p| {
        p.as_str_name().trim_start_matches("DELIVER_POLICY_").to_ascii_lowercase()
    });
    json!({
        "stream": config.stream,
        "group": config.group,
        "deliver_policy": policy,
        "ack_wait_ms": config.ack_wait_ms,
        "max_deliver": config.max_deliver,
        "backoff_ms": config.backoff_ms,
        "max_ack_pending": config.max_ack_pending,
        "dead_letter_topic": config.dead_letter_topic,
        "created": time_text(c.created.as_ref()),
        "stats": {
            "pending": stats.pending, "delivered": stats.delivered, "acked": stats.acked,
            "redelivered": stats.redelivered, "dead_lettered": stats.dead_lettered,
            "terminated": stats.terminated, "lag": stats.lag,
        },
        "partitions": c.partitions.iter().map(|p| json!({
            "partition": p.partition, "ack_floor": p.ack_floor, "next_offset": p.next_offset,
            "high_watermark": p.high_watermark,
        })).collect::<Vec<_>>(),
    })
}

fn print_consumers(format: Format, consumers: &[pb::Consumer], as_list: bool) {
    let jsons: Vec<Value> = consumers.iter().map(consumer_json).collect();
    let json = output::one_or_list(&jsons, as_list);
    let rows = jsons
        .iter()
        .map(|c| {
            let s = &c["stats"];
            [&c["stream"], &c["group"], &c["deliver_policy"], &s["pending"], &s["acked"], &s["redelivered"], &s["dead_lettered"], &s["lag"]]
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect()
        })
        .collect();
    output::print(format, &json, &["STREAM", "GROUP", "DELIVER", "PENDING", "ACKED", "REDELIVERED", "DEAD", "LAG"], rows);
}

fn print_messages(format: Format, messages: &[pb::Message]) {
    let json = Value::Array(
        messages
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "partition": m.partition,
                    "offset": m.offset,
                    "delivery_count": m.delivery_count,
                    "key": bytes_text(m.key.as_deref()),
                    "value": bytes_text(m.value.as_deref()),
                    "headers": m.headers.iter().map(|h| json!({"key": h.key, "value": bytes_text(h.value.as_deref())})).collect::<Vec<_>>(),
                    "timestamp": time_text(m.timestamp.as_ref()),
                    "visible_at": time_text(m.visible_at.as_ref()),
                })
            })
            .collect(),
    );
    let rows = json
        .as_array()
        .map(|all| {
            all.iter()
                .map(|m| {
                    [&m["id"], &m["delivery_count"], &m["key"], &m["value"]]
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    output::print(format, &json, &["ID", "DELIVERY", "KEY", "VALUE"], rows);
}

fn print_applied(format: Format, verb: &str, a: pb::AckResponse) {
    let json = json!({ "applied": a.applied, "already_done": a.already_done });
    output::print(format, &json, &[verb, "already done"], vec![vec![a.applied.to_string(), a.already_done.to_string()]]);
}
