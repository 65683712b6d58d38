//! The rustls client configuration for `mqtts://`: the station's CA as the
//! only trust root, and this gateway's certificate when the broker asks for
//! one. Ring is the only rustls crypto provider linked (rumqttc without its
//! provider feature); it is named here rather than taken from a process-wide
//! default so nothing else can change it.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// `ca_pem`: trusted CA certificates; `client_auth`: (certificate chain, key) PEM.
pub fn client_config(
    ca_pem: &[u8],
    client_auth: Option<(&[u8], &[u8])>,
) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.context("CA file: unreadable PEM certificate")?;
        roots.add(cert).context("CA file: certificate rejected")?;
    }
    if roots.is_empty() {
        bail!("CA file: no certificate in it");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let config = match client_auth {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .context("client certificate: unreadable PEM")?;
            if chain.is_empty() {
                bail!("client certificate: no certificate in it");
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .context("client key: no PKCS#8, PKCS#1 or SEC1 private key in it")?;
            builder
                .with_client_auth_cert(chain, key)
                .context("client certificate and key do not match")?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_a_reason() {
        let err = client_config(b"not a certificate", None).unwrap_err();
        assert!(format!("{err:#}").contains("no certificate"), "{err:#}");
    }
}
