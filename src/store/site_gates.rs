//! The registry's view of its site's gates (issue 17, migration 014): each
//! gate's events, stored in the registry's own event log so `gatehouse log`
//! and the console there show the whole site, and each gate's applied
//! register entry, for `gate status` and the lag.
//!
//! A gate's event is kept with the gate's event id (so a resent one is stored
//! once), its gate named `<gateway>/<gate>`, and the gateway, the event's
//! seq there and its snapshot's name (the picture stays on the gate) in its
//! detail. It gets no outbox row: each gate sends its own
//! events to the station.

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::events::{self, EventRecord};

/// What a gate publishes: a batch of its stored events, oldest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GateEvents {
    pub events: Vec<EventRecord>,
}

/// The registry's acknowledgement: the gate's events up to `seq` are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsAck {
    pub seq: i64,
}

/// One gate as the registry last heard of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSeen {
    pub gateway: String,
    /// The register entry it reported applied, and when it applied it.
    pub applied_seq: i64,
    pub applied_at: Option<String>,
    /// When the registry heard that report.
    pub heard_at: Option<String>,
    /// The last of its events stored here (its seq in the gate's own log).
    pub events_seq: i64,
}

/// The gate `<gateway>/<gate>` of a gate's event, as the registry names it.
pub fn site_gate_name(gateway: &str, gate: Option<&str>) -> String {
    match gate {
        Some(g) => format!("{gateway}/{g}"),
        None => gateway.to_string(),
    }
}

/// Registry: stores `gateway`'s events not stored yet, in one transaction
/// with the gate's acknowledged seq; returns the records written (for the
/// live page) and the seq to acknowledge.
pub fn store_gate_events(
    conn: &Connection,
    gateway: &str,
    batch: &GateEvents,
) -> Result<(Vec<EventRecord>, i64)> {
    super::atomic::atomically(conn, |tx| {
        let mut acked = events_seq(tx, gateway)?;
        let mut written = Vec::new();
        for e in &batch.events {
            let known: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM event WHERE id = ?1)")?
                .query_row([&e.id], |r| r.get(0))?;
            acked = acked.max(e.seq);
            if known {
                continue;
            }
            let mut copy = e.clone();
            copy.gate = Some(site_gate_name(gateway, e.gate.as_deref()));
            let mut detail = match copy.detail.take() {
                Some(serde_json::Value::Object(m)) => m,
                Some(other) => {
                    let mut m = serde_json::Map::new();
                    m.insert("detail".into(), other);
                    m
                }
                None => serde_json::Map::new(),
            };
            detail.insert("site_gateway".into(), gateway.into());
            detail.insert("site_gateway_seq".into(), e.seq.into());
            // The picture stays on the gate: the name is kept, no file is here.
            if let Some(snapshot) = copy.snapshot.take() {
                detail.insert("site_gateway_snapshot".into(), snapshot.into());
            }
            copy.detail = Some(serde_json::Value::Object(detail));
            written.push(events::chain_in(tx, copy)?);
        }
        tx.execute(
            "INSERT INTO site_gate (gateway, events_seq) VALUES (?1, ?2)
             ON CONFLICT (gateway) DO UPDATE SET events_seq = max(events_seq, excluded.events_seq)",
            params![gateway, acked],
        )?;
        Ok((written, acked))
    })
    .with_context(|| format!("cannot store the events of gate {gateway}"))
}

/// Registry: the last of `gateway`'s events stored here (0: none).
pub fn events_seq(conn: &Connection, gateway: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT events_seq FROM site_gate WHERE gateway = ?1")?
        .query_row([gateway], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Registry: `gateway` reported applying entry `seq` (at `applied_at`).
pub fn note_applied(
    conn: &Connection,
    gateway: &str,
    seq: i64,
    applied_at: Option<&str>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO site_gate (gateway, applied_seq, applied_at, heard_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (gateway) DO UPDATE SET applied_seq = excluded.applied_seq,
             applied_at = excluded.applied_at, heard_at = excluded.heard_at",
        params![gateway, seq, applied_at, super::now_rfc3339()],
    )
    .with_context(|| format!("cannot note gate {gateway}'s applied entry"))?;
    Ok(())
}

/// Registry: every gate it has heard of, by name.
pub fn gates(conn: &Connection) -> Result<Vec<GateSeen>> {
    conn.prepare_cached(
        "SELECT gateway, applied_seq, applied_at, heard_at, events_seq FROM site_gate ORDER BY gateway",
    )?
    .query_map([], |r| {
        Ok(GateSeen {
            gateway: r.get(0)?,
            applied_seq: r.get(1)?,
            applied_at: r.get(2)?,
            heard_at: r.get(3)?,
            events_seq: r.get(4)?,
        })
    })?
    .collect::<rusqlite::Result<_>>()
    .context("cannot read the site's gates")
}

/// The newest event's seq here (0: none).
pub fn last_event_seq(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM event", [], |r| r.get(0))
        .context("cannot read the newest event's seq")
}

/// Gate: its events after `after`, oldest first, at most `limit`.
pub fn events_after(conn: &Connection, after: i64, limit: u32) -> Result<Vec<EventRecord>> {
    events::query(
        conn,
        &events::EventFilter {
            after_seq: Some(after),
            limit: Some(limit),
            ..events::EventFilter::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::{EventKind, NewEvent};
    use crate::store::Store;

    fn scratch(tag: &str) -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-site-gates-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("gatehouse.db"), &dir).unwrap();
        (dir, store)
    }

    #[test]
    fn a_gates_events_are_stored_once_under_its_name_without_an_outbox_row() {
        let (gate_dir, gate) = scratch("gate");
        let mut e = NewEvent::now(EventKind::Access, true);
        e.gate = Some("east".parse().unwrap());
        events::append(gate.conn(), &e).unwrap();
        events::append(gate.conn(), &NewEvent::now(EventKind::Device, true)).unwrap();
        let batch = GateEvents {
            events: events_after(gate.conn(), 0, 10).unwrap(),
        };
        assert_eq!(batch.events.len(), 2);

        let (reg_dir, registry) = scratch("registry");
        let (written, acked) = store_gate_events(registry.conn(), "north", &batch).unwrap();
        assert_eq!((written.len(), acked), (2, 2));
        assert_eq!(written[0].gate.as_deref(), Some("north/east"));
        assert_eq!(written[0].id, batch.events[0].id);
        assert_eq!(written[1].detail.as_ref().unwrap()["site_gateway"], "north");
        // Sent again (a lost acknowledgement): nothing new is stored.
        let (again, acked) = store_gate_events(registry.conn(), "north", &batch).unwrap();
        assert_eq!((again.len(), acked), (0, 2));
        let outbox = crate::store::outbox::depth(registry.conn()).unwrap();
        assert_eq!(outbox.events, 0);
        let (checked, breaks) = events::verify_chain(registry.conn()).unwrap();
        assert_eq!((checked, breaks.len()), (2, 0));

        note_applied(
            registry.conn(),
            "north",
            7,
            Some("2026-12-03T00:00:00.000Z"),
        )
        .unwrap();
        let seen = gates(registry.conn()).unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].applied_seq, seen[0].events_seq), (7, 2));
        std::fs::remove_dir_all(gate_dir).ok();
        std::fs::remove_dir_all(reg_dir).ok();
    }
}
