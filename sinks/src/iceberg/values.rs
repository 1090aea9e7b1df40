//! Typed columns' values: the JSON values of change events (see `ductstream_cdc::value`) as
//! Arrow arrays of a column's Iceberg type. A value that does not fit the type (text in an
//! int column after the source changed the column's type, `infinity` in a date) is null in
//! the typed column; the record's `value` column still holds it.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::ArrowError;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde_json::Value;

use super::schema::{list_element, ColumnType};

/// `values` as an array of `ty`; `None` is null.
pub fn array(ty: &ColumnType, values: &[Option<&Value>]) -> Result<ArrayRef, ArrowError> {
    let each = |f: &dyn Fn(&Value) -> Option<i64>| values.iter().map(|v| v.and_then(f)).collect::<Vec<_>>();
    Ok(match ty {
        ColumnType::Boolean => Arc::new(values.iter().map(|v| v.and_then(Value::as_bool)).collect::<BooleanArray>()),
        ColumnType::Int => Arc::new(values.iter().map(|v| v.and_then(integer).and_then(|i| i32::try_from(i).ok())).collect::<Int32Array>()),
        ColumnType::Long => Arc::new(each(&integer).into_iter().collect::<Int64Array>()),
        ColumnType::Float => Arc::new(values.iter().map(|v| v.and_then(float).map(|f| f as f32)).collect::<Float32Array>()),
        ColumnType::Double => Arc::new(values.iter().map(|v| v.and_then(float)).collect::<Float64Array>()),
        ColumnType::Decimal { precision, scale } => {
            let scaled = values.iter().map(|v| v.and_then(|v| decimal(v, *precision, *scale)));
            Arc::new(scaled.collect::<Decimal128Array>().with_precision_and_scale(*precision, *scale)?)
        }
        ColumnType::String => Arc::new(values.iter().map(|v| v.and_then(text)).collect::<StringArray>()),
        ColumnType::Binary => Arc::new(values.iter().map(|v| v.and_then(bytes)).collect::<BinaryArray>()),
        ColumnType::Date => Arc::new(values.iter().map(|v| v.and_then(date)).collect::<Date32Array>()),
        ColumnType::Time => Arc::new(each(&time).into_iter().collect::<Time64MicrosecondArray>()),
        ColumnType::Timestamp => Arc::new(each(&|v| timestamp(v, false)).into_iter().collect::<TimestampMicrosecondArray>()),
        ColumnType::TimestampTz => Arc::new(each(&|v| timestamp(v, true)).into_iter().collect::<TimestampMicrosecondArray>().with_timezone("+00:00")),
        ColumnType::List { element_id, element } => {
            // Multidimensional arrays have no list-of-scalars form: those are null.
            let lists: Vec<Option<&Vec<Value>>> =
                values.iter().map(|v| v.and_then(Value::as_array).filter(|items| !items.iter().any(Value::is_array))).collect();
            let items: Vec<Option<&Value>> = lists.iter().flatten().flat_map(|items| items.iter().map(|i| (!i.is_null()).then_some(i))).collect();
            let lengths = lists.iter().map(|l| l.map_or(0, |items| items.len()));
            let nulls = lists.iter().map(Option::is_some).collect::<NullBuffer>();
            Arc::new(ListArray::try_new(
                Arc::new(list_element(*element_id, element)),
                OffsetBuffer::from_lengths(lengths),
                array(element, &items)?,
                Some(nulls),
            )?)
        }
    })
}

fn integer(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str()?.parse().ok())
}

/// Numbers, and the strings NaN, Infinity and -Infinity that JSON has no number for.
fn float(value: &Value) -> Option<f64> {
    value.as_f64().or_else(|| value.as_str()?.parse().ok())
}

/// Any JSON value as text: strings as they are, other values (json columns) as JSON.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Base64, as change events carry bytea.
fn bytes(value: &Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(value.as_str()?).ok()
}

