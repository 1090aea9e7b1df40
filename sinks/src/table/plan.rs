//! A batch of changes to one table, reduced to what the destination must do: within the batch
//! the last change per key wins (changes come in commit order), a primary-key change is a
//! delete of the old key and an upsert of the new one, a truncate drops what came before it,
//! an unchanged TOAST column keeps the destination's value, snapshot rows are upserts.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::change::{Op, TableChange};
use super::layout::{DestTable, MetaRow, Source};

/// One cell of a row to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Value(Value),
    /// The destination keeps what it has (an unchanged TOAST value, a column the change did
    /// not carry); a new row gets null.
    Keep,
}

impl Cell {
    /// The value, with `Keep` as null (for destinations and modes that cannot keep).
    pub fn value(&self) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Cell::Value(v) => v,
            Cell::Keep => &NULL,
        }
    }
}

/// What a batch does to a table in target mode, in this order: truncate, deletes, upserts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TargetPlan {
    pub truncate: bool,
    /// Key values, in key column order.
    pub deletes: Vec<Vec<Value>>,
    /// Rows, cells in the table's column order.
    pub upserts: Vec<Upsert>,
    /// Rows of a table without a primary key: inserted as they are.
    pub inserts: Vec<Vec<Cell>>,
    /// The meta table's rows for the keys this batch touched.
    pub meta: Vec<MetaRow>,
}

/// A row to insert or update.
#[derive(Debug, Clone, PartialEq)]
pub struct Upsert {
    pub cells: Vec<Cell>,
    /// For a row whose primary key changed and that keeps cells: the key its row has in the
    /// destination, whose values the kept cells take.
    pub moved_from: Option<Vec<Value>>,
}

enum Entry {
    Upsert(Upsert),
    Delete(Vec<Value>),
}

/// The target-mode plan of `changes` (all of one source table); `now_ms` is the sync time.
/// Updates and deletes of a table without a primary key cannot be matched to a row: they come
/// back as refusals (offset, reason).
pub fn target_plan(table: &DestTable, changes: &[&TableChange], soft_delete: bool, now_ms: i64) -> (TargetPlan, Vec<(i64, String)>) {
    let mut plan = TargetPlan::default();
    let mut refused = Vec::new();
    let mut entries: IndexMap<String, Entry> = IndexMap::new();
    let mut meta: IndexMap<String, MetaRow> = IndexMap::new();
    for change in changes {
        if change.op == Op::Truncate {
            plan = TargetPlan { truncate: true, ..TargetPlan::default() };
            entries.clear();
            meta.clear();
            continue;
        }
        if table.key.is_empty() {
            match change.op {
                Op::Insert | Op::Read => plan.inserts.push(row(table, change, change.after.as_ref(), false, now_ms)),
                _ => refused.push((change.offset, format!("{} has no primary key: its updates and deletes cannot be applied (use write_mode append)", table.source))),
            }
            continue;
        }
        let mut moved_from = None;
        // For a key change: what the batch had for the old key.
        let mut moved: Option<Option<Entry>> = None;
        if let Some(old) = change.old_key() {
            let old_values = key_values(table, &old);
            let old_json = key_json(table, &old_values);
            // The row moves: kept cells come from where the destination has it.
            moved_from = match entries.get(&old_json) {
                Some(Entry::Upsert(Upsert { moved_from: Some(origin), .. })) => Some(origin.clone()),
                _ => Some(old_values.clone()),
            };
            let entry = if soft_delete {
                Entry::Upsert(merge(entries.get(&old_json), row(table, change, Some(&old), true, now_ms), None))
            } else {
                Entry::Delete(old_values)
            };
            meta.insert(old_json.clone(), table.meta_row(change, &old_json, true, now_ms));
            moved = Some(entries.insert(old_json, entry));
        }
        let image = match change.op {
            Op::Delete => change.before.as_ref().or(change.key.as_ref()),
            _ => change.after.as_ref(),
        };
        let Some(key) = change.key.as_ref().or(image) else { continue };
        let values = key_values(table, key);
        let json = key_json(table, &values);
        let deleted = change.op == Op::Delete;
        let entry = if deleted && !soft_delete {
            Entry::Delete(values)
        } else {
            let earlier = match &moved {
                Some(earlier) => earlier.as_ref(),
                None => entries.get(&json),
            };
            Entry::Upsert(merge(earlier, row(table, change, image, deleted, now_ms), moved_from))
        };
        meta.insert(json.clone(), table.meta_row(change, &json, deleted, now_ms));
        entries.insert(json, entry);
    }
    for (_, entry) in entries {
        match entry {
            Entry::Upsert(upsert) => plan.upserts.push(upsert),
            Entry::Delete(values) => plan.deletes.push(values),
        }
    }
    plan.meta = meta.into_values().collect();
    (plan, refused)
}

/// Every change as a row of its own (append mode, and staging tables): the row image (the old
/// one for deletes), its op in the meta op column.
pub fn append_rows(table: &DestTable, changes: &[&TableChange], now_ms: i64) -> Vec<Vec<Cell>> {
    changes
        .iter()
        .map(|change| {
            let image = match change.op {
                Op::Delete => change.before.as_ref().or(change.key.as_ref()),
                Op::Truncate => None,
                _ => change.after.as_ref(),
            };
            row(table, change, image, change.op == Op::Delete, now_ms).into_iter().map(|c| Cell::Value(c.value().clone())).collect()
        })
        .collect()
}

