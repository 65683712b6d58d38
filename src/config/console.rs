//! The `[console]` section: where the property manager's web console listens,
//! its optional TLS certificate, how long a signed-in session lasts, and the
//! listener's limits against slow or idle clients (shared with `[lpr]`).

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
    /// Seconds a client has to send a whole request head (also how long an
    /// idle keep-alive connection stays open).
    #[serde(default = "default_header_read_timeout_s")]
    pub header_read_timeout_s: u32,
    /// Seconds a request body or an answer may move no byte before the
    /// connection is dropped.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u32,
    /// Open connections at most.
    #[serde(default = "default_console_max_connections")]
    pub max_connections: u32,
    /// Open connections at most from one address.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: u32,
}

fn default_session_minutes() -> u32 {
    30
}

pub(super) fn default_header_read_timeout_s() -> u32 {
    10
}

pub(super) fn default_idle_timeout_s() -> u32 {
    30
}

fn default_console_max_connections() -> u32 {
    128
}

pub(super) fn default_max_connections_per_address() -> u32 {
    32
}

/// The listener limits' checks, for `[console]` and `[lpr]`.
pub(super) fn check_limits(
    section: &str,
    header_read_timeout_s: u32,
    idle_timeout_s: u32,
    max_connections: u32,
    per_address: u32,
) -> Result<(), (String, String)> {
    // The goal: a half-sent request is gone within 30 s.
    if !(1..=30).contains(&header_read_timeout_s) {
        return Err((
            format!("{section}.header_read_timeout_s"),
            format!("expected 1..=30, got {header_read_timeout_s}"),
        ));
    }
    if !(1..=600).contains(&idle_timeout_s) {
        return Err((
            format!("{section}.idle_timeout_s"),
            format!("expected 1..=600, got {idle_timeout_s}"),
        ));
    }
    if !(1..=10_000).contains(&max_connections) {
        return Err((
            format!("{section}.max_connections"),
            format!("expected 1..=10000, got {max_connections}"),
        ));
    }
    if !(1..=max_connections).contains(&per_address) {
        return Err((
            format!("{section}.max_connections_per_address"),
            format!("expected 1..={max_connections} (max_connections), got {per_address}"),
        ));
    }
    Ok(())
}

/// An HTTP listener's limits (from its config section), enforced by
/// `http_server`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// The whole request head must arrive within this.
    pub header_read_timeout: std::time::Duration,
    /// A request body or an answer that moves no byte for this long is dropped.
    pub idle_timeout: std::time::Duration,
    /// Open connections at most, on this listener.
    pub max_connections: usize,
    /// Open connections at most from one address.
    pub max_per_address: usize,
}

/// The limits a listener is served with.
pub(super) fn limits(
    header_read_timeout_s: u32,
    idle_timeout_s: u32,
    max_connections: u32,
    per_address: u32,
) -> HttpLimits {
    HttpLimits {
        header_read_timeout: std::time::Duration::from_secs(header_read_timeout_s.into()),
        idle_timeout: std::time::Duration::from_secs(idle_timeout_s.into()),
        max_connections: max_connections as usize,
        max_per_address: per_address as usize,
    }
}

impl Default for Console {
    fn default() -> Self {
        Console {
            listen: None,
            tls_cert: None,
            tls_key: None,
            session_minutes: default_session_minutes(),
            header_read_timeout_s: default_header_read_timeout_s(),
            idle_timeout_s: default_idle_timeout_s(),
            max_connections: default_console_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
        }
    }
}

impl Console {
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// The listener's limits against slow and idle clients.
    pub fn limits(&self) -> HttpLimits {
        limits(
            self.header_read_timeout_s,
            self.idle_timeout_s,
            self.max_connections,
            self.max_connections_per_address,
        )
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
        check_limits(
            "console",
            self.header_read_timeout_s,
            self.idle_timeout_s,
            self.max_connections,
            self.max_connections_per_address,
        )
    }
}
