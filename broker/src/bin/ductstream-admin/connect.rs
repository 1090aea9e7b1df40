//! Reaching the broker's gRPC API: TLS when the address is `https://` (trusting `--ca-cert`,
//! or the system's CAs), a client certificate when `--cert` and `--key` are given, and a SCRAM
//! user's name and password (Basic) or an OAuth token (Bearer) sent with every call.

use std::path::PathBuf;

use base64::Engine;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Where the API is and who calls it.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The broker's gRPC address; `https://` for a broker started with `--grpc-tls`.
    #[arg(long, global = true, env = "DUCTSTREAM_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// A SCRAM user's name (made with `ductstream-admin user set` or kafka-configs).
    #[arg(long, global = true, env = "DUCTSTREAM_USER")]
    pub user: Option<String>,
    /// That user's password.
    #[arg(long, global = true, env = "DUCTSTREAM_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// An OAuth bearer token (a JWT the broker's --sasl-oauthbearer-* keys verify), instead of
    /// a user and password.
    #[arg(long, global = true, env = "DUCTSTREAM_TOKEN", hide_env_values = true, conflicts_with = "user")]
    pub token: Option<String>,
    /// PEM CA bundle that signed the broker's certificate (default: the system's CAs).
    #[arg(long, global = true, env = "DUCTSTREAM_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, for a broker that asks for one (its subject is the principal).
    #[arg(long, global = true, env = "DUCTSTREAM_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(long, global = true, env = "DUCTSTREAM_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
}

/// A channel whose every call carries the credentials.
pub type Api = InterceptedService<Channel, Credentials>;

#[derive(Clone)]
pub struct Credentials(Option<MetadataValue<Ascii>>);

impl Interceptor for Credentials {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

pub async fn connect(target: &Target) -> Result<Api, String> {
    let server = &target.server;
    let mut endpoint = Endpoint::from_shared(server.clone()).map_err(|e| format!("bad server address {server}: {e}"))?;
    if server.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        tls = match &target.ca_cert {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca, "CA bundle")?)),
            None => tls.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&target.cert, &target.key) {
            tls = tls.identity(Identity::from_pem(read(cert, "client certificate")?, read(key, "client key")?));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| format!("TLS for {server}: {e}"))?;
    }
    let credentials = match (&target.user, &target.password) {
        (None, None) if target.token.is_some() => {
            let token = target.token.as_deref().unwrap_or_default().trim();
            Credentials(Some(format!("Bearer {token}").parse().map_err(|e| format!("the token cannot be sent: {e}"))?))
        }
        (Some(user), Some(password)) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let value = format!("Basic {encoded}").parse().map_err(|e| format!("credentials cannot be sent: {e}"))?;
            Credentials(Some(value))
        }
        (None, None) => Credentials(None),
        _ => return Err("--user and --password go together".into()),
    };
    let channel = endpoint.connect().await.map_err(|e| format!("cannot reach the gRPC API at {server}: {e:?}"))?;
    Ok(InterceptedService::new(channel, credentials))
}
