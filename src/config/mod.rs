//! The configuration file: one TOML document, the single source of truth for a
//! gateway (site, gates, cameras, models, uplink, logging).
//!
//! Parsing rejects unknown keys and names the file and key path of every
//! problem (`config/x.toml: gates[1].relay_pin: expected an integer 0..=27,
//! got "abc"`). After parsing, [`Config::validate`] checks what serde cannot
//! (unique ids, references between sections).

mod console;
mod frigate;
mod hours;
mod lpr;
mod pin;
mod site_role;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{validate_slug, GateId};

pub use console::{Console, HttpLimits};
pub use frigate::{Frigate, FrigateCamera};
pub use hours::{FaceFallback, FaceMode, TwoFactor, WeeklyHours};
pub use lpr::{check_token, AddrRange, Lpr, LprCamera};
pub use pin::GpioPin;
pub use site_role::SiteRole;

/// Where the daemon looks when neither `--config` nor `GATEHOUSE_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/gatehouse/gatehouse.toml";

/// The configuration `gatehouse demo` runs with, compiled into the binary.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub site: Site,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub gates: Vec<Gate>,
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    #[serde(default)]
    pub models: Models,
    #[serde(default)]
    pub face: Face,
    #[serde(default)]
    pub access: Access,
    #[serde(default)]
    pub uplink: Uplink,
    #[serde(default)]
    pub logging: Logging,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub lpr: Lpr,
    #[serde(default)]
    pub console: Console,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address for Prometheus text metrics (`GET /metrics`); absent: off.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Site id, used in MQTT topics (`gatehouse/v1/{site}/{gateway}/…`).
    pub id: String,
    /// This gateway's id within the site.
    pub gateway_id: String,
    /// Human name of the compound, shown in the console and reports.
    pub name: String,
    /// Local time offset from UTC in minutes, used for weekly time windows.
    /// China Standard Time (+08:00, no daylight saving) is 480.
    #[serde(default = "default_utc_offset")]
    pub utc_offset_minutes: i32,
    /// This gateway's part in a multi-gate site (`src/site/`): `standalone`
    /// (its own register), `registry` or `gate`.
    #[serde(default)]
    pub role: SiteRole,
    /// The site's MQTT broker that carries the register (`mqtt://host:port`,
    /// or `mqtts://host:port` with `ca_file`); needed for `registry` and `gate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// For an `mqtts://` site broker: the CA that signed its certificate, the
    /// only one trusted (PEM; required with `mqtts://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// This gateway's client certificate and key (PEM), when the site broker
    /// asks for one; set both or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// On a gate: the registry's Ed25519 public key (base64), pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_key: Option<String>,
    /// This gateway's site signing key file (created on first run, 0600): the
    /// registry signs the register with it, a gate its reports to the registry.
    /// Default: `site.key` beside the device secret, outside `data_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<PathBuf>,
    /// On the registry: each gate's Ed25519 public key (gateway id → base64),
    /// pinned; a gate's events, applied reports and visitor uses are accepted
    /// only signed with its key (`gatehouse config site-key` on the gate prints it).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub gate_keys: std::collections::BTreeMap<String, String>,
}

fn default_utc_offset() -> i32 {
    480
}

