//! Talking to ClickHouse over its HTTP interface: statements as the POST body, inserts as
//! `query=INSERT … FORMAT JSONEachRow` with the rows as the body, the credentials in
//! `X-ClickHouse-*` headers, and the server's refusals sorted into what may pass (the server or
//! the network away, out of memory, too many parts) and what will not (credentials, SQL, values
//! a column cannot take).

use std::time::Duration;

use reqwest::StatusCode;

use super::dsn::Dsn;
use crate::{Result, SinkError};

/// What a request came back with, before the store says what it was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer: refused, reset, timed out.
    Transport(String),
    /// An answer other than 200: its status, ClickHouse's error code and message.
    Server { status: u16, code: Option<u32>, message: String },
}

/// Error codes of the user (`UNKNOWN_USER`, `WRONG_PASSWORD`, `REQUIRED_PASSWORD`,
/// `AUTHENTICATION_FAILED`, `ACCESS_DENIED`, `READONLY`).
const AUTH_CODES: [u32; 6] = [192, 193, 194, 516, 497, 164];

/// Error codes of SQL or values the server will refuse again however often it is asked, some of
/// which come with status 500: cannot parse a value (6, 26, 27, 38, 41, 72, 117), too many
/// digits (69), a NULL into a non-Nullable column (349), a decimal overflow (407), a type
/// mismatch (53, 70, 43), unknown things (8, 16, 46, 47, 50, 60, 81, 115), a syntax error (62),
/// bad arguments (36, 44), not implemented (48).
const SQL_CODES: [u32; 25] = [6, 8, 16, 26, 27, 36, 38, 41, 43, 44, 46, 47, 48, 50, 53, 60, 62, 69, 70, 72, 81, 115, 117, 349, 407];

impl Failure {
    pub fn code(&self) -> Option<u32> {
        match self {
            Failure::Server { code, .. } => *code,
            Failure::Transport(_) => None,
        }
    }

    /// The sink's error for this failure of `what` (a statement, or `insert into db.t`).
    pub fn into_error(self, what: &str) -> SinkError {
        let what: String = what.chars().take(200).collect();
        match self {
            Failure::Transport(text) => SinkError::Retriable(format!("clickhouse destination: {what}: {text}")),
            Failure::Server { status, code, message } => {
                let text = format!("clickhouse destination: {message} (HTTP {status}) in: {what}");
                let auth = matches!(status, 401 | 403) || code.is_some_and(|c| AUTH_CODES.contains(&c));
                let sql = matches!(status, 400 | 404) || code.is_some_and(|c| SQL_CODES.contains(&c));
                match (auth, sql) {
                    (true, _) => SinkError::Fatal(format!("clickhouse destination: {message} (HTTP {status})")),
                    (false, true) => SinkError::Fatal(text),
                    (false, false) => SinkError::Retriable(text),
                }
            }
        }
    }
}

/// `Code: 193, e.displayText() = DB::Exception: Wrong password for user writer, e.what() = …`
/// (18.x) or `Code: 516. DB::Exception: …` (newer) as its code and message.
pub fn parse_error(body: &str) -> (Option<u32>, String) {
    let body = body.trim();
    let code = body
        .strip_prefix("Code: ")
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>())
        .and_then(|digits| digits.parse().ok());
    let message = match body.find("DB::Exception: ") {
        Some(start) => {
            let rest = &body[start + "DB::Exception: ".len()..];
            rest.split(", e.what() = ").next().unwrap_or(rest).trim()
        }
        None => body,
    };
    let message: String = message.chars().take(1000).collect();
    match code {
        Some(code) => (Some(code), format!("ClickHouse error {code}: {message}")),
        None => (None, format!("ClickHouse: {message}")),
    }
}

/// `18.16.1` (or `23.8.2.7`) as (major, minor).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// One server, as one user.
pub struct Client {
    http: reqwest::Client,
    dsn: Dsn,
}

