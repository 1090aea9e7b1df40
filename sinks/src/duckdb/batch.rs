//! A batch's writes made ready for the database thread: every cell as text (see [`super::text`]),
//! each target-mode row with its delete flag, the set of columns it keeps and the key it moved
//! from. Built on the sink's task, so the blocking side owns everything it needs.

use crate::table::{Cell, DestColumn, DestTable, MetaRow, TableWrite, TargetPlan, Write};
use crate::{Result, SinkError};

use super::text::text;

/// One row of a target-mode batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    /// The table's columns (for a delete: the key columns, the rest null).
    pub cells: Vec<Option<String>>,
    pub delete: bool,
    /// Which of [`TargetRows::keep_sets`] the row keeps (1-based), if it keeps any.
    pub keep: Option<usize>,
    /// The key its destination row has, for a moved row that keeps cells.
    pub moved_from: Option<Vec<Option<String>>>,
}

/// A target-mode write.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRows {
    pub truncate: bool,
    pub rows: Vec<BatchRow>,
    /// Each distinct set of kept columns (indices into the table's columns).
    pub keep_sets: Vec<Vec<usize>>,
    pub meta: Vec<MetaRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    Target(TargetRows),
    /// Rows added as they are (append mode, staging tables).
    Insert(Vec<Vec<Option<String>>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub table: DestTable,
    pub rows: Rows,
}

/// The writes as text; a value the column's type cannot hold stops the sink, naming it.
pub fn prepare(writes: &[TableWrite]) -> Result<Vec<Prepared>> {
    writes
        .iter()
        .map(|w| {
            let rows = match &w.write {
                Write::Insert(rows) => Rows::Insert(rows.iter().map(|r| cells(&w.table, r)).collect::<Result<_>>()?),
                Write::Target(plan) => Rows::Target(target_rows(&w.table, plan)?),
            };
            Ok(Prepared { table: w.table.clone(), rows })
        })
        .collect()
}

fn cell(table: &DestTable, column: &DestColumn, value: &serde_json::Value) -> Result<Option<String>> {
    text(value, &column.kind, &column.ty).map_err(|why| SinkError::Fatal(format!("duckdb destination: {}, column {:?}: {why}", table.name, column.name)))
}

fn cells(table: &DestTable, row: &[Cell]) -> Result<Vec<Option<String>>> {
    row.iter().zip(&table.columns).map(|(c, column)| cell(table, column, c.value())).collect()
}

/// The key values as the key columns' text.
fn key_text(table: &DestTable, key: &[serde_json::Value]) -> Result<Vec<Option<String>>> {
    let columns = table.key.iter().map(|k| table.column(k));
    columns.zip(key).map(|(column, v)| column.map_or(Ok(None), |c| cell(table, c, v))).collect()
}

fn target_rows(table: &DestTable, plan: &TargetPlan) -> Result<TargetRows> {
    let mut rows = Vec::with_capacity(plan.deletes.len() + plan.upserts.len() + plan.inserts.len());
    for key in &plan.deletes {
        let key = key_text(table, key)?;
        let cells = table.columns.iter().map(|c| table.key.iter().position(|k| *k == c.name).and_then(|i| key[i].clone())).collect();
        rows.push(BatchRow { cells, delete: true, keep: None, moved_from: None });
    }
    let mut keep_sets: Vec<Vec<usize>> = Vec::new();
    let upserts = plan.upserts.iter().map(|u| (&u.cells, u.moved_from.as_ref()));
    for (row, moved_from) in upserts.chain(plan.inserts.iter().map(|cells| (cells, None))) {
        let kept: Vec<usize> = row.iter().enumerate().filter(|(_, c)| **c == Cell::Keep).map(|(i, _)| i).collect();
        let keep = (!kept.is_empty()).then(|| match keep_sets.iter().position(|k| *k == kept) {
            Some(i) => i + 1,
            None => {
                keep_sets.push(kept);
                keep_sets.len()
            }
        });
        let moved_from = moved_from.map(|key| key_text(table, key)).transpose()?;
        rows.push(BatchRow { cells: cells(table, row)?, delete: false, keep, moved_from });
    }
    Ok(TargetRows { truncate: plan.truncate, rows, keep_sets, meta: plan.meta.clone() })
}
