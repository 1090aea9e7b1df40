//! Rows read back from ClickHouse (`FORMAT JSONEachRow`) as each column's JSON token, exactly
//! as the server wrote it. A kept cell is written back as that token: parsing it into a
//! `serde_json::Value` would turn a Decimal(38,10) into a float and lose digits.

/// The fields of one JSON object: (name, raw value token); `None` when it is not one.
pub fn fields(line: &str) -> Option<Vec<(String, &str)>> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut out = Vec::new();
    if b.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        let key_end = value_end(b, i)?;
        let key: String = serde_json::from_str(&line[i..key_end]).ok()?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = value_end(b, start)?;
        out.push((key, &line[start..end]));
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(out),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// Where the value starting at `i` ends (a string, an array or object, or a bare token).
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    let mut in_string = false;
    while let Some(&c) = b.get(i) {
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                b',' | b']' | b'}' if depth == 0 => return (i > start).then_some(i),
                c if c.is_ascii_whitespace() && depth == 0 => return (i > start).then_some(i),
                _ => {}
            }
        }
        i += 1;
    }
    (depth == 0 && !in_string && i > start).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_an_object_into_raw_tokens() {
        let line = r#"{"__ds_i":2,"d":12345678901234567890.1234567891,"s":"a\"},[","x":["nan",[1,2],null],"o":{"k":[1]},"n":null}"#;
        let f = fields(line).unwrap_or_default();
        let tokens: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            tokens,
            vec![
                ("__ds_i", "2"),
                ("d", "12345678901234567890.1234567891"),
                ("s", r#""a\"},[""#),
                ("x", r#"["nan",[1,2],null]"#),
                ("o", r#"{"k":[1]}"#),
                ("n", "null")
            ]
        );
        assert_eq!(fields("{}"), Some(vec![]));
        assert_eq!(fields("[1]"), None);
        assert_eq!(fields(r#"{"a":1"#), None);
    }
}
