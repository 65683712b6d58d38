//! The `[console]` section: where the property manager's web console listens,
//! its optional TLS certificate, and how long a signed-in session lasts.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Console {
    /// Address of the web console (`192.168.1.2:8088`); absent: off.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain and private key for HTTPS; both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Minutes without activity after which a session ends.
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u32,
}

fn default_session_minutes() -> u32 {
    30
}

impl Default for Console {
    fn default() -> Self {
        Console {
            listen: None,
            tls_cert: None,
            tls_key: None,
            session_minutes: default_session_minutes(),
        }
    }
}

impl Console {
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err((
                "console".into(),
                "tls_cert and tls_key must be set together".into(),
            ));
        }
        if !(1..=1440).contains(&self.session_minutes) {
            return Err((
                "console.session_minutes".into(),
                format!("expected 1..=1440, got {}", self.session_minutes),
            ));
        }
        Ok(())
    }
}
