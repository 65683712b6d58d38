//! HTTPS for the console when `[console] tls_cert` and `tls_key` are set:
//! rustls (ring) in front of the same router; connections are served by
//! `http_server` with the same limits as plain HTTP.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Loads the PEM certificate chain and private key.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let read = |p: &Path, what: &str| {
        std::fs::read(p).with_context(|| format!("console.{what}: cannot read {}", p.display()))
    };
    let certs = CertificateDer::pem_slice_iter(&read(cert, "tls_cert")?)
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
    let key = PrivateKeyDer::from_pem_slice(&read(key, "tls_key")?).map_err(|e| match e {
        PemError::NoItemsFound => {
            anyhow::anyhow!("console.tls_key: {} holds no private key", key.display())
        }
        e => anyhow::anyhow!(
            "console.tls_key: {} is not a PEM private key: {e}",
            key.display()
        ),
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_a_certificate_or_key_are_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("gatehouse-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no PEM here\n").unwrap();
        let err = format!("{:#}", acceptor(&empty, &empty).err().unwrap());
        assert!(
            err.contains("console.tls_cert") && err.contains("holds no certificate"),
            "{err}"
        );
        let missing = dir.join("missing.pem");
        let err = format!("{:#}", acceptor(&missing, &empty).err().unwrap());
        assert!(err.contains("console.tls_cert: cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
