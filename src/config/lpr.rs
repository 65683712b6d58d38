//! The `[lpr]` section: where licence-plate cameras push their readings, who
//! may push, and which camera channel stands at which vehicle gate.
//!
//! Kept apart from `mod.rs` so the LPR adapter's settings and their checks read
//! in one place.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Gate, GateKind};
use crate::domain::GateId;

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lpr {
    /// Address of the HTTP endpoint cameras push to (`POST /lpr/json`,
    /// `POST /lpr/hikvision`); absent: off.
    pub listen: Option<SocketAddr>,
    /// Camera addresses (`192.168.1.70`) or networks (`192.168.1.0/24`) allowed
    /// to push; every other address gets 403.
    #[serde(default)]
    pub allow: Vec<AddrRange>,
    /// Shared secret the cameras send in `X-Gatehouse-Token`. Set this or
    /// `token_file`, not both.
    pub token: Option<String>,
    /// File holding the shared secret (first line).
    pub token_file: Option<PathBuf>,
    /// Largest request body in KiB (an event with its JPEG snapshots).
    #[serde(default = "default_max_body_kb")]
    pub max_body_kb: u32,
    /// Vehicle gates where the usual OCR confusions (0/D, 8/B, 2/Z) are
    /// tolerated when looking a plate up.
    #[serde(default)]
    pub ocr_tolerance: Vec<GateId>,
    /// Which gate a Hikvision camera (address, channel) stands at.
    #[serde(default)]
    pub cameras: Vec<LprCamera>,
    /// Seconds in which the same reading at the same gate is a repeat
    /// (cameras push a waiting car again and again): answered as before,
    /// without a second decision or event. 0: every push is decided.
    #[serde(default = "default_repeat_window_s")]
    pub repeat_window_s: u32,
    /// Seconds a camera has to send a whole request head (also how long an
    /// idle keep-alive connection stays open).
    #[serde(default = "super::console::default_header_read_timeout_s")]
    pub header_read_timeout_s: u32,
    /// Seconds a request body or an answer may move no byte before the
    /// connection is dropped.
    #[serde(default = "super::console::default_idle_timeout_s")]
    pub idle_timeout_s: u32,
    /// Open connections at most (addresses off `allow` are refused before
    /// they count).
    #[serde(default = "default_lpr_max_connections")]
    pub max_connections: u32,
    /// Open connections at most from one camera address.
    #[serde(default = "super::console::default_max_connections_per_address")]
    pub max_connections_per_address: u32,
    /// Frigate's plate recognitions over MQTT (`[lpr.frigate]`); absent: off.
    /// Works with or without `listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frigate: Option<super::Frigate>,
}

fn default_lpr_max_connections() -> u32 {
    256
}

fn default_max_body_kb() -> u32 {
    4096
}

fn default_repeat_window_s() -> u32 {
    10
}

impl fmt::Debug for Lpr {
    // A config dump in a log must not carry the cameras' secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lpr")
            .field("listen", &self.listen)
            .field("allow", &self.allow)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("max_body_kb", &self.max_body_kb)
            .field("ocr_tolerance", &self.ocr_tolerance)
            .field("cameras", &self.cameras)
            .field("repeat_window_s", &self.repeat_window_s)
            .field("header_read_timeout_s", &self.header_read_timeout_s)
            .field("idle_timeout_s", &self.idle_timeout_s)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("frigate", &self.frigate)
            .finish()
    }
}

impl Default for Lpr {
    fn default() -> Self {
        Lpr {
            listen: None,
            allow: Vec::new(),
            token: None,
            token_file: None,
            max_body_kb: default_max_body_kb(),
            ocr_tolerance: Vec::new(),
            cameras: Vec::new(),
            repeat_window_s: default_repeat_window_s(),
            header_read_timeout_s: super::console::default_header_read_timeout_s(),
            idle_timeout_s: super::console::default_idle_timeout_s(),
            max_connections: default_lpr_max_connections(),
            max_connections_per_address: super::console::default_max_connections_per_address(),
            frigate: None,
        }
    }
}

/// A camera (or an NVR channel) and the gate it watches.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LprCamera {
    /// The address the camera's requests come from.
    pub address: IpAddr,
    /// ISAPI `channelID`; absent: every channel of that address.
    pub channel: Option<u32>,
    pub gate: GateId,
}

/// One address or a network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct AddrRange {
    net: IpAddr,
    prefix: u8,
}

impl AddrRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for AddrRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for AddrRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected an IP address or a network like 192.168.1.0/24, got {s:?}");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(AddrRange {
            net: net.to_canonical(),
            prefix,
        })
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl From<AddrRange> for String {
    fn from(r: AddrRange) -> String {
        r.to_string()
    }
}

