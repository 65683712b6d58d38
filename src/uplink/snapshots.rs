//! Which snapshots leave with their event, and the station's way to ask for
//! one that did not. A face crop of every visitor, courier and resident the
//! camera missed is personal data the station has no need for by default
//! (PIPL: the least that serves the purpose): `[uplink] face_snapshots`
//! decides which face snapshots are published with their event
//! (`watchlist` by default: only watchlist matches); any other is sent only in
//! answer to a signed `get_snapshot` command, which is audited with the
//! officer, the event and the reason.
//!
//! Architecture Invariant: a face snapshot the policy holds back is never
//! published on the snapshot topic; the event says it can be requested.

use anyhow::{Context, Result};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::payload::EventPayload;
use super::topics::Topics;
use crate::config::FaceSnapshots;
use crate::store::events::EventRecord;
use crate::store::Store;

/// The largest picture a `get_snapshot` reply carries (replies stay small
/// MQTT packets; a face crop is a few tens of kB).
pub const MAX_SNAPSHOT_BYTES: usize = 512 * 1024;

/// The snapshot of a face (an unknown face, a watchlist match, a recurring
/// stranger), as opposed to a plate camera's picture.
pub fn is_face(record: &EventRecord) -> bool {
    record.credential_kind.as_deref() == Some("face")
        || record
            .snapshot
            .as_deref()
            .is_some_and(|name| name.starts_with("face-"))
}

/// Whether the event's snapshot is published with it (pure: policy × event).
pub fn sent_with_event(policy: FaceSnapshots, record: &EventRecord) -> bool {
    if record.snapshot.is_none() {
        return false;
    }
    if !is_face(record) {
        return true;
    }
    match policy {
        FaceSnapshots::All => true,
        FaceSnapshots::Never => false,
        FaceSnapshots::Watchlist => {
            record.parsed_reason() == Ok(Some(crate::event::EventReason::WatchlistMatch))
        }
    }
}

/// The event as the station sees it, live or through `query_events`: a
/// held-back snapshot is not named (its topic never carries it) and the
/// detail says it can be requested.
pub fn payload(policy: FaceSnapshots, record: &EventRecord, topics: &Topics) -> EventPayload {
    let mut payload = EventPayload::from_record(record, topics);
    if record.snapshot.is_some() && !sent_with_event(policy, record) {
        payload.snapshot = None;
        payload.detail = mark_on_request(payload.detail.take());
    }
    payload
}

/// The event's `detail` with `snapshot_on_request: true`, so the station knows
/// a picture exists and can be asked for.
pub fn mark_on_request(detail: Option<Value>) -> Option<Value> {
    match detail {
        None => Some(json!({ "snapshot_on_request": true })),
        Some(Value::Object(mut map)) => {
            map.insert("snapshot_on_request".into(), Value::Bool(true));
            Some(Value::Object(map))
        }
        Some(other) => Some(other),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetSnapshotArgs {
    /// The event's id (UUIDv7).
    pub event_id: String,
    /// Why the officer needs the picture (kept in the audit log).
    pub reason: String,
}

/// Answers `get_snapshot`: the event's picture as base64 JPEG, with one
/// `uplink.snapshot.read` audit row (officer, reason, whether it was found)
/// committed before anything is returned.
pub fn get(
    store: &Store,
    snapshots_dir: &std::path::Path,
    actor: &str,
    officer: &str,
    a: &GetSnapshotArgs,
) -> Result<Value> {
    let snapshot = crate::store::events::snapshot_of(store.conn(), &a.event_id)?;
    let picture = match snapshot.flatten() {
        Some(name) if is_plain_name(&name) => {
            let path = snapshots_dir.join(&name);
            match std::fs::read(&path) {
                Ok(bytes) if bytes.len() <= MAX_SNAPSHOT_BYTES => Some(bytes),
                Ok(bytes) => anyhow::bail!(
                    "the snapshot has {} bytes, more than a reply carries ({MAX_SNAPSHOT_BYTES})",
                    bytes.len()
                ),
                // Purged by retention: answered as not found.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            }
        }
        _ => None,
    };
    Store::audit(
        store.conn(),
        actor,
        "uplink.snapshot.read",
        Some(&a.event_id),
        Some(&json!({
            "officer": officer,
            "reason": a.reason,
            "found": picture.is_some(),
        })),
    )?;
    Ok(match picture {
        Some(bytes) => json!({
            "event_id": a.event_id,
            "found": true,
            "content_type": "image/jpeg",
            "jpeg_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        }),
        None => json!({ "event_id": a.event_id, "found": false }),
    })
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::{EventKind, NewEvent};

    fn record(
        kind: EventKind,
        credential: &str,
        reason: &str,
        snapshot: Option<&str>,
    ) -> EventRecord {
        let dir = std::env::temp_dir().join(format!(
            "gh-snap-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        let mut e = NewEvent::now(kind, true);
        e.credential_kind = Some(credential.into());
        e.reason = Some(reason.parse().unwrap());
        e.snapshot = snapshot.map(str::to_string);
        let r = crate::store::events::append(store.conn(), &e).unwrap();
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
        r
    }

    #[test]
    fn decision_table_for_face_snapshots_leaving_with_their_event() {
        use FaceSnapshots::*;
        let unknown = record(
            EventKind::Access,
            "face",
            "unknown_face",
            Some("face-east-1.jpg"),
        );
        let watch = record(
            EventKind::Alarm,
            "face",
            "watchlist_match",
            Some("face-east-2.jpg"),
        );
        let stranger = record(
            EventKind::Alarm,
            "face",
            "recurring_stranger",
            Some("face-east-1.jpg"),
        );
        let plate = record(
            EventKind::Access,
            "plate",
            "granted",
            Some("plate-car-in-3.jpg"),
        );
        let card = record(EventKind::Access, "card", "granted", None);
        let table = [
            // (policy, event, sent)
            (Watchlist, &unknown, false),
            (Watchlist, &watch, true),
            (Watchlist, &stranger, false),
            (Watchlist, &plate, true),
            (Watchlist, &card, false),
            (Never, &unknown, false),
            (Never, &watch, false),
            (Never, &stranger, false),
            (Never, &plate, true),
            (All, &unknown, true),
            (All, &watch, true),
            (All, &stranger, true),
            (All, &plate, true),
            (All, &card, false),
        ];
        for (policy, event, sent) in table {
            assert_eq!(
                sent_with_event(policy, event),
                sent,
                "{policy:?} {:?}",
                event.reason
            );
        }
    }

    #[test]
    fn the_default_policy_is_watchlist() {
        assert_eq!(FaceSnapshots::default(), FaceSnapshots::Watchlist);
    }

    #[test]
    fn a_held_snapshot_is_marked_as_available_on_request() {
        assert_eq!(
            mark_on_request(None),
            Some(json!({ "snapshot_on_request": true }))
        );
        assert_eq!(
            mark_on_request(Some(json!({ "camera": "east-cam" }))),
            Some(json!({ "camera": "east-cam", "snapshot_on_request": true }))
        );
    }
}
