//! `gatehouse doctor`: one checklist of everything a gateway needs, for the
//! installer on the pole and for support over the phone.
//!
//! Each check is independent and reports pass, warn or fail with a sentence
//! saying what to do; nothing here changes the system.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Backend, Config};
use crate::models::{self, Manifest, VerifyOutcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, status: CheckStatus, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// Runs every check. `camera_timeout` bounds how long a camera may take to deliver a frame.
pub fn run(config: &Config, camera_timeout: Duration) -> Vec<Check> {
    let mut checks = vec![Check::new(
        "config",
        CheckStatus::Pass,
        format!(
            "site {}, gateway {}, {} gate(s)",
            config.site.id,
            config.site.gateway_id,
            config.gates.len()
        ),
    )];
    checks.push(check_data_dir(config.data_dir()));
    checks.push(check_device_secret(
        &config.device_key_path(),
        config.data_dir(),
    ));
    checks.push(check_disk(config.data_dir()));
    checks.extend(check_gpio(config));
    let models = check_models(config);
    let installed = models.iter().all(|c| c.status != CheckStatus::Fail);
    checks.extend(models);
    let runtime = check_onnxruntime(config);
    let runtime_ok = runtime.status == CheckStatus::Pass;
    checks.push(runtime);
    if installed && runtime_ok {
        checks.push(check_models_run(config));
    }
    for camera in &config.cameras {
        checks.push(check_camera(&camera.id, &camera.source, camera_timeout));
    }
    checks.push(check_face_register(config));
    checks.extend(check_liveness(config));
    checks.push(check_broker(config));
    checks.extend(check_site(config));
    checks.extend(check_site_broker(config));
    checks.extend(check_frigate(config));
    checks.push(check_clock());
    checks
}

/// A site's registry or gate: its role as the database knows it, how far
/// its register is and when the last entry arrived (None when standalone).
fn check_site(config: &Config) -> Option<Check> {
    let role = config.site.role;
    if role == crate::config::SiteRole::Standalone {
        return None;
    }
    let label = "site register";
    let check = match crate::store::site_log::status_at(&config.database_path()) {
        Ok(s) if s.role != role.as_str() => Check::new(
            label,
            CheckStatus::Warn,
            format!(
                "the database is still {} (the role is set when the daemon or a command opens it)",
                s.role
            ),
        ),
        Ok(s) if s.role == "gate" && s.applied_at.is_none() => Check::new(
            label,
            CheckStatus::Warn,
            format!(
                "{}: no register received yet; check site.broker and that the registry runs",
                crate::site::describe(&s)
            ),
        ),
        Ok(s) => Check::new(label, CheckStatus::Pass, crate::site::describe(&s)),
        Err(e) => Check::new(label, CheckStatus::Warn, format!("{e:#}")),
    };
    Some(check)
}

/// The site's broker of a registry or gate: its TLS files load, it answers,
/// and a warning when it is plain MQTT off this machine (the register, face
/// embeddings included, would cross the LAN unencrypted).
fn check_site_broker(config: &Config) -> Option<Check> {
    let url = config.site.broker.as_ref()?;
    let label = "site broker";
    let settings = match crate::site::Settings::from_config(config) {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) => return Some(Check::new(label, CheckStatus::Fail, format!("{e:#}"))),
    };
    let mut check = reachable(label, url);
    if check.status == CheckStatus::Pass {
        if settings.role == crate::config::SiteRole::Registry && settings.gate_keys.is_empty() {
            check = Check::new(
                label,
                CheckStatus::Warn,
                "no gate's key pinned in site.gate_keys: every gate's events, applied reports and \
                 visitor uses are refused; add each gate's `gatehouse config site-key`",
            );
        } else if let Some(warning) = crate::site::plain_on_the_lan(&settings.broker) {
            check = Check::new(label, CheckStatus::Warn, warning);
        } else if settings.tls.is_some() {
            check.detail = format!("{}; TLS with the pinned site.ca_file", check.detail);
        }
    }
    Some(check)
}

/// The stranger false-accept rate the face search has at today's register
/// size (`face::calibrate::stranger_risk`), and a warning past the target.
/// Every gate a face alone can open, with a camera, should check liveness:
/// without it a printed photo of a resident opens the gate.
fn check_liveness(config: &Config) -> Vec<Check> {
    config
        .gates
        .iter()
        .filter(|g| config.cameras.iter().any(|c| c.gate == g.id))
        .filter(|g| g.face_alone_opens())
        .map(|g| {
            let label = format!("liveness {}", g.id);
            if g.liveness_on() {
                Check::new(
                    label,
                    CheckStatus::Pass,
                    "a face alone opens this gate, and faces are checked for photos and screens",
                )
            } else {
                Check::new(
                    label,
                    CheckStatus::Warn,
                    "a face alone opens this gate and liveness is off: a printed photo or a phone screen showing a resident opens it; set liveness = \"on\" (or two_factor = \"card+face\")",
                )
            }
        })
        .collect()
}

