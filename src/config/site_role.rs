//! `[site] role` and what each role needs: one register for every gateway of
//! a compound (issue 17). The registry signs the register's change log with
//! its own key; each gate pins the registry's public key, as the uplink pins
//! the station's.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, Site};

/// This gateway's part in a multi-gate site.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SiteRole {
    /// Its own register, as a single-gateway compound has (the default).
    #[default]
    Standalone,
    /// Holds the site's register and publishes its signed change log.
    Registry,
    /// Receives the register from the registry and refuses local changes.
    Gate,
}

impl SiteRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteRole::Standalone => "standalone",
            SiteRole::Registry => "registry",
            SiteRole::Gate => "gate",
        }
    }

    pub fn parse(text: &str) -> Option<SiteRole> {
        match text {
            "standalone" => Some(SiteRole::Standalone),
            "registry" => Some(SiteRole::Registry),
            "gate" => Some(SiteRole::Gate),
            _ => None,
        }
    }
}

/// The name of a gateway's site signing key file (the registry's, or a gate's).
pub const SIGNING_KEY_FILE: &str = "site.key";

impl Site {
    /// The role's own checks: a gate pins a well-formed registry key, the
    /// keys belong to the role that uses them, the broker is an MQTT URL.
    pub(super) fn validate_role(&self) -> Result<(), (String, String)> {
        if let Some(broker) = &self.broker {
            if !(broker.starts_with("mqtt://") || broker.starts_with("mqtts://")) {
                return Err((
                    "site.broker".into(),
                    format!("expected mqtt://host:port or mqtts://host:port, got {broker:?}"),
                ));
            }
        }
        match self.role {
            SiteRole::Standalone => {
                for (key, set) in [
                    ("site.broker", self.broker.is_some()),
                    ("site.registry_key", self.registry_key.is_some()),
                    ("site.signing_key", self.signing_key.is_some()),
                    ("site.ca_file", self.ca_file.is_some()),
                    ("site.client_cert", self.client_cert.is_some()),
                    ("site.client_key", self.client_key.is_some()),
                    ("site.gate_keys", !self.gate_keys.is_empty()),
                ] {
                    if set {
                        return Err((
                            key.into(),
                            "only used with role = \"registry\" or \"gate\"".into(),
                        ));
                    }
                }
            }
            SiteRole::Registry => {
                if self.broker.is_none() {
                    return Err((
                        "site.broker".into(),
                        "a registry publishes the register on the site's broker: set mqtt://host:port"
                            .into(),
                    ));
                }
                if self.registry_key.is_some() {
                    return Err((
                        "site.registry_key".into(),
                        "the registry signs with site.signing_key; registry_key is for gates"
                            .into(),
                    ));
                }
                for (gateway, key) in &self.gate_keys {
                    let at = format!("site.gate_keys.{gateway}");
                    crate::domain::validate_slug(gateway)
                        .map_err(|problem| (at.clone(), problem))?;
                    crate::signing::parse_public_key(key).map_err(|problem| (at, problem))?;
                }
            }
            SiteRole::Gate => {
                if self.broker.is_none() {
                    return Err((
                        "site.broker".into(),
                        "a gate receives the register on the site's broker: set mqtt://host:port"
                            .into(),
                    ));
                }
                let Some(key) = &self.registry_key else {
                    return Err((
                        "site.registry_key".into(),
                        "a gate pins the registry's Ed25519 public key (base64; the registry logs it at start)"
                            .into(),
                    ));
                };
                crate::signing::parse_public_key(key)
                    .map_err(|problem| ("site.registry_key".to_string(), problem))?;
                if !self.gate_keys.is_empty() {
                    return Err((
                        "site.gate_keys".into(),
                        "the registry pins the gates' keys; a gate pins registry_key".into(),
                    ));
                }
            }
        }
        self.validate_tls()
    }

