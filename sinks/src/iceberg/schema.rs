//! The table a topic becomes: one row per record, partitioned by the day of its timestamp.
//!
//! Every table starts with the record's own columns:
//!
//! | id | column | type |
//! |---|---|---|
//! | 1 | partition | int |
//! | 2 | offset | long |
//! | 3 | timestamp | timestamptz |
//! | 4 | key | binary, optional |
//! | 5 | value | binary, optional |
//! | 6 | headers | list (element 7) of struct: key string (8), value binary (9, optional) |
//!
//! A CDC topic's table also has typed columns after those (see `changes`), added as they
//! appear, each with the next free id: a column keeps its id and type for good, so every
//! data file written under an earlier schema still reads. The Parquet files carry the same
//! ids (`PARQUET:field_id`), so readers map columns by id.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::{json, Value};

use crate::{Result, SinkError};

pub const PARTITION_SPEC: &str = r#"[{"source-id":3,"field-id":1000,"transform":"day","name":"timestamp_day"}]"#;

/// The record's own columns, as the Iceberg schema lists them.
const RECORD_FIELDS: &str = r#"[{"id":1,"name":"partition","required":true,"type":"int"},{"id":2,"name":"offset","required":true,"type":"long"},{"id":3,"name":"timestamp","required":true,"type":"timestamptz"},{"id":4,"name":"key","required":false,"type":"binary"},{"id":5,"name":"value","required":false,"type":"binary"},{"id":6,"name":"headers","required":false,"type":{"type":"list","element-id":7,"element-required":true,"element":{"type":"struct","fields":[{"id":8,"name":"key","required":true,"type":"string"},{"id":9,"name":"value","required":false,"type":"binary"}]}}}]"#;

/// The names of the record's own columns, which typed columns must not take.
pub const RECORD_COLUMNS: [&str; 6] = ["partition", "offset", "timestamp", "key", "value", "headers"];

/// The highest id the record's own columns use.
const LAST_RECORD_ID: i32 = 9;

/// A typed column's Iceberg type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Decimal { precision: u8, scale: i8 },
    String,
    Binary,
    Date,
    /// Microseconds since midnight.
    Time,
    /// Microseconds, without a zone.
    Timestamp,
    /// Microseconds, in UTC.
    TimestampTz,
    /// Elements may be null; `element_id` is 0 until the column is given its ids.
    List { element_id: i32, element: Box<ColumnType> },
}

/// A typed column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub id: i32,
    pub name: String,
    pub ty: ColumnType,
}

/// A version of a table's schema: the record's own columns, then `columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub id: i32,
    pub columns: Vec<Column>,
}

impl ColumnType {
    fn to_json(&self) -> Value {
        match self {
            ColumnType::List { element_id, element } => {
                json!({"type": "list", "element-id": element_id, "element-required": false, "element": element.to_json()})
            }
            ColumnType::Decimal { precision, scale } => Value::String(format!("decimal({precision}, {scale})")),
            primitive => Value::String(
                match primitive {
                    ColumnType::Boolean => "boolean",
                    ColumnType::Int => "int",
                    ColumnType::Long => "long",
                    ColumnType::Float => "float",
                    ColumnType::Double => "double",
                    ColumnType::String => "string",
                    ColumnType::Binary => "binary",
                    ColumnType::Date => "date",
                    ColumnType::Time => "time",
                    ColumnType::Timestamp => "timestamp",
                    _ => "timestamptz",
                }
                .into(),
            ),
        }
    }

    fn from_json(value: &Value) -> Result<ColumnType> {
        let unknown = || SinkError::Fatal(format!("iceberg table has a column of type {value} that DuctStream does not write"));
        if value["type"] == "list" {
            let element_id = value["element-id"].as_i64().ok_or_else(unknown)? as i32;
            return Ok(ColumnType::List { element_id, element: Box::new(ColumnType::from_json(&value["element"])?) });
        }
        let text = value.as_str().ok_or_else(unknown)?;
        Ok(match text {
            "boolean" => ColumnType::Boolean,
            "int" => ColumnType::Int,
            "long" => ColumnType::Long,
            "float" => ColumnType::Float,
            "double" => ColumnType::Double,
            "string" => ColumnType::String,
            "binary" => ColumnType::Binary,
            "date" => ColumnType::Date,
            "time" => ColumnType::Time,
            "timestamp" => ColumnType::Timestamp,
            "timestamptz" => ColumnType::TimestampTz,
            _ => {
                let inner = text.strip_prefix("decimal(").and_then(|t| t.strip_suffix(')')).ok_or_else(unknown)?;
                let (p, s) = inner.split_once(',').ok_or_else(unknown)?;
                ColumnType::Decimal { precision: p.trim().parse().map_err(|_| unknown())?, scale: s.trim().parse().map_err(|_| unknown())? }
            }
        })
    }

    /// The type with ids from `next` on for its list elements.
    fn with_ids(&self, next: &mut i32) -> ColumnType {
        match self {
            ColumnType::List { element, .. } => {
                let element_id = *next;
                *next += 1;
                ColumnType::List { element_id, element: Box::new(element.with_ids(next)) }
            }
            other => other.clone(),
        }
    }

    fn highest_id(&self) -> i32 {
        match self {
            ColumnType::List { element_id, element } => (*element_id).max(element.highest_id()),
            _ => 0,
        }
    }

    pub fn arrow(&self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int => DataType::Int32,
            ColumnType::Long => DataType::Int64,
            ColumnType::Float => DataType::Float32,
            ColumnType::Double => DataType::Float64,
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            ColumnType::String => DataType::Utf8,
            ColumnType::Binary => DataType::Binary,
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            ColumnType::List { element_id, element } => DataType::List(Arc::new(list_element(*element_id, element))),
        }
    }
}

