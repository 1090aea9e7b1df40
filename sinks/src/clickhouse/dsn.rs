//! The `dsn` option: `http://[user:password@]host:port[/database]` (`clickhouse://` is taken as
//! `http://`, `https://` works too). The credentials are sent as `X-ClickHouse-User` and
//! `X-ClickHouse-Key` headers, never in the URL (ClickHouse refuses a request that has both).

use reqwest::Url;

use crate::{Result, SinkError};

/// Where the server is and who the sink is there.
#[derive(Clone, PartialEq, Eq)]
pub struct Dsn {
    /// `scheme://host:port/`, without credentials or database.
    pub base: Url,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The database named in the path: the destination tables' default.
    pub database: Option<String>,
}

impl std::fmt::Debug for Dsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dsn").field("base", &self.base.as_str()).field("user", &self.user).field("database", &self.database).finish()
    }
}

pub fn parse(dsn: &str) -> Result<Dsn> {
    let bad = |why: &str| SinkError::Config(format!("clickhouse destination: dsn: {why} (http://[user:password@]host:port[/database])"));
    let text = match dsn.strip_prefix("clickhouse://") {
        Some(rest) => format!("http://{rest}"),
        None => dsn.to_owned(),
    };
    let url = Url::parse(&text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(&format!("scheme {:?} is not http, https or clickhouse", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query parameters are taken"));
    }
    let path = url.path().trim_matches('/');
    if path.contains('/') {
        return Err(bad("the path is one database name"));
    }
    let user = Some(decode(url.username())).filter(|u| !u.is_empty());
    let password = url.password().map(decode);
    let database = Some(decode(path)).filter(|d| !d.is_empty());
    let mut base = url.clone();
    base.set_path("/");
    // Both only fail for URLs that cannot have credentials, which an http URL can.
    let _ = base.set_username("");
    let _ = base.set_password(None);
    Ok(Dsn { base, user, password, database })
}

/// Percent-decoding of a URL part (`p%40ss` → `p@ss`); a broken escape stays as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_credentials_database_and_schemes() -> Result<()> {
        let d = parse("clickhouse://writer:p%40ss@127.0.0.1:8123/analytics")?;
        assert_eq!(d.base.as_str(), "http://127.0.0.1:8123/");
        assert_eq!((d.user.as_deref(), d.password.as_deref(), d.database.as_deref()), (Some("writer"), Some("p@ss"), Some("analytics")));
        let d = parse("https://ch.example.com:8443")?;
        assert_eq!((d.base.as_str(), d.user, d.password, d.database), ("https://ch.example.com:8443/", None, None, None));
        assert!(!format!("{:?}", parse("http://u:secret@h:1")?).contains("secret"));
        assert!(parse("tcp://h:9000").is_err());
        assert!(parse("http://h:8123/a/b").is_err());
        assert!(parse("http://h:8123/?user=x").is_err());
        Ok(())
    }
}