impl Site {
    /// The site's offset from UTC (validated to -12..=+14 hours at load, so
    /// the UTC fallback is for configs built by hand).
    pub fn utc_offset(&self) -> chrono::FixedOffset {
        chrono::FixedOffset::east_opt(self.utc_offset_minutes * 60)
            .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset is valid"))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory for the database, device keys, control socket, snapshots and models.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// SQLite file name, relative to `data_dir` unless absolute.
    #[serde(default = "default_database")]
    pub database: PathBuf,
    /// Events and snapshots older than this are purged.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Audit rows are kept for the longer of this and `retention_days`.
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u32,
    /// The device secret that keys the hashes of ID numbers and PINs and encrypts
    /// face crops. Default: `device.key` beside the config file
    /// (`/etc/gatehouse/device.key`), outside `data_dir`, so a copy of the data
    /// directory alone reveals no ID number, PIN or face crop. A relative path is taken inside
    /// `data_dir` (scratch setups such as the demo only). Under systemd,
    /// `LoadCredential=device.key:…` (`$CREDENTIALS_DIRECTORY/device.key`) wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_key: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/gatehouse")
}
fn default_database() -> PathBuf {
    PathBuf::from("gatehouse.db")
}
fn default_retention_days() -> u32 {
    180
}
fn default_audit_retention_days() -> u32 {
    365
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: default_data_dir(),
            database: default_database(),
            retention_days: default_retention_days(),
            audit_retention_days: default_audit_retention_days(),
            device_key: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    Pedestrian,
    Vehicle,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Raspberry Pi GPIO through rppal.
    Rppal,
    /// In-process simulated pins, driven through the control socket.
    Simulated,
}

/// What the lock does without power.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    /// Unlocks without power (fire exits): the relay energises to lock.
    FailSafe,
    /// Stays locked without power: the relay energises to unlock.
    FailSecure,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub id: GateId,
    pub name: String,
    pub kind: GateKind,
    pub direction: Direction,
    pub backend: Backend,
    /// Relay driving the lock or barrier.
    pub relay_pin: GpioPin,
    /// True when the relay board switches on a low level (most opto-isolated boards).
    #[serde(default)]
    pub relay_active_low: bool,
    #[serde(default = "default_lock")]
    pub lock: LockKind,
    pub door_contact_pin: Option<GpioPin>,
    pub exit_button_pin: Option<GpioPin>,
    pub tamper_pin: Option<GpioPin>,
    /// Vehicle-presence loop (vehicle gates): the barrier never closes on a car.
    pub loop_pin: Option<GpioPin>,
    pub wiegand_d0_pin: Option<GpioPin>,
    pub wiegand_d1_pin: Option<GpioPin>,
    #[serde(default = "default_unlock_ms")]
    pub unlock_ms: u32,
    #[serde(default = "default_held_open_s")]
    pub held_open_s: u32,
    /// The gate of the opposite direction at the same opening, for anti-passback.
    pub paired_with: Option<GateId>,
    /// How faces open this gate: `1:N` (a face alone; default), `household`
    /// (household number on the keypad, then a member's face) or
    /// `card+face`. Unset: as `two_factor` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_mode: Option<FaceMode>,
    /// The older spelling of `face_mode = "card+face"` (kept for existing
    /// configs): `card+face`, or `off` (default).
    #[serde(default)]
    pub two_factor: TwoFactor,
    /// When card + face is needed, in site local time (`"mon-fri 22:00-06:00"`);
    /// empty: always.
    #[serde(default)]
    pub two_factor_hours: Vec<WeeklyHours>,
    /// Seconds a card waits at a two-factor gate for its owner's face.
    #[serde(default = "default_face_wait_s")]
    pub face_wait_s: u32,
    /// A card + face gate without a working camera: `card` (default) opens
    /// for the card alone, `refuse` refuses cards.
    #[serde(default)]
    pub face_unavailable: FaceFallback,
    /// Seconds a household number keyed at a household-mode gate waits for
    /// a member's face before it expires.
    #[serde(default = "default_household_wait_s")]
    pub household_wait_s: u32,
    /// Presentation-attack detection on the faces that could open this gate:
    /// `on` or `off`; default: on wherever a face alone can open it
    /// ([`Gate::face_alone_opens`]).
    pub liveness: Option<OnOff>,
}

/// A switch written `"on"` / `"off"` in the config.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnOff {
    On,
    Off,
}

impl Gate {
    /// Whether a face with no other credential can open this gate at some
    /// hour: the face mode decides (1:N opens alone; card + face at all hours
    /// does not; card + face at some hours does outside them).
    pub fn face_alone_opens(&self) -> bool {
        match self.face_mode() {
            FaceMode::OneToN => true,
            FaceMode::Household => false,
            FaceMode::CardAndFace => !self.two_factor_hours.is_empty(),
        }
    }

    /// How faces open this gate: `face_mode`, else the older `two_factor`.
    pub fn face_mode(&self) -> FaceMode {
        self.face_mode
            .unwrap_or_else(|| FaceMode::from(self.two_factor))
    }

    /// Whether faces at this gate must pass the liveness check: as
    /// configured, else on wherever a face alone can open the gate and at
    /// household gates (a photo of a member plus a known address must not
    /// open either).
    pub fn liveness_on(&self) -> bool {
        match self.liveness {
            Some(OnOff::On) => true,
            Some(OnOff::Off) => false,
            None => self.face_alone_opens() || self.face_mode() == FaceMode::Household,
        }
    }
}

fn default_face_wait_s() -> u32 {
    10
}

fn default_household_wait_s() -> u32 {
    10
}