    /// TLS to the site broker: an `mqtts://` broker is trusted only through
    /// the pinned `ca_file` (the register carries face embeddings); the TLS
    /// files mean nothing to a plain `mqtt://` one.
    fn validate_tls(&self) -> Result<(), (String, String)> {
        let tls = self
            .broker
            .as_deref()
            .is_some_and(|b| b.starts_with("mqtts://"));
        if tls && self.ca_file.is_none() {
            return Err((
                "site.ca_file".into(),
                "an mqtts:// site broker is trusted only through a pinned CA: set the PEM file of the CA that signed its certificate"
                    .into(),
            ));
        }
        if !tls {
            for (key, set) in [
                ("site.ca_file", self.ca_file.is_some()),
                ("site.client_cert", self.client_cert.is_some()),
                ("site.client_key", self.client_key.is_some()),
            ] {
                if set {
                    return Err((key.into(), "only used with an mqtts:// site.broker".into()));
                }
            }
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err((
                "site.client_cert".into(),
                "client_cert and client_key must be set together".into(),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Where this gateway keeps its site signing key (the registry's for the
    /// register, a gate's for its reports): `[site] signing_key`, else
    /// `site.key` beside the device secret (outside the data directory).
    pub fn site_signing_key_path(&self) -> PathBuf {
        match &self.site.signing_key {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => self.store.data_dir.join(p),
            None => self.device_key_path().with_file_name(SIGNING_KEY_FILE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        crate::signing::public_key_text(&key.verifying_key())
    }

    fn parse(site: &str) -> Result<Config, String> {
        let text = format!("[site]\nid = \"s\"\ngateway_id = \"g\"\nname = \"n\"\n{site}\n");
        Config::parse(&text, "site.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn a_gateway_without_a_role_is_standalone() {
        assert_eq!(parse("").unwrap().site.role, SiteRole::Standalone);
    }

    #[test]
    fn a_gate_pins_the_registrys_key_and_names_a_broker() {
        let gate = parse(&format!(
            "role = \"gate\"\nbroker = \"mqtt://10.0.0.2:1883\"\nregistry_key = \"{}\"",
            key()
        ))
        .unwrap();
        assert_eq!(gate.site.role, SiteRole::Gate);
        let err = parse("role = \"gate\"\nbroker = \"mqtt://10.0.0.2:1883\"").unwrap_err();
        assert!(
            err.starts_with("site.toml: site.registry_key: a gate pins"),
            "{err}"
        );
        let err = parse(
            "role = \"gate\"\nbroker = \"mqtt://10.0.0.2:1883\"\nregistry_key = \"bm90IGEga2V5\"",
        )
        .unwrap_err();
        assert!(
            err.starts_with("site.toml: site.registry_key: expected 32 bytes"),
            "{err}"
        );
    }

    #[test]
    fn names_the_key_of_a_role_that_lacks_what_it_needs() {
        let err = parse("role = \"registry\"").unwrap_err();
        assert!(
            err.starts_with("site.toml: site.broker: a registry"),
            "{err}"
        );
        let err = parse("role = \"hub\"").unwrap_err();
        assert!(err.contains("site.role"), "{err}");
        let err = parse("signing_key = \"site.key\"").unwrap_err();
        assert!(
            err.starts_with("site.toml: site.signing_key: only used"),
            "{err}"
        );
        let err = parse(&format!(
            "role = \"registry\"\nbroker = \"tcp://x\"\nregistry_key = \"{}\"",
            key()
        ))
        .unwrap_err();
        assert!(
            err.starts_with("site.toml: site.broker: expected mqtt://"),
            "{err}"
        );
    }

    #[test]
    fn an_mqtts_site_broker_needs_a_pinned_ca_and_tls_files_need_mqtts() {
        let registry = |rest: &str| parse(&format!("role = \"registry\"\n{rest}"));
        let err = registry("broker = \"mqtts://10.0.0.2:8883\"").unwrap_err();
        assert!(
            err.starts_with("site.toml: site.ca_file: an mqtts:// site broker"),
            "{err}"
        );
        let ok = registry(
            "broker = \"mqtts://10.0.0.2:8883\"\nca_file = \"/etc/gatehouse/site-ca.pem\"",
        )
        .unwrap();
        assert_eq!(
            ok.site.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/gatehouse/site-ca.pem"))
        );
        let err = registry("broker = \"mqtt://10.0.0.2:1883\"\nca_file = \"ca.pem\"").unwrap_err();
        assert!(
            err.starts_with("site.toml: site.ca_file: only used with an mqtts://"),
            "{err}"
        );
        let err = registry(
            "broker = \"mqtts://10.0.0.2:8883\"\nca_file = \"ca.pem\"\nclient_cert = \"gw.pem\"",
        )
        .unwrap_err();
        assert!(
            err.starts_with("site.toml: site.client_cert: client_cert and client_key"),
            "{err}"
        );
        let err = parse("ca_file = \"ca.pem\"").unwrap_err();
        assert!(
            err.starts_with("site.toml: site.ca_file: only used with role"),
            "{err}"
        );
    }

    #[test]
    fn the_registry_pins_each_gates_key_by_its_gateway_id() {
        let registry = parse(&format!(
            "role = \"registry\"\nbroker = \"mqtt://10.0.0.2:1883\"\ngate_keys = {{ north = \"{}\" }}",
            key()
        ))
        .unwrap();
        assert_eq!(registry.site.gate_keys.get("north"), Some(&key()));
        let err = parse(
            "role = \"registry\"\nbroker = \"mqtt://10.0.0.2:1883\"\ngate_keys = { north = \"bm90\" }",
        )
        .unwrap_err();
        assert!(
            err.starts_with("site.toml: site.gate_keys.north: expected 32 bytes"),
            "{err}"
        );
        let err = parse(&format!(
            "role = \"registry\"\nbroker = \"mqtt://10.0.0.2:1883\"\ngate_keys = {{ \"no way\" = \"{}\" }}",
            key()
        ))
        .unwrap_err();
        assert!(
            err.starts_with("site.toml: site.gate_keys.no way:"),
            "{err}"
        );
        let err = parse(&format!(
            "role = \"gate\"\nbroker = \"mqtt://10.0.0.2:1883\"\nregistry_key = \"{k}\"\ngate_keys = {{ north = \"{k}\" }}",
            k = key()
        ))
        .unwrap_err();
        assert!(
            err.starts_with("site.toml: site.gate_keys: the registry pins"),
            "{err}"
        );
    }

    #[test]
    fn the_registrys_key_sits_beside_the_device_secret_by_default() {
        let mut config = parse("role = \"registry\"\nbroker = \"mqtt://127.0.0.1:1883\"").unwrap();
        config.store.device_key = Some(PathBuf::from("/etc/gatehouse/device.key"));
        assert_eq!(
            config.site_signing_key_path(),
            PathBuf::from("/etc/gatehouse/site.key")
        );
    }
}
