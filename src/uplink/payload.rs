//! The JSON the gateway publishes, built from stored rows. Each type has a
//! JSON Schema under `schemas/`; tests validate what is published against it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::topics::Topics;
use crate::store::events::{AccessResult, EventKind, EventRecord};

/// `…/event/{kind}` (schemas/event.schema.json). The same event id and seq on
/// every redelivery, so the station deduplicates by id and spots gaps by seq.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventPayload {
    /// UUIDv7.
    pub id: String,
    /// The gateway's sequence number (1, 2, 3, … without gaps).
    pub seq: i64,
    pub site: String,
    pub gateway: String,
    /// Device time, RFC 3339 UTC.
    pub at: String,
    /// False when the device clock was not synchronised: `at` may be off.
    pub clock_synced: bool,
    pub kind: EventKind,
    pub gate: Option<String>,
    pub direction: Option<String>,
    pub credential_kind: Option<String>,
    pub credential_masked: Option<String>,
    /// `R42`.
    pub subject_id: Option<String>,
    /// Masked (`张*`).
    pub subject_name: Option<String>,
    pub result: Option<AccessResult>,
    pub reason: Option<String>,
    /// Face or plate match score, 4 decimals.
    pub score: Option<f64>,
    /// The snapshot topic (`…/snapshot/{id}`) when the event has a picture.
    pub snapshot: Option<String>,
    pub detail: Option<Value>,
}

impl EventPayload {
    pub fn from_record(e: &EventRecord, topics: &Topics) -> EventPayload {
        EventPayload {
            id: e.id.clone(),
            seq: e.seq,
            site: topics.site().to_string(),
            gateway: topics.gateway().to_string(),
            at: e.at.clone(),
            clock_synced: e.clock_synced,
            kind: e.kind,
            gate: e.gate.clone(),
            direction: e.direction.clone(),
            credential_kind: e.credential_kind.clone(),
            credential_masked: e.credential_masked.clone(),
            subject_id: e.subject_id.map(|id| format!("R{id}")),
            subject_name: e.subject_name.clone(),
            result: e.result,
            reason: e.reason.clone(),
            // Stored as f32 widened to f64: 0.61 reads 0.6100000143…
            score: e
                .score
                .filter(|s| s.is_finite())
                .map(|s| (s * 10_000.0).round() / 10_000.0),
            snapshot: e.snapshot.as_ref().map(|_| topics.snapshot(&e.id)),
            detail: e.detail.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Online,
    Offline,
}

/// `…/status` (schemas/status.schema.json), retained. The heartbeat carries
/// everything; the last will and a clean shutdown carry only the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPayload {
    pub state: LinkState,
    pub site: String,
    pub gateway: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub version: String,
    pub uptime_s: u64,
    pub clock_synced: bool,
    pub outbox_depth: u64,
    pub outbox_bytes: u64,
    pub outbox_dropped_total: u64,
    /// The newest seq in the event log.
    pub head_seq: i64,
    pub disk_free_bytes: Option<u64>,
    /// The gateway's public key for reply signatures (base64 Ed25519).
    pub reply_key: String,
    /// Fields the daemon supplies: gates, readers, cameras, model versions.
    pub health: Map<String, Value>,
}

impl StatusPayload {
    pub fn offline(topics: &Topics) -> StatusPayload {
        StatusPayload {
            state: LinkState::Offline,
            site: topics.site().to_string(),
            gateway: topics.gateway().to_string(),
            at: None,
            heartbeat: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_payload_keeps_ids_masks_and_rounds_scores() {
        let topics = Topics::new("lotus", "gw1").unwrap();
        let record = EventRecord {
            seq: 7,
            id: "0192b3c4-0000-7000-8000-000000000000".into(),
            at: "2026-05-01T08:00:00.000Z".into(),
            clock_synced: false,
            kind: EventKind::Access,
            gate: Some("east".into()),
            direction: Some("in".into()),
            credential_kind: Some("face".into()),
            credential_masked: None,
            subject_id: Some(42),
            subject_name: Some("张*".into()),
            result: Some(AccessResult::Granted),
            reason: None,
            score: Some(f64::from(0.61f32)),
            snapshot: Some("0192.jpg".into()),
            detail: None,
            prev_hash: vec![],
            hash: vec![],
        };
        let p = EventPayload::from_record(&record, &topics);
        assert_eq!(p.score, Some(0.61));
        assert_eq!(p.subject_id.as_deref(), Some("R42"));
        assert_eq!(
            p.snapshot.as_deref(),
            Some("gatehouse/v1/lotus/gw1/snapshot/0192b3c4-0000-7000-8000-000000000000")
        );
        assert!(!p.clock_synced);
    }
}
