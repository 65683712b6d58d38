//! HTTPS for the console when `[console] tls_cert` and `tls_key` are set:
//! rustls (ring) in front of the same router; connections are served by
//! `http_server` with the same limits as plain HTTP.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_rustls::TlsAcceptor;

/// Loads the PEM certificate chain and private key.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let open = |p: &Path, what: &str| {
        File::open(p)
            .map(BufReader::new)
            .with_context(|| format!("console.{what}: cannot read {}", p.display()))
    };
    let certs = rustls_pemfile::certs(&mut open(cert, "tls_cert")?)
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "console.tls_cert: {} is not a PEM certificate chain",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!("console.tls_cert: {} holds no certificate", cert.display());
    }
    let key = rustls_pemfile::private_key(&mut open(key, "tls_key")?)
        .with_context(|| {
            format!(
                "console.tls_key: {} is not a PEM private key",
                key.display()
            )
        })?
        .with_context(|| format!("console.tls_key: {} holds no private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("console TLS: no protocol version available")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("console TLS: the certificate and key do not belong together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
