//! Printing answers: a table for people, JSON for scripts.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Pretty,
}

/// Prints `json` in the JSON formats, or the rows as an aligned table.
pub fn print(format: Format, json: &Value, header: &[&str], rows: Vec<Vec<String>>) {
    match format {
        Format::Json => println!("{json}"),
        Format::Pretty => println!("{}", serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string())),
        Format::Table => print!("{}", table(header, &rows)),
    }
}

/// What `--json` prints: the item itself for commands about one thing, an array for lists.
pub fn one_or_list(items: &[Value], as_list: bool) -> Value {
    match (as_list, items.first()) {
        (false, Some(one)) => one.clone(),
        _ => Value::Array(items.to_vec()),
    }
}

pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Bytes as text when they are UTF-8; otherwise hex, marked as such.
pub fn bytes_text(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => Value::String(format!("0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())),
        },
    }
}

pub fn time_text(t: Option<&ductstream_proto::Timestamp>) -> String {
    let Some(t) = t else { return String::new() };
    let Ok(seconds) = u64::try_from(t.seconds) else { return t.seconds.to_string() };
    let time = std::time::UNIX_EPOCH + std::time::Duration::new(seconds, t.nanos.clamp(0, 999_999_999) as u32);
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&["a", "long"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "a    long\nxyz  1\n");
    }
}
