//! The web console (`--console-listen`): cluster, topics, messages, groups, durable consumers,
//! flows and sinks in a browser, served by the broker itself with nothing else to install.
//!
//! Pages are HTML rendered here, with plain forms (one line of script asks before a topic is
//! deleted): a console in the broker binary should not need a front-end build, and a page
//! that is plain HTML loads fast with a thousand topics and works through any proxy.
//!
//! Topics, offsets and records are read from the broker's own state (what the Kafka APIs
//! answer from); groups and topic changes go through the Kafka API handlers (see `kafka`),
//! durable consumers, flows and sinks through the gRPC services the CLI calls (in this
//! process), so every change is checked and refused exactly as a client's, as the
//! [`visitor`] who asked.
//!
//! Charts are inline SVG ([`chart`]) of samples the console takes itself ([`history`]).

mod chart;
mod cluster;
mod consumers;
mod flows;
mod forms;
mod groups;
mod history;
mod kafka;
mod listener;
mod messages;
mod page;
mod sinks;
mod topics;
mod visitor;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, Request};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{from_fn, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::flows::FlowManager;
use crate::grpc::incoming::Peer;
use crate::grpc::Services;
use crate::security::tls::ReloadingTls;
use crate::sinks::SinkManager;
use crate::{Broker, BrokerError};
use history::History;
use listener::ConsoleListener;

/// How the console is served (from the broker's flags).
pub struct Options {
    /// Whether a visitor must log in (the broker authorizes or authenticates Kafka clients).
    pub must_log_in: bool,
    /// Serve over TLS with these files (`--console-tls`).
    pub tls: Option<Arc<ReloadingTls>>,
    /// How often throughput and lag are sampled for the charts.
    pub sample_every: Duration,
}

/// What every page works with: the broker, its gRPC services to call in-process, and the
/// samples the charts draw.
#[derive(Clone)]
pub struct Console {
    broker: Arc<Broker>,
    api: Arc<Services>,
    history: Arc<History>,
    must_log_in: bool,
}

impl FromRef<Console> for Arc<Broker> {
    fn from_ref(console: &Console) -> Arc<Broker> {
        console.broker.clone()
    }
}

impl FromRef<Console> for Arc<History> {
    fn from_ref(console: &Console) -> Arc<History> {
        console.history.clone()
    }
}

/// Serves the console on `listener` until the broker shuts down.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, flows: Arc<FlowManager>, sinks: Arc<SinkManager>, options: Options) {
    let shutdown = broker.shutdown.clone();
    let history = History::new(options.sample_every);
    tokio::spawn(history.clone().run(broker.clone()));
    let listener = match ConsoleListener::new(listener, options.tls, broker.clone()) {
        Ok(listener) => listener,
        Err(e) => return tracing::error!(error = %e, "the console cannot serve"),
    };
    let console = Console { api: Arc::new(Services::new(broker.clone(), flows, sinks)), broker, history, must_log_in: options.must_log_in };
    let app = Router::new()
        .route("/", get(cluster::show))
        .route("/topics", get(topics::list).post(topics::create))
        .route("/topics/{name}", get(topics::show))
        .route("/topics/{name}/delete", post(topics::delete))
        .route("/topics/{name}/configs", post(topics::alter_config))
        .route("/topics/{name}/messages", get(messages::browse))
        .route("/topics/{name}/produce", post(messages::produce))
        .route("/groups", get(groups::list))
        .route("/groups/{group}", get(groups::show))
        .route("/groups/{group}/reset", post(groups::reset))
        .route("/consumers", get(consumers::list))
        .route("/consumers/{stream}/{group}", get(consumers::show))
        .route("/consumers/{stream}/{group}/replay", post(consumers::replay))
        .route("/flows", get(flows::list))
        .route("/flows/{id}", get(flows::show))
        .route("/flows/{id}/{action}", post(flows::act))
        .route("/flows/{id}/ddl/{ddl}/{decision}", post(flows::decide))
        .route("/sinks", get(sinks::list))
        .route("/sinks/{id}", get(sinks::show))
        .route("/sinks/{id}/{action}", post(sinks::act))
        .layer(from_fn(same_origin))
        .with_state(console)
        .into_make_service_with_connect_info::<Peer>();
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await {
        tracing::error!(error = %e, "the console stopped serving");
    }
}

/// Refuses a form posted from another site (a page elsewhere must not delete topics through
/// a browser that can reach the console): browsers say where a request comes from.
async fn same_origin(request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let headers = request.headers();
        let text = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
        let cross_site = matches!(text(header::HeaderName::from_static("sec-fetch-site")), Some("cross-site" | "same-site"));
        let foreign_origin = match (text(header::ORIGIN), text(header::HOST)) {
            (Some(origin), Some(host)) => origin.split_once("://").map(|(_, o)| o) != Some(host),
            _ => false,
        };
        if cross_site || foreign_origin {
            let refusal = page::notice(false, "refused: the form was posted from another site");
            return (StatusCode::FORBIDDEN, Html(page::page("Refused", &refusal))).into_response();
        }
    }
    next.run(request).await
}

/// A page that could not be made: the broker's error, on a page.
impl IntoResponse for BrokerError {
    fn into_response(self) -> Response {
        let status = match &self {
            BrokerError::NotFound(_) => StatusCode::NOT_FOUND,
            BrokerError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            BrokerError::FailedPrecondition(_) | BrokerError::AlreadyExists(_) => StatusCode::CONFLICT,
            BrokerError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            BrokerError::Authentication(e) => return visitor::log_in(e),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Html(page::page("Error", &page::notice(false, &self.to_string())))).into_response()
    }
}

type PageResult = Result<Html<String>, BrokerError>;