fn check_face_register(config: &Config) -> Check {
    use crate::face::calibrate;
    let label = "face register";
    let spec = match crate::face::embedder_spec(config) {
        Ok(spec) => spec,
        Err(e) => return Check::new(label, CheckStatus::Warn, format!("{e:#}")),
    };
    let residents = match calibrate::enrolled_residents(config, &spec.name) {
        Ok(n) => n,
        Err(e) => return Check::new(label, CheckStatus::Warn, format!("{e:#}")),
    };
    let own = match own_register_tail(config, &spec) {
        Ok(own) => own,
        Err(e) => return Check::new(label, CheckStatus::Warn, format!("{e:#}")),
    };
    match calibrate::stranger_risk_in_force(config, &spec, residents, own) {
        Ok(Some(risk)) if risk.over_target() => Check::new(label, CheckStatus::Warn, risk.describe()),
        Ok(Some(risk)) => Check::new(label, CheckStatus::Pass, risk.describe()),
        Ok(None) => Check::new(
            label,
            CheckStatus::Warn,
            format!(
                "{residents} residents with a face; no impostor score tail is known for {}, so the stranger false-accept rate cannot be estimated: run `gatehouse face calibrate --write-config`",
                spec.name
            ),
        ),
        Err(e) => Check::new(label, CheckStatus::Warn, format!("{e:#}")),
    }
}

/// The register's own impostor tail (read-only; `None` while too small).
fn own_register_tail(
    config: &Config,
    spec: &crate::models::ModelSpec,
) -> anyhow::Result<Option<crate::face::tail::TailCurve>> {
    let path = config.database_path();
    if !path.exists() {
        return Ok(None);
    }
    let conn = crate::store::readers::open_read_only(&path)?;
    let policy = crate::face::MatchPolicy::from_config(&config.face, spec)?;
    let dim = spec.embedding_size.unwrap_or(0);
    crate::face::calibrate::own_curve_from_db(&conn, &spec.name, dim, policy.combine)
}

fn check_data_dir(dir: &Path) -> Check {
    let probe = dir.join(".doctor-write-test");
    let result = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&probe, b"ok"));
    let _ = std::fs::remove_file(&probe);
    match result {
        Ok(()) => Check::new(
            "data directory",
            CheckStatus::Pass,
            format!("{} is writable", dir.display()),
        ),
        Err(e) => Check::new(
            "data directory",
            CheckStatus::Fail,
            format!("{} is not writable: {e}", dir.display()),
        ),
    }
}

