//! Retention: events, snapshots and audit rows older than the configured
//! number of days are purged, so the database on a years-long install stays
//! bounded.
//!
//! Events still in the outbox are never purged: not losing an event matters
//! more than the size bound (the outbox has its own quota).

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use chrono::{SecondsFormat, Utc};
use rusqlite::{params, Connection};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    pub events: usize,
    pub audit: usize,
    pub snapshots: usize,
}

/// Deletes what is older than its retention. `audit_days` is raised to
/// `event_days` when shorter: the audit log outlives the events it explains.
pub fn purge(
    conn: &Connection,
    snapshots_dir: &Path,
    event_days: u32,
    audit_days: u32,
) -> Result<Purged> {
    let audit_days = audit_days.max(event_days);
    let cutoff = |days: u32| {
        (Utc::now() - chrono::Duration::days(i64::from(days)))
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    let events = conn
        .execute(
            "DELETE FROM event WHERE at < ?1 AND seq NOT IN (SELECT seq FROM outbox)",
            params![cutoff(event_days)],
        )
        .context("cannot purge old events")?;
    let audit = conn
        .execute(
            "DELETE FROM audit WHERE at < ?1",
            params![cutoff(audit_days)],
        )
        .context("cannot purge old audit rows")?;
    let mut snapshots = 0;
    if let Ok(entries) = std::fs::read_dir(snapshots_dir) {
        let limit = SystemTime::now() - Duration::from_secs(u64::from(event_days) * 86_400);
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t < limit)
                .unwrap_or(false);
            if old && std::fs::remove_file(entry.path()).is_ok() {
                snapshots += 1;
            }
        }
    }
    Ok(Purged {
        events,
        audit,
        snapshots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::{append, EventKind, NewEvent};
    use crate::store::Store;

    #[test]
    fn purges_old_delivered_events_but_keeps_undelivered_and_recent() {
        let dir = std::env::temp_dir().join(format!("gh-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        let mut old = NewEvent::now(EventKind::Access, true);
        old.at = Utc::now() - chrono::Duration::days(40);
        let delivered_old = append(store.conn(), &old).unwrap();
        let undelivered_old = append(store.conn(), &old).unwrap();
        let recent = append(store.conn(), &NewEvent::now(EventKind::Access, true)).unwrap();
        store
            .conn()
            .execute(
                "DELETE FROM outbox WHERE seq IN (?1, ?2)",
                params![delivered_old.seq, recent.seq],
            )
            .unwrap();
        Store::audit(store.conn(), "os:test", "read", None, None).unwrap();

        let purged = purge(store.conn(), &dir.join("snapshots"), 30, 10).unwrap();
        assert_eq!(purged.events, 1);
        assert_eq!(purged.audit, 0, "a fresh audit row is kept");
        let left: Vec<i64> = store
            .conn()
            .prepare("SELECT seq FROM event ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(left, vec![undelivered_old.seq, recent.seq]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
