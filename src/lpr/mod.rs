//! The vehicle entrance's input: plate readings pushed by LPR cameras over
//! HTTP, checked and handed to the gate.
//!
//! A camera posts an event ([`json`] or [`hikvision`] format); the [`server`]
//! checks the address and the shared secret, parses the body, maps it to a
//! vehicle gate, turns the camera's text into plate candidates ([`plate`]),
//! keeps the picture ([`snapshot`]) and hands a [`PlateReading`] to a
//! [`PlateSink`], the daemon's gate handle, which decides and records the
//! event. [`frigate`] does the same for the plate recognitions a Frigate NVR
//! publishes on MQTT.
//!
//! Architecture Invariant: this module decides nothing about access. It
//! validates input and reports what was read; whether the barrier opens is
//! the sink's answer, passed back to the camera unchanged.

pub mod frigate;
pub mod hikvision;
pub mod json;
pub mod multipart;
pub mod plate;
pub mod server;
pub mod snapshot;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;

use crate::domain::{GateId, Plate, ResidentId};

pub use plate::{
    listed_alternatives, read_plate, resolve, CameraText, PlateCandidate, PlateRead, Resolution,
    Substitution,
};
pub use server::{router, LprServer, LprServerSettings};

/// What a request said, before the config is consulted.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraEvent {
    pub site: EventSite,
    /// The plate text as the camera sent it.
    pub plate_text: String,
    /// 0.0..=1.0.
    pub confidence: Option<f32>,
    pub camera_time: Option<DateTime<FixedOffset>>,
    /// A JPEG, already checked to start like one.
    pub snapshot: Option<Vec<u8>>,
}

/// Where an event says it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventSite {
    /// The JSON body names the gate.
    Gate(GateId),
    /// A Hikvision push names its channel; `[[lpr.cameras]]` maps it.
    Channel(Option<u32>),
}

/// Which endpoint a reading came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateSource {
    Json,
    Hikvision,
    /// Frigate's `tracked_object_update` on MQTT.
    Frigate,
}

impl PlateSource {
    /// The path segment after `/lpr/`.
    pub fn endpoint(self) -> &'static str {
        match self {
            PlateSource::Json => "json",
            PlateSource::Hikvision => "hikvision",
            PlateSource::Frigate => "frigate",
        }
    }
}

/// A validated plate reading at a vehicle gate, as handed to the sink.
#[derive(Clone, Debug, Serialize)]
pub struct PlateReading {
    pub gate: GateId,
    /// What was read and the candidates to look up (the exact reading first;
    /// tolerated OCR swaps after it when the gate allows them).
    pub read: PlateRead,
    pub confidence: Option<f32>,
    /// The camera's clock, for the record; decisions use the gateway's clock.
    pub camera_time: Option<DateTime<FixedOffset>>,
    pub received_at: DateTime<Utc>,
    /// File name under `<data_dir>/snapshots/` (the event's `snapshot` column).
    pub snapshot: Option<String>,
    pub source: PlateSource,
    pub camera: PlateCamera,
    /// The Hikvision channel, when the event named one.
    pub channel: Option<u32>,
    /// Frigate's id of the tracked car, to find its clip in Frigate.
    pub tracked_object: Option<String>,
}

/// Which camera a reading came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PlateCamera {
    /// An HTTP camera, by the address its request came from.
    Address(IpAddr),
    /// A Frigate camera, by its name in Frigate's config.
    Named(String),
}

impl std::fmt::Display for PlateCamera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlateCamera::Address(ip) => ip.fmt(f),
            PlateCamera::Named(name) => f.write_str(name),
        }
    }
}

impl PlateReading {
    /// The candidate to present, given what the register knows (see [`resolve`]).
    pub fn resolve(&self, is_known: impl Fn(&Plate) -> bool) -> Resolution<'_> {
        plate::resolve(&self.read, is_known)
    }

    /// For the event's `detail` column: what was read, what was decided on,
    /// and the OCR swap when one was used.
    pub fn event_detail(&self, decided: &Plate) -> serde_json::Value {
        let substitution = self
            .read
            .candidate(decided)
            .and_then(|c| c.substitution)
            .map(|s| serde_json::json!({"position": s.position, "read": s.read, "tried": s.tried}));
        let mut detail = serde_json::json!({
            "source": self.source,
            "camera": self.camera.to_string(),
            "channel": self.channel,
            "read": self.read.text,
            "plate": decided.as_str(),
            "ocr_substitution": substitution,
            "confidence": self.confidence,
            "camera_time": self.camera_time.map(|t| t.to_rfc3339()),
        });
        if let Some(id) = &self.tracked_object {
            detail["tracked_object"] = serde_json::Value::String(id.clone());
        }
        detail
    }
}

/// The gate's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Open,
    Refused,
}

/// What the sink did with a reading.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlateOutcome {
    pub verdict: Verdict,
    /// The plate the decision was made for (a candidate of the reading).
    pub plate: Plate,
    /// Machine-readable reason, as in the event's `reason` column
    /// (`registered_vehicle`, `unknown_credential`, `ambiguous_plate`, …).
    pub reason: crate::event::EventReason,
    pub subject: Option<ResidentId>,
    /// `seq` of the event recorded for this reading, if one was.
    pub event_seq: Option<i64>,
}

/// Where validated readings go: the daemon implements it with its gate
/// handle (decide, drive the barrier, record the event); tests with a real
/// register. An `Err` means the reading was not acted on (HTTP 500).
pub trait PlateSink: Send + Sync + 'static {
    fn present(
        &self,
        reading: PlateReading,
    ) -> impl Future<Output = anyhow::Result<PlateOutcome>> + Send;
}

impl<S: PlateSink> PlateSink for Arc<S> {
    fn present(
        &self,
        reading: PlateReading,
    ) -> impl Future<Output = anyhow::Result<PlateOutcome>> + Send {
        (**self).present(reading)
    }
}

/// JPEGs start with SOI and a marker.
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}
