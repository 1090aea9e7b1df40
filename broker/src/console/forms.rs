//! What a form leads to: a redirect to the page to show next, carrying the outcome (a
//! confirmation or the broker's refusal) in the query, which that page shows as a notice.
//! Reloading the page then repeats nothing.

use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::page::{notice, segment};

/// The outcome a page was sent with.
#[derive(Deserialize, Default)]
pub struct Notice {
    pub ok: Option<String>,
    pub error: Option<String>,
}

impl Notice {
    pub fn html(&self) -> String {
        self.ok.as_deref().map(|t| notice(true, t)).into_iter().chain(self.error.as_deref().map(|t| notice(false, t))).collect()
    }
}

/// A redirect to `to` (which may have a query already) with `outcome` as its notice.
pub fn after(to: &str, outcome: Result<String, String>) -> Response {
    let (kind, text) = match outcome {
        Ok(t) => ("ok", t),
        Err(t) => ("error", t),
    };
    let join = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{join}{kind}={}", segment(&text))).into_response()
}
