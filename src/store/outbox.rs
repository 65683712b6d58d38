//! The outbox: events written but not yet acknowledged by the station's
//! broker. `events::append` queues a row in the same transaction as the event;
//! the uplink reads rows in `seq` order, publishes them and deletes each row
//! once the broker's PUBACK arrived ("delivered" = no outbox row).
//!
//! Architecture Invariant: a row leaves the outbox only after its PUBACK, or
//! when the backlog quota drops it — and a drop is always followed by an alarm
//! event that counts what was dropped. The event itself stays in the local log
//! either way (the station can still fetch it with `query_events`).

use crate::event::EventReason;
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::store::events::{self, EventKind, EventRecord, NewEvent, COLUMNS};

/// How much is waiting for the station.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Depth {
    pub events: u64,
    pub bytes: u64,
    pub oldest_seq: Option<i64>,
}

/// What a quota enforcement dropped from the backlog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub events: u64,
    pub bytes: u64,
    pub first_seq: i64,
    pub last_seq: i64,
    /// All events ever dropped on this gateway, this drop included.
    pub total: u64,
    /// The alarm event that reports the drop.
    pub alarm_seq: i64,
}

/// The reason of the alarm event raised when the quota drops events.
pub const DROP_REASON: &str = EventReason::UplinkBacklogDropped.as_str();

const DROPPED_TOTAL_KEY: &str = "outbox_dropped_total";

/// Up to `limit` queued events with `seq > after_seq`, oldest first.
pub fn pending(conn: &Connection, after_seq: i64, limit: u32) -> Result<Vec<EventRecord>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM event WHERE seq IN \
             (SELECT seq FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2) ORDER BY seq"
        ))
        .context("cannot prepare outbox read")?;
    let rows = stmt
        .query_map(params![after_seq, limit], EventRecord::from_row)
        .context("cannot read the outbox")?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot read outbox events")
}

/// Removes delivered events from the outbox, in one transaction. Unknown seqs
/// (already delivered, or dropped by the quota meanwhile) are ignored.
pub fn mark_delivered(conn: &Connection, seqs: &[i64]) -> Result<usize> {
    if seqs.is_empty() {
        return Ok(0);
    }
    let tx = conn
        .unchecked_transaction()
        .context("cannot start outbox transaction")?;
    let mut removed = 0;
    {
        let mut stmt = tx
            .prepare_cached("DELETE FROM outbox WHERE seq = ?1")
            .context("cannot prepare outbox delete")?;
        for seq in seqs {
            removed += stmt.execute([seq]).context("cannot mark event delivered")?;
        }
    }
    tx.commit().context("cannot commit delivered events")?;
    Ok(removed)
}

pub fn depth(conn: &Connection) -> Result<Depth> {
    conn.query_row(
        "SELECT count(*), coalesce(sum(bytes), 0), min(seq) FROM outbox",
        [],
        |r| {
            Ok(Depth {
                events: r.get::<_, i64>(0)? as u64,
                bytes: r.get::<_, i64>(1)? as u64,
                oldest_seq: r.get(2)?,
            })
        },
    )
    .context("cannot measure the outbox")
}

/// Events dropped by the quota over this gateway's life.
pub fn dropped_total(conn: &Connection) -> Result<u64> {
    let total: Option<i64> = conn
        .query_row(
            "SELECT value FROM uplink_state WHERE key = ?1",
            [DROPPED_TOTAL_KEY],
            |r| r.get(0),
        )
        .optional()
        .context("cannot read the dropped-events counter")?;
    Ok(total.unwrap_or(0) as u64)
}