fn default_lock() -> LockKind {
    LockKind::FailSecure
}
fn default_unlock_ms() -> u32 {
    3000
}
fn default_held_open_s() -> u32 {
    30
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    /// The gate this camera admits people through.
    pub gate: GateId,
    /// `/dev/video0`, `rtsp://…`, or a video file path.
    pub source: String,
    /// Process at most this many frames per second (the newest frame wins).
    #[serde(default = "default_camera_fps")]
    pub max_fps: f32,
    /// Restart a video file when it ends (demo loops).
    #[serde(default)]
    pub loop_file: bool,
}

fn default_camera_fps() -> f32 {
    10.0
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    /// Where models are installed; default `<data_dir>/models`.
    pub dir: Option<PathBuf>,
    /// Model manifest; default: the one compiled into the binary (`models/models.toml`).
    pub manifest: Option<PathBuf>,
    /// Manifest name of the face detector.
    #[serde(default = "default_detector")]
    pub detector: String,
    /// Manifest name of the face embedder.
    #[serde(default = "default_embedder")]
    pub embedder: String,
    /// Path to `libonnxruntime.so`; `ORT_DYLIB_PATH` overrides it.
    pub onnxruntime: Option<PathBuf>,
    /// Threads ONNX Runtime may use per model.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Manifest names of the liveness (anti-spoofing) models; their p(real)
    /// are averaged.
    #[serde(default = "default_liveness_models")]
    pub liveness: Vec<String>,
}

fn default_liveness_models() -> Vec<String> {
    vec!["minifasnet-v2".into(), "minifasnet-v1se".into()]
}

fn default_detector() -> String {
    "yunet-2023mar".into()
}
fn default_embedder() -> String {
    "sface-2021dec".into()
}
fn default_threads() -> usize {
    1
}

impl Default for Models {
    fn default() -> Self {
        Models {
            dir: None,
            manifest: None,
            detector: default_detector(),
            embedder: default_embedder(),
            onnxruntime: None,
            threads: default_threads(),
            liveness: default_liveness_models(),
        }
    }
}

/// `[face] threshold`: a fixed cosine similarity, or self-calibrated.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "ThresholdText", into = "ThresholdText")]
pub enum FaceThreshold {
    Fixed(f32),
    Calibrated,
}

/// How `[face] threshold` is written: a number or a word.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ThresholdText {
    Number(f64),
    Word(String),
}

impl TryFrom<ThresholdText> for FaceThreshold {
    type Error = String;
    fn try_from(t: ThresholdText) -> Result<FaceThreshold, String> {
        match t {
            ThresholdText::Number(n) if (-1.0..=1.0).contains(&n) => {
                Ok(FaceThreshold::Fixed(n as f32))
            }
            ThresholdText::Word(w) if w == "calibrated" => Ok(FaceThreshold::Calibrated),
            ThresholdText::Number(n) => Err(format!(
                "expected a cosine similarity -1..=1 or \"calibrated\", got {n}"
            )),
            ThresholdText::Word(w) => Err(format!(
                "expected a cosine similarity -1..=1 or \"calibrated\", got {w:?}"
            )),
        }
    }
}

impl From<FaceThreshold> for ThresholdText {
    fn from(t: FaceThreshold) -> ThresholdText {
        match t {
            FaceThreshold::Fixed(v) => ThresholdText::Number(f64::from(v)),
            FaceThreshold::Calibrated => ThresholdText::Word("calibrated".into()),
        }
    }
}