/// Where the device secret is, and whether a copy of the data directory
/// alone would give the keyed hashes their key.
fn check_device_secret(key: &Path, data_dir: &Path) -> Check {
    use std::os::unix::fs::PermissionsExt;
    let label = "device secret";
    let legacy = data_dir.join(crate::secret::FILE_NAME);
    if key.starts_with(data_dir) {
        return Check::new(
            label,
            CheckStatus::Warn,
            format!(
                "{} is inside the data directory: a copy of it reveals the ID-number and PIN hashes; \
                 remove [store] device_key (default: beside the config, /etc/gatehouse/device.key)",
                key.display()
            ),
        );
    }
    match std::fs::metadata(key) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Check::new(
            label,
            CheckStatus::Fail,
            format!(
                "{} has mode {:o}: run chmod 600",
                key.display(),
                m.permissions().mode() & 0o777
            ),
        ),
        Ok(_) => Check::new(
            label,
            CheckStatus::Pass,
            format!("{}, outside the data directory", key.display()),
        ),
        Err(_) if legacy.exists() => Check::new(
            label,
            CheckStatus::Warn,
            format!(
                "still at {}; it moves to {} on the next start that may write there, or: \
                 install -m 600 -o gatehouse -g gatehouse {} {} && rm {}",
                legacy.display(),
                key.display(),
                legacy.display(),
                key.display(),
                legacy.display()
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::new(
            label,
            CheckStatus::Warn,
            format!(
                "{} does not exist yet; the first command that opens the register creates it",
                key.display()
            ),
        ),
        Err(e) => Check::new(
            label,
            CheckStatus::Fail,
            format!("cannot read {}: {e}", key.display()),
        ),
    }
}

fn check_disk(dir: &Path) -> Check {
    match crate::uplink::status::disk_free_bytes(dir) {
        Some(free) => {
            let mb = free / (1024 * 1024);
            let status = if mb < 200 {
                CheckStatus::Fail
            } else if mb < 1024 {
                CheckStatus::Warn
            } else {
                CheckStatus::Pass
            };
            Check::new(
                "disk space",
                status,
                format!("{mb} MB free under {}", dir.display()),
            )
        }
        None => Check::new(
            "disk space",
            CheckStatus::Warn,
            format!("cannot read free space of {}", dir.display()),
        ),
    }
}

fn check_gpio(config: &Config) -> Vec<Check> {
    let rppal_gates: Vec<&str> = config
        .gates
        .iter()
        .filter(|g| g.backend == Backend::Rppal)
        .map(|g| g.id.as_str())
        .collect();
    if rppal_gates.is_empty() {
        return vec![Check::new(
            "gpio",
            CheckStatus::Pass,
            "all gates use the simulated backend",
        )];
    }
    match rppal::gpio::Gpio::new() {
        Ok(_) => vec![Check::new("gpio", CheckStatus::Pass, format!("GPIO available for {}", rppal_gates.join(", ")))],
        Err(e) => vec![Check::new(
            "gpio",
            CheckStatus::Fail,
            format!(
                "GPIO unavailable for gates {}: {e} (is this a Raspberry Pi, and is the user in the gpio group?)",
                rppal_gates.join(", ")
            ),
        )],
    }
}

fn check_models(config: &Config) -> Vec<Check> {
    let manifest = match Manifest::for_config(config) {
        Ok(m) => m,
        Err(e) => return vec![Check::new("models", CheckStatus::Fail, format!("{e:#}"))],
    };
    let dir = config.models_dir();
    config
        .face_models()
        .iter()
        .map(|name| {
            let label = format!("model {name}");
            match manifest
                .get(name)
                .and_then(|spec| models::verify(spec, &dir))
            {
                Ok(VerifyOutcome::Ok) => {
                    match manifest.get(name).ok().and_then(|m| m.unverified.as_ref()) {
                        Some(why) => Check::new(
                            label,
                            CheckStatus::Warn,
                            format!("installed, sha256 matches; unverified: {why}"),
                        ),
                        None => Check::new(label, CheckStatus::Pass, "installed, sha256 matches"),
                    }
                }
                Ok(VerifyOutcome::Missing(p)) => Check::new(
                    label,
                    CheckStatus::Fail,
                    format!("missing at {}; run `gatehouse models fetch`", p.display()),
                ),
                Ok(VerifyOutcome::Mismatch { path, .. }) => Check::new(
                    label,
                    CheckStatus::Fail,
                    format!(
                        "{} is corrupt (sha256 mismatch); run `gatehouse models fetch`",
                        path.display()
                    ),
                ),
                Err(e) => Check::new(label, CheckStatus::Fail, format!("{e:#}")),
            }
        })
        .collect()
}

/// Runs the configured detector on a blank frame and the embedder on a blank
/// crop: a model that installs but fails to run (wrong input shape, wrong
/// input name) would otherwise look like a gate where nobody shows up.
fn check_models_run(config: &Config) -> Check {
    let label = "models run";
    match run_models_once(config) {
        Ok(detail) => Check::new(label, CheckStatus::Pass, detail),
        Err(e) => Check::new(label, CheckStatus::Fail, format!("{e:#}")),
    }
}

fn run_models_once(config: &Config) -> anyhow::Result<String> {
    use anyhow::Context;
    use opencv::core::{Mat, Scalar, CV_8UC3};
    let mut engine = crate::face::FaceEngine::load(config)?;
    let grey = |w: i32, h: i32| {
        Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::all(128.0))
            .map_err(|e| anyhow::anyhow!("{e}"))
    };
    engine
        .detector
        .detect(&grey(640, 480)?)
        .with_context(|| format!("detector {} fails to run", config.models.detector))?;
    let (w, h) = engine.embedder.input_size();
    let embedding = engine
        .embedder
        .embed(&grey(w as i32, h as i32)?)
        .with_context(|| format!("embedder {} fails to run", config.models.embedder))?;
    if embedding.dim() != engine.embedder.dim() {
        anyhow::bail!(
            "embedder {} returned {} values, the manifest says {}",
            config.models.embedder,
            embedding.dim(),
            engine.embedder.dim()
        );
    }
    let input = match engine.detector.fixed_input() {
        Some((w, h)) => format!("fixed input {w}x{h}"),
        None => format!("width {}", engine.detector.settings.width),
    };
    Ok(format!(
        "detector {} ({input}) and embedder {} ({}-d) run on a test frame",
        config.models.detector,
        config.models.embedder,
        embedding.dim()
    ))
}

