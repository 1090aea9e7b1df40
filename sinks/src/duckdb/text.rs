//! Change events' JSON values as text for DuckDB, and the casts that read that text into the
//! destination's types. DuckDB's own casts read most text forms exactly (ISO timestamps with
//! `Z`, uuids, JSON); some need help: bytea comes as base64 (decoded by `from_base64` in SQL),
//! arrays as JSON arrays (cast through JSON: the Appender has no lists), numerics are scaled
//! to integers here (DuckDB reads text into a DECIMAL wider than 18 digits some 300 times
//! slower than into a HUGEINT, and exactly either way), and what DuckDB reads differently from
//! Postgres is rewritten: ISO 8601 intervals (`P1DT2H`, which it does not read) and BC dates
//! (which it would read as AD).

use serde_json::Value;

use crate::table::ValueKind;

/// A value's text form for a column of `kind` whose DuckDB type is `ty`; `None` for null; the
/// reason when the type cannot hold the value.
pub fn text(value: &Value, kind: &ValueKind, ty: &str) -> Result<Option<String>, String> {
    if let (ValueKind::Numeric, Some((precision, scale))) = (kind, decimal_modifiers(ty)) {
        return match value {
            Value::Null => Ok(None),
            Value::String(s) => scaled(s, precision, scale).map(Some),
            Value::Number(n) => scaled(&n.to_string(), precision, scale).map(Some),
            other => Err(format!("{other} is not a number")),
        }
        .map_err(|why| format!("{why}: {ty} cannot hold it (type_mappings can make the column DOUBLE or VARCHAR)"));
    }
    Ok(plain_text(value, kind, ty))
}

fn plain_text(value: &Value, kind: &ValueKind, ty: &str) -> Option<String> {
    match (value, kind) {
        (Value::Null, _) => None,
        // A JSON column holds any JSON value, strings included, as JSON text.
        (v, ValueKind::Json) => Some(v.to_string()),
        (Value::Array(_), _) => {
            let element_kind = match kind {
                ValueKind::Array(element) => element.as_ref(),
                other => other,
            };
            Some(elements(value, element_kind, element_type(ty)).to_string())
        }
        (Value::String(s), _) => Some(scalar(s, kind, ty)),
        (Value::Bool(b), _) => Some(b.to_string()),
        (other, _) => Some(other.to_string()),
    }
}

/// A string value rewritten where DuckDB would misread it.
fn scalar(s: &str, kind: &ValueKind, ty: &str) -> String {
    if ty.trim().eq_ignore_ascii_case("interval") {
        return iso_interval(s).unwrap_or_else(|| s.to_owned());
    }
    match kind {
        ValueKind::Date | ValueKind::Timestamp | ValueKind::TimestampTz => before_christ(s).unwrap_or_else(|| s.to_owned()),
        _ => s.to_owned(),
    }
}

/// An array's strings rewritten as its elements need (nested arrays kept nested).
fn elements(value: &Value, kind: &ValueKind, ty: &str) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|i| elements(i, kind, ty)).collect()),
        Value::String(s) => Value::String(scalar(s, kind, ty)),
        other => other.clone(),
    }
}

/// The precision and scale of `DECIMAL(p,s)` (or `NUMERIC(p)`).
fn decimal_modifiers(ty: &str) -> Option<(usize, usize)> {
    let lower = ty.trim().to_ascii_lowercase();
    let inner = lower.strip_prefix("decimal").or_else(|| lower.strip_prefix("numeric"))?.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    let (p, s) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
    (s <= p && p <= 38).then_some((p, s))
}

/// A plain decimal number (`-12.345`) as the integer of its value times 10^`scale`, rounded
/// half away from zero as DuckDB's and Postgres' casts round, refused when it has more than
/// `precision` digits then.
fn scaled(number: &str, precision: usize, scale: usize) -> Result<String, String> {
    let refuse = || format!("{number:?} is not a plain decimal number");
    let (negative, digits) = match number.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.trim().strip_prefix('+').unwrap_or(number.trim())),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && fraction.is_empty()) || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    let mut value: Vec<u8> = whole.bytes().chain(fraction.bytes().chain(std::iter::repeat(b'0')).take(scale)).collect();
    if fraction.as_bytes().get(scale).is_some_and(|d| *d >= b'5') {
        // Round up: carry through the nines.
        let mut i = value.len();
        loop {
            if i == 0 {
                value.insert(0, b'1');
                break;
            }
            i -= 1;
            if value[i] == b'9' {
                value[i] = b'0';
            } else {
                value[i] += 1;
                break;
            }
        }
    }
    let start = value.iter().position(|d| *d != b'0').unwrap_or(value.len());
    let significant = &value[start..];
    if significant.len() > precision {
        return Err(format!("{number} has more than {} digits before the point", precision - scale));
    }
    if significant.is_empty() {
        return Ok("0".to_owned());
    }
    let digits = String::from_utf8_lossy(significant);
    Ok(if negative { format!("-{digits}") } else { digits.into_owned() })
}

