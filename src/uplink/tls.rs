//! The rustls client configuration for `mqtts://`: the pinned CA as the
//! only trust root, and this gateway's certificate when the broker asks for
//! one. Shared by every MQTT link of the gateway (the station's uplink, the
//! site's broker, Frigate's). Ring is the only rustls crypto provider linked (rumqttc without its
//! provider feature); it is named here rather than taken from a process-wide
//! default so nothing else can change it.

use std::path::Path;
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

/// A PEM file and the config key that names it (for errors).
pub type NamedFile<'a> = (&'a str, &'a Path);

/// The configuration from PEM files named by config keys: `ca` (key, path)
/// and the optional client `(cert, key)`; every problem names the key.
pub fn from_files(
    ca: NamedFile<'_>,
    client_auth: Option<(NamedFile<'_>, NamedFile<'_>)>,
) -> Result<Arc<ClientConfig>> {
    let ca_pem = read_pem(ca.1, ca.0, "CERTIFICATE")?;
    let client = client_auth
        .map(|(cert, key)| -> Result<_> {
            Ok((
                read_pem(cert.1, cert.0, "CERTIFICATE")?,
                read_pem(key.1, key.0, "PRIVATE KEY")?,
            ))
        })
        .transpose()?;
    let names = match &client_auth {
        Some((cert, key)) => format!("{} / {} / {}", ca.0, cert.0, key.0),
        None => ca.0.to_string(),
    };
    client_config(
        &ca_pem,
        client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
    )
    .context(names)
}

/// Reads a PEM file and checks it holds the expected block, so a wrong path
/// or file is reported at start, naming the key, not at every reconnect.
pub fn read_pem(path: &Path, key: &str, block: &str) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("{key}: cannot read {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("-----BEGIN ") || !text.contains(&format!("{block}-----")) {
        bail!(
            "{key}: {} is not a PEM file with a {block} block",
            path.display()
        );
    }
    Ok(bytes)
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
