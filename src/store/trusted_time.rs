//! The trusted time floor and the station keys' `issued_at` high-water marks
//! (migration 009), kept in the database so they survive restarts: a clock
//! set back after a reboot cannot revive an ended lease, an expired pass or
//! a captured command. `crate::clock::Floor` keeps the floor moving while
//! the process runs; this module is where it rests.

use anyhow::{Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension};

fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// The stored floor, raised to the newest event written (the last by seq:
/// O(1), and events are written in order). `None` on a fresh database.
pub fn load(conn: &Connection) -> Result<Option<DateTime<Utc>>> {
    let stored = stored(conn)?;
    let newest_event: Option<String> = conn
        .query_row("SELECT at FROM event ORDER BY seq DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()
        .context("cannot read the newest event")?;
    let newest_event = newest_event
        .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
        .map(|t| t.with_timezone(&Utc));
    Ok(stored.max(newest_event))
}

/// The floor as stored, without events.
pub fn stored(conn: &Connection) -> Result<Option<DateTime<Utc>>> {
    let ms: Option<i64> = conn
        .query_row("SELECT floor_ms FROM trusted_time WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .context("cannot read the trusted time floor")?;
    Ok(ms.and_then(from_ms))
}

/// Raises the stored floor to `t` (never lowers it) and returns the floor
/// after the change. `source` says what vouched for `t`.
pub fn raise(conn: &Connection, t: DateTime<Utc>, source: &str) -> Result<DateTime<Utc>> {
    conn.execute(
        "INSERT INTO trusted_time (id, floor_ms, source, updated_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET floor_ms = excluded.floor_ms, source = excluded.source,
             updated_at = excluded.updated_at
         WHERE excluded.floor_ms > trusted_time.floor_ms",
        params![t.timestamp_millis(), source, super::now_rfc3339()],
    )
    .context("cannot raise the trusted time floor")?;
    Ok(stored(conn)?.unwrap_or(t))
}

/// The newest `issued_at` accepted from a station key (its base64 text).
pub fn key_mark(conn: &Connection, public_key: &str) -> Result<Option<DateTime<Utc>>> {
    let ms: Option<i64> = conn
        .query_row(
            "SELECT issued_ms FROM station_key_mark WHERE public_key = ?1",
            [public_key],
            |r| r.get(0),
        )
        .optional()
        .context("cannot read the station key's high-water mark")?;
    Ok(ms.and_then(from_ms))
}

/// Raises a key's mark to `issued_at` (never lowers it).
pub fn raise_key_mark(
    conn: &Connection,
    public_key: &str,
    issued_at: DateTime<Utc>,
    nonce: &str,
) -> Result<()> {
    conn.execute(
        "INSERT INTO station_key_mark (public_key, issued_ms, nonce, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (public_key) DO UPDATE SET issued_ms = excluded.issued_ms,
             nonce = excluded.nonce, updated_at = excluded.updated_at
         WHERE excluded.issued_ms > station_key_mark.issued_ms",
        params![public_key, issued_at.timestamp_millis(), nonce, super::now_rfc3339()],
    )
    .context("cannot raise the station key's high-water mark")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::{self, EventKind, NewEvent};
    use crate::store::Store;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn store(tag: &str) -> (Store, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-floor-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        (Store::open(&dir.join("g.db"), &dir).unwrap(), dir)
    }

    #[test]
    fn the_floor_only_rises_and_includes_the_newest_event() {
        let (store, dir) = store("rise");
        let conn = store.conn();
        assert_eq!(load(conn).unwrap(), None);
        assert_eq!(
            raise(conn, t("2026-12-01T00:00:00Z"), "clock").unwrap(),
            t("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            raise(conn, t("2026-11-01T00:00:00Z"), "clock").unwrap(),
            t("2026-12-01T00:00:00Z"),
            "an earlier time never lowers it"
        );
        let mut e = NewEvent::now(EventKind::Device, false);
        e.at = t("2026-12-03T08:00:00Z");
        events::append(conn, &e).unwrap();
        assert_eq!(load(conn).unwrap(), Some(t("2026-12-03T08:00:00Z")));
        assert_eq!(stored(conn).unwrap(), Some(t("2026-12-01T00:00:00Z")));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_key_mark_only_rises() {
        let (store, dir) = store("mark");
        let conn = store.conn();
        assert_eq!(key_mark(conn, "k1").unwrap(), None);
        raise_key_mark(conn, "k1", t("2026-12-03T08:00:00Z"), "n1").unwrap();
        raise_key_mark(conn, "k1", t("2026-12-03T07:00:00Z"), "n0").unwrap();
        assert_eq!(
            key_mark(conn, "k1").unwrap(),
            Some(t("2026-12-03T08:00:00Z"))
        );
        assert_eq!(key_mark(conn, "k2").unwrap(), None);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
