//! The console's HTML: one page shell (navigation, style), escaping, and tables. Pages are
//! rendered on the server; forms post and the answer is a page, so pages work without
//! JavaScript (the one script asks before a topic is deleted) and nothing is fetched from
//! elsewhere.

use std::fmt::Write;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0;color:#1d2733}\
nav{background:#1d2733;padding:10px 20px}nav a{color:#e8eef5;margin-right:18px;text-decoration:none;font-weight:600}\
main{padding:16px 20px}table{border-collapse:collapse;margin:8px 0 18px}\
th,td{border-bottom:1px solid #dde3ea;padding:5px 10px;text-align:left;vertical-align:top}\
th{background:#f3f6f9}td.n{text-align:right;font-variant-numeric:tabular-nums}\
pre{margin:0;white-space:pre-wrap;max-width:70ch}form{margin:8px 0 18px}input,select,textarea{margin-right:8px}\
.error{background:#fde8e8;border:1px solid #e0a0a0;padding:8px 12px;margin:8px 0}\
.ok{background:#e6f6ea;border:1px solid #9ccfa8;padding:8px 12px;margin:8px 0}\
figure.chart{margin:8px 0 16px}figcaption,p.chart{color:#4a5868;margin:0 0 4px}";

/// A whole page: `title` and `body` (already HTML).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{} · DuctStream</title><style>{STYLE}</style></head>\
<body><nav><a href=\"/\">Cluster</a><a href=\"/topics\">Topics</a><a href=\"/groups\">Groups</a><a href=\"/consumers\">Consumers</a><a href=\"/flows\">Flows</a><a href=\"/sinks\">Sinks</a></nav>\
<main><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    )
}

/// Text made safe inside HTML elements and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encoded for a URL's path or query: a topic name in a link, a notice in a query.
pub fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A table: `headers`, then rows of cells that are already HTML.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

/// A button that posts to `action` (a path) with nothing else in the form.
pub fn button(action: &str, label: &str) -> String {
    format!("<form method=\"post\" action=\"{action}\" style=\"display:inline;margin:0 4px 0 0\"><button type=\"submit\">{}</button></form>", escape(label))
}

/// A proto enum value as people read it (`FLOW_STATE_RUNNING` with prefix `flow_state_` is
/// `running`); `?` for a number the enum does not know.
pub fn enum_name(proto_name: Option<&str>, prefix: &str) -> String {
    proto_name.map_or_else(|| "?".into(), |name| crate::enum_names::normalize(name, prefix))
}

/// A size for people: 1.5 MiB.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// A message box: an error (`ok` false) or a confirmation.
pub fn notice(ok: bool, text: &str) -> String {
    format!("<div class=\"{}\">{}</div>", if ok { "ok" } else { "error" }, escape(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_segments() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(segment("a.b_c-d/é"), "a.b_c-d%2F%C3%A9");
        assert!(page("t<", "<p>x</p>").contains("<h1>t&lt;</h1><p>x</p>"));
        assert_eq!(enum_name(Some("FLOW_STATE_RUNNING"), "flow_state_"), "running");
        assert_eq!(enum_name(None, "flow_state_"), "?");
    }
}
