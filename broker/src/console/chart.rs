//! Charts as inline SVG (a captioned line, and a table cell's sparkline): no script, nothing
//! fetched, drawn by any browser.

use std::fmt::Write;

use super::page::{bytes, escape};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 120.0;
const LEFT: f64 = 8.0;
const TOP: f64 = 8.0;

/// What a chart's values are.
#[derive(Clone, Copy)]
pub enum Unit {
    Records,
    RecordsPerSecond,
    BytesPerSecond,
}

impl Unit {
    fn show(self, value: f64) -> String {
        match self {
            Unit::Records => format!("{} records", short(value)),
            Unit::RecordsPerSecond => format!("{} records/s", short(value)),
            Unit::BytesPerSecond => format!("{}/s", bytes(value as u64)),
        }
    }
}

/// `points` (milliseconds since the epoch, value) as a chart titled `title`; fewer than two
/// points say that samples are still coming.
pub fn line(title: &str, unit: Unit, points: &[(i64, f64)]) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return collecting(title);
    };
    if points.len() < 2 {
        return collecting(title);
    }
    let peak = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let top = if peak > 0.0 { peak } else { 1.0 };
    let span = (last.0 - first.0).max(1) as f64;
    let mut path = String::new();
    for (at, value) in points {
        let x = LEFT + (at - first.0) as f64 / span * (WIDTH - 2.0 * LEFT);
        let y = TOP + (1.0 - value / top) * (HEIGHT - 2.0 * TOP);
        let _ = write!(path, "{x:.1},{y:.1} ");
    }
    format!(
        "<figure class=\"chart\" data-last=\"{}\" data-peak=\"{}\"><figcaption>{} · now {} · peak {} · {} to {} UTC</figcaption>\
<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">\
<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#f7f9fb\" stroke=\"#dde3ea\"/>\
<polyline fill=\"none\" stroke=\"#2b6cb0\" stroke-width=\"2\" points=\"{}\"/></svg></figure>",
        last.1,
        peak,
        escape(title),
        unit.show(last.1),
        unit.show(peak),
        clock(first.0),
        clock(last.0),
        escape(title),
        path.trim_end(),
    )
}

/// A small line without axes or caption (a table cell's trend); empty with fewer than two
/// points.
pub fn sparkline(points: &[(i64, f64)]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 22.0;
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return String::new();
    };
    if points.len() < 2 {
        return String::new();
    }
    let top = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let span = (last.0 - first.0).max(1) as f64;
    let path: Vec<String> = points
        .iter()
        .map(|(at, value)| format!("{:.1},{:.1}", 1.0 + (at - first.0) as f64 / span * (W - 2.0), 1.0 + (1.0 - value / top) * (H - 2.0)))
        .collect();
    format!(
        "<svg class=\"spark\" data-last=\"{}\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"trend\">\
<polyline fill=\"none\" stroke=\"#2b6cb0\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        last.1,
        path.join(" ")
    )
}

fn collecting(title: &str) -> String {
    format!("<p class=\"chart\">{}: collecting samples…</p>", escape(title))
}

/// 1234.5 → `1.2k`.
fn short(value: f64) -> String {
    match value {
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v if v.fract() == 0.0 => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

fn clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| t.format("%H:%M:%S").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_points_and_says_when_it_has_too_few() {
        assert!(line("Lag", Unit::Records, &[(0, 1.0)]).contains("collecting"));
        let svg = line("Records in", Unit::RecordsPerSecond, &[(0, 0.0), (1000, 1500.0), (2000, 750.0)]);
        assert!(svg.contains("data-last=\"750\" data-peak=\"1500\""), "{svg}");
        assert!(svg.contains("now 750 records/s · peak 1.5k records/s"), "{svg}");
        assert!(svg.contains("points=\"8.0,112.0 320.0,8.0 632.0,60.0\""), "{svg}");
        assert_eq!(sparkline(&[(0, 3.0)]), "");
        let spark = sparkline(&[(0, 0.0), (10, 4.0)]);
        assert!(spark.contains("data-last=\"4\"") && spark.contains("points=\"1.0,21.0 119.0,1.0\""), "{spark}");
    }
}
