//! The engine's SQL, kept in `queries.sql` and split here by its `-- name:` markers.

use std::sync::OnceLock;

const QUERIES_SQL: &str = include_str!("queries.sql");
const NAME_MARKER: &str = "-- name:";

/// Every statement in `queries.sql`, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Query {
    MigrationsLock,
    MigrationsTable,
    MigrationsApplied,
    MigrationsRecord,
    ListenAppends,
    TopicPartitions,
    CreateTopic,
    DeleteTopic,
    Topics,
    Topic,
    TopicForUpdate,
    GrowTopic,
    AddPartitions,
    SetTopicConfigs,
    Reserve,
    CopyBatches,
    SaveProducers,
    Read,
    Offsets,
    PartitionSize,
    RetentionCut,
    CompactableRanges,
    TakeRange,
    PutRange,
    BatchAtTime,
    BatchWithMaxTimestamp,
    BatchWithMaxTimestampScan,
    DeleteRecords,
    Producers,
    SaveGroup,
    LoadGroups,
    DeleteGroup,
    CommitOffsets,
    CommittedOffsets,
    DeleteOffsets,
    GroupsWithOffsets,
    AllCommittedOffsets,
    NextProducerId,
    BrokerHeartbeat,
    LiveBrokers,
    BrokerHolding,
    Document,
    Documents,
    DocumentRow,
    DocumentForUpdate,
    DocumentWrite,
}

impl Query {
    pub(crate) const ALL: [Query; 46] = [
        Query::MigrationsLock,
        Query::MigrationsTable,
        Query::MigrationsApplied,
        Query::MigrationsRecord,
        Query::ListenAppends,
        Query::TopicPartitions,
        Query::CreateTopic,
        Query::DeleteTopic,
        Query::Topics,
        Query::Topic,
        Query::TopicForUpdate,
        Query::GrowTopic,
        Query::AddPartitions,
        Query::SetTopicConfigs,
        Query::Reserve,
        Query::CopyBatches,
        Query::SaveProducers,
        Query::Read,
        Query::Offsets,
        Query::PartitionSize,
        Query::RetentionCut,
        Query::CompactableRanges,
        Query::TakeRange,
        Query::PutRange,
        Query::BatchAtTime,
        Query::BatchWithMaxTimestamp,
        Query::BatchWithMaxTimestampScan,
        Query::DeleteRecords,
        Query::Producers,
        Query::SaveGroup,
        Query::LoadGroups,
        Query::DeleteGroup,
        Query::CommitOffsets,
        Query::CommittedOffsets,
        Query::DeleteOffsets,
        Query::GroupsWithOffsets,
        Query::AllCommittedOffsets,
        Query::NextProducerId,
        Query::BrokerHeartbeat,
        Query::LiveBrokers,
        Query::BrokerHolding,
        Query::Document,
        Query::Documents,
        Query::DocumentRow,
        Query::DocumentForUpdate,
        Query::DocumentWrite,
    ];

    /// The name after `-- name:` in `queries.sql`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Query::MigrationsLock => "migrations_lock",
            Query::MigrationsTable => "migrations_table",
            Query::MigrationsApplied => "migrations_applied",
            Query::MigrationsRecord => "migrations_record",
            Query::ListenAppends => "listen_appends",
            Query::TopicPartitions => "topic_partitions",
            Query::CreateTopic => "create_topic",
            Query::DeleteTopic => "delete_topic",
            Query::Topics => "topics",
            Query::Topic => "topic",
            Query::TopicForUpdate => "topic_for_update",
            Query::GrowTopic => "grow_topic",
            Query::AddPartitions => "add_partitions",
            Query::SetTopicConfigs => "set_topic_configs",
            Query::Reserve => "reserve",
            Query::CopyBatches => "copy_batches",
            Query::SaveProducers => "save_producers",
            Query::Read => "read",
            Query::Offsets => "offsets",
            Query::PartitionSize => "partition_size",
            Query::RetentionCut => "retention_cut",
            Query::CompactableRanges => "compactable_ranges",
            Query::TakeRange => "take_range",
            Query::PutRange => "put_range",
            Query::BatchAtTime => "batch_at_time",
            Query::BatchWithMaxTimestamp => "batch_with_max_timestamp",
            Query::BatchWithMaxTimestampScan => "batch_with_max_timestamp_scan",
            Query::DeleteRecords => "delete_records",
            Query::Producers => "producers",
            Query::SaveGroup => "save_group",
            Query::LoadGroups => "load_groups",
            Query::DeleteGroup => "delete_group",
            Query::CommitOffsets => "commit_offsets",
            Query::CommittedOffsets => "committed_offsets",
            Query::DeleteOffsets => "delete_offsets",
            Query::GroupsWithOffsets => "groups_with_offsets",
            Query::AllCommittedOffsets => "all_committed_offsets",
            Query::NextProducerId => "next_producer_id",
            Query::BrokerHeartbeat => "broker_heartbeat",
            Query::LiveBrokers => "live_brokers",
            Query::BrokerHolding => "broker_holding",
            Query::Document => "document",
            Query::Documents => "documents",
            Query::DocumentRow => "document_row",
            Query::DocumentForUpdate => "document_for_update",
            Query::DocumentWrite => "document_write",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The statement's SQL text.
    pub(crate) fn sql(self) -> &'static str {
        static TEXTS: OnceLock<Vec<&'static str>> = OnceLock::new();
        let texts = TEXTS.get_or_init(|| {
            let parsed = split_named(QUERIES_SQL);
            Query::ALL
                .iter()
                .map(|q| parsed.iter().find(|(name, _)| *name == q.name()).map_or("", |(_, sql)| *sql))
                .collect()
        });
        texts.get(self.index()).copied().unwrap_or("")
    }
}

/// Splits `text` at lines starting with `-- name: <name>` into (name, statement) pairs. A
/// statement runs to the next marker line; its leading comment lines and surrounding blank
/// space are dropped.
pub(crate) fn split_named(text: &str) -> Vec<(&str, &str)> {
    let mut markers = Vec::new(); // (where the marker line starts, name, where the body starts)
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix(NAME_MARKER) {
            markers.push((at, name.trim(), at + line.len()));
        }
        at += line.len();
    }
    let ends = markers.iter().skip(1).map(|(start, _, _)| *start).chain([text.len()]);
    markers
        .iter()
        .zip(ends)
        .map(|((_, name, body), end)| (*name, strip_leading_comments(&text[*body..end])))
        .collect()
}

fn strip_leading_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        match text.strip_prefix("--") {
            Some(comment) => text = comment.split_once('\n').map_or("", |(_, rest)| rest),
            None => return text.trim_end(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_is_in_the_file_and_every_file_entry_is_a_query() {
        let parsed = split_named(QUERIES_SQL);
        for query in Query::ALL {
            assert!(!query.sql().is_empty(), "queries.sql has no statement named {}", query.name());
            assert_eq!(Query::ALL[query.index()], query, "Query::ALL is in declaration order");
        }
        for (name, _) in &parsed {
            assert!(Query::ALL.iter().any(|q| q.name() == *name), "queries.sql names unknown query {name}");
        }
        assert_eq!(parsed.len(), Query::ALL.len(), "no name appears twice");
    }

    #[test]
    fn splitting_drops_comments_and_keeps_statements_whole() {
        let text = "-- header, about `-- name: x` markers\n-- name: a\n-- about a\nSELECT 1\n-- name: b\nSELECT 2\n  FROM x -- trailing\n\n";
        assert_eq!(split_named(text), vec![("a", "SELECT 1"), ("b", "SELECT 2\n  FROM x -- trailing")]);
    }
}
