//! The `[lpr.frigate]` section: Frigate as a plate source. Frigate publishes
//! its plate recognitions on MQTT (`<topic_prefix>/tracked_object_update`,
//! `"type": "lpr"`); the gateway subscribes on Frigate's broker and feeds
//! them to the same plate path as the HTTP cameras.
//!
//! The broker is the trust boundary: whoever may publish on Frigate's topic
//! can present a plate. So the Frigate cameras that stand at a vehicle gate
//! are listed by name (every other camera is ignored), and a broker off this
//! host needs a login or a client certificate.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::GateId;

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Frigate {
    /// Frigate's broker: `mqtt://host:port` or `mqtts://host:port`.
    pub broker: String,
    /// Frigate's `mqtt.topic_prefix` (Frigate's default: `frigate`).
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    pub username: Option<String>,
    /// File holding the broker password (first line).
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) of the broker, for `mqtts://` (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// This gateway's client certificate and key (PEM), when the broker asks for one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The Frigate cameras that watch a vehicle gate; readings from any other
    /// camera are ignored.
    #[serde(default)]
    pub cameras: Vec<FrigateCamera>,
}

/// A Frigate camera (its name in Frigate's config) and the gate it watches.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FrigateCamera {
    pub name: String,
    pub gate: GateId,
}

fn default_topic_prefix() -> String {
    "frigate".into()
}

impl fmt::Debug for Frigate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frigate")
            .field("broker", &self.broker)
            .field("topic_prefix", &self.topic_prefix)
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("cameras", &self.cameras)
            .finish_non_exhaustive()
    }
}

impl Frigate {
    /// The topic Frigate publishes plate recognitions on.
    pub fn updates_topic(&self) -> String {
        format!("{}/tracked_object_update", self.topic_prefix)
    }

    /// Frigate's own availability topic (`online` / `offline`).
    pub fn available_topic(&self) -> String {
        format!("{}/available", self.topic_prefix)
    }

    /// The gate a Frigate camera watches, if it is listed.
    pub fn camera_gate(&self, camera: &str) -> Option<&GateId> {
        self.cameras
            .iter()
            .find(|c| c.name == camera)
            .map(|c| &c.gate)
    }

    /// Checks serde cannot do; errors are (key path, problem). `vehicle_gate`
    /// checks a gate reference the way the rest of `[lpr]` does.
    pub(super) fn validate(
        &self,
        vehicle_gate: impl Fn(String, &GateId) -> Result<(), (String, String)>,
    ) -> Result<(), (String, String)> {
        let host = broker_host(&self.broker).ok_or_else(|| {
            (
                "lpr.frigate.broker".to_string(),
                format!(
                    "expected mqtt://host:port or mqtts://host:port, got {:?}",
                    self.broker
                ),
            )
        })?;
        let prefix = &self.topic_prefix;
        if prefix.is_empty()
            || prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix.contains(['+', '#', '\0'])
        {
            return Err((
                "lpr.frigate.topic_prefix".into(),
                format!("expected Frigate's mqtt.topic_prefix like \"frigate\", got {prefix:?}"),
            ));
        }
        if self.password_file.is_some() && self.username.is_none() {
            return Err((
                "lpr.frigate.password_file".into(),
                "is set but lpr.frigate.username is not".into(),
            ));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err((
                "lpr.frigate.client_cert".into(),
                "client_cert and client_key must be set together".into(),
            ));
        }
        let authenticated = self.username.is_some() || self.client_cert.is_some();
        if !authenticated && !is_loopback(&host) {
            return Err((
                "lpr.frigate.username".into(),
                format!(
                    "the broker at {host} needs a login (username and password_file, or \
                     client_cert): anyone who can publish on {} there can present a plate",
                    self.updates_topic()
                ),
            ));
        }
        if self.cameras.is_empty() {
            return Err((
                "lpr.frigate.cameras".into(),
                "list the Frigate cameras that watch a vehicle gate ([[lpr.frigate.cameras]] \
                 name and gate); readings from other cameras are ignored"
                    .into(),
            ));
        }
        for (i, camera) in self.cameras.iter().enumerate() {
            let valid = !camera.name.is_empty()
                && camera.name.len() <= 64
                && camera
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err((
                    format!("lpr.frigate.cameras[{i}].name"),
                    format!(
                        "expected a Frigate camera name (letters, digits, _ and -), got {:?}",
                        camera.name
                    ),
                ));
            }
            if self.cameras[..i].iter().any(|c| c.name == camera.name) {
                return Err((
                    format!("lpr.frigate.cameras[{i}].name"),
                    format!("camera {:?} is listed twice", camera.name),
                ));
            }
            vehicle_gate(format!("lpr.frigate.cameras[{i}].gate"), &camera.gate)?;
        }
        Ok(())
    }
}

/// The host part of `mqtt://host[:port]` / `mqtts://…`, brackets removed.
fn broker_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("mqtts://")
        .or_else(|| url.strip_prefix("mqtt://"))?
        .trim_end_matches('/');
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => rest.rsplit_once(':').map_or(rest, |(h, _)| h),
    };
    (!host.is_empty() && !host.contains(['/', '@'])).then(|| host.to_string())
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
ocr_tolerance = ["car-in"]

