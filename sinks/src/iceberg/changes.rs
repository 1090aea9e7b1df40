//! A CDC topic's table: besides the record's own columns (which keep every value as it was
//! sent), the change's metadata and the row, one column per source column.
//!
//! | column | type | holds |
//! |---|---|---|
//! | `_op` | string | `c`, `u`, `d`, `t` or `r` (a snapshot read) |
//! | `_lsn` | long | the commit LSN |
//! | `_commit_ts` | timestamptz | the commit time |
//! | `_xid` | long | the source transaction (none for snapshot reads) |
//! | one per source column | from its Postgres type | the new row; for a delete, the old row or key |
//!
//! Postgres types map to Iceberg's: smallint and integer → int; bigint → long; real → float;
//! double precision → double; numeric(p,s) with p ≤ 38 → decimal(p,s); boolean; bytea →
//! binary; date; time → time; timestamp → timestamp; timestamptz → timestamptz; arrays →
//! list; anything else (unconstrained numeric, uuid, json, enums, text types) → string, which
//! keeps it exact. A source column named like one of the table's own columns (`key`,
//! `value`, `_op`…) gets a `_` appended. Unchanged TOAST values are null, as is a record
//! that is not a JSON change event.

use serde_json::{Map, Value};

use super::schema::{ColumnType, RECORD_COLUMNS};
use crate::table::change::{parse, Op, Parsed, TableChange};
use crate::table::shape::{SourceColumn, SourceShape};
use crate::table::types::{base_name, numeric_modifiers};
use crate::SinkRecord;

const META_COLUMNS: [&str; 4] = ["_op", "_lsn", "_commit_ts", "_xid"];

/// A record's typed values, by table column.
pub type Row = Map<String, Value>;

/// The change event a record holds, if it is one.
pub fn change_of(record: &SinkRecord) -> Option<TableChange> {
    match parse(record) {
        Parsed::Change(change) => Some(change),
        Parsed::Skip | Parsed::Refuse(_) => None,
    }
}

/// The typed columns a table of `shape`'s changes has, in order.
pub fn wanted_columns(shape: &SourceShape) -> Vec<(String, ColumnType)> {
    let meta = [ColumnType::String, ColumnType::Long, ColumnType::TimestampTz, ColumnType::Long];
    let mut columns: Vec<(String, ColumnType)> = META_COLUMNS.iter().map(|n| n.to_string()).zip(meta).collect();
    columns.extend(shape.columns.iter().map(|c| (column_name(&c.name), column_type(c))));
    columns
}

/// The table column of a source column.
fn column_name(source: &str) -> String {
    let taken = |name: &str| RECORD_COLUMNS.contains(&name) || META_COLUMNS.contains(&name);
    if taken(source.trim_end_matches('_')) && !source.trim_end_matches('_').is_empty() {
        format!("{source}_")
    } else {
        source.to_owned()
    }
}

/// The Iceberg type of a source column.
fn column_type(column: &SourceColumn) -> ColumnType {
    if !column.is_builtin() {
        return ColumnType::String;
    }
    postgres_type(&column.type_text)
}

fn postgres_type(type_text: &str) -> ColumnType {
    if let Some(element) = type_text.strip_suffix("[]") {
        return ColumnType::List { element_id: 0, element: Box::new(postgres_type(element)) };
    }
    match base_name(type_text) {
        "smallint" | "integer" => ColumnType::Int,
        "bigint" | "oid" => ColumnType::Long,
        "real" => ColumnType::Float,
        "double precision" => ColumnType::Double,
        "numeric" => match numeric_modifiers(type_text) {
            Some((p, s)) if (1..=38).contains(&p) && s <= p => ColumnType::Decimal { precision: p as u8, scale: s as i8 },
            _ => ColumnType::String,
        },
        "boolean" => ColumnType::Boolean,
        "bytea" => ColumnType::Binary,
        "date" => ColumnType::Date,
        "time without time zone" => ColumnType::Time,
        "timestamp without time zone" => ColumnType::Timestamp,
        "timestamp with time zone" => ColumnType::TimestampTz,
        _ => ColumnType::String,
    }
}

/// A change's values by table column: its metadata, and the row it leaves (the old row or
/// key for a delete, nothing for a truncate).
pub fn row(change: &TableChange) -> Row {
    let mut row = Map::new();
    row.insert("_op".into(), Value::from(change.op.code()));
    row.insert("_lsn".into(), Value::from(change.lsn));
    row.insert("_commit_ts".into(), Value::from(change.commit_ms.saturating_mul(1000)));
    if let Some(xid) = change.xid {
        row.insert("_xid".into(), Value::from(xid));
    }
    let image = match change.op {
        Op::Delete => change.before.as_ref().or(change.key.as_ref()),
        Op::Truncate => None,
        Op::Insert | Op::Update | Op::Read => change.after.as_ref(),
    };
    for (name, value) in image.into_iter().flatten() {
        row.insert(column_name(name), value.clone());
    }
    row
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;

    fn column(name: &str, type_text: &str) -> SourceColumn {
        SourceColumn { name: name.into(), type_text: type_text.into(), type_name: String::new(), type_schema: "pg_catalog".into() }
    }

    #[test]
    fn names_and_types_of_source_columns() {
        let shape = SourceShape {
            columns: vec![
                column("id", "integer"),
                column("price", "numeric(12,2)"),
                column("value", "text"),
                column("_op_", "uuid"),
                column("at", "timestamp(3) with time zone"),
                column("tags", "text[]"),
                column("n", "numeric"),
            ],
            key: vec!["id".into()],
        };
        let columns = wanted_columns(&shape);
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["_op", "_lsn", "_commit_ts", "_xid", "id", "price", "value_", "_op__", "at", "tags", "n"]);
        assert_eq!(columns[5].1, ColumnType::Decimal { precision: 12, scale: 2 });
        assert_eq!(columns[8].1, ColumnType::TimestampTz);
        assert_eq!(columns[9].1, ColumnType::List { element_id: 0, element: Box::new(ColumnType::String) });
        assert_eq!(columns[10].1, ColumnType::String);
        assert_eq!(column_name("_"), "_");
    }

    #[test]
    fn rows_of_changes() -> Result<(), Box<dyn std::error::Error>> {
        let record = |value: &str| SinkRecord {
            topic: "app.public.t".into(),
            partition: 0,
            offset: 3,
            timestamp: 1,
            key: None,
            value: Some(Bytes::from(value.to_owned())),
            headers: vec![("ductstream.format".into(), Some(Bytes::from_static(b"json")))],
        };
        let delete = change_of(&record(r#"{"op":"d","schema":"public","table":"t","key":{"id":1},"before":{"id":1,"key":"k"},"after":null,"lsn":"0/10","xid":7,"ts_ms":5}"#)).ok_or("not a change")?;
        assert_eq!(Value::Object(row(&delete)), json!({"_op": "d", "_lsn": 16, "_commit_ts": 5000, "_xid": 7, "id": 1, "key_": "k"}));
        let truncate = change_of(&record(r#"{"op":"t","schema":"public","table":"t","lsn":"0/10","ts_ms":5}"#)).ok_or("not a change")?;
        assert_eq!(Value::Object(row(&truncate)), json!({"_op": "t", "_lsn": 16, "_commit_ts": 5000}));
        assert_eq!(change_of(&record("not json")), None);
        Ok(())
    }
}