fn check_onnxruntime(config: &Config) -> Check {
    match crate::onnx::init(config.models.onnxruntime.as_deref()) {
        Ok(path) => Check::new(
            "onnx runtime",
            CheckStatus::Pass,
            format!("loaded {}", path.display()),
        ),
        Err(e) => Check::new("onnx runtime", CheckStatus::Fail, format!("{e:#}")),
    }
}

fn check_camera(id: &str, source: &str, timeout: Duration) -> Check {
    use opencv::prelude::*;
    use opencv::videoio::{VideoCapture, CAP_ANY};
    let label = format!("camera {id}");
    let (tx, rx) = std::sync::mpsc::channel();
    let source = source.to_string();
    // Opening an unreachable RTSP stream can block for a long time: bound it.
    std::thread::spawn(move || {
        let result = (|| -> Result<(i32, i32), String> {
            let mut cap = match source
                .strip_prefix("/dev/video")
                .and_then(|n| n.parse::<i32>().ok())
            {
                Some(index) => VideoCapture::new(index, CAP_ANY),
                None => VideoCapture::from_file(&source, CAP_ANY),
            }
            .map_err(|e| e.to_string())?;
            if !cap.is_opened().map_err(|e| e.to_string())? {
                return Err(format!("cannot open {source}"));
            }
            let mut frame = opencv::core::Mat::default();
            if !cap.read(&mut frame).map_err(|e| e.to_string())? || frame.empty() {
                return Err(format!("{source} opened but delivered no frame"));
            }
            Ok((frame.cols(), frame.rows()))
        })();
        let _ = tx.send(result);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok((w, h))) => Check::new(label, CheckStatus::Pass, format!("delivers {w}x{h} frames")),
        Ok(Err(e)) => Check::new(label, CheckStatus::Fail, e),
        Err(_) => Check::new(
            label,
            CheckStatus::Fail,
            format!("no frame within {} s", timeout.as_secs()),
        ),
    }
}

fn check_broker(config: &Config) -> Check {
    let Some(url) = &config.uplink.broker else {
        return Check::new(
            "broker",
            CheckStatus::Warn,
            "no [uplink] broker configured; events wait in the outbox",
        );
    };
    reachable("broker", url)
}

/// `[lpr.frigate]`: its files and keys load, and Frigate's broker answers.
fn check_frigate(config: &Config) -> Option<Check> {
    let frigate = config.lpr.frigate.as_ref()?;
    if let Err(e) = crate::lpr::frigate::Link::from_config(config) {
        return Some(Check::new("frigate", CheckStatus::Fail, format!("{e:#}")));
    }
    let mut check = reachable("frigate", &frigate.broker);
    if check.status == CheckStatus::Pass {
        let cameras: Vec<String> = frigate
            .cameras
            .iter()
            .map(|c| format!("{} → {}", c.name, c.gate))
            .collect();
        check.detail = format!("{}; plates from {}", check.detail, cameras.join(", "));
    }
    Some(check)
}

/// A TCP connection to an `mqtt://` / `mqtts://` broker's address succeeds.
fn reachable(name: &str, url: &str) -> Check {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let default_port = if url.starts_with("mqtts://") {
        8883
    } else {
        1883
    };
    let host_port = if rest.contains(':') {
        rest.to_string()
    } else {
        format!("{rest}:{default_port}")
    };
    use std::net::ToSocketAddrs;
    let addrs = match host_port.to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => {
            return Check::new(
                name,
                CheckStatus::Fail,
                format!("cannot resolve {host_port}: {e}"),
            )
        }
    };
    for addr in &addrs {
        if std::net::TcpStream::connect_timeout(addr, Duration::from_secs(3)).is_ok() {
            return Check::new(name, CheckStatus::Pass, format!("{url} reachable"));
        }
    }
    Check::new(
        name,
        CheckStatus::Fail,
        format!("{url} not reachable (TCP connect failed)"),
    )
}

