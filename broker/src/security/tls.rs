//! TLS for the SSL and SASL_SSL listeners: rustls with PEM certificate and key files that are
//! read again when they change (certificates are renewed without a restart), and optional
//! client certificates checked against a CA bundle.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::{BrokerError, Result};

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether clients must present a certificate (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// Asked for and checked when given; a client without one is still served.
    Requested,
    /// A connection without a valid client certificate is refused.
    Required,
}

/// The files TLS is made of.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// CAs that sign client certificates; needed when client auth is not `None`.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// The current acceptor, replaced when the files change.
pub struct ReloadingTls {
    files: TlsFiles,
    /// ALPN protocols offered (`h2` for the gRPC API; none for Kafka).
    alpn: Vec<Vec<u8>>,
    current: RwLock<(TlsAcceptor, Vec<Option<SystemTime>>)>,
}

impl ReloadingTls {
    /// Loads the files; a missing or unreadable file is a configuration error.
    pub fn load(files: TlsFiles, alpn: &[&[u8]]) -> Result<Arc<ReloadingTls>> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = build(&files, &alpn)?;
        let stamps = stamps(&files);
        Ok(Arc::new(ReloadingTls { files, alpn, current: RwLock::new((acceptor, stamps)) }))
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        match self.current.read() {
            Ok(current) => current.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// The TLS handshake of a new connection (within 10 s) and its client certificate's
    /// subject (RFC 2253), or why it failed: a plaintext client on a TLS port ends there too.
    pub async fn accept(&self, stream: TcpStream) -> std::result::Result<(TlsStream<TcpStream>, Option<String>), String> {
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor().accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no handshake within {} s", HANDSHAKE_TIMEOUT.as_secs())),
        };
        let subject = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|certificate| super::subject_of(certificate.as_ref()));
        Ok((stream, subject))
    }

    /// Reads the files again if any changed since they were loaded. A broken new file keeps
    /// the old certificate in service (and is tried again at the next check).
    pub fn reload_if_changed(&self) -> Result<bool> {
        let now = stamps(&self.files);
        let changed = match self.current.read() {
            Ok(current) => current.1 != now,
            Err(poisoned) => poisoned.into_inner().1 != now,
        };
        if !changed {
            return Ok(false);
        }
        let acceptor = build(&self.files, &self.alpn)?;
        let mut current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = (acceptor, now);
        Ok(true)
    }

    /// Checks the files every `every` until `stop`.
    pub async fn watch(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.reload_if_changed() {
                Ok(true) => tracing::info!(certificate = %self.files.certificate.display(), "TLS certificate reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "TLS files changed but cannot be loaded; keeping the previous ones"),
            }
        }
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut out = vec![modified(&files.certificate), modified(&files.key)];
    if let Some(ca) = &files.client_ca {
        out.push(modified(ca));
    }
    out
}

fn build(files: &TlsFiles, alpn: &[Vec<u8>]) -> Result<TlsAcceptor> {
    let config_error = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        BrokerError::Config(format!("TLS {what} {}: {e}", path.display()))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.certificate)
        .map_err(|e| config_error("certificate", &files.certificate, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| config_error("certificate", &files.certificate, &e))?;
    if chain.is_empty() {
        return Err(config_error("certificate", &files.certificate, &"no CERTIFICATE in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| config_error("key", &files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BrokerError::Config(format!("TLS: {e}")))?;
    let builder = match (files.client_auth, &files.client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err(BrokerError::Config("--ssl-client-auth needs --ssl-client-ca".into())),
        (auth, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| config_error("client CA", ca, &e))? {
                let cert = cert.map_err(|e| config_error("client CA", ca, &e))?;
                roots.add(cert).map_err(|e| config_error("client CA", ca, &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
            let verifier = verifier.build().map_err(|e| config_error("client CA", ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| config_error("certificate and key", &files.certificate, &e))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(TlsAcceptor::from(Arc::new(config)))
}
