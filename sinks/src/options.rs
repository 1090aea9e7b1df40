use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::{Result, SinkError};

/// A destination's options, taken one by one; whatever is left at [`Options::finish`] is an
/// unknown option, refused so that a typo never silently changes nothing.
pub struct Options {
    kind: String,
    left: BTreeMap<String, String>,
}

impl Options {
    pub fn new(kind: &str, options: &BTreeMap<String, String>) -> Options {
        Options { kind: kind.to_owned(), left: options.clone() }
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        self.left.remove(key).filter(|v| !v.is_empty())
    }

    pub fn string_or(&mut self, key: &str, default: &str) -> String {
        self.string(key).unwrap_or_else(|| default.to_owned())
    }

    pub fn required(&mut self, key: &str) -> Result<String> {
        self.string(key).ok_or_else(|| SinkError::Config(format!("{} destination: option {key:?} is required", self.kind)))
    }

    /// A number, bool or other `FromStr` value.
    pub fn parse<T: FromStr>(&mut self, key: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.string(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| SinkError::Config(format!("{} destination: option {key}={v:?}: {e}", self.kind))),
        }
    }

    /// A duration such as `500ms`, `10s`, `5m` (a bare number is milliseconds).
    pub fn duration(&mut self, key: &str, default: Duration) -> Result<Duration> {
        match self.string(key) {
            None => Ok(default),
            Some(v) => parse_duration(&v).ok_or_else(|| {
                SinkError::Config(format!("{} destination: option {key}={v:?} is not a duration (500ms, 10s, 5m)", self.kind))
            }),
        }
    }

    /// One of `allowed`.
    pub fn choice(&mut self, key: &str, default: &str, allowed: &[&str]) -> Result<String> {
        let v = self.string_or(key, default).to_ascii_lowercase();
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(SinkError::Config(format!("{} destination: option {key}={v:?}: use one of {}", self.kind, allowed.join(", "))))
        }
    }

    /// Refuses options nobody took.
    pub fn finish(self) -> Result<()> {
        if self.left.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = self.left.keys().map(String::as_str).collect();
        Err(SinkError::Config(format!("{} destination: unknown option(s) {}", self.kind, names.join(", "))))
    }
}

fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    (seconds >= 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_unknown_options() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("100"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("soon"), None);
        let map: BTreeMap<String, String> = [("url".to_string(), "x".to_string()), ("ur1".to_string(), "y".to_string())].into();
        let mut o = Options::new("http", &map);
        assert_eq!(o.required("url").ok().as_deref(), Some("x"));
        let e = o.finish().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("ur1"), "{e}");
    }
}
