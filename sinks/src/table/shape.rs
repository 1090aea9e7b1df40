//! A source table's shape: its columns with their Postgres types, and its primary key. Read
//! from the source database's catalog when the sink knows it (a flow's destinations do), so a
//! destination table gets exact types (`numeric(12,2)`, `timestamp with time zone`,
//! `integer[]`); otherwise inferred from the change events' JSON values.

use serde_json::{Map, Value};
use super::change::TableChange;
use super::connect::connect;
use crate::{Result, SinkError};

/// One source column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    pub name: String,
    /// As Postgres prints it (`format_type`): `numeric(12,2)`, `character varying(20)`, `text[]`.
    pub type_text: String,
    /// The type's own name and schema (`int4`, `pg_catalog`; `mood`, `public`).
    pub type_name: String,
    pub type_schema: String,
}

impl SourceColumn {
    fn inferred(name: &str, value: &Value) -> SourceColumn {
        let type_text = match value {
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "bigint",
            Value::Number(_) => "double precision",
            Value::Array(_) | Value::Object(_) => "jsonb",
            Value::Null | Value::String(_) => "text",
        };
        SourceColumn { name: name.to_owned(), type_text: type_text.to_owned(), type_name: type_text.to_owned(), type_schema: "pg_catalog".into() }
    }

    /// Whether the type is one of Postgres' own (not an enum, domain or extension type).
    pub fn is_builtin(&self) -> bool {
        self.type_schema == "pg_catalog"
    }
}

/// A source table's columns in table order, and its primary key columns in key order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceShape {
    pub columns: Vec<SourceColumn>,
    pub key: Vec<String>,
}

impl SourceShape {
    /// The shape the changes show: key columns from the first key seen, columns in the order
    /// they first appear, types from their first non-null value.
    pub fn infer<'a>(changes: impl IntoIterator<Item = &'a TableChange>) -> SourceShape {
        let mut shape = SourceShape::default();
        for change in changes {
            if shape.key.is_empty() && let Some(key) = &change.key {
                shape.key = key.keys().cloned().collect();
            }
            for image in [&change.after, &change.before].into_iter().flatten() {
                shape.learn(image);
            }
        }
        shape
    }

    /// Adds the image's columns this shape lacks; a column first seen as null becomes typed
    /// by its first non-null value.
    pub fn learn(&mut self, image: &Map<String, Value>) {
        for (name, value) in image {
            match self.columns.iter_mut().find(|c| c.name == *name) {
                Some(c) if c.type_text == "text" && !value.is_null() && !value.is_string() && c.is_builtin() => {
                    *c = SourceColumn::inferred(name, value);
                }
                Some(_) => {}
                None => self.columns.push(SourceColumn::inferred(name, value)),
            }
        }
    }

    pub fn column(&self, name: &str) -> Option<&SourceColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Reads `schema.table`'s shape from the source database; `None` when the table is gone.
pub async fn read_source_shape(dsn: &str, schema: &str, table: &str) -> Result<Option<SourceShape>> {
    let client = connect(dsn).await?;
    let columns = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, n.nspname::text
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace cn ON cn.oid = c.relnamespace
               JOIN pg_type t ON t.oid = a.atttypid
               JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE cn.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .map_err(|e| SinkError::Retriable(format!("source catalog: {e}")))?;
    if columns.is_empty() {
        return Ok(None);
    }
    let key = client
        .query(
            "SELECT a.attname::text
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
              WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary
              ORDER BY k.ord",
            &[&schema, &table],
        )
        .await
        .map_err(|e| SinkError::Retriable(format!("source catalog: {e}")))?;
    Ok(Some(SourceShape {
        columns: columns
            .iter()
            .map(|r| SourceColumn { name: r.get(0), type_text: r.get(1), type_name: r.get(2), type_schema: r.get(3) })
            .collect(),
        key: key.iter().map(|r| r.get(0)).collect(),
    }))
}
