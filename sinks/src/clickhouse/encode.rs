//! Change event values as JSONEachRow tokens for the column they go into. Change events carry
//! numerics as strings with every digit, bytea as base64, timestamps as ISO 8601 text; what
//! ClickHouse's JSON input takes depends on the column: a Decimal only as a bare JSON number
//! with at most its scale's digits, a Date only as `YYYY-MM-DD` (within 1970–2105), raw bytes
//! not at all (JSON strings are Unicode), so bytea is written as `\x` and hex digits.

use crate::table::types::bytea_hex;
use serde_json::Value;

use crate::table::ValueKind;

/// What a ClickHouse column type takes, as far as writing into it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Int,
    Float,
    Decimal { scale: u32 },
    String,
    Date,
    DateTime,
    Uuid,
    Array(Box<Target>),
    Other,
}

/// The target of a column type as ClickHouse spells it (`Nullable(Decimal(12, 3))`).
pub fn target(ty: &str) -> Target {
    let ty = strip_wrappers(ty);
    if let Some(element) = ty.strip_prefix("Array(").and_then(|t| t.strip_suffix(')')) {
        return Target::Array(Box::new(target(element)));
    }
    let name = ty.split('(').next().unwrap_or(ty).trim();
    let args = ty.find('(').and_then(|open| ty[open + 1..].strip_suffix(')'));
    match name {
        "Int8" | "Int16" | "Int32" | "Int64" | "Int128" | "Int256" | "UInt8" | "UInt16" | "UInt32" | "UInt64" | "UInt128" | "UInt256" => Target::Int,
        "Float32" | "Float64" => Target::Float,
        "Decimal" => Target::Decimal { scale: args.and_then(|a| a.split(',').nth(1)).and_then(|s| s.trim().parse().ok()).unwrap_or(0) },
        "Decimal32" | "Decimal64" | "Decimal128" | "Decimal256" => Target::Decimal { scale: args.and_then(|s| s.trim().parse().ok()).unwrap_or(0) },
        "String" | "FixedString" => Target::String,
        "Date" | "Date32" => Target::Date,
        "DateTime" | "DateTime64" => Target::DateTime,
        "UUID" => Target::Uuid,
        _ => Target::Other,
    }
}

/// The type without `Nullable(…)` and `LowCardinality(…)`.
pub fn strip_wrappers(ty: &str) -> &str {
    let mut ty = ty.trim();
    for wrapper in ["LowCardinality(", "Nullable(", "LowCardinality(", "Nullable("] {
        if let Some(inner) = ty.strip_prefix(wrapper).and_then(|t| t.strip_suffix(')')) {
            ty = inner.trim();
        }
    }
    ty
}

/// Appends the token for `value` (of `kind`) in a column of `target`; a value the column
/// cannot hold is an error saying why.
pub fn push_token(out: &mut String, value: &Value, kind: &ValueKind, target: &Target) -> Result<(), String> {
    match (value, target) {
        // ClickHouse has no Nullable(Array).
        (Value::Null, Target::Array(_)) => out.push_str("[]"),
        (Value::Null, _) => out.push_str("null"),
        (v, Target::String) => push_string(out, &text(v, kind)),
        (Value::Array(items), Target::Array(element)) => {
            let element_kind = match kind {
                ValueKind::Array(element) => element.as_ref(),
                _ => &ValueKind::Other,
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_token(out, item, element_kind, element)?;
            }
            out.push(']');
        }
        (Value::Bool(b), _) => out.push_str(if *b { "1" } else { "0" }),
        (v @ (Value::String(_) | Value::Number(_)), Target::Decimal { scale }) => {
            let digits = match v {
                Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            };
            match scale_decimal(&digits, *scale) {
                Some(scaled) => out.push_str(&scaled),
                // NaN and ±Infinity: a Decimal has no such value.
                None if matches!(digits.as_str(), "NaN" | "Infinity" | "-Infinity") => out.push_str("null"),
                None => return Err(format!("{digits:?} is not a number a Decimal column takes")),
            }
        }
        (Value::Number(n), _) => out.push_str(&n.to_string()),
        (Value::String(s), Target::Float) => match s.as_str() {
            "NaN" => out.push_str("\"nan\""),
            "Infinity" => out.push_str("\"inf\""),
            "-Infinity" => out.push_str("\"-inf\""),
            other => push_string(out, other),
        },
        (Value::String(s), Target::Int) if s.parse::<i128>().is_ok() => out.push_str(s),
        (Value::String(s), Target::Date) => {
            if !date_in_range(s) {
                return Err(format!(
                    "the date {s:?} is outside ClickHouse's Date range (1970-01-01 to 2105-12-31); map the type to String (type_mappings {{\"date\": \"String\"}})"
                ));
            }
            push_string(out, s);
        }
        (Value::String(s), _) => push_string(out, s),
        (other, _) => push_string(out, &other.to_string()),
    }
    Ok(())
}

/// A value's text in a String column: JSON text for json columns (strings included), `\x` and
/// hex digits for bytea, the text itself for strings, JSON text for anything else.
fn text(value: &Value, kind: &ValueKind) -> String {
    match (value, kind) {
        (v, ValueKind::Json) => v.to_string(),
        (Value::String(s), ValueKind::Bytes) => bytea_hex(s),
        (Value::String(s), _) => s.clone(),
        (other, _) => other.to_string(),
    }
}


pub fn push_string(out: &mut String, text: &str) {
    out.push_str(&Value::String(text.to_owned()).to_string());
}

