//! Destination column types: a source column's Postgres type mapped per destination dialect,
//! unless the sink's `type_mappings` say otherwise, and the kind of value a column holds (which
//! tells each destination how to write the change event's JSON value).
//!
//! | Postgres | postgres | duckdb | clickhouse |
//! |---|---|---|---|
//! | smallint, integer, bigint | same | SMALLINT, INTEGER, BIGINT | Int16, Int32, Int64 |
//! | numeric(p,s) | same | DECIMAL(p,s) (p ≤ 38), else VARCHAR | Decimal(p,s) (p ≤ 38; digits rounded to s), else String |
//! | numeric | numeric | DECIMAL(38,10) | Decimal(38,10) (rounded to 10 decimals) |
//! | real, double precision | same | REAL, DOUBLE | Float32, Float64 |
//! | boolean | boolean | BOOLEAN | UInt8 |
//! | text, varchar(n), char(n) | same | VARCHAR | String |
//! | bytea | bytea | BLOB | String (`\x` and hex digits, as Postgres prints bytea) |
//! | date, time | same | DATE, TIME | Date, String |
//! | timestamp, timestamptz | same | TIMESTAMP, TIMESTAMPTZ | DateTime64(6), DateTime64(6, 'UTC'); String (the exact ISO 8601 text) on servers before 20.1 |
//! | uuid | uuid | UUID | UUID |
//! | json, jsonb | same | JSON | String (the JSON text) |
//! | arrays (`integer[]`) | same | element type `[]` | Array(Nullable(element)) |
//! | enums, domains, others | text | VARCHAR | String |
//!
//! ClickHouse columns outside the primary key are `Nullable(T)` ([`clickhouse_column_type`]).

use std::collections::BTreeMap;

use super::shape::SourceColumn;

/// Which SQL a destination speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    DuckDb,
    ClickHouse,
}

/// What a column's JSON values are, as change events carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueKind {
    Bool,
    Int,
    Float,
    /// A JSON string holding the exact number.
    Numeric,
    Text,
    /// Base64 of the bytes.
    Bytes,
    Date,
    Time,
    /// ISO 8601 without a zone.
    Timestamp,
    /// ISO 8601 in UTC (`...Z`).
    TimestampTz,
    Uuid,
    /// Any JSON value.
    Json,
    Array(Box<ValueKind>),
    /// Anything else: written as text.
    Other,
}

/// A bytea value (base64 in change events) in Postgres' hex form, `\x0102ff`, which the
/// postgres destination copies as it is and the clickhouse destination stores as text; text
/// that is not base64 is left as it is, for the destination to judge.
pub fn bytea_hex(base64: &str) -> String {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(base64) {
        Ok(bytes) => {
            let mut hex = String::with_capacity(2 + bytes.len() * 2);
            hex.push_str("\\x");
            for b in bytes {
                hex.push_str(&format!("{b:02x}"));
            }
            hex
        }
        Err(_) => base64.to_owned(),
    }
}

/// The kind of a Postgres type, by its printed name.
pub fn value_kind(type_text: &str) -> ValueKind {
    if let Some(element) = type_text.strip_suffix("[]") {
        return ValueKind::Array(Box::new(value_kind(element)));
    }
    match base_name(type_text) {
        "boolean" => ValueKind::Bool,
        "smallint" | "integer" | "bigint" | "oid" => ValueKind::Int,
        "real" | "double precision" => ValueKind::Float,
        "numeric" => ValueKind::Numeric,
        "text" | "character varying" | "character" | "name" | "\"char\"" | "citext" => ValueKind::Text,
        "bytea" => ValueKind::Bytes,
        "date" => ValueKind::Date,
        "time without time zone" | "time with time zone" => ValueKind::Time,
        "timestamp without time zone" => ValueKind::Timestamp,
        "timestamp with time zone" => ValueKind::TimestampTz,
        "uuid" => ValueKind::Uuid,
        "json" | "jsonb" => ValueKind::Json,
        _ => ValueKind::Other,
    }
}

/// The type without its modifiers: `numeric(12,2)` → `numeric`,
/// `timestamp(3) with time zone` → `timestamp with time zone`.
pub fn base_name(type_text: &str) -> &str {
    match (type_text.find('('), type_text.find(')')) {
        (Some(open), Some(close)) if close > open => {
            // Modifiers sit in the middle for time types; the rest names the type.
            let rest = type_text[close + 1..].trim_start();
            if rest.is_empty() {
                type_text[..open].trim_end()
            } else {
                match &type_text[..open] {
                    "timestamp" if rest == "with time zone" => "timestamp with time zone",
                    "timestamp" => "timestamp without time zone",
                    "time" if rest == "with time zone" => "time with time zone",
                    _ => "time without time zone",
                }
            }
        }
        _ => type_text,
    }
}

