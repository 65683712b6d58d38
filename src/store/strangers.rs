//! Unregistered people seen at the gates: each unknown face's embedding is
//! kept for `[face] stranger_days` and grouped with earlier sightings of the
//! same face, so that someone who keeps coming back without being
//! registered is reported once (`recurring_stranger`) to the community
//! police, who want to know who lives in the compound unregistered.
//!
//! Grouping: a new sighting joins the stranger whose closest kept sighting
//! scores at or above the match threshold (the same bar a resident's face
//! must clear), else it starts a new stranger. Visits count by site-local
//! day, so a person lingering at the gate for an hour is one day, not forty
//! sightings.

use anyhow::{Context, Result};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::faces::{blob_f32, f32_blob};
use crate::domain::embedding::dot;

/// One unknown face to keep.
#[derive(Clone, Debug)]
pub struct Sighting<'a> {
    pub at: DateTime<Utc>,
    pub gate: &'a str,
    pub model: &'a str,
    /// Unit length.
    pub embedding: &'a [f32],
    pub snapshot: Option<&'a str>,
    pub event_seq: Option<i64>,
}

/// How sightings are grouped and when a stranger is reported.
#[derive(Clone, Copy, Debug)]
pub struct StrangerPolicy {
    pub threshold: f32,
    pub keep_days: u32,
    pub report_after_days: u32,
    pub utc_offset: FixedOffset,
}

/// A stranger seen on enough days to be reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recurring {
    /// `S` + the id of the first sighting.
    pub stranger: String,
    pub days: u32,
    pub sightings: u32,
    pub first_seen: String,
    pub last_seen: String,
    pub gates: Vec<String>,
    /// Snapshot files of the latest sightings (newest first, at most 3).
    pub snapshots: Vec<String>,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Keeps `s`, grouped with earlier sightings of the same face; returns the
/// stranger's report when this sighting makes it recurring (once per
/// `keep_days`: a stranger reported is not reported again until its
/// report has aged out of the window).
pub fn record(
    conn: &Connection,
    s: &Sighting<'_>,
    policy: &StrangerPolicy,
) -> Result<Option<Recurring>> {
    if policy.keep_days == 0 {
        return Ok(None);
    }
    let stranger = closest_stranger(conn, s, policy)?;
    record_as(conn, s, stranger, policy)
}

/// [`record`] with the grouping already done by [`closest_stranger`] (the
/// daemon searches on a reader connection, so the scan never holds the
/// writer that gate events wait for).
pub fn record_as(
    conn: &Connection,
    s: &Sighting<'_>,
    stranger: Option<i64>,
    policy: &StrangerPolicy,
) -> Result<Option<Recurring>> {
    if policy.keep_days == 0 {
        return Ok(None);
    }
    let since = window_start(s.at, policy);
    let day =
        s.at.with_timezone(&policy.utc_offset)
            .date_naive()
            .to_string();
    // IMMEDIATE: the write lock first, like every writer transaction.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .context("cannot start stranger sighting")?;
    tx.execute(
        "INSERT INTO stranger_sighting (at, day, gate, model, embedding, snapshot, event_seq, stranger)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, coalesce(?8, 0))",
        params![
            stamp(s.at),
            day,
            s.gate,
            s.model,
            f32_blob(s.embedding),
            s.snapshot,
            s.event_seq,
            stranger
        ],
    )
    .context("cannot store stranger sighting")?;
    let id = tx.last_insert_rowid();
    let stranger = match stranger {
        Some(existing) => existing,
        None => {
            tx.execute(
                "UPDATE stranger_sighting SET stranger = id WHERE id = ?1",
                [id],
            )?;
            id
        }
    };
    let days: u32 = tx.query_row(
        "SELECT count(DISTINCT day) FROM stranger_sighting WHERE stranger = ?1 AND at >= ?2",
        params![stranger, since],
        |r| r.get(0),
    )?;
    let reported: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM stranger_sighting
          WHERE stranger = ?1 AND reported_at IS NOT NULL AND reported_at >= ?2)",
        params![stranger, since],
        |r| r.get(0),
    )?;
    let report = if days >= policy.report_after_days && !reported {
        tx.execute(
            "UPDATE stranger_sighting SET reported_at = ?1 WHERE id = ?2",
            params![stamp(s.at), id],
        )?;
        Some(summary(&tx, stranger, &since)?)
    } else {
        None
    };
    tx.commit().context("cannot commit stranger sighting")?;
    Ok(report)
}