/// Keeps the backlog within `max_bytes`: when it is larger, drops the oldest
/// queued events until it is at most 90% of the quota (so the next few events
/// do not trigger another drop at once), then appends an alarm event that says
/// how many were dropped and which seqs, stamped `at` (the caller's trusted
/// clock: the daemon's, through `uplink::GatewayActions::now`). Returns
/// `None` when within quota.
pub fn enforce_quota(
    conn: &Connection,
    max_bytes: u64,
    at: chrono::DateTime<chrono::Utc>,
    clock_synced: bool,
) -> Result<Option<Dropped>> {
    let before = depth(conn)?;
    if before.bytes <= max_bytes {
        return Ok(None);
    }
    let target = max_bytes / 10 * 9;
    let tx = conn
        .unchecked_transaction()
        .context("cannot start quota transaction")?;
    let (events, bytes, first_seq, last_seq) = {
        let mut stmt = tx.prepare("SELECT seq, bytes FROM outbox ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut remaining = before.bytes;
        let (mut events, mut bytes, mut first, mut last) = (0u64, 0u64, None, 0i64);
        while remaining > target {
            let Some(row) = rows.next()? else { break };
            let seq: i64 = row.get(0)?;
            let size = row.get::<_, i64>(1)?.max(0) as u64;
            first.get_or_insert(seq);
            last = seq;
            events += 1;
            bytes += size;
            remaining = remaining.saturating_sub(size);
        }
        (events, bytes, first.unwrap_or(0), last)
    };
    tx.execute("DELETE FROM outbox WHERE seq <= ?1", [last_seq])
        .context("cannot drop events from the outbox")?;
    tx.execute(
        "INSERT INTO uplink_state (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
        params![DROPPED_TOTAL_KEY, events as i64],
    )
    .context("cannot count dropped events")?;
    tx.commit().context("cannot commit the outbox drop")?;
    let total = dropped_total(conn)?;
    // The alarm goes through the ordinary log so it is chained and delivered
    // like any event; it is small and lands under the quota just freed.
    let mut alarm = NewEvent::stamped(EventKind::Alarm, at, clock_synced);
    alarm.reason = Some(EventReason::UplinkBacklogDropped);
    alarm.detail = Some(serde_json::json!({
        "dropped_events": events,
        "dropped_bytes": bytes,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "dropped_total": total,
        "quota_bytes": max_bytes,
    }));
    let record = events::append(conn, &alarm).context("cannot raise the backlog alarm")?;
    tracing::warn!(
        dropped = events,
        first_seq,
        last_seq,
        quota_bytes = max_bytes,
        "uplink backlog over quota: oldest undelivered events dropped from the outbox"
    );
    Ok(Some(Dropped {
        events,
        bytes,
        first_seq,
        last_seq,
        total,
        alarm_seq: record.seq,
    }))
}

/// The newest seq in the event log (0 when empty), for `ping` replies.
pub fn head_seq(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM event", [], |r| r.get(0))
        .context("cannot read the event log head")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::AccessResult;
    use crate::store::Store;

    fn scratch() -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!(
            "gh-outbox-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        (dir, store)
    }

    fn swipe(store: &Store) -> EventRecord {
        let mut e = NewEvent::now(EventKind::Access, true);
        e.gate = Some("east".parse().unwrap());
        e.credential_kind = Some("card".into());
        e.credential_masked = Some("10:***45".into());
        e.result = Some(AccessResult::Granted);
        events::append(store.conn(), &e).unwrap()
    }

    #[test]
    fn pending_returns_queued_events_in_seq_order_after_the_cursor() {
        let (dir, store) = scratch();
        for _ in 0..5 {
            swipe(&store);
        }
        let seqs = |v: Vec<EventRecord>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(pending(store.conn(), 0, 3).unwrap()), vec![1, 2, 3]);
        assert_eq!(seqs(pending(store.conn(), 3, 10).unwrap()), vec![4, 5]);
        mark_delivered(store.conn(), &[1, 2, 4]).unwrap();
        assert_eq!(seqs(pending(store.conn(), 0, 10).unwrap()), vec![3, 5]);
        let d = depth(store.conn()).unwrap();
        assert_eq!((d.events, d.oldest_seq), (2, Some(3)));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn marking_delivered_twice_is_harmless() {
        let (dir, store) = scratch();
        swipe(&store);
        assert_eq!(mark_delivered(store.conn(), &[1]).unwrap(), 1);
        assert_eq!(mark_delivered(store.conn(), &[1, 99]).unwrap(), 0);
        assert_eq!(depth(store.conn()).unwrap(), Depth::default());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn quota_drops_oldest_events_and_raises_a_counting_alarm() {
        let (dir, store) = scratch();
        for _ in 0..100 {
            swipe(&store);
        }
        let full = depth(store.conn()).unwrap();
        let quota = full.bytes / 2;
        let dropped = enforce_quota(store.conn(), quota, chrono::Utc::now(), true)
            .unwrap()
            .expect("over quota");
        assert_eq!(dropped.first_seq, 1);
        assert!(dropped.events >= 50, "dropped {}", dropped.events);
        assert_eq!(dropped.total, dropped.events);
        assert_eq!(dropped.alarm_seq, 101);
        let after = depth(store.conn()).unwrap();
        assert!(after.bytes <= quota, "{} > {quota}", after.bytes);
        assert_eq!(after.oldest_seq, Some(dropped.last_seq + 1));
        // The alarm is queued for the station and says what was dropped.
        let alarm = pending(store.conn(), 100, 1).unwrap().remove(0);
        assert_eq!(alarm.kind, EventKind::Alarm);
        assert_eq!(alarm.reason.as_deref(), Some(DROP_REASON));
        let detail = alarm.detail.unwrap();
        assert_eq!(detail["dropped_events"], dropped.events);
        assert_eq!(detail["last_seq"], dropped.last_seq);
        // The dropped events are still in the local log, chain intact.
        let (checked, breaks) = events::verify_chain(store.conn()).unwrap();
        assert_eq!((checked, breaks.len()), (101, 0));
        // Within quota now: nothing more to drop.
        assert_eq!(
            enforce_quota(store.conn(), quota, chrono::Utc::now(), true).unwrap(),
            None
        );
        assert_eq!(dropped_total(store.conn()).unwrap(), dropped.events);
        std::fs::remove_dir_all(&dir).ok();
    }
}