/// Face pipeline settings. Thresholds default to the embedder's manifest entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Face {
    /// Detector input width in pixels (multiple of 32).
    #[serde(default = "default_detect_width")]
    pub detect_width: u32,
    #[serde(default = "default_detect_score")]
    pub detect_score: f32,
    /// Find each face's landmarks again on a crop around it (a second,
    /// small detector pass per face), for an alignment as good as detection at
    /// the camera's full resolution (BENCHMARKS.md, "Landmarks").
    #[serde(default)]
    pub refine_landmarks: bool,
    /// Cosine similarity a match must reach; default from the model manifest.
    pub match_threshold: Option<f32>,
    /// The 1:N threshold: a cosine similarity (as `match_threshold`), or
    /// `"calibrated"`: chosen from the site's own register (or the model's
    /// prior while it is small) for `target_fpir` at the register's size,
    /// recomputed whenever the gallery changes. Unset: `match_threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<FaceThreshold>,
    /// How far the best identity must beat the second best.
    #[serde(default = "default_margin")]
    pub margin: f32,
    /// K of the last M frames of one tracked face must agree (for a 1:N match,
    /// and for the 1:1 and 1:few checks of card + face and household + face).
    #[serde(default = "default_confirm_k")]
    pub confirm_frames: u32,
    #[serde(default = "default_confirm_m")]
    pub confirm_window: u32,
    /// Seconds before the same person opens the same gate again by face.
    #[serde(default = "default_cooldown")]
    pub cooldown_s: u32,
    #[serde(default = "default_min_eye_px")]
    pub min_eye_distance_px: f32,
    /// Minimum variance of the Laplacian of the aligned crop.
    #[serde(default = "default_min_sharpness")]
    pub min_sharpness: f32,
    /// Seconds between two "unknown face" events at one gate.
    #[serde(default = "default_unknown_interval")]
    pub unknown_event_interval_s: u32,
    /// How a resident's several enrolled faces are combined: `best`,
    /// `centroid` or `both` (BENCHMARKS.md, "Matching policy").
    #[serde(default)]
    pub combine: crate::domain::embedding::Combine,
    /// Average each face's embedding with its mirror image's.
    #[serde(default)]
    pub flip_average: bool,
    /// The stranger false-accept rate (per stranger, at the register's size)
    /// the threshold is meant to keep; `gatehouse doctor` warns above it.
    #[serde(default = "default_target_fpir")]
    pub target_fpir: f64,
    /// The impostor score tail measured by `gatehouse face calibrate`
    /// (default: the embedder's manifest entry).
    pub impostor_mean: Option<f32>,
    pub impostor_sd: Option<f32>,
    /// Cosine the face must reach against the card owner's enrolled faces at
    /// a card + face gate (1:1); default: the match threshold.
    pub verify_threshold: Option<f32>,
    /// Days the faces of unregistered people seen at the gates are kept, to
    /// find those who keep coming back (0: not kept at all).
    #[serde(default = "default_stranger_days")]
    pub stranger_days: u32,
    /// Distinct days within `stranger_days` on which the same unregistered
    /// face must be seen before a `recurring_stranger` alarm is raised.
    #[serde(default = "default_recurring_stranger_days")]
    pub recurring_stranger_days: u32,
    /// The fused liveness score (geometric mean p(real) of the liveness models) a face
    /// must reach at a gate with liveness on; default
    /// `face::liveness::DEFAULT_THRESHOLD` (BENCHMARKS.md, "Liveness").
    pub liveness_threshold: Option<f32>,
    /// Presentation attacks at one gate within `[access] lockout_window_s`
    /// that raise a `presentation_attack` alarm.
    #[serde(default = "default_attack_alarm_after")]
    pub attack_alarm_after: u32,
}

fn default_attack_alarm_after() -> u32 {
    2
}

fn default_stranger_days() -> u32 {
    30
}
fn default_recurring_stranger_days() -> u32 {
    3
}

fn default_detect_width() -> u32 {
    320
}
fn default_detect_score() -> f32 {
    0.7
}
fn default_margin() -> f32 {
    0.05
}
fn default_confirm_k() -> u32 {
    2
}
fn default_confirm_m() -> u32 {
    3
}
fn default_cooldown() -> u32 {
    5
}
fn default_min_eye_px() -> f32 {
    24.0
}
fn default_min_sharpness() -> f32 {
    15.0
}
fn default_unknown_interval() -> u32 {
    30
}
fn default_target_fpir() -> f64 {
    0.01
}