/// The (precision, scale) of `numeric(p,s)`.
pub fn numeric_modifiers(type_text: &str) -> Option<(u32, u32)> {
    let inner = type_text.strip_prefix("numeric(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// The destination type of `column`: the user's mapping (by `schema.type`, by the printed
/// type, or by the type's name) or the dialect's.
pub fn destination_type(dialect: Dialect, column: &SourceColumn, mappings: &BTreeMap<String, String>) -> String {
    let candidates = [
        format!("{}.{}", column.type_schema, column.type_name),
        column.type_text.clone(),
        base_name(&column.type_text).to_owned(),
        column.type_name.clone(),
    ];
    if let Some(mapped) = candidates.iter().find_map(|c| mappings.get(&c.to_ascii_lowercase())) {
        return mapped.clone();
    }
    let type_text = if column.is_builtin() { column.type_text.as_str() } else { "text" };
    dialect_type(dialect, type_text)
}

/// The dialect's type for a built-in Postgres type.
pub fn dialect_type(dialect: Dialect, type_text: &str) -> String {
    match dialect {
        Dialect::Postgres => match value_kind(type_text) {
            ValueKind::Other if !matches!(base_name(type_text), "interval" | "inet" | "cidr" | "macaddr" | "money" | "xml") => "text".into(),
            _ => type_text.to_owned(),
        },
        Dialect::DuckDb => duckdb_type(type_text),
        Dialect::ClickHouse => clickhouse_type(type_text),
    }
}

fn duckdb_type(type_text: &str) -> String {
    if let Some(element) = type_text.strip_suffix("[]") {
        return format!("{}[]", duckdb_type(element));
    }
    let name = base_name(type_text);
    match name {
        "smallint" => "SMALLINT".into(),
        "integer" => "INTEGER".into(),
        "bigint" => "BIGINT".into(),
        "numeric" => match numeric_modifiers(type_text) {
            Some((p, s)) if p <= 38 => format!("DECIMAL({p},{s})"),
            Some(_) => "VARCHAR".into(),
            None => "DECIMAL(38,10)".into(),
        },
        "real" => "REAL".into(),
        "double precision" => "DOUBLE".into(),
        "boolean" => "BOOLEAN".into(),
        "bytea" => "BLOB".into(),
        "date" => "DATE".into(),
        "time without time zone" => "TIME".into(),
        "timestamp without time zone" => "TIMESTAMP".into(),
        "timestamp with time zone" => "TIMESTAMPTZ".into(),
        "interval" => "INTERVAL".into(),
        "uuid" => "UUID".into(),
        "json" | "jsonb" => "JSON".into(),
        _ => "VARCHAR".into(),
    }
}

fn clickhouse_type(type_text: &str) -> String {
    if let Some(element) = type_text.strip_suffix("[]") {
        return format!("Array({})", clickhouse_type(element));
    }
    let name = base_name(type_text);
    match name {
        "smallint" => "Int16".into(),
        "integer" => "Int32".into(),
        "bigint" => "Int64".into(),
        "numeric" => match numeric_modifiers(type_text) {
            Some((p, s)) if p <= 38 => format!("Decimal({p},{s})"),
            Some(_) => "String".into(),
            None => "Decimal(38,10)".into(),
        },
        "real" => "Float32".into(),
        "double precision" => "Float64".into(),
        "boolean" => "UInt8".into(),
        "date" => "Date".into(),
        "timestamp without time zone" => "DateTime64(6)".into(),
        "timestamp with time zone" => "DateTime64(6, 'UTC')".into(),
        "uuid" => "UUID".into(),
        _ => "String".into(),
    }
}

/// A ClickHouse column's type as the destination creates it: `ty` (the dialect's type or the
/// user's mapping) fitted to the server and to the column. Servers before 20.1 have no
/// DateTime64, and DateTime would drop the fractions: a timestamp is then a String holding the
/// exact ISO 8601 text. A column that may hold null is `Nullable(T)`, and so are array elements;
/// ClickHouse has no `Nullable(Array)` (a null array is written as `[]`), and types that cannot
/// be Nullable (LowCardinality, Tuple, Map, Nested) are left as they are.
pub fn clickhouse_column_type(ty: &str, datetime64: bool, nullable: bool) -> String {
    let mut ty = ty.trim().to_owned();
    if !datetime64 {
        while let Some(start) = ty.find("DateTime64") {
            let end = match ty[start..].find(')') {
                Some(close) if ty[start + "DateTime64".len()..].starts_with('(') => start + close + 1,
                _ => start + "DateTime64".len(),
            };
            ty.replace_range(start..end, "String");
        }
    }
    clickhouse_nullable(&ty, nullable)
}

fn clickhouse_nullable(ty: &str, nullable: bool) -> String {
    if let Some(element) = ty.strip_prefix("Array(").and_then(|t| t.strip_suffix(')')) {
        return format!("Array({})", clickhouse_nullable(element, true));
    }
    let fixed = ["Nullable(", "LowCardinality(", "Tuple(", "Map(", "Nested("].iter().any(|p| ty.starts_with(p));
    if nullable && !fixed { format!("Nullable({ty})") } else { ty.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(type_text: &str, type_name: &str, type_schema: &str) -> SourceColumn {
        SourceColumn { name: "c".into(), type_text: type_text.into(), type_name: type_name.into(), type_schema: type_schema.into() }
    }

    #[test]
    fn maps_types_per_dialect() {
        let none = BTreeMap::new();
        let numeric = column("numeric(12,2)", "numeric", "pg_catalog");
        assert_eq!(destination_type(Dialect::Postgres, &numeric, &none), "numeric(12,2)");
        assert_eq!(destination_type(Dialect::DuckDb, &numeric, &none), "DECIMAL(12,2)");
        assert_eq!(destination_type(Dialect::ClickHouse, &numeric, &none), "Decimal(12,2)");
        let ts = column("timestamp(3) with time zone", "timestamptz", "pg_catalog");
        assert_eq!(value_kind(&ts.type_text), ValueKind::TimestampTz);
        assert_eq!(destination_type(Dialect::DuckDb, &ts, &none), "TIMESTAMPTZ");
        assert_eq!(destination_type(Dialect::DuckDb, &column("integer[]", "_int4", "pg_catalog"), &none), "INTEGER[]");
        let mood = column("mood", "mood", "public");
        assert_eq!(destination_type(Dialect::Postgres, &mood, &none), "text");
        let mapped: BTreeMap<String, String> = [("public.mood".to_string(), "varchar(8)".to_string())].into();
        assert_eq!(destination_type(Dialect::Postgres, &mood, &mapped), "varchar(8)");
        let jsonb: BTreeMap<String, String> = [("jsonb".to_string(), "VARIANT".to_string())].into();
        assert_eq!(destination_type(Dialect::DuckDb, &column("jsonb", "jsonb", "pg_catalog"), &jsonb), "VARIANT");
    }

    #[test]
    fn clickhouse_types_fit_the_server_and_the_column() {
        let none = BTreeMap::new();
        let tz = destination_type(Dialect::ClickHouse, &column("timestamp with time zone", "timestamptz", "pg_catalog"), &none);
        assert_eq!(clickhouse_column_type(&tz, true, true), "Nullable(DateTime64(6, 'UTC'))");
        assert_eq!(clickhouse_column_type(&tz, false, true), "Nullable(String)");
        let ints = destination_type(Dialect::ClickHouse, &column("integer[]", "_int4", "pg_catalog"), &none);
        assert_eq!(clickhouse_column_type(&ints, false, true), "Array(Nullable(Int32))");
        let stamps = destination_type(Dialect::ClickHouse, &column("timestamp without time zone[]", "_timestamp", "pg_catalog"), &none);
        assert_eq!(clickhouse_column_type(&stamps, false, true), "Array(Nullable(String))");
        assert_eq!(clickhouse_column_type("Int32", false, false), "Int32");
        assert_eq!(clickhouse_column_type("LowCardinality(String)", false, true), "LowCardinality(String)");
        assert_eq!(clickhouse_column_type("Nullable(Decimal(12,3))", false, true), "Nullable(Decimal(12,3))");
        assert_eq!(destination_type(Dialect::ClickHouse, &column("numeric", "numeric", "pg_catalog"), &none), "Decimal(38,10)");
        assert_eq!(destination_type(Dialect::ClickHouse, &column("numeric(50,2)", "numeric", "pg_catalog"), &none), "String");
    }
}
