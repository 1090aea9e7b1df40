//! Column values: from Postgres' text output form to JSON, by type.
//!
//! Sessions run with DateStyle=ISO, TimeZone=UTC, IntervalStyle=iso_8601 and bytea_output=hex
//! (see [`crate::source`]), so the text forms parsed here do not depend on server settings.

use base64::Engine;
use serde_json::{Number, Value};

use crate::types::{TypeKind, TypeRegistry};

/// Converts one non-null value in text form to JSON.
pub fn to_json(registry: &TypeRegistry, type_oid: u32, text: &str) -> Value {
    convert(registry, registry.kind(type_oid), text)
}

fn convert(registry: &TypeRegistry, kind: TypeKind, text: &str) -> Value {
    match kind {
        TypeKind::Bool => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => Value::String(text.to_string()),
        },
        TypeKind::Int => text.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(text.to_string())),
        TypeKind::Numeric => Value::String(text.to_string()),
        TypeKind::Float => match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            // NaN, Infinity, -Infinity have no JSON number form.
            None => Value::String(text.to_string()),
        },
        TypeKind::Bytea => match text.strip_prefix("\\x").and_then(decode_hex) {
            Some(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            None => Value::String(text.to_string()),
        },
        TypeKind::Timestamp => Value::String(iso_timestamp(text)),
        TypeKind::TimestampTz => {
            let iso = iso_timestamp(text);
            Value::String(match iso.strip_suffix("+00") {
                Some(utc) => format!("{utc}Z"),
                None => iso,
            })
        }
        TypeKind::Json => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
        TypeKind::Array { element, delimiter } => match parse_array(text, delimiter) {
            Some(tree) => array_to_json(registry, registry.kind(element), &tree),
            None => Value::String(text.to_string()),
        },
        TypeKind::Text => Value::String(text.to_string()),
    }
}

/// `2024-01-02 03:04:05` -> `2024-01-02T03:04:05`; `infinity` and BC dates stay as they are.
fn iso_timestamp(text: &str) -> String {
    if text.ends_with(" BC") || !text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return text.to_string();
    }
    text.replacen(' ', "T", 1)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16);
    hex.as_bytes().chunks(2).map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)).collect()
}

/// An array literal's structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayItem {
    Null,
    Value(String),
    Nested(Vec<ArrayItem>),
}

fn array_to_json(registry: &TypeRegistry, element: TypeKind, item: &ArrayItem) -> Value {
    match item {
        ArrayItem::Null => Value::Null,
        ArrayItem::Value(text) => convert(registry, element, text),
        ArrayItem::Nested(items) => Value::Array(items.iter().map(|i| array_to_json(registry, element, i)).collect()),
    }
}

/// Parses an array's text output: `{1,2,NULL}`, `{{"a b","c\"d"},{e,f}}`, `[0:1]={1,2}`.
pub fn parse_array(text: &str, delimiter: u8) -> Option<ArrayItem> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    // Arrays with lower bounds other than 1 carry a dimension decoration; JSON has no use for it.
    if bytes.first() == Some(&b'[') {
        pos = text.find('=')? + 1;
    }
    let (item, end) = parse_level(bytes, pos, delimiter)?;
    (end == bytes.len()).then_some(item)
}

fn parse_level(b: &[u8], mut pos: usize, delimiter: u8) -> Option<(ArrayItem, usize)> {
    if b.get(pos) != Some(&b'{') {
        return None;
    }
    pos += 1;
    let mut items = Vec::new();
    if b.get(pos) == Some(&b'}') {
        return Some((ArrayItem::Nested(items), pos + 1));
    }
    loop {
        match b.get(pos)? {
            b'{' => {
                let (nested, next) = parse_level(b, pos, delimiter)?;
                items.push(nested);
                pos = next;
            }
            b'"' => {
                pos += 1;
                let mut value = Vec::new();
                loop {
                    match b.get(pos)? {
                        b'\\' => {
                            value.push(*b.get(pos + 1)?);
                            pos += 2;
                        }
                        b'"' => {
                            pos += 1;
                            break;
                        }
                        other => {
                            value.push(*other);
                            pos += 1;
                        }
                    }
                }
                items.push(ArrayItem::Value(String::from_utf8(value).ok()?));
            }
            _ => {
                let start = pos;
                while let Some(c) = b.get(pos) {
                    if *c == delimiter || *c == b'}' {
                        break;
                    }
                    pos += 1;
                }
                let raw = std::str::from_utf8(&b[start..pos]).ok()?.trim();
                items.push(if raw.eq_ignore_ascii_case("NULL") { ArrayItem::Null } else { ArrayItem::Value(raw.to_string()) });
            }
        }
        match b.get(pos)? {
            c if *c == delimiter => pos += 1,
            b'}' => return Some((ArrayItem::Nested(items), pos + 1)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays_nest_and_quote() {
        let r = TypeRegistry::new(false);
        assert_eq!(to_json(&r, 1007, "{1,2,NULL}"), json!([1, 2, null]));
        assert_eq!(to_json(&r, 1007, "{{1,2},{3,4}}"), json!([[1, 2], [3, 4]]));
        assert_eq!(to_json(&r, 1009, r#"{"a b","c\"d","NULL",NULL,"x\\y"}"#), json!(["a b", "c\"d", "NULL", null, "x\\y"]));
        assert_eq!(to_json(&r, 1007, "[0:1]={5,6}"), json!([5, 6]));
        assert_eq!(to_json(&r, 1007, "{}"), json!([]));
        assert_eq!(to_json(&r, 1020, "{(1,1),(0,0);(2,2),(1,1)}"), json!(["(1,1),(0,0)", "(2,2),(1,1)"]));
    }

    #[test]
    fn scalars() {
        let r = TypeRegistry::new(false);
        assert_eq!(to_json(&r, 20, "9223372036854775807"), json!(9_223_372_036_854_775_807_i64));
        assert_eq!(to_json(&r, 701, "NaN"), json!("NaN"));
        assert_eq!(to_json(&r, 701, "1.5"), json!(1.5));
        assert_eq!(to_json(&r, 17, "\\x0001ff"), json!("AAH/"));
        assert_eq!(to_json(&r, 1184, "2024-01-02 03:04:05.5+00"), json!("2024-01-02T03:04:05.5Z"));
        assert_eq!(to_json(&r, 1114, "infinity"), json!("infinity"));
        assert_eq!(to_json(&r, 3802, r#"{"a": [1, true]}"#), json!({"a": [1, true]}));
    }
}
