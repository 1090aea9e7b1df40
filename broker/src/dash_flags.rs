//! Long flags written with one dash (`-flow-id X`, `-stream=orders`), as our product documents
//! write them, read as the double-dash flags the binaries define. Single letters (`-f`) stay
//! short flags, and so do negative numbers.

/// The arguments with every one-dash long flag given a second dash.
pub fn normalize(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest_are_values = false;
    for arg in args {
        if rest_are_values {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            rest_are_values = true;
            out.push(arg);
            continue;
        }
        let name = arg.strip_prefix('-').filter(|n| !n.starts_with('-'));
        let long = name.is_some_and(|n| {
            let word = n.split('=').next().unwrap_or_default();
            word.len() > 1 && word.starts_with(|c: char| c.is_ascii_alphabetic()) && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
        out.push(if long { format!("-{arg}") } else { arg });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(args: &[&str]) -> Vec<String> {
        normalize(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn one_dash_long_flags_get_two() {
        assert_eq!(n(&["admin", "stream", "pull", "-stream", "orders", "-max", "10"]), ["admin", "stream", "pull", "--stream", "orders", "--max", "10"]);
        assert_eq!(n(&["w", "-flow-id=app", "--mode", "backfill", "-f", "x.json"]), ["w", "--flow-id=app", "--mode", "backfill", "-f", "x.json"]);
        assert_eq!(n(&["w", "--from", "-1", "-", "--", "-keep"]), ["w", "--from", "-1", "-", "--", "-keep"]);
    }
}
