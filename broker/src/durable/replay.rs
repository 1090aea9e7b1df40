//! Where a consumer starts: from an offset, a time or a Postgres LSN, in every partition.

use std::collections::BTreeMap;

use ductstream_storage::Topic;

use super::state::ConsumerState;
use super::store;
use crate::records::{self, Record};
use crate::{Broker, BrokerError, Result};

/// The header CDC writes each change's commit LSN into, as "X/Y" hex.
pub const LSN_HEADER: &str = "ductstream.lsn";

/// A start position, the same for every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The log start.
    Start,
    /// The high watermark: only what comes next.
    End,
    /// This offset; outside a partition's log it is OUT_OF_RANGE.
    Offset(i64),
    /// The first message at or after this time (ms since the epoch).
    Time(i64),
    /// The first message whose LSN header is at or after this LSN.
    Lsn(u64),
}

/// Moves the consumer to `from` in every partition, dropping its claims.
pub async fn replay(broker: &Broker, stream: &str, group: &str, from: ReplayFrom) -> Result<ConsumerState> {
    let topic = store::topic(broker, stream).await?;
    let starts = starts(broker, &topic, from).await?;
    let (state, ()) = store::update(broker, &topic, group, |state| {
        state.replay(&starts);
        Ok(())
    })
    .await?;
    Ok(state)
}

/// Each partition's start offset for `from`.
pub async fn starts(broker: &Broker, topic: &Topic, from: ReplayFrom) -> Result<BTreeMap<i32, i64>> {
    let mut out = BTreeMap::new();
    for partition in 0..topic.partitions {
        let bounds = broker.log.offsets(topic, partition).await?;
        let at = match from {
            ReplayFrom::Start => bounds.log_start,
            ReplayFrom::End => bounds.high_watermark,
            ReplayFrom::Offset(offset) => {
                if offset < bounds.log_start || offset > bounds.high_watermark {
                    return Err(BrokerError::OutOfRange(format!(
                        "offset {offset} is outside partition {partition} of {:?}, which holds offsets {} to {}",
                        topic.name,
                        bounds.log_start,
                        bounds.high_watermark - 1
                    )));
                }
                offset
            }
            ReplayFrom::Time(time) => match broker.storage().batch_at_time(&topic.name, partition, time).await? {
                Some(batch) => records::first_at_or_after(&batch, time)?.map_or(batch.next_offset(), |r| r.offset),
                None => bounds.high_watermark,
            }
            .max(bounds.log_start),
            ReplayFrom::Lsn(lsn) => first_at_lsn(broker, topic, partition, bounds.log_start, bounds.high_watermark, lsn).await?,
        };
        out.insert(partition, at);
    }
    Ok(out)
}

/// Parses a Postgres LSN, "16/B374D848".
pub fn parse_lsn(text: &str) -> Result<u64> {
    let bad = || BrokerError::InvalidArgument(format!("{text:?} is not a Postgres LSN like 16/B374D848"));
    let (high, low) = text.trim().split_once('/').ok_or_else(bad)?;
    let high = u32::from_str_radix(high, 16).map_err(|_| bad())?;
    let low = u32::from_str_radix(low, 16).map_err(|_| bad())?;
    Ok((u64::from(high) << 32) | u64::from(low))
}

fn record_lsn(record: &Record) -> Option<u64> {
    let text = std::str::from_utf8(record.header(LSN_HEADER)?).ok()?;
    parse_lsn(text).ok()
}

/// Binary search over batches: CDC writes a partition in commit order, so LSNs never go down.
/// Records without the header are passed over.
async fn first_at_lsn(broker: &Broker, topic: &Topic, partition: i32, log_start: i64, high_watermark: i64, lsn: u64) -> Result<i64> {
    let (mut low, mut high) = (log_start, high_watermark);
    let mut found = high_watermark;
    let mut saw_lsn = false;
    while low < high {
        let middle = low + (high - low) / 2;
        let read = broker.log.read(topic, partition, middle, 1).await?;
        let Some(batch) = read.batches.first() else { break };
        let records = records::decode(batch)?;
        let lsns: Vec<(i64, u64)> = records.iter().filter_map(|r| Some((r.offset, record_lsn(r)?))).collect();
        saw_lsn |= !lsns.is_empty();
        match lsns.iter().find(|(_, l)| *l >= lsn) {
            Some(&(offset, _)) => {
                found = offset;
                high = batch.base_offset();
            }
            None => low = batch.next_offset(),
        }
    }
    if !saw_lsn && high_watermark > log_start {
        return Err(BrokerError::InvalidArgument(format!(
            "partition {partition} of {:?} has no records with a {LSN_HEADER} header: replay by LSN needs records written by CDC",
            topic.name
        )));
    }
    Ok(found)
}

/// For deliver policy "last per key": every offset of each partition that a later record with
/// the same key replaces. Records without a key are all delivered.
pub async fn replaced_by_key(broker: &Broker, topic: &Topic) -> Result<BTreeMap<i32, Vec<i64>>> {
    let mut out = BTreeMap::new();
    for partition in 0..topic.partitions {
        let bounds = broker.log.offsets(topic, partition).await?;
        let mut last: std::collections::HashMap<bytes::Bytes, i64> = std::collections::HashMap::new();
        let mut replaced = Vec::new();
        let mut at = bounds.log_start;
        while at < bounds.high_watermark {
            let read = broker.log.read(topic, partition, at, 1 << 20).await?;
            let Some(last_batch) = read.batches.last() else { break };
            at = last_batch.next_offset();
            for batch in &read.batches {
                for record in records::decode(batch)? {
                    if let Some(key) = record.key
                        && let Some(earlier) = last.insert(key, record.offset)
                    {
                        replaced.push(earlier);
                    }
                }
            }
        }
        out.insert(partition, replaced);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_as_postgres_writes_them() {
        assert_eq!(parse_lsn("16/B374D848").expect("lsn"), 0x16_B374_D848);
        assert_eq!(parse_lsn("0/0").expect("lsn"), 0);
        for bad in ["", "16", "x/1", "1/2/3", "100000000/0"] {
            assert!(parse_lsn(bad).is_err(), "{bad}");
        }
    }
}
