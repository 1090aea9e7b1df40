//! Resolving the staging tables of a flow's table destinations (`batch_mode: staging`): on
//! demand (`ductstream-admin flow resolve-staging`), or when a backfill worker ends
//! (`ductstream-worker --mode backfill --resolve-staging`).

use std::time::{Duration, Instant};

use ductstream_sinks::table::TableName;
use ductstream_sinks::SinkError;
use ductstream_storage::Storage;

use super::model::SinkDef;
use crate::log::Log;
use crate::{BrokerError, Result};

/// What one sink resolved for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub sink_id: String,
    pub table: String,
    pub rows: u64,
}

/// Resolves every staging table of `flow_id`'s table destinations, for `tables`
/// (`schema.table`; all the flow's tables when empty). With `wait`, first waits up to that long
/// for each sink to have written everything its topics hold, so what a backfill wrote is staged.
pub async fn resolve_flow(storage: &dyn Storage, log: &Log, flow_id: &str, tables: &[String], wait: Option<Duration>) -> Result<Vec<Resolved>> {
    // From the flow's definition, not the stored sinks: a broker may not have made them yet.
    let flow = crate::flows::store::load(storage, flow_id).await?;
    let sinks: Vec<SinkDef> = super::flow_sinks::wanted(&flow)
        .into_iter()
        .filter(|s| s.destination.options.get("batch_mode").is_some_and(|m| m.eq_ignore_ascii_case("staging")))
        .collect();
    if sinks.is_empty() {
        return Err(BrokerError::FailedPrecondition(format!("flow {flow_id:?} has no destination with batch_mode staging")));
    }
    let mut resolved = Vec::new();
    for sink in sinks {
        let selector = sink.selector()?;
        let topics: Vec<_> = storage.topics().await?.into_iter().filter(|t| selector.selects(&t.name)).collect();
        let names: Vec<TableName> = if tables.is_empty() {
            topics.iter().filter_map(|t| table_of_topic(&t.name)).collect()
        } else {
            tables.iter().map(|t| parse_table(t)).collect::<Result<_>>()?
        };
        if let Some(wait) = wait {
            wait_caught_up(storage, log, &sink, &topics, wait).await?;
        }
        let done = ductstream_sinks::resolve_staging(&sink.destination, &sink.id, &names).await.map_err(|e| match e {
            SinkError::Config(m) => BrokerError::InvalidArgument(m),
            other => BrokerError::FailedPrecondition(format!("sink {:?}: {other}", sink.id)),
        })?;
        resolved.extend(done.into_iter().map(|(table, rows)| Resolved { sink_id: sink.id.clone(), table: table.to_string(), rows }));
    }
    Ok(resolved)
}

/// `<prefix>.<schema>.<table>` → `schema.table`.
fn table_of_topic(topic: &str) -> Option<TableName> {
    let mut parts = topic.rsplitn(3, '.');
    let table = parts.next()?.to_owned();
    let schema = parts.next()?.to_owned();
    parts.next()?;
    Some(TableName { schema, table })
}

fn parse_table(name: &str) -> Result<TableName> {
    match name.split_once('.') {
        Some((schema, table)) if !schema.is_empty() && !table.is_empty() => Ok(TableName { schema: schema.to_owned(), table: table.to_owned() }),
        _ => Err(BrokerError::InvalidArgument(format!("table {name:?}: use schema.table"))),
    }
}

/// Waits until the sink's committed offsets reach the end of each of its partitions.
async fn wait_caught_up(storage: &dyn Storage, log: &Log, sink: &SinkDef, topics: &[ductstream_storage::Topic], wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        let committed = storage.committed_offsets(&sink.group()).await?;
        let mut behind = false;
        for topic in topics {
            for partition in 0..topic.partitions {
                let end = log.offsets(topic, partition).await?.high_watermark;
                let done = committed.iter().find(|o| o.topic == topic.name && o.partition == partition).map_or(0, |o| o.offset);
                behind |= done < end;
            }
        }
        if !behind {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BrokerError::FailedPrecondition(format!("sink {:?} has not written everything staged within {wait:?}; is it running?", sink.id)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_from_topics_and_names() {
        assert_eq!(table_of_topic("app.public.users"), Some(TableName { schema: "public".into(), table: "users".into() }));
        assert_eq!(table_of_topic("users"), None);
        assert!(parse_table("users").is_err());
    }
}