/// `YYYY-MM-DD` within ClickHouse's Date range.
fn date_in_range(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    match parts.as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => y.parse::<u32>().is_ok_and(|y| (1970..=2105).contains(&y)),
        _ => false,
    }
}

/// The decimal `text` rounded (half away from zero, as Postgres rounds numerics) to `scale`
/// fractional digits, as a bare number; `None` when it is not plain digits (NaN, exponents).
pub fn scale_decimal(text: &str, scale: u32) -> Option<String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = scale as usize;
    // Every digit kept, most significant first, the last `scale` of them fractional.
    let mut digits: Vec<u8> = int_part.bytes().map(|b| b - b'0').collect();
    digits.extend(frac_part.bytes().chain(std::iter::repeat(b'0')).take(scale).map(|b| b - b'0'));
    if frac_part.as_bytes().get(scale).is_some_and(|b| *b >= b'5') {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let split = digits.len() - scale;
    let int_digits: String = digits[..split].iter().map(|d| char::from(b'0' + d)).collect();
    let int_digits = int_digits.trim_start_matches('0');
    let frac_digits: String = digits[split..].iter().map(|d| char::from(b'0' + d)).collect();
    let zero = digits.iter().all(|d| *d == 0);
    let mut out = String::new();
    if negative && !zero {
        out.push('-');
    }
    out.push_str(if int_digits.is_empty() { "0" } else { int_digits });
    if scale > 0 {
        out.push('.');
        out.push_str(&frac_digits);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn token(value: Value, kind: ValueKind, ty: &str) -> Result<String, String> {
        let mut out = String::new();
        push_token(&mut out, &value, &kind, &target(ty))?;
        Ok(out)
    }

    #[test]
    fn reads_types() {
        assert_eq!(target("Nullable(Decimal(12, 3))"), Target::Decimal { scale: 3 });
        assert_eq!(target("Decimal64(4)"), Target::Decimal { scale: 4 });
        assert_eq!(target("Array(Nullable(Int32))"), Target::Array(Box::new(Target::Int)));
        assert_eq!(target("LowCardinality(Nullable(String))"), Target::String);
        assert_eq!(target("DateTime64(6, 'UTC')"), Target::DateTime);
        assert_eq!(target("Enum8('a' = 1)"), Target::Other);
    }

    #[test]
    fn rounds_decimals_to_the_scale() {
        assert_eq!(scale_decimal("123.4567", 2).as_deref(), Some("123.46"));
        assert_eq!(scale_decimal("-0.005", 2).as_deref(), Some("-0.01"));
        assert_eq!(scale_decimal("-0.004", 2).as_deref(), Some("0.00"));
        assert_eq!(scale_decimal("9.995", 2).as_deref(), Some("10.00"));
        assert_eq!(scale_decimal("99", 0).as_deref(), Some("99"));
        assert_eq!(scale_decimal("0099.5", 0).as_deref(), Some("100"));
        assert_eq!(scale_decimal("1", 3).as_deref(), Some("1.000"));
        assert_eq!(scale_decimal("12345678901234567890.12345678905", 10).as_deref(), Some("12345678901234567890.1234567891"));
        assert_eq!(scale_decimal("NaN", 2), None);
        assert_eq!(scale_decimal("1e5", 2), None);
        assert_eq!(scale_decimal("-", 2), None);
    }

    #[test]
    fn tokens_per_column() -> Result<(), String> {
        assert_eq!(token(json!("1.125"), ValueKind::Numeric, "Nullable(Decimal(12, 2))")?, "1.13");
        assert_eq!(token(json!("NaN"), ValueKind::Numeric, "Nullable(Decimal(12, 2))")?, "null");
        assert_eq!(token(json!("1.125"), ValueKind::Numeric, "Nullable(String)")?, "\"1.125\"");
        assert_eq!(token(json!("AP8B"), ValueKind::Bytes, "Nullable(String)")?, r#""\\x00ff01""#);
        assert_eq!(token(json!({"a": [1, "x"]}), ValueKind::Json, "Nullable(String)")?, r#""{\"a\":[1,\"x\"]}""#);
        assert_eq!(token(json!("x"), ValueKind::Json, "Nullable(String)")?, r#""\"x\"""#);
        assert_eq!(token(json!(true), ValueKind::Bool, "Nullable(UInt8)")?, "1");
        assert_eq!(token(json!([1, null]), ValueKind::Array(Box::new(ValueKind::Int)), "Array(Nullable(Int32))")?, "[1,null]");
        assert_eq!(token(Value::Null, ValueKind::Array(Box::new(ValueKind::Int)), "Array(Nullable(Int32))")?, "[]");
        assert_eq!(token(json!(["NaN", 1.5]), ValueKind::Array(Box::new(ValueKind::Float)), "Array(Nullable(Float64))")?, "[\"nan\",1.5]");
        assert_eq!(token(json!("2024-01-02T03:04:05.5Z"), ValueKind::TimestampTz, "Nullable(String)")?, "\"2024-01-02T03:04:05.5Z\"");
        assert_eq!(token(json!("2024-01-09"), ValueKind::Date, "Nullable(Date)")?, "\"2024-01-09\"");
        assert!(token(json!("1960-01-01"), ValueKind::Date, "Nullable(Date)").is_err_and(|e| e.contains("type_mappings")));
        assert_eq!(token(json!([[1, 2]]), ValueKind::Array(Box::new(ValueKind::Int)), "Nullable(String)")?, "\"[[1,2]]\"");
        assert_eq!(token(json!("7"), ValueKind::Other, "Int64")?, "7");
        Ok(())
    }
}
