//! Object names: `<prefix>/<topic>/partition=<p>/[<column>=<value>/]<first>-<last>.<ext>`, with
//! the offsets zero-padded to 20 digits. A batch is named by the offset range of its cut, so a
//! batch written again after a crash overwrites its object instead of adding a copy.

use std::collections::BTreeMap;

use crate::{Result, SinkError, SinkRecord};

/// How records are spread over directories besides topic and partition (Hive style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionBy {
    None,
    /// The record timestamp, cut to this precision.
    Timestamp(TimeUnit),
    /// A top-level field of the record's JSON value (CDC events: `op`, `table`…).
    ValueField(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Year,
    Month,
    Day,
    Hour,
}

impl PartitionBy {
    /// `timestamp[:year|month|day|hour]` (day by default) or `value.<field>`.
    pub fn parse(text: &str) -> Result<PartitionBy> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(PartitionBy::None);
        }
        if let Some(field) = text.strip_prefix("value.") {
            if field.is_empty() || field.contains('/') {
                return Err(SinkError::Config(format!("s3 destination: partition_by {text:?}: name a field, value.<field>")));
            }
            return Ok(PartitionBy::ValueField(field.to_owned()));
        }
        let (column, unit) = text.split_once(':').unwrap_or((text, "day"));
        if column != "timestamp" {
            return Err(SinkError::Config(format!("s3 destination: partition_by {text:?}: use timestamp[:year|month|day|hour] or value.<field>")));
        }
        let unit = match unit {
            "year" => TimeUnit::Year,
            "month" => TimeUnit::Month,
            "day" => TimeUnit::Day,
            "hour" => TimeUnit::Hour,
            other => return Err(SinkError::Config(format!("s3 destination: partition_by unit {other:?}: use year, month, day or hour"))),
        };
        Ok(PartitionBy::Timestamp(unit))
    }

    /// The directory part for one record ("" when not partitioned).
    fn directory(&self, record: &SinkRecord) -> String {
        match self {
            PartitionBy::None => String::new(),
            PartitionBy::Timestamp(unit) => time_directory(record.timestamp, *unit),
            PartitionBy::ValueField(field) => {
                let value = record
                    .value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                    .and_then(|v| v.get(field).cloned());
                let text = match value {
                    Some(serde_json::Value::String(s)) => s,
                    Some(serde_json::Value::Null) | None => "__null__".to_owned(),
                    Some(other) => other.to_string(),
                };
                let safe: String = text.chars().map(|c| if c == '/' || c.is_control() { '_' } else { c }).collect();
                format!("{field}={safe}/")
            }
        }
    }

    /// The batch's records grouped by directory, in offset order within each.
    pub fn group<'a>(&self, records: &'a [SinkRecord]) -> BTreeMap<String, Vec<&'a SinkRecord>> {
        let mut groups: BTreeMap<String, Vec<&SinkRecord>> = BTreeMap::new();
        for r in records {
            groups.entry(self.directory(r)).or_default().push(r);
        }
        groups
    }
}

/// The object name of a batch's records in `directory`.
pub fn object_name(prefix: &str, topic: &str, partition: i32, directory: &str, first: i64, last: i64, extension: &str) -> String {
    let prefix = prefix.trim_matches('/');
    let lead = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
    format!("{lead}{topic}/partition={partition}/{directory}{first:020}-{last:020}.{extension}")
}

/// `year=2026/month=12/day=03/` from milliseconds since the epoch (UTC).
fn time_directory(millis: i64, unit: TimeUnit) -> String {
    let seconds = millis.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let hour = seconds.rem_euclid(86_400) / 3600;
    let (year, month, day) = civil_from_days(days);
    match unit {
        TimeUnit::Year => format!("year={year}/"),
        TimeUnit::Month => format!("year={year}/month={month:02}/"),
        TimeUnit::Day => format!("year={year}/month={month:02}/day={day:02}/"),
        TimeUnit::Hour => format!("year={year}/month={month:02}/day={day:02}/hour={hour:02}/"),
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_directories() -> Result<()> {
        assert_eq!(object_name("/lake/", "orders", 3, "", 0, 99, "parquet"), "lake/orders/partition=3/00000000000000000000-00000000000000000099.parquet");
        // 2026-12-03T13:45:00Z
        assert_eq!(time_directory(1_796_305_500_000, TimeUnit::Hour), "year=2026/month=12/day=03/hour=13/");
        assert_eq!(time_directory(0, TimeUnit::Day), "year=1970/month=01/day=01/");
        assert_eq!(time_directory(951_782_400_000, TimeUnit::Day), "year=2000/month=02/day=29/");
        assert_eq!(PartitionBy::parse("timestamp:month")?, PartitionBy::Timestamp(TimeUnit::Month));
        assert!(PartitionBy::parse("colour").is_err());
        Ok(())
    }
}