/// An exact decimal text (`-12.50`) as an integer of `scale` decimals, if it fits `precision`
/// digits without rounding.
fn decimal(value: &Value, precision: u8, scale: i8) -> Option<i128> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).ok()?;
    let kept = fraction.trim_end_matches('0');
    if kept.len() > scale || whole.is_empty() && fraction.is_empty() || !(whole.chars().chain(fraction.chars())).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let padded = format!("{whole}{kept:0<scale$}");
    let unscaled: i128 = padded.parse().ok()?;
    if unscaled >= 10i128.checked_pow(u32::from(precision))? {
        return None;
    }
    Some(if negative { -unscaled } else { unscaled })
}

fn date(value: &Value) -> Option<i32> {
    let day = NaiveDate::parse_from_str(value.as_str()?, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from(day.signed_duration_since(epoch).num_days()).ok()
}

fn time(value: &Value) -> Option<i64> {
    let t = NaiveTime::parse_from_str(value.as_str()?, "%H:%M:%S%.f").ok()?;
    Some(i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000))
}

/// ISO 8601 text (UTC when `zoned`: `...Z` or an offset), or a number of microseconds.
fn timestamp(value: &Value, zoned: bool) -> Option<i64> {
    if let Some(micros) = value.as_i64() {
        return Some(micros);
    }
    let text = value.as_str()?;
    if zoned && let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    let local = text.strip_suffix('Z').filter(|_| zoned).unwrap_or(text);
    Some(NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S%.f").ok()?.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Decimal128Array, ListArray};
    use serde_json::json;

    use super::*;

    fn of(values: &[Value]) -> Vec<Option<&Value>> {
        values.iter().map(|v| (!v.is_null()).then_some(v)).collect()
    }

    #[test]
    fn converts_change_event_values() -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(decimal(&json!("-12.50"), 12, 2), Some(-1250));
        assert_eq!(decimal(&json!("3"), 5, 2), Some(300));
        assert_eq!(decimal(&json!("1.005"), 12, 2), None);
        assert_eq!(decimal(&json!("1000"), 3, 0), None);
        assert_eq!(decimal(&json!("NaN"), 12, 2), None);
        assert_eq!(date(&json!("1970-01-02")), Some(1));
        assert_eq!(date(&json!("infinity")), None);
        assert_eq!(time(&json!("00:00:01.5")), Some(1_500_000));
        assert_eq!(timestamp(&json!("1970-01-01T00:00:01.000002"), false), Some(1_000_002));
        assert_eq!(timestamp(&json!("1970-01-01T00:00:01.000002Z"), true), Some(1_000_002));
        assert_eq!(timestamp(&json!("1970-01-01T01:00:00+01:00"), true), Some(0));
        assert_eq!(float(&json!("-Infinity")), Some(f64::NEG_INFINITY));
        assert_eq!(bytes(&json!("AQL/")), Some(vec![1, 2, 255]));
        assert_eq!(text(&json!({"a": 1})).as_deref(), Some(r#"{"a":1}"#));

        let prices = [json!("1.25"), Value::Null, json!("oops")];
        let column = array(&ColumnType::Decimal { precision: 12, scale: 2 }, &of(&prices))?;
        let column = column.as_any().downcast_ref::<Decimal128Array>().ok_or("not decimals")?;
        assert_eq!((column.value(0), column.is_null(1), column.is_null(2)), (125, true, true));

        let lists = [json!([1, null, 3]), Value::Null, json!([]), json!([[1], [2]])];
        let ints = ColumnType::List { element_id: 12, element: Box::new(ColumnType::Int) };
        let column = array(&ints, &of(&lists))?;
        let column = column.as_any().downcast_ref::<ListArray>().ok_or("not lists")?;
        assert_eq!((column.len(), column.value_length(0), column.is_null(1), column.value_length(2), column.is_null(3)), (4, 3, true, 0, true));
        assert!(column.value(0).is_null(1));
        Ok(())
    }
}
