//! A batch's rows as JSONEachRow: one JSON object a line, each cell as its column's ClickHouse
//! type takes it, kept cells as the destination's own tokens, and the batch's topic and
//! partition on the rows of tables ordered by position.

use std::collections::HashMap;

use super::encode::{push_string, push_token, target, Target};
use super::sql::{positioned, PARTITION, TOPIC};
use crate::table::{Cell, DestTable, Position, ValueKind};
use crate::{Result, SinkError};

/// A kept row: column name → the token the destination has.
pub type Kept = HashMap<String, String>;

pub struct RowWriter<'a> {
    table: &'a DestTable,
    /// Per column: `"name":`, and the type it has on the server.
    columns: Vec<(String, Target)>,
    /// `,"__ds_topic":…,"__ds_partition":…` for tables ordered by position.
    position: String,
    pub out: String,
    pub rows: usize,
}

impl<'a> RowWriter<'a> {
    /// `types` are the table's column types as the server has them.
    pub fn new(table: &'a DestTable, types: &HashMap<String, String>, position: &Position) -> Result<RowWriter<'a>> {
        let mut columns = Vec::with_capacity(table.columns.len());
        for column in &table.columns {
            let ty = types.get(&column.name).ok_or_else(|| {
                SinkError::Fatal(format!("clickhouse destination: {} has no column {:?}", table.name, column.name))
            })?;
            let mut key = String::new();
            push_string(&mut key, &column.name);
            key.push(':');
            columns.push((key, target(ty)));
        }
        let mut suffix = String::new();
        if positioned(table) {
            suffix.push(',');
            push_string(&mut suffix, TOPIC);
            suffix.push(':');
            push_string(&mut suffix, &position.topic);
            suffix.push(',');
            push_string(&mut suffix, PARTITION);
            suffix.push_str(&format!(":{}", position.partition));
        }
        Ok(RowWriter { table, columns, position: suffix, out: String::new(), rows: 0 })
    }

    /// One row: `cells` in the table's column order; a kept cell takes `kept`'s token, or null
    /// (`[]` for arrays) when the destination had no row.
    pub fn push(&mut self, cells: &[Cell], kept: Option<&Kept>) -> Result<()> {
        self.out.push('{');
        for (i, ((key, target), (cell, column))) in self.columns.iter().zip(cells.iter().zip(&self.table.columns)).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(key);
            match cell {
                Cell::Value(value) => push_token(&mut self.out, value, &column.kind, target)
                    .map_err(|why| SinkError::Fatal(format!("clickhouse destination: {}.{}: {why}", self.table.name, column.name)))?,
                Cell::Keep => match kept.and_then(|k| k.get(&column.name)) {
                    Some(token) => self.out.push_str(token),
                    None => push_token(&mut self.out, &serde_json::Value::Null, &ValueKind::Other, target).map_err(SinkError::Fatal)?,
                },
            }
        }
        self.out.push_str(&self.position);
        self.out.push_str("}\n");
        self.rows += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::table::{DestColumn, Source, TableName};

    #[test]
    fn writes_rows_with_kept_cells_and_positions() -> Result<()> {
        let column = |name: &str, kind: ValueKind| DestColumn { name: name.into(), ty: String::new(), kind, source: Source::Column };
        let name = TableName { schema: "d".into(), table: "t".into() };
        let table = DestTable {
            name: name.clone(),
            source: name,
            columns: vec![column("a", ValueKind::Numeric), column("b", ValueKind::Text), column("c", ValueKind::Array(Box::new(ValueKind::Int)))],
            key: Vec::new(),
        };
        let types: HashMap<String, String> =
            [("a", "Nullable(Decimal(9, 1))"), ("b", "Nullable(String)"), ("c", "Array(Nullable(Int32))")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let position = Position { sink_id: "s".into(), topic: "f.public.t".into(), partition: 2, next_offset: 9 };
        let mut w = RowWriter::new(&table, &types, &position)?;
        w.push(&[Cell::Value(json!("1.25")), Cell::Keep, Cell::Keep], Some(&[("b".to_string(), "\"kept\"".to_string())].into()))?;
        assert_eq!(w.out, "{\"a\":1.3,\"b\":\"kept\",\"c\":[],\"__ds_topic\":\"f.public.t\",\"__ds_partition\":2}\n");
        let missing: HashMap<String, String> = HashMap::new();
        assert!(RowWriter::new(&table, &missing, &position).is_err());
        Ok(())
    }
}