[lpr.frigate]
broker = "mqtt://192.168.1.5:1883"
username = "gatehouse"
password_file = "frigate.pass"

[[lpr.frigate.cameras]]
name = "gate_lpr"
gate = "car-in"
"#;

    fn error_of(text: &str) -> String {
        Config::parse(text, "x.toml").unwrap_err().to_string()
    }

    #[test]
    fn maps_listed_frigate_cameras_to_gates_without_the_http_endpoint() {
        let config = Config::parse(BASE, "x.toml").unwrap();
        assert!(
            config.lpr.listen.is_none(),
            "Frigate needs no HTTP endpoint"
        );
        let frigate = config.lpr.frigate.as_ref().unwrap();
        assert_eq!(frigate.topic_prefix, "frigate");
        assert_eq!(frigate.updates_topic(), "frigate/tracked_object_update");
        assert_eq!(frigate.available_topic(), "frigate/available");
        let car_in: GateId = "car-in".parse().unwrap();
        assert_eq!(frigate.camera_gate("gate_lpr"), Some(&car_in));
        assert_eq!(frigate.camera_gate("driveway"), None);
    }

    #[test]
    fn a_broker_on_this_host_may_go_without_a_login() {
        let text = BASE
            .replace("mqtt://192.168.1.5:1883", "mqtt://127.0.0.1:1883")
            .replace(
                "username = \"gatehouse\"\npassword_file = \"frigate.pass\"\n",
                "",
            );
        assert!(Config::parse(&text, "x.toml").is_ok());
        let text = text.replace("127.0.0.1:1883", "[::1]:1883");
        assert!(Config::parse(&text, "x.toml").is_ok());
    }

    #[test]
    fn names_the_key_of_each_frigate_problem() {
        let no_login = BASE.replace(
            "username = \"gatehouse\"\npassword_file = \"frigate.pass\"\n",
            "",
        );
        let cases = [
            (
                no_login.clone(),
                "lpr.frigate.username: the broker at 192.168.1.5 needs a login",
            ),
            (
                BASE.replace("username = \"gatehouse\"\n", ""),
                "lpr.frigate.password_file: is set but lpr.frigate.username is not",
            ),
            (
                BASE.replace("mqtt://192.168.1.5:1883", "tcp://192.168.1.5"),
                "lpr.frigate.broker: expected mqtt://host:port",
            ),
            (
                BASE.replace(
                    "[lpr.frigate]\n",
                    "[lpr.frigate]\ntopic_prefix = \"frigate/#\"\n",
                ),
                "lpr.frigate.topic_prefix: expected Frigate's mqtt.topic_prefix",
            ),
            (
                BASE.replace("name = \"gate_lpr\"", "name = \"gate lpr\""),
                "lpr.frigate.cameras[0].name: expected a Frigate camera name",
            ),
            (
                BASE.replace("gate = \"car-in\"\n", "gate = \"east\"\n"),
                "lpr.frigate.cameras[0].gate: gate \"east\" is a pedestrian gate",
            ),
            (
                BASE.replace("gate = \"car-in\"\n", "gate = \"car-out\"\n"),
                "lpr.frigate.cameras[0].gate: no gate with id \"car-out\"",
            ),
            (
                format!(
                    "{BASE}\n[[lpr.frigate.cameras]]\nname = \"gate_lpr\"\ngate = \"car-in\"\n"
                ),
                "lpr.frigate.cameras[1].name: camera \"gate_lpr\" is listed twice",
            ),
            (
                BASE.split("[[lpr.frigate.cameras]]")
                    .next()
                    .unwrap()
                    .to_string(),
                "lpr.frigate.cameras: list the Frigate cameras",
            ),
            (
                BASE.replace(
                    "[lpr.frigate]\n",
                    "[lpr.frigate]\nclient_cert = \"c.pem\"\n",
                ),
                "lpr.frigate.client_cert: client_cert and client_key must be set together",
            ),
            (
                BASE.replace("[lpr.frigate]\n", "[lpr.frigate]\nqos = 1\n"),
                "unknown field `qos`",
            ),
        ];
        for (text, expected) in cases {
            let err = error_of(&text);
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }

    #[test]
    fn reads_the_host_of_broker_urls() {
        assert_eq!(broker_host("mqtt://h:1883").as_deref(), Some("h"));
        assert_eq!(broker_host("mqtts://h").as_deref(), Some("h"));
        assert_eq!(broker_host("mqtt://[::1]:1883").as_deref(), Some("::1"));
        assert_eq!(broker_host("mqtt://u@h:1883"), None);
        assert_eq!(broker_host("mqtt://"), None);
        assert_eq!(broker_host("http://h"), None);
        assert!(is_loopback("localhost") && is_loopback("127.0.0.2"));
        assert!(!is_loopback("192.168.1.5"));
    }
}