impl Lpr {
    /// True when `ip` may push plate events.
    /// The listener's limits against slow and idle clients.
    pub fn limits(&self) -> super::HttpLimits {
        super::console::limits(
            self.header_read_timeout_s,
            self.idle_timeout_s,
            self.max_connections,
            self.max_connections_per_address,
        )
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|r| r.contains(ip))
    }

    pub fn tolerates_ocr_confusion(&self, gate: &GateId) -> bool {
        self.ocr_tolerance.contains(gate)
    }

    /// The gate of a Hikvision camera: an entry naming the channel wins over
    /// one for every channel of the address.
    pub fn camera_gate(&self, address: IpAddr, channel: Option<u32>) -> Option<&GateId> {
        let address = address.to_canonical();
        let of_address = || self.cameras.iter().filter(|c| c.address == address);
        of_address()
            .find(|c| c.channel.is_some() && c.channel == channel)
            .or_else(|| of_address().find(|c| c.channel.is_none()))
            .map(|c| &c.gate)
    }

    /// Checks serde cannot do; errors are (key path, problem).
    pub(super) fn validate(&self, gates: &[Gate]) -> Result<(), (String, String)> {
        let vehicle_gate = |key: String, id: &GateId| -> Result<(), (String, String)> {
            match gates.iter().find(|g| &g.id == id) {
                None => Err((key, format!("no gate with id {:?}", id.as_str()))),
                Some(g) if g.kind != GateKind::Vehicle => Err((
                    key,
                    format!(
                        "gate {:?} is a pedestrian gate; plates need a vehicle gate",
                        id.as_str()
                    ),
                )),
                Some(_) => Ok(()),
            }
        };
        super::console::check_limits(
            "lpr",
            self.header_read_timeout_s,
            self.idle_timeout_s,
            self.max_connections,
            self.max_connections_per_address,
        )?;
        if self.listen.is_some() {
            if self.allow.is_empty() {
                return Err((
                    "lpr.allow".into(),
                    "list the cameras' addresses; an empty list refuses every camera".into(),
                ));
            }
            match (&self.token, &self.token_file) {
                (None, None) => {
                    return Err((
                        "lpr".into(),
                        "set token_file (or token): cameras must send the shared secret in X-Gatehouse-Token".into(),
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err((
                        "lpr.token".into(),
                        "set token or token_file, not both".into(),
                    ))
                }
                _ => {}
            }
        }
        if let Some(token) = &self.token {
            check_token(token).map_err(|p| ("lpr.token".to_string(), p))?;
        }
        if !(1..=65_536).contains(&self.max_body_kb) {
            return Err((
                "lpr.max_body_kb".into(),
                format!("expected 1..=65536, got {}", self.max_body_kb),
            ));
        }
        for (i, gate) in self.ocr_tolerance.iter().enumerate() {
            vehicle_gate(format!("lpr.ocr_tolerance[{i}]"), gate)?;
        }
        if let Some(frigate) = &self.frigate {
            frigate.validate(vehicle_gate)?;
        }
        for (i, camera) in self.cameras.iter().enumerate() {
            vehicle_gate(format!("lpr.cameras[{i}].gate"), &camera.gate)?;
            if self.listen.is_some() && !self.allows(camera.address) {
                return Err((
                    format!("lpr.cameras[{i}].address"),
                    format!(
                        "{} is not in lpr.allow, so its events would be refused",
                        camera.address
                    ),
                ));
            }
            let same = |c: &LprCamera| {
                c.address.to_canonical() == camera.address.to_canonical()
                    && c.channel == camera.channel
            };
            if self.cameras[..i].iter().any(same) {
                return Err((
                    format!("lpr.cameras[{i}]"),
                    format!(
                        "address {} channel {} is mapped twice",
                        camera.address,
                        camera
                            .channel
                            .map_or("(any)".to_string(), |c| c.to_string())
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A shared secret worth the name: long enough not to be guessed, and
/// printable so it survives a camera's web form.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.chars().count() < 16 {
        return Err("the shared secret needs at least 16 characters".into());
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err("the shared secret may use only printable ASCII without spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = r#"
[site]
id = "qingbo"
gateway_id = "gw1"
name = "清波小区"

[[gates]]
id = "east"
name = "东门"
kind = "pedestrian"
direction = "in"
backend = "simulated"
relay_pin = 17

[[gates]]
id = "car-in"
name = "车辆入口"
kind = "vehicle"
direction = "in"
backend = "simulated"
relay_pin = 24
loop_pin = 25

[lpr]
listen = "127.0.0.1:8089"
allow = ["192.168.1.0/24"]
token = "0123456789abcdef"
ocr_tolerance = ["car-in"]

[[lpr.cameras]]
address = "192.168.1.70"
gate = "car-in"

[[lpr.cameras]]
address = "192.168.1.70"
channel = 2
gate = "car-in"
"#;

    fn error_of(text: &str) -> String {
        Config::parse(text, "x.toml").unwrap_err().to_string()
    }

    #[test]
    fn accepts_an_lpr_section_and_maps_cameras_to_gates() {
        let config = Config::parse(BASE, "x.toml").unwrap();
        let lpr = &config.lpr;
        assert_eq!(lpr.max_body_kb, 4096);
        assert!(lpr.allows("192.168.1.9".parse().unwrap()));
        assert!(!lpr.allows("10.0.0.1".parse().unwrap()));
        let car_in: GateId = "car-in".parse().unwrap();
        assert!(lpr.tolerates_ocr_confusion(&car_in));
        let camera = "192.168.1.70".parse().unwrap();
        assert_eq!(lpr.camera_gate(camera, Some(2)), Some(&car_in));
        assert_eq!(lpr.camera_gate(camera, Some(7)), Some(&car_in));
        assert_eq!(
            lpr.camera_gate("192.168.1.71".parse().unwrap(), Some(1)),
            None
        );
    }

    #[test]
    fn an_absent_lpr_section_is_off() {
        let text = BASE.split("[lpr]").next().unwrap();
        let config = Config::parse(text, "x.toml").unwrap();
        assert!(config.lpr.listen.is_none());
    }

    #[test]
    fn names_the_key_of_each_lpr_problem() {
        let cases = [
            (
                BASE.replace("token = \"0123456789abcdef\"", ""),
                "x.toml: lpr: set token_file",
            ),
            (
                BASE.replace(
                    "token = \"0123456789abcdef\"",
                    "token = \"0123456789abcdef\"\ntoken_file = \"t\"",
                ),
                "lpr.token: set token or token_file, not both",
            ),
            (
                BASE.replace("0123456789abcdef", "short"),
                "lpr.token: the shared secret needs at least 16",
            ),
            (
                BASE.replace("allow = [\"192.168.1.0/24\"]", "allow = []"),
                "lpr.allow: list the cameras",
            ),
            (
                BASE.replace("192.168.1.0/24", "192.168.1.0/40"),
                "lpr.allow[0]: expected an IP address or a network",
            ),
            (
                BASE.replace("ocr_tolerance = [\"car-in\"]", "ocr_tolerance = [\"east\"]"),
                "lpr.ocr_tolerance[0]: gate \"east\" is a pedestrian gate",
            ),
            (
                BASE.replace(
                    "ocr_tolerance = [\"car-in\"]",
                    "ocr_tolerance = [\"car-out\"]",
                ),
                "lpr.ocr_tolerance[0]: no gate with id \"car-out\"",
            ),
            (
                BASE.replacen("address = \"192.168.1.70\"", "address = \"10.0.0.5\"", 1),
                "lpr.cameras[0].address: 10.0.0.5 is not in lpr.allow",
            ),
            (
                BASE.replace("[lpr]\n", "[lpr]\nheader_read_timeout_s = 45\n"),
                "lpr.header_read_timeout_s: expected 1..=30, got 45",
            ),
            (
                BASE.replace(
                    "[lpr]\n",
                    "[lpr]\nmax_connections = 10\nmax_connections_per_address = 11\n",
                ),
                "lpr.max_connections_per_address: expected 1..=10 (max_connections), got 11",
            ),
            (
                BASE.replace("channel = 2\n", ""),
                "lpr.cameras[1]: address 192.168.1.70 channel (any) is mapped twice",
            ),
            (
                BASE.replace("max_body_kb", "x")
                    .replace("[lpr]\n", "[lpr]\nmax_body_kb = 0\n"),
                "lpr.max_body_kb: expected 1..=65536, got 0",
            ),
            (
                BASE.replace("[lpr]\n", "[lpr]\nallow_all = true\n"),
                "unknown field `allow_all`",
            ),
        ];
        for (text, expected) in cases {
            let err = error_of(&text);
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }

    #[test]
    fn addr_ranges_match_hosts_networks_and_mapped_ipv4() {
        let net: AddrRange = "192.168.1.0/24".parse().unwrap();
        assert!(net.contains("192.168.1.70".parse().unwrap()));
        assert!(!net.contains("192.168.2.70".parse().unwrap()));
        assert!(net.contains("::ffff:192.168.1.9".parse().unwrap()));
        let host: AddrRange = "127.0.0.1".parse().unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let all: AddrRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: AddrRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!("192.168.1.0/33".parse::<AddrRange>().is_err());
        assert!("camera-1".parse::<AddrRange>().is_err());
    }
}