impl Default for Face {
    fn default() -> Self {
        Face {
            detect_width: default_detect_width(),
            detect_score: default_detect_score(),
            refine_landmarks: false,
            match_threshold: None,
            threshold: None,
            margin: default_margin(),
            confirm_frames: default_confirm_k(),
            confirm_window: default_confirm_m(),
            cooldown_s: default_cooldown(),
            min_eye_distance_px: default_min_eye_px(),
            min_sharpness: default_min_sharpness(),
            unknown_event_interval_s: default_unknown_interval(),
            combine: crate::domain::embedding::Combine::default(),
            flip_average: false,
            target_fpir: default_target_fpir(),
            impostor_mean: None,
            impostor_sd: None,
            verify_threshold: None,
            stranger_days: default_stranger_days(),
            recurring_stranger_days: default_recurring_stranger_days(),
            liveness_threshold: None,
            attack_alarm_after: default_attack_alarm_after(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Unknown credentials at one reader within `lockout_window_s` before lockout
    /// and an alarm (GB 50396 asks for at most 5).
    #[serde(default = "default_lockout_attempts")]
    pub lockout_attempts: u32,
    #[serde(default = "default_lockout_window")]
    pub lockout_window_s: u32,
    #[serde(default = "default_lockout_s")]
    pub lockout_s: u32,
    /// Refuse a second entry through paired gates without an exit in between.
    #[serde(default)]
    pub anti_passback: bool,
    /// Hours after which a remembered direction is forgotten, so someone who
    /// left by an unmonitored way is not refused for ever (0: never).
    #[serde(default = "default_anti_passback_reset_h")]
    pub anti_passback_reset_h: u32,
    /// Wrong PINs at one keypad within 24 h before PIN entry there is
    /// suspended (cards still work) with a `pin_entry_suspended` alarm; it
    /// resumes as the oldest of them passes a day. 0: no budget.
    #[serde(default = "default_pin_failures_per_day")]
    pub pin_failures_per_day: u32,
    /// Wrong PINs at one keypad within `pin_alarm_window_min` that raise a
    /// `pin_guessing` alarm (once per window); 0: off.
    #[serde(default = "default_pin_alarm_failures")]
    pub pin_alarm_failures: u32,
    #[serde(default = "default_pin_alarm_window_min")]
    pub pin_alarm_window_min: u32,
    /// Digits of the PIN of a visitor pass valid for more than a day
    /// (shorter passes get 6): a longer pass gives a guesser more days.
    #[serde(default = "default_long_pass_pin_digits")]
    pub long_pass_pin_digits: u8,
    /// A card opens only in the Wiegand format it was enrolled with (26, 34,
    /// 37 bits or raw); `false` accepts its numbers in any format.
    #[serde(default = "default_card_format_strict")]
    pub card_format_strict: bool,
}

fn default_pin_failures_per_day() -> u32 {
    10
}
fn default_pin_alarm_failures() -> u32 {
    5
}
fn default_pin_alarm_window_min() -> u32 {
    60
}
fn default_long_pass_pin_digits() -> u8 {
    8
}
fn default_card_format_strict() -> bool {
    true
}

fn default_anti_passback_reset_h() -> u32 {
    4
}

fn default_lockout_attempts() -> u32 {
    5
}
fn default_lockout_window() -> u32 {
    60
}
fn default_lockout_s() -> u32 {
    60
}

impl Default for Access {
    fn default() -> Self {
        Access {
            lockout_attempts: default_lockout_attempts(),
            lockout_window_s: default_lockout_window(),
            lockout_s: default_lockout_s(),
            anti_passback: false,
            anti_passback_reset_h: default_anti_passback_reset_h(),
            pin_failures_per_day: default_pin_failures_per_day(),
            pin_alarm_failures: default_pin_alarm_failures(),
            pin_alarm_window_min: default_pin_alarm_window_min(),
            long_pass_pin_digits: default_long_pass_pin_digits(),
            card_format_strict: default_card_format_strict(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Uplink {
    /// `mqtt://host:1883` or `mqtts://host:8883`; absent: events wait in the outbox.
    pub broker: Option<String>,
    /// CA certificate (PEM) of the station, for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// This gateway's client certificate and key (PEM).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Ed25519 public keys (base64) of the station allowed to send commands.
    #[serde(default)]
    pub station_keys: Vec<String>,
    /// Largest outbox backlog before the oldest undelivered events are dropped.
    pub outbox_max_mb: Option<u32>,
    /// Seconds between status heartbeats.
    pub heartbeat_s: Option<u32>,
    /// Which face snapshots go to the station with their event: `watchlist`
    /// (only watchlist matches), `never` or `all`. Any other leaves only on a
    /// signed, audited `get_snapshot` request. Pictures of plates are not faces
    /// and are always sent.
    #[serde(default)]
    pub face_snapshots: FaceSnapshots,
}

/// `[uplink] face_snapshots`: which pictures of faces leave the gateway
/// unasked. PIPL: a visitor's or courier's face is not the station's business
/// unless an officer asks for that event.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaceSnapshots {
    /// Only faces that matched the station's watchlist.
    #[default]
    Watchlist,
    Never,
    All,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// A tracing filter (`info`, `gatehouse=debug`); `GATEHOUSE_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

fn default_log_level() -> String {
    "info".into()
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: default_log_level(),
            format: LogFormat::Text,
        }
    }
}

/// A configuration problem, already phrased for the operator.
#[derive(Debug)]
pub struct ConfigError {
    /// The file (or `<built-in demo config>`).
    pub source_name: String,
    /// Key path such as `gates[1].relay_pin`; empty for file-level problems.
    pub key_path: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key_path.is_empty() {
            write!(f, "{}: {}", self.source_name, self.problem)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.source_name, self.key_path, self.problem
            )
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: source_name.clone(),
            key_path: String::new(),
            problem: format!("cannot read: {e}"),
        })?;
        let mut config = Config::parse(&text, &source_name)?;
        // Relative paths in a file are relative to the file, not to wherever the
        // daemon happens to be started from.
        if let Some(dir) = path.parent() {
            config.resolve_relative_to(dir);
            // The device secret lives beside the config, not beside the database
            // (absolute: a relative key path would mean "inside data_dir").
            if config.store.device_key.is_none() {
                let dir = std::path::absolute(path)
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .unwrap_or_else(|| dir.to_path_buf());
                config.store.device_key = Some(dir.join(crate::secret::FILE_NAME));
            }
        }
        Ok(config)
    }

    /// The configuration compiled into the binary for `gatehouse demo`.
    pub fn demo() -> Config {
        // The demo config is part of the binary and covered by a test, so a
        // failure here is a build defect, not bad input.
        Config::parse(DEMO_CONFIG, "<built-in demo config>")
            .unwrap_or_else(|e| panic!("built-in demo config is invalid: {e}"))
    }

    /// Parses and validates TOML text; `source_name` is used in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key_path = display_path(e.path());
            let inner = e.into_inner();
            let mut problem = inner.message().to_string();
            if let Some(span) = inner.span() {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                problem.push_str(&format!(" (line {line})"));
            }
            ConfigError {
                source_name: source_name.to_string(),
                key_path,
                problem,
            }
        })?;
        config
            .validate()
            .map_err(|(key_path, problem)| ConfigError {
                source_name: source_name.to_string(),
                key_path,
                problem,
            })?;
        Ok(config)
    }

    /// Checks that go beyond types: ids unique and well formed, references resolve.
    fn validate(&self) -> Result<(), (String, String)> {
        validate_slug(&self.site.id).map_err(|p| ("site.id".to_string(), p))?;
        validate_slug(&self.site.gateway_id).map_err(|p| ("site.gateway_id".to_string(), p))?;
        if !(-720..=840).contains(&self.site.utc_offset_minutes) {
            return Err((
                "site.utc_offset_minutes".into(),
                format!("expected -720..=840, got {}", self.site.utc_offset_minutes),
            ));
        }
        self.site.validate_role()?;
        let mut gate_ids = HashSet::new();
        for (i, gate) in self.gates.iter().enumerate() {
            if !gate_ids.insert(gate.id.clone()) {
                return Err((
                    format!("gates[{i}].id"),
                    format!("duplicate gate id {:?}", gate.id.as_str()),
                ));
            }
            if gate.wiegand_d0_pin.is_some() != gate.wiegand_d1_pin.is_some() {
                return Err((
                    format!("gates[{i}]"),
                    "wiegand_d0_pin and wiegand_d1_pin must be set together".into(),
                ));
            }
            let mut pins = HashSet::new();
            for (name, pin) in gate.pins() {
                if !pins.insert(pin) {
                    return Err((
                        format!("gates[{i}].{name}"),
                        format!("GPIO {} is used twice in this gate", pin.0),
                    ));
                }
            }
            if let Some(mode) = gate.face_mode {
                if gate.two_factor == TwoFactor::CardAndFace && mode != FaceMode::CardAndFace {
                    return Err((
                        format!("gates[{i}].face_mode"),
                        format!(
                            "{:?} contradicts two_factor = \"card+face\"; keep one of the two",
                            mode.as_str()
                        ),
                    ));
                }
            }
            if gate.face_mode() != FaceMode::CardAndFace && !gate.two_factor_hours.is_empty() {
                return Err((
                    format!("gates[{i}].two_factor_hours"),
                    "set face_mode = \"card+face\" (or two_factor = \"card+face\") for these hours to mean anything".into(),
                ));
            }
            if gate.face_mode() == FaceMode::Household && gate.wiegand_d0_pin.is_none() {
                return Err((
                    format!("gates[{i}].face_mode"),
                    "household mode needs a keypad to key the household number on: set wiegand_d0_pin and wiegand_d1_pin".into(),
                ));
            }
            if gate.household_wait_s == 0 || gate.household_wait_s > 120 {
                return Err((
                    format!("gates[{i}].household_wait_s"),
                    format!("expected 1..=120 seconds, got {}", gate.household_wait_s),
                ));
            }
            if gate.face_wait_s == 0 || gate.face_wait_s > 120 {
                return Err((
                    format!("gates[{i}].face_wait_s"),
                    format!("expected 1..=120 seconds, got {}", gate.face_wait_s),
                ));
            }
            if gate.unlock_ms == 0 || gate.unlock_ms > 60_000 {
                return Err((
                    format!("gates[{i}].unlock_ms"),
                    format!("expected 1..=60000, got {}", gate.unlock_ms),
                ));
            }
        }
        for (i, gate) in self.gates.iter().enumerate() {
            if let Some(peer) = &gate.paired_with {
                if !gate_ids.contains(peer) {
                    return Err((
                        format!("gates[{i}].paired_with"),
                        format!("no gate with id {:?}", peer.as_str()),
                    ));
                }
            }
        }
        let mut camera_ids = HashSet::new();
        for (i, camera) in self.cameras.iter().enumerate() {
            validate_slug(&camera.id).map_err(|p| (format!("cameras[{i}].id"), p))?;
            if !camera_ids.insert(camera.id.clone()) {
                return Err((
                    format!("cameras[{i}].id"),
                    format!("duplicate camera id {:?}", camera.id),
                ));
            }
            if !gate_ids.contains(&camera.gate) {
                return Err((
                    format!("cameras[{i}].gate"),
                    format!("no gate with id {:?}", camera.gate.as_str()),
                ));
            }
            if !(camera.max_fps > 0.0 && camera.max_fps <= 60.0) {
                return Err((
                    format!("cameras[{i}].max_fps"),
                    format!("expected 0 < fps <= 60, got {}", camera.max_fps),
                ));
            }
        }
        if self.face.detect_width < 64 || !self.face.detect_width.is_multiple_of(32) {
            return Err((
                "face.detect_width".into(),
                format!(
                    "expected a multiple of 32 of at least 64, got {}",
                    self.face.detect_width
                ),
            ));
        }
        if let Some(t) = self.face.liveness_threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err((
                    "face.liveness_threshold".into(),
                    format!("expected a probability 0..=1, got {t}"),
                ));
            }
        }
        if self.face.attack_alarm_after == 0 {
            return Err((
                "face.attack_alarm_after".into(),
                "expected at least 1 attempt".into(),
            ));
        }
        for (key, value) in [
            ("face.match_threshold", self.face.match_threshold),
            ("face.verify_threshold", self.face.verify_threshold),
            ("face.impostor_mean", self.face.impostor_mean),
        ] {
            if let Some(t) = value {
                if !(-1.0..=1.0).contains(&t) {
                    return Err((
                        key.into(),
                        format!("expected a cosine similarity -1..=1, got {t}"),
                    ));
                }
            }
        }
        if let Some(sd) = self.face.impostor_sd {
            if !(sd > 0.0 && sd < 1.0) {
                return Err((
                    "face.impostor_sd".into(),
                    format!("expected a standard deviation 0 < sd < 1, got {sd}"),
                ));
            }
        }
        if let (Some(FaceThreshold::Fixed(_)), Some(_)) =
            (self.face.threshold, self.face.match_threshold)
        {
            return Err((
                "face.threshold".into(),
                "a number here is the match threshold: set threshold or match_threshold, not both"
                    .into(),
            ));
        }
        if self.face.impostor_mean.is_some() != self.face.impostor_sd.is_some() {
            return Err((
                "face.impostor_sd".into(),
                "impostor_mean and impostor_sd must be set together".into(),
            ));
        }
        if !(self.face.target_fpir > 0.0 && self.face.target_fpir < 1.0) {
            return Err((
                "face.target_fpir".into(),
                format!(
                    "expected a rate 0 < rate < 1 (0.01 = 1 %), got {}",
                    self.face.target_fpir
                ),
            ));
        }
        if self.face.confirm_frames == 0 || self.face.confirm_frames > self.face.confirm_window {
            return Err((
                "face.confirm_frames".into(),
                format!(
                    "expected 1..=confirm_window ({}), got {}",
                    self.face.confirm_window, self.face.confirm_frames
                ),
            ));
        }
        if self.face.recurring_stranger_days == 0
            || (self.face.stranger_days > 0
                && self.face.recurring_stranger_days > self.face.stranger_days)
        {
            return Err((
                "face.recurring_stranger_days".into(),
                format!(
                    "expected 1..=stranger_days ({}), got {}",
                    self.face.stranger_days, self.face.recurring_stranger_days
                ),
            ));
        }
        if self.access.lockout_attempts == 0 {
            return Err((
                "access.lockout_attempts".into(),
                "expected at least 1".into(),
            ));
        }
        if !(6..=crate::domain::MAX_PIN_DIGITS)
            .contains(&usize::from(self.access.long_pass_pin_digits))
        {
            return Err((
                "access.long_pass_pin_digits".into(),
                format!(
                    "expected 6..={} (what a keypad sends before #), got {}",
                    crate::domain::MAX_PIN_DIGITS,
                    self.access.long_pass_pin_digits
                ),
            ));
        }
        if self.access.pin_alarm_failures > 0 && self.access.pin_alarm_window_min == 0 {
            return Err((
                "access.pin_alarm_window_min".into(),
                "expected at least 1 (or pin_alarm_failures = 0 to turn the alarm off)".into(),
            ));
        }
        if self.models.threads == 0 {
            return Err(("models.threads".into(), "expected at least 1".into()));
        }
        self.lpr.validate(&self.gates)?;
        self.console.validate()?;
        if let Some(broker) = &self.uplink.broker {
            if !(broker.starts_with("mqtt://") || broker.starts_with("mqtts://")) {
                return Err((
                    "uplink.broker".into(),
                    format!("expected mqtt://host:port or mqtts://host:port, got {broker:?}"),
                ));
            }
        }
        Ok(())
    }

    fn resolve_relative_to(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        fix(&mut self.store.data_dir);
        for p in [
            self.models.dir.as_mut(),
            self.models.manifest.as_mut(),
            self.models.onnxruntime.as_mut(),
            self.uplink.ca_file.as_mut(),
            self.uplink.client_cert.as_mut(),
            self.uplink.client_key.as_mut(),
            self.uplink.password_file.as_mut(),
            self.lpr.token_file.as_mut(),
            self.console.tls_cert.as_mut(),
            self.console.tls_key.as_mut(),
            self.site.signing_key.as_mut(),
            self.site.ca_file.as_mut(),
            self.site.client_cert.as_mut(),
            self.site.client_key.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        if let Some(f) = self.lpr.frigate.as_mut() {
            for p in [
                f.password_file.as_mut(),
                f.ca_file.as_mut(),
                f.client_cert.as_mut(),
                f.client_key.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                fix(p);
            }
        }
    }

    /// Points every data path at `dir` (the `--data-dir` flag).
    pub fn set_data_dir(&mut self, dir: PathBuf) {
        self.store.data_dir = dir;
    }

    pub fn data_dir(&self) -> &Path {
        &self.store.data_dir
    }

    /// Where the device secret is read (or created): systemd's credential if
    /// the unit passes one, else `store.device_key` (a relative path inside
    /// `data_dir`), else, for a config not read from a file (the demo, tests),
    /// `<data_dir>/device.key`.
    pub fn device_key_path(&self) -> PathBuf {
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let credential = PathBuf::from(dir).join(crate::secret::FILE_NAME);
            if credential.is_file() {
                return credential;
            }
        }
        match &self.store.device_key {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => self.store.data_dir.join(p),
            None => self.store.data_dir.join(crate::secret::FILE_NAME),
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.store.data_dir.join(&self.store.database)
    }

    pub fn models_dir(&self) -> PathBuf {
        self.models
            .dir
            .clone()
            .unwrap_or_else(|| self.store.data_dir.join("models"))
    }

    /// Whether some camera watches a gate with liveness on.
    pub fn liveness_needed(&self) -> bool {
        self.cameras
            .iter()
            .any(|c| self.gate(&c.gate).is_some_and(Gate::liveness_on))
    }

    /// The manifest names of the models this configuration runs: the
    /// detector, the embedder, and the liveness models when a camera's gate
    /// has liveness on.
    pub fn face_models(&self) -> Vec<String> {
        let mut names = vec![self.models.detector.clone(), self.models.embedder.clone()];
        if self.liveness_needed() {
            names.extend(self.models.liveness.iter().cloned());
        }
        names
    }

    pub fn gate(&self, id: &GateId) -> Option<&Gate> {
        self.gates.iter().find(|g| &g.id == id)
    }
}

impl Gate {
    /// Every pin this gate uses, with its key name, for conflict checks.
    pub fn pins(&self) -> Vec<(&'static str, GpioPin)> {
        let mut pins = vec![("relay_pin", self.relay_pin)];
        let optional = [
            ("door_contact_pin", self.door_contact_pin),
            ("exit_button_pin", self.exit_button_pin),
            ("tamper_pin", self.tamper_pin),
            ("loop_pin", self.loop_pin),
            ("wiegand_d0_pin", self.wiegand_d0_pin),
            ("wiegand_d1_pin", self.wiegand_d1_pin),
        ];
        pins.extend(optional.into_iter().filter_map(|(n, p)| p.map(|p| (n, p))));
        pins
    }
}

/// `gates[1].relay_pin`, the way the operator reads TOML.
fn display_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests;
