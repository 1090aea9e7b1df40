//! Durations and times as people type them.

/// "30" (seconds), "500ms", "30s", "5m", "2h" → milliseconds.
pub fn parse_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a duration like 30, 500ms, 30s, 5m or 2h");
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(bad()),
    };
    let ms = value * scale;
    if !ms.is_finite() || ms < 0.0 || ms > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(ms.round() as u64)
}

/// An RFC 3339 time ("2025-01-01T00:00:00Z") → milliseconds since the epoch.
pub fn parse_time_ms(text: &str) -> Result<i64, String> {
    let time = humantime::parse_rfc3339_weak(text.trim())
        .map_err(|e| format!("{text:?} is not a time like 2025-01-01T00:00:00Z: {e}"))?;
    let since = time.duration_since(std::time::UNIX_EPOCH).map_err(|_| format!("{text:?} is before 1970"))?;
    i64::try_from(since.as_millis()).map_err(|_| format!("{text:?} is too far away"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_ms("30"), Ok(30_000));
        assert_eq!(parse_ms("500ms"), Ok(500));
        assert_eq!(parse_ms("1.5s"), Ok(1500));
        assert_eq!(parse_ms("2h"), Ok(7_200_000));
        assert!(parse_ms("soon").is_err() && parse_ms("5d").is_err() && parse_ms("").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_ms("2025-01-01T00:00:00Z"), Ok(1_735_689_600_000));
        assert!(parse_time_ms("yesterday").is_err());
    }
}