fn window_start(at: DateTime<Utc>, policy: &StrangerPolicy) -> String {
    stamp(at - chrono::Duration::days(i64::from(policy.keep_days)))
}

/// The stranger whose closest kept sighting (same model, within the window)
/// reaches the threshold; `None`: a face not seen before. Read-only.
pub fn closest_stranger(
    conn: &Connection,
    s: &Sighting<'_>,
    policy: &StrangerPolicy,
) -> Result<Option<i64>> {
    let (since, threshold) = (window_start(s.at, policy), policy.threshold);
    let mut stmt = conn.prepare_cached(
        "SELECT stranger, embedding FROM stranger_sighting WHERE model = ?1 AND at >= ?2",
    )?;
    let mut rows = stmt.query(params![s.model, &since])?;
    let mut best: Option<(i64, f32)> = None;
    while let Some(row) = rows.next()? {
        let stranger: i64 = row.get(0)?;
        let emb: Vec<u8> = row.get(1)?;
        let v: Vec<f32> = blob_f32(&emb).collect();
        if v.len() != s.embedding.len() {
            continue;
        }
        let score = dot(&v, s.embedding);
        if score >= threshold && best.is_none_or(|(_, b)| score > b) {
            best = Some((stranger, score));
        }
    }
    Ok(best.map(|(stranger, _)| stranger))
}