/// `INTEGER[]` → `INTEGER`.
fn element_type(ty: &str) -> &str {
    ty.trim().strip_suffix("[]").unwrap_or(ty)
}

/// The SQL that reads `column` (a VARCHAR holding [`text`]'s form) as `ty`.
pub fn cast(column: &str, kind: &ValueKind, ty: &str) -> String {
    let ty_trimmed = ty.trim();
    let is_blob = |t: &str| t.eq_ignore_ascii_case("blob") || t.eq_ignore_ascii_case("bytea");
    match kind {
        ValueKind::Numeric if let Some((_, scale)) = decimal_modifiers(ty_trimmed) => {
            // The text is the value times 10^scale (see [`scaled`]): a DECIMAL(38,0) times
            // 10^-scale is exactly the value, with the scale.
            let whole = format!("CAST(CAST({column} AS HUGEINT) AS DECIMAL(38,0))");
            match scale {
                0 => format!("CAST({whole} AS {ty_trimmed})"),
                _ => format!("CAST({whole} * CAST('0.{}1' AS DECIMAL(38,{scale})) AS {ty_trimmed})", "0".repeat(scale - 1)),
            }
        }
        ValueKind::Bytes if is_blob(ty_trimmed) => format!("from_base64({column})"),
        ValueKind::Array(element) if **element == ValueKind::Bytes && is_blob(element_type(ty_trimmed)) => {
            format!("CAST(list_transform(CAST(CAST({column} AS JSON) AS VARCHAR[]), x -> from_base64(x)) AS {ty_trimmed})")
        }
        // JSON to a list casts each element as the element type would its text (json_transform).
        _ if ty_trimmed.ends_with("[]") => format!("CAST(CAST({column} AS JSON) AS {ty_trimmed})"),
        _ => format!("CAST({column} AS {ty_trimmed})"),
    }
}

/// Postgres' ISO 8601 interval (`P1Y2M3DT4H5M6.5S`, each part signed) in the words DuckDB
/// reads (`1 years 2 months 3 days 4 hours 5 minutes 6.5 seconds`); `None` if it is not one.
pub fn iso_interval(text: &str) -> Option<String> {
    let rest = text.trim().strip_prefix('P')?;
    let mut parts = Vec::new();
    let mut time = false;
    let mut number = String::new();
    for c in rest.chars() {
        match c {
            'T' if number.is_empty() => time = true,
            '0'..='9' | '.' | '-' | '+' => number.push(c),
            unit => {
                let word = match (unit, time) {
                    ('Y', false) => "years",
                    ('M', false) => "months",
                    ('W', false) => "weeks",
                    ('D', false) => "days",
                    ('H', true) => "hours",
                    ('M', true) => "minutes",
                    ('S', true) => "seconds",
                    _ => return None,
                };
                if number.is_empty() || number.parse::<f64>().is_err() {
                    return None;
                }
                parts.push(format!("{} {word}", std::mem::take(&mut number)));
            }
        }
    }
    if !number.is_empty() {
        return None;
    }
    Some(if parts.is_empty() { "0 seconds".to_owned() } else { parts.join(" ") })
}

