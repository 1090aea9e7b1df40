//! Rows in COPY's text format. Change events carry values as JSON; Postgres' own input
//! functions read their text forms back exactly (numeric digits, timestamps, arrays, intervals),
//! so text COPY needs no per-type binary encoder and loses nothing.

use crate::table::types::bytea_hex;
use serde_json::Value;

use crate::table::{Cell, ValueKind};

/// Appends one row: cells tab-separated, `\N` for null, a newline at the end.
pub fn push_row<'a>(out: &mut Vec<u8>, cells: impl IntoIterator<Item = (&'a Cell, &'a ValueKind)>) {
    for (i, (cell, kind)) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match text(cell.value(), kind) {
            Some(text) => escape_into(out, &text),
            None => out.extend_from_slice(b"\\N"),
        }
    }
    out.push(b'\n');
}

/// Appends a plain text field (or `\N`), for the sink's own columns.
pub fn push_field(out: &mut Vec<u8>, text: Option<&str>, last: bool) {
    match text {
        Some(text) => escape_into(out, text),
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(if last { b'\n' } else { b'\t' });
}

/// A value's text form for a column of `kind`; `None` for null.
pub fn text(value: &Value, kind: &ValueKind) -> Option<String> {
    match (value, kind) {
        (Value::Null, _) => None,
        // A JSON column holds any JSON value, strings included, as JSON text.
        (v, ValueKind::Json) => Some(v.to_string()),
        (Value::String(s), ValueKind::Bytes) => Some(bytea_hex(s)),
        (Value::String(s), _) => Some(s.clone()),
        (Value::Bool(b), _) => Some(if *b { "t" } else { "f" }.to_owned()),
        (Value::Number(n), _) => Some(n.to_string()),
        (Value::Array(items), ValueKind::Array(element)) => Some(array_literal(items, element)),
        (other, _) => Some(other.to_string()),
    }
}


/// A Postgres array literal: `{1,NULL,"a \"b\""}`, nested for multi-dimensional arrays.
fn array_literal(items: &[Value], element: &ValueKind) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|item| match item {
            Value::Array(inner) => array_literal(inner, element),
            other => match text(other, element) {
                None => "NULL".to_owned(),
                Some(t) => format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\"")),
            },
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// COPY text escapes: backslash, tab, newline and carriage return.
fn escape_into(out: &mut Vec<u8>, text: &str) {
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_forms() {
        let int_array = ValueKind::Array(Box::new(ValueKind::Int));
        assert_eq!(text(&json!([[1, null], [3, 4]]), &int_array).as_deref(), Some("{{\"1\",NULL},{\"3\",\"4\"}}"));
        let text_array = ValueKind::Array(Box::new(ValueKind::Text));
        assert_eq!(text(&json!(["a\"b", "c\\d"]), &text_array).as_deref(), Some(r#"{"a\"b","c\\d"}"#));
        assert_eq!(text(&json!("AQL/"), &ValueKind::Bytes).as_deref(), Some("\\x0102ff"));
        assert_eq!(text(&json!("x"), &ValueKind::Json).as_deref(), Some("\"x\""));
        assert_eq!(text(&json!(true), &ValueKind::Bool).as_deref(), Some("t"));
        let mut row = Vec::new();
        let cells = [Cell::Value(json!("a\tb\nc")), Cell::Keep];
        push_row(&mut row, cells.iter().zip([&ValueKind::Text, &ValueKind::Text]));
        assert_eq!(row, b"a\\tb\\nc\t\\N\n");
    }
}