/// A list column's element field, as Parquet writers name it, with its id.
pub fn list_element(id: i32, ty: &ColumnType) -> Field {
    with_id(Field::new("element", ty.arrow(), true), id)
}

impl TableSchema {
    /// The schema every table is created with: the record's own columns.
    pub fn records_only() -> TableSchema {
        TableSchema { id: 0, columns: Vec::new() }
    }

    pub fn to_json(&self) -> Value {
        let mut fields: Vec<Value> = serde_json::from_str(RECORD_FIELDS).unwrap_or_default();
        fields.extend(self.columns.iter().map(|c| json!({"id": c.id, "name": c.name, "required": false, "type": c.ty.to_json()})));
        json!({"type": "struct", "schema-id": self.id, "identifier-field-ids": [], "fields": fields})
    }

    /// A schema as the catalog returns it; the record's own columns are taken as read.
    pub fn from_json(schema: &Value) -> Result<TableSchema> {
        let id = schema["schema-id"].as_i64().unwrap_or(0) as i32;
        let mut columns = Vec::new();
        for field in schema["fields"].as_array().into_iter().flatten() {
            let column_id = field["id"].as_i64().unwrap_or(0) as i32;
            if column_id <= LAST_RECORD_ID {
                continue;
            }
            let name = field["name"].as_str().unwrap_or_default().to_owned();
            columns.push(Column { id: column_id, name, ty: ColumnType::from_json(&field["type"])? });
        }
        Ok(TableSchema { id, columns })
    }

    /// The highest field id in use (Iceberg's `last-column-id` for this schema).
    pub fn last_column_id(&self) -> i32 {
        self.columns.iter().map(|c| c.id.max(c.ty.highest_id())).fold(LAST_RECORD_ID, i32::max)
    }

    /// This schema with the `wanted` columns it lacks (by name) added with fresh ids, as
    /// schema `id`; `None` when it lacks none.
    pub fn with_columns(&self, wanted: &[(String, ColumnType)], id: i32) -> Option<TableSchema> {
        let mut next = self.last_column_id() + 1;
        let mut columns = self.columns.clone();
        for (name, ty) in wanted {
            if columns.iter().any(|c| c.name == *name) {
                continue;
            }
            let column_id = next;
            next += 1;
            columns.push(Column { id: column_id, name: name.clone(), ty: ty.with_ids(&mut next) });
        }
        (columns.len() > self.columns.len()).then_some(TableSchema { id, columns })
    }

    pub fn arrow_schema(&self) -> Schema {
        let element = with_id(Field::new("element", DataType::Struct(header_fields()), false), 7);
        let mut fields = vec![
            with_id(Field::new("partition", DataType::Int32, false), 1),
            with_id(Field::new("offset", DataType::Int64, false), 2),
            with_id(Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())), false), 3),
            with_id(Field::new("key", DataType::Binary, true), 4),
            with_id(Field::new("value", DataType::Binary, true), 5),
            with_id(Field::new("headers", DataType::List(Arc::new(element)), true), 6),
        ];
        fields.extend(self.columns.iter().map(|c| with_id(Field::new(&c.name, c.ty.arrow(), true), c.id)));
        Schema::new(fields)
    }
}

fn with_id(field: Field, id: i32) -> Field {
    field.with_metadata(HashMap::from([("PARQUET:field_id".to_string(), id.to_string())]))
}

pub fn header_fields() -> Fields {
    Fields::from(vec![with_id(Field::new("key", DataType::Utf8, false), 8), with_id(Field::new("value", DataType::Binary, true), 9)])
}

/// The header list's element field, with its id.
pub fn header_element() -> Field {
    with_id(Field::new("element", DataType::Struct(header_fields()), false), 7)
}

/// The days since the epoch of a timestamp in ms, as Iceberg's `day` transform gives them.
pub fn day_of(timestamp_ms: i64) -> i32 {
    timestamp_ms.div_euclid(86_400_000) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_get_fresh_ids_and_read_back() -> Result<(), Box<dyn std::error::Error>> {
        serde_json::from_str::<Value>(PARTITION_SPEC)?;
        assert_eq!((day_of(0), day_of(86_399_999), day_of(86_400_000), day_of(-1)), (0, 0, 1, -1));
        let base = TableSchema::records_only();
        assert_eq!(TableSchema::from_json(&base.to_json())?, base);
        let ints = ColumnType::List { element_id: 0, element: Box::new(ColumnType::Int) };
        let wanted = vec![("_op".to_string(), ColumnType::String), ("tags".to_string(), ints), ("price".to_string(), ColumnType::Decimal { precision: 12, scale: 2 })];
        let grown = base.with_columns(&wanted, 1).ok_or("no columns added")?;
        let ids: Vec<i32> = grown.columns.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![10, 11, 13]);
        assert_eq!(grown.columns[1].ty, ColumnType::List { element_id: 12, element: Box::new(ColumnType::Int) });
        assert_eq!(grown.last_column_id(), 13);
        assert_eq!(TableSchema::from_json(&grown.to_json())?, grown);
        assert_eq!(grown.with_columns(&wanted, 2), None);
        let more = grown.with_columns(&[("note".into(), ColumnType::String)], 2).ok_or("no column added")?;
        assert_eq!((more.id, more.columns[3].id), (2, 14));
        assert_eq!(more.arrow_schema().fields().len(), 10);
        Ok(())
    }
}