/// Postgres' BC dates and times (`0044-03-15 BC`, `0044-03-15 12:00:00+00 BC`) with
/// astronomical years (`-0043-03-15 …`), which DuckDB reads (it would take the first as AD).
fn before_christ(text: &str) -> Option<String> {
    let stamp = text.strip_suffix(" BC")?;
    let digits = stamp.find(|c: char| !c.is_ascii_digit()).unwrap_or(stamp.len());
    let year: i64 = stamp[..digits].parse().ok()?;
    let astronomical = 1 - year;
    let sign = if astronomical < 0 { "-" } else { "" };
    Some(format!("{sign}{:04}{}", astronomical.abs(), &stamp[digits..]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(value: &Value, kind: &ValueKind, ty: &str) -> Option<String> {
        super::text(value, kind, ty).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn numerics_scale_exactly_and_refuse_what_does_not_fit() {
        assert_eq!(text(&json!("12.5"), &ValueKind::Numeric, "DECIMAL(12,3)").as_deref(), Some("12500"));
        assert_eq!(text(&json!("-0.0005"), &ValueKind::Numeric, "DECIMAL(12,3)").as_deref(), Some("-1"));
        assert_eq!(text(&json!("-0.0004"), &ValueKind::Numeric, "DECIMAL(12,3)").as_deref(), Some("0"));
        assert_eq!(text(&json!("9.9996"), &ValueKind::Numeric, "decimal(5, 3)").as_deref(), Some("10000"));
        assert_eq!(text(&json!("12345678901234567890.0123456789"), &ValueKind::Numeric, "DECIMAL(38,10)").as_deref(), Some("123456789012345678900123456789"));
        assert_eq!(text(&json!(".5"), &ValueKind::Numeric, "NUMERIC(3)").as_deref(), Some("1"));
        assert!(super::text(&json!("99.9996"), &ValueKind::Numeric, "DECIMAL(5,3)").is_err());
        assert!(super::text(&json!("NaN"), &ValueKind::Numeric, "DECIMAL(38,10)").is_err());
        assert!(super::text(&json!("1e5"), &ValueKind::Numeric, "DECIMAL(38,10)").is_err());
        assert_eq!(text(&json!("NaN"), &ValueKind::Numeric, "DOUBLE").as_deref(), Some("NaN"));
        assert_eq!(cast("c", &ValueKind::Numeric, "DECIMAL(12,3)"), "CAST(CAST(CAST(c AS HUGEINT) AS DECIMAL(38,0)) * CAST('0.001' AS DECIMAL(38,3)) AS DECIMAL(12,3))");
        assert_eq!(cast("c", &ValueKind::Numeric, "DECIMAL(12,0)"), "CAST(CAST(CAST(c AS HUGEINT) AS DECIMAL(38,0)) AS DECIMAL(12,0))");
    }

    #[test]
    fn text_forms() {
        let ints = ValueKind::Array(Box::new(ValueKind::Int));
        assert_eq!(text(&json!([[1, null], [3, 4]]), &ints, "INTEGER[]").as_deref(), Some("[[1,null],[3,4]]"));
        assert_eq!(text(&json!("x"), &ValueKind::Json, "JSON").as_deref(), Some("\"x\""));
        assert_eq!(text(&json!(true), &ValueKind::Bool, "BOOLEAN").as_deref(), Some("true"));
        assert_eq!(text(&Value::Null, &ValueKind::Text, "VARCHAR"), None);
        assert_eq!(text(&json!("P1DT2H3M4S"), &ValueKind::Other, "INTERVAL").as_deref(), Some("1 days 2 hours 3 minutes 4 seconds"));
        assert_eq!(text(&json!("P1DT2H3M4S"), &ValueKind::Other, "VARCHAR").as_deref(), Some("P1DT2H3M4S"));
        let intervals = ValueKind::Array(Box::new(ValueKind::Other));
        assert_eq!(text(&json!(["PT0S", null]), &intervals, "INTERVAL[]").as_deref(), Some("[\"0 seconds\",null]"));
        assert_eq!(text(&json!("0044-03-15 BC"), &ValueKind::Date, "DATE").as_deref(), Some("-0043-03-15"));
        assert_eq!(text(&json!("0001-01-01 00:00:00+00 BC"), &ValueKind::TimestampTz, "TIMESTAMPTZ").as_deref(), Some("0000-01-01 00:00:00+00"));
    }

    #[test]
    fn iso_intervals() {
        assert_eq!(iso_interval("P-1Y-2M3DT-4H-5M-6.5S").as_deref(), Some("-1 years -2 months 3 days -4 hours -5 minutes -6.5 seconds"));
        assert_eq!(iso_interval("PT0S").as_deref(), Some("0 seconds"));
        assert_eq!(iso_interval("P1Y").as_deref(), Some("1 years"));
        assert_eq!(iso_interval("1 day"), None);
        assert_eq!(iso_interval("P1X"), None);
    }

    #[test]
    fn casts() {
        assert_eq!(cast("c", &ValueKind::Bytes, "BLOB"), "from_base64(c)");
        assert_eq!(cast("c", &ValueKind::Bytes, "VARCHAR"), "CAST(c AS VARCHAR)");
        let bytes = ValueKind::Array(Box::new(ValueKind::Bytes));
        assert_eq!(cast("c", &bytes, "BLOB[]"), "CAST(list_transform(CAST(CAST(c AS JSON) AS VARCHAR[]), x -> from_base64(x)) AS BLOB[])");
        assert_eq!(cast("c", &ValueKind::Array(Box::new(ValueKind::Int)), "INTEGER[]"), "CAST(CAST(c AS JSON) AS INTEGER[])");
        assert_eq!(cast("c", &ValueKind::Numeric, "VARCHAR"), "CAST(c AS VARCHAR)");
    }
}