impl Client {
    pub fn new(dsn: Dsn, timeout: Duration) -> Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| SinkError::Config(format!("clickhouse destination: cannot build an HTTP client: {e}")))?;
        Ok(Client { http, dsn })
    }

    /// Runs one statement (ClickHouse takes one per request) with these settings; the
    /// answer's text.
    pub async fn query(&self, sql: &str, settings: &[(&str, &str)]) -> Result<String, Failure> {
        self.send(settings, sql.as_bytes().to_vec()).await
    }

    /// `INSERT INTO <table> (<columns>) FORMAT JSONEachRow` with these rows (one JSON object a
    /// line). One INSERT is all or nothing: a row the server refuses aborts all of them.
    pub async fn insert(&self, insert: &str, rows: Vec<u8>, settings: &[(&str, &str)]) -> Result<(), Failure> {
        let mut all = vec![("query", insert)];
        all.extend_from_slice(settings);
        self.send(&all, rows).await.map(|_| ())
    }

    async fn send(&self, params: &[(&str, &str)], body: Vec<u8>) -> Result<String, Failure> {
        let mut url = self.dsn.base.clone();
        {
            let mut pairs = url.query_pairs_mut();
            // Answers are buffered until the statement ends, so a failure is a status, not an
            // error text after a 200.
            pairs.append_pair("wait_end_of_query", "1");
            for (k, v) in params {
                pairs.append_pair(k, v);
            }
        }
        let mut request = self.http.post(url).body(body);
        if self.dsn.user.is_some() || self.dsn.password.is_some() {
            request = request.header("X-ClickHouse-User", self.dsn.user.as_deref().unwrap_or("default"));
            request = request.header("X-ClickHouse-Key", self.dsn.password.as_deref().unwrap_or(""));
        }
        let answer = request.send().await.map_err(|e| Failure::Transport(describe(e)))?;
        let status = answer.status();
        let text = answer.text().await.map_err(|e| Failure::Transport(describe(e)))?;
        if status == StatusCode::OK {
            return Ok(text);
        }
        let (code, message) = parse_error(&text);
        Err(Failure::Server { status: status.as_u16(), code, message })
    }
}

/// The error and its causes, without the URL (the caller names the table; the URL holds the
/// whole INSERT statement).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_errors_and_versions() {
        let (code, message) = parse_error("Code: 193, e.displayText() = DB::Exception: Wrong password for user writer, e.what() = DB::Exception\n");
        assert_eq!((code, message.as_str()), (Some(193), "ClickHouse error 193: Wrong password for user writer"));
        let (code, message) = parse_error("Code: 516. DB::Exception: writer: Authentication failed. (AUTHENTICATION_FAILED) (version 23.8.1)");
        assert_eq!(code, Some(516));
        assert!(message.ends_with("Authentication failed. (AUTHENTICATION_FAILED) (version 23.8.1)"), "{message}");
        assert_eq!(parse_error("Bad Gateway").0, None);
        assert_eq!(parse_version("18.16.1\n"), Some((18, 16)));
        assert_eq!(parse_version("23.8.2.7"), Some((23, 8)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn sorts_failures() {
        let server = |status, code| Failure::Server { status, code, message: "m".into() };
        assert!(matches!(server(401, Some(193)).into_error("SELECT 1"), SinkError::Fatal(_)));
        assert!(matches!(server(404, Some(60)).into_error("insert into a.b"), SinkError::Fatal(t) if t.contains("a.b")));
        assert!(matches!(server(500, Some(27)).into_error("x"), SinkError::Fatal(_)));
        assert!(matches!(server(500, Some(241)).into_error("x"), SinkError::Retriable(_)));
        assert!(matches!(server(503, None).into_error("x"), SinkError::Retriable(_)));
        assert!(matches!(Failure::Transport("connection refused".into()).into_error("x"), SinkError::Retriable(_)));
    }
}