fn summary(conn: &Connection, stranger: i64, since: &str) -> Result<Recurring> {
    let (days, sightings, first_seen, last_seen): (u32, u32, String, String) = conn.query_row(
        "SELECT count(DISTINCT day), count(*), min(at), max(at) FROM stranger_sighting
          WHERE stranger = ?1 AND at >= ?2",
        params![stranger, since],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let gates: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT gate FROM stranger_sighting WHERE stranger = ?1 AND at >= ?2 ORDER BY gate",
        )?
        .query_map(params![stranger, since], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let snapshots: Vec<String> = conn
        .prepare_cached(
            "SELECT snapshot FROM stranger_sighting
              WHERE stranger = ?1 AND at >= ?2 AND snapshot IS NOT NULL ORDER BY at DESC LIMIT 3",
        )?
        .query_map(params![stranger, since], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Recurring {
        stranger: format!("S{stranger}"),
        days,
        sightings,
        first_seen,
        last_seen,
        gates,
        snapshots,
    })
}

/// Every stranger seen on at least `min_days` days since `since`, most days first.
pub fn list(conn: &Connection, since: DateTime<Utc>, min_days: u32) -> Result<Vec<Recurring>> {
    let since = stamp(since);
    let ids: Vec<i64> = conn
        .prepare(
            "SELECT stranger FROM stranger_sighting WHERE at >= ?1
              GROUP BY stranger HAVING count(DISTINCT day) >= ?2
              ORDER BY count(DISTINCT day) DESC, max(at) DESC",
        )?
        .query_map(params![since, min_days], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.into_iter()
        .map(|id| summary(conn, id, &since))
        .collect()
}

/// Deletes sightings older than `days` (all of them when `days` is 0).
pub fn purge(conn: &Connection, days: u32) -> Result<usize> {
    let cutoff = stamp(Utc::now() - chrono::Duration::days(i64::from(days)));
    conn.execute("DELETE FROM stranger_sighting WHERE at < ?1", [cutoff])
        .context("cannot purge stranger sightings")
}

/// The stranger a sighting belongs to, for tests and the CLI.
pub fn stranger_of_event(conn: &Connection, event_seq: i64) -> Result<Option<i64>> {
    conn.query_row(
        "SELECT stranger FROM stranger_sighting WHERE event_seq = ?1",
        [event_seq],
        |r| r.get(0),
    )
    .optional()
    .context("cannot look up stranger sighting")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn scratch() -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!(
            "gh-strangers-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        (dir, store)
    }

    fn policy() -> StrangerPolicy {
        StrangerPolicy {
            threshold: 0.5,
            keep_days: 30,
            report_after_days: 3,
            utc_offset: FixedOffset::east_opt(8 * 3600).unwrap(),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn seen<'a>(when: &str, v: &'a [f32], snap: &'a str) -> Sighting<'a> {
        Sighting {
            at: at(when),
            gate: "east",
            model: "m",
            embedding: v,
            snapshot: Some(snap),
            event_seq: None,
        }
    }

    #[test]
    fn the_same_face_on_three_local_days_is_reported_once() {
        let (dir, store) = scratch();
        let c = store.conn();
        let p = policy();
        let face = [1.0, 0.0];
        let close = [0.96, 0.28];
        let other = [0.0, 1.0];
        // Day 1 (local), twice; the second visit the same day adds no day.
        assert_eq!(
            record(c, &seen("2026-11-01T01:00:00Z", &face, "a"), &p).unwrap(),
            None
        );
        assert_eq!(
            record(c, &seen("2026-11-01T09:00:00Z", &close, "b"), &p).unwrap(),
            None
        );
        // 23:30 UTC on the 1st is already the 2nd in Chengdu (UTC+8).
        assert_eq!(
            record(c, &seen("2026-11-01T23:30:00Z", &face, "c"), &p).unwrap(),
            None
        );
        // Someone else, on many days: a stranger of their own.
        assert_eq!(
            record(c, &seen("2026-11-03T02:00:00Z", &other, "x"), &p).unwrap(),
            None
        );
        let report = record(c, &seen("2026-11-05T02:00:00Z", &close, "d"), &p)
            .unwrap()
            .expect("third day reports");
        assert_eq!(report.days, 3);
        assert_eq!(report.sightings, 4);
        assert_eq!(report.gates, vec!["east".to_string()]);
        assert_eq!(report.snapshots, vec!["d", "c", "b"]);
        assert_eq!(report.first_seen, "2026-11-01T01:00:00.000Z");
        // A fourth day: already reported within the window.
        assert_eq!(
            record(c, &seen("2026-11-06T02:00:00Z", &face, "e"), &p).unwrap(),
            None
        );
        let listed = list(c, at("2026-10-01T00:00:00Z"), 2).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].stranger, report.stranger);
        assert_eq!(listed[0].days, 4);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn sightings_older_than_the_window_do_not_count_and_nothing_is_kept_at_zero_days() {
        let (dir, store) = scratch();
        let c = store.conn();
        let p = policy();
        let face = [1.0, 0.0];
        record(c, &seen("2026-01-01T02:00:00Z", &face, "old"), &p).unwrap();
        record(c, &seen("2026-01-02T02:00:00Z", &face, "old"), &p).unwrap();
        assert_eq!(
            record(c, &seen("2026-11-05T02:00:00Z", &face, "new"), &p).unwrap(),
            None
        );
        let count = || -> i64 {
            c.query_row("SELECT count(*) FROM stranger_sighting", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(), 3);
        assert_eq!(purge(c, 0).unwrap(), 3, "0 days keeps nothing");
        let off = StrangerPolicy { keep_days: 0, ..p };
        record(c, &seen("2026-11-05T02:00:00Z", &face, "n"), &off).unwrap();
        assert_eq!(count(), 0, "with stranger_days = 0 no face is kept");
        let _ = std::fs::remove_dir_all(dir);
    }
}
