//! Tables as the flow sees them: columns with type OIDs and which columns form the key.

use tokio_postgres::Client;

use crate::error::{CdcError, Result};
use crate::event::{ColumnValue, Row};
use crate::pgoutput::{RelationColumn, TupleValue};
use crate::types::TypeRegistry;
use crate::value::to_json;

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub type_oid: u32,
    /// Part of the record key (the primary key, or else the replica identity).
    pub key: bool,
}

/// A table: name and columns in attribute order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnInfo>,
}

impl TableInfo {
    /// From a pgoutput Relation message; `primary_key` (from the catalog) wins over the
    /// replica identity flags, which with REPLICA IDENTITY FULL mark every column.
    pub fn from_relation(oid: u32, schema: String, name: String, columns: &[RelationColumn], primary_key: Option<&[String]>) -> Self {
        let columns = columns
            .iter()
            .map(|c| ColumnInfo {
                name: c.name.clone(),
                type_oid: c.type_oid,
                key: match primary_key {
                    Some(pk) => pk.contains(&c.name),
                    None => c.key,
                },
            })
            .collect();
        TableInfo { oid, schema, name, columns }
    }

    /// `schema.table`, quoted for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", crate::replication::quote_ident(&self.schema), crate::replication::quote_ident(&self.name))
    }

    pub fn has_key(&self) -> bool {
        self.columns.iter().any(|c| c.key)
    }

    /// A row image from tuple data (values in column order).
    pub fn row(&self, registry: &TypeRegistry, values: &[TupleValue]) -> Row {
        Row(self
            .columns
            .iter()
            .zip(values)
            .map(|(column, value)| (column.name.clone(), convert(registry, column.type_oid, value)))
            .collect())
    }

    /// Only the key columns of tuple data.
    pub fn key_row(&self, registry: &TypeRegistry, values: &[TupleValue]) -> Row {
        Row(self
            .columns
            .iter()
            .zip(values)
            .filter(|(column, _)| column.key)
            .map(|(column, value)| (column.name.clone(), convert(registry, column.type_oid, value)))
            .collect())
    }

    /// The key columns of a row image; `None` when the table has no key.
    pub fn key_of(&self, row: &Row) -> Option<Row> {
        if !self.has_key() {
            return None;
        }
        Some(Row(row.0.iter().filter(|(name, _)| self.columns.iter().any(|c| c.key && &c.name == name)).cloned().collect()))
    }
}

fn convert(registry: &TypeRegistry, type_oid: u32, value: &TupleValue) -> ColumnValue {
    match value {
        TupleValue::Null => ColumnValue::Value(serde_json::Value::Null),
        TupleValue::UnchangedToast => ColumnValue::UnchangedToast,
        TupleValue::Text(text) => ColumnValue::Value(to_json(registry, type_oid, text)),
    }
}

/// Primary key column names of a table, or `None` when it has none (or is gone).
pub async fn primary_key(client: &Client, oid: u32) -> Result<Option<Vec<String>>> {
    let rows = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1::int8::oid AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            &[&i64::from(oid)],
        )
        .await
        .map_err(|e| CdcError::from_pg(e, ""))?;
    Ok((!rows.is_empty()).then(|| rows.iter().map(|r| r.get(0)).collect()))
}

/// Loads a table's columns and key from the catalog (for snapshots).
pub async fn load_table(client: &Client, schema: &str, name: &str) -> Result<TableInfo> {
    let row = client
        .query_opt(
            "SELECT c.oid::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&schema, &name],
        )
        .await
        .map_err(|e| CdcError::from_pg(e, ""))?
        .ok_or_else(|| CdcError::MissingTable { table: format!("{schema}.{name}") })?;
    let oid = row.get::<_, i64>(0) as u32;
    let columns = client
        .query(
            "SELECT attname::text, atttypid::int8 FROM pg_attribute \
             WHERE attrelid = $1::int8::oid AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            &[&i64::from(oid)],
        )
        .await
        .map_err(|e| CdcError::from_pg(e, ""))?;
    let pk = primary_key(client, oid).await?.unwrap_or_default();
    Ok(TableInfo {
        oid,
        schema: schema.to_string(),
        name: name.to_string(),
        columns: columns
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                ColumnInfo { key: pk.contains(&name), name, type_oid: r.get::<_, i64>(1) as u32 }
            })
            .collect(),
    })
}