/// A row's cells in the table's column order: source columns from `image` (unchanged TOAST
/// and absent columns kept), meta columns from the change, staging columns when the table has
/// them.
fn row(table: &DestTable, change: &TableChange, image: Option<&Map<String, Value>>, deleted: bool, now_ms: i64) -> Vec<Cell> {
    table
        .columns
        .iter()
        .map(|column| match &column.source {
            Source::Column => match image.and_then(|i| i.get(&column.name)) {
                Some(v) if !change.unchanged_toast.contains(&column.name) => Cell::Value(v.clone()),
                _ => Cell::Keep,
            },
            meta => Cell::Value(meta.value(change, deleted, now_ms)),
        })
        .collect()
}

/// `newer` over what the batch already had for the key: kept cells take the earlier value.
/// `moved_from` is kept only while cells are still to be taken from the destination.
fn merge(earlier: Option<&Entry>, newer: Vec<Cell>, moved_from: Option<Vec<Value>>) -> Upsert {
    let (cells, moved_from): (Vec<Cell>, _) = match earlier {
        Some(Entry::Upsert(old)) => (
            newer.into_iter().zip(&old.cells).map(|(new, old)| if new == Cell::Keep { old.clone() } else { new }).collect(),
            moved_from.or_else(|| old.moved_from.clone()),
        ),
        _ => (newer, moved_from),
    };
    let moved_from = moved_from.filter(|_| cells.contains(&Cell::Keep));
    Upsert { cells, moved_from }
}

fn key_values(table: &DestTable, key: &Map<String, Value>) -> Vec<Value> {
    table.key.iter().map(|k| key.get(k).cloned().unwrap_or(Value::Null)).collect()
}

/// The key as a JSON object in key column order: the meta table's `key_json`, and the batch's
/// map key.
pub fn key_json(table: &DestTable, values: &[Value]) -> String {
    // By hand: serde_json's maps sort their keys.
    let fields: Vec<String> = table.key.iter().zip(values).map(|(k, v)| format!("{}:{v}", Value::String(k.clone()))).collect();
    format!("{{{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::table::layout::TableName;
    use crate::table::options::TableOptions;
    use crate::table::shape::SourceShape;
    use crate::table::types::Dialect;
    use crate::Options;

    fn table() -> DestTable {
        let shape = SourceShape::infer(&[change(Op::Insert, json!({"id": 1}), None, json!({"id": 1, "v": "a", "big": "x"}), &[])]);
        let options = TableOptions::take(&mut Options::new("postgres", &Default::default()), "m", "t", "s").unwrap_or_else(|e| panic!("{e}"));
        let name = TableName { schema: "public".into(), table: "t".into() };
        DestTable::new(Dialect::Postgres, name.clone(), name, &shape, &options, true)
    }

    fn change(op: Op, key: Value, before: Option<Value>, after: Value, toast: &[&str]) -> TableChange {
        let object = |v: Value| match v {
            Value::Object(m) => Some(m),
            _ => None,
        };
        TableChange {
            op,
            schema: "public".into(),
            table: "t".into(),
            key: object(key),
            before: before.and_then(object),
            after: object(after),
            unchanged_toast: toast.iter().map(|s| s.to_string()).collect(),
            lsn: 1,
            commit_ms: 0,
            xid: None,
            offset: 0,
        }
    }

    #[test]
    fn last_change_per_key_wins_and_moves_keep_their_origin() {
        let t = table();
        let changes = [
            change(Op::Update, json!({"id": 1}), None, json!({"id": 1, "v": "b"}), &["big"]),
            change(Op::Update, json!({"id": 2}), Some(json!({"id": 1})), json!({"id": 2, "v": "c"}), &["big"]),
            change(Op::Insert, json!({"id": 3}), None, json!({"id": 3, "v": "d", "big": "y"}), &[]),
            change(Op::Delete, json!({"id": 3}), Some(json!({"id": 3})), Value::Null, &[]),
        ];
        let refs: Vec<&TableChange> = changes.iter().collect();
        let (plan, refused) = target_plan(&t, &refs, false, 0);
        assert!(refused.is_empty() && !plan.truncate);
        assert_eq!(plan.deletes, vec![vec![json!(1)], vec![json!(3)]]);
        assert_eq!(plan.upserts.len(), 1);
        let cell = |name: &str| t.columns.iter().position(|c| c.name == name).map(|i| plan.upserts[0].cells[i].clone());
        assert_eq!((cell("id"), cell("v"), cell("big")), (Some(Cell::Value(json!(2))), Some(Cell::Value(json!("c"))), Some(Cell::Keep)));
        assert_eq!(plan.upserts[0].moved_from, Some(vec![json!(1)]));
    }

    #[test]
    fn a_truncate_drops_what_came_before_and_soft_deletes_flag() {
        let t = table();
        let changes = [
            change(Op::Insert, json!({"id": 1}), None, json!({"id": 1, "v": "a", "big": "x"}), &[]),
            change(Op::Truncate, Value::Null, None, Value::Null, &[]),
            change(Op::Delete, json!({"id": 5}), Some(json!({"id": 5})), Value::Null, &[]),
        ];
        let refs: Vec<&TableChange> = changes.iter().collect();
        let (plan, _) = target_plan(&t, &refs, false, 0);
        assert!(plan.truncate && plan.upserts.is_empty() && plan.deletes == vec![vec![json!(5)]]);
        let (soft, _) = target_plan(&t, &refs, true, 0);
        assert_eq!(soft.upserts.len(), 1, "a soft delete is an upsert");
        assert_eq!(soft.meta.len(), 1);
        assert!(soft.meta[0].deleted);
    }
}