fn check_clock() -> Check {
    let sync = crate::clock::reading();
    if sync.is_synchronised() {
        Check::new("clock", CheckStatus::Pass, sync.describe())
    } else {
        Check::new(
            "clock",
            CheckStatus::Warn,
            format!(
                "{} (no NTP yet?): expiries are still enforced at the trusted time floor; \
                 only start dates are waived, and such events are flagged",
                sync.describe()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_frigate_s_broker_and_files_only_when_configured() {
        assert!(check_frigate(&Config::demo()).is_none());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let frigate = |broker: String, login: &str| {
            let mut config = Config::demo();
            config.lpr.frigate = Some(crate::config::Frigate {
                broker,
                topic_prefix: "frigate".into(),
                username: (!login.is_empty()).then(|| "gatehouse".into()),
                password_file: (!login.is_empty()).then(|| login.into()),
                ca_file: None,
                client_cert: None,
                client_key: None,
                cameras: vec![crate::config::FrigateCamera {
                    name: "gate_lpr".into(),
                    gate: "car-in".parse().unwrap(),
                }],
            });
            check_frigate(&config).unwrap()
        };
        let up = frigate(format!("mqtt://127.0.0.1:{port}"), "");
        assert_eq!(up.status, CheckStatus::Pass, "{}", up.detail);
        assert!(up.detail.contains("gate_lpr → car-in"), "{}", up.detail);
        let missing = frigate(
            format!("mqtt://127.0.0.1:{port}"),
            "/nonexistent/frigate.pass",
        );
        assert_eq!(missing.status, CheckStatus::Fail);
        assert!(
            missing.detail.contains("lpr.frigate.password_file"),
            "{}",
            missing.detail
        );
        drop(listener);
        let down = frigate(format!("mqtt://127.0.0.1:{port}"), "");
        assert_eq!(down.status, CheckStatus::Fail, "{}", down.detail);
        assert!(down.detail.contains("not reachable"), "{}", down.detail);
    }

    #[test]
    fn device_secret_check_warns_inside_the_data_directory_and_passes_outside() {
        let root = std::env::temp_dir().join(format!("gh-doctor-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let inside = crate::secret::DeviceSecret::load_or_create(&data).unwrap();
        let check = check_device_secret(inside.path(), &data);
        assert_eq!(check.status, CheckStatus::Warn, "{}", check.detail);
        let outside = root.join("etc/device.key");
        let check = check_device_secret(&outside, &data);
        assert_eq!(check.status, CheckStatus::Warn, "old key still to move");
        assert!(check.detail.contains("install -m 600"), "{}", check.detail);
        crate::secret::DeviceSecret::open(&outside, Some(&data.join("device.key"))).unwrap();
        let check = check_device_secret(&outside, &data);
        assert_eq!(check.status, CheckStatus::Pass, "{}", check.detail);
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn the_face_register_check_names_the_threshold_in_force() {
        let mut config = Config::demo();
        let dir = std::env::temp_dir().join(format!(
            "gh-doctor-threshold-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        config.set_data_dir(dir.clone());
        let configured = check_face_register(&config);
        assert!(
            configured
                .detail
                .contains("threshold 0.450 in force (configured)"),
            "{}",
            configured.detail
        );
        config.face.threshold = Some(crate::config::FaceThreshold::Calibrated);
        let calibrated = check_face_register(&config);
        assert!(
            calibrated
                .detail
                .contains("in force (self-calibrated on the model prior for target 1.0 %)"),
            "{}",
            calibrated.detail
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn warns_where_a_face_alone_opens_and_liveness_is_off() {
        let mut config = Config::demo();
        let east = |checks: &[Check]| {
            checks
                .iter()
                .find(|c| c.name == "liveness east")
                .map(|c| c.status)
        };
        // The demo's east camera, 1:N, liveness on by default.
        assert_eq!(east(&check_liveness(&config)), Some(CheckStatus::Pass));
        config.gates[0].liveness = Some(crate::config::OnOff::Off);
        let checks = check_liveness(&config);
        assert_eq!(east(&checks), Some(CheckStatus::Warn));
        assert!(
            checks[0].detail.contains("printed photo"),
            "{:?}",
            checks[0]
        );
        // Card + face at all hours: a face alone never opens, nothing to warn about.
        config.gates[0].two_factor = crate::config::TwoFactor::CardAndFace;
        assert_eq!(east(&check_liveness(&config)), None);
        // A gate without a camera is not checked.
        config.cameras.clear();
        config.gates[0].two_factor = crate::config::TwoFactor::Off;
        assert!(check_liveness(&config).is_empty());
    }
}
