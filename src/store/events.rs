//! The event log: append-only, hash-chained, and the outbox's source.
//!
//! [`append`] writes the event row and its outbox row in one transaction with
//! `synchronous=FULL`, so when it returns the event survives a power cut and
//! will reach the station. Each row's hash is sha256(previous hash ‖ canonical
//! JSON of the row's fields): editing, inserting or deleting a row in the
//! middle breaks the chain, which `verify_chain` detects.

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{GateId, ResidentId};
use crate::event::{EventReason, UnknownReason};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Access,
    Alarm,
    Device,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Access => "access",
            EventKind::Alarm => "alarm",
            EventKind::Device => "device",
        }
    }

    fn parse(s: &str) -> Option<EventKind> {
        match s {
            "access" => Some(EventKind::Access),
            "alarm" => Some(EventKind::Alarm),
            "device" => Some(EventKind::Device),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessResult {
    Granted,
    Denied,
}

impl AccessResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessResult::Granted => "granted",
            AccessResult::Denied => "denied",
        }
    }

    fn parse(s: &str) -> Option<AccessResult> {
        match s {
            "granted" => Some(AccessResult::Granted),
            "denied" => Some(AccessResult::Denied),
            _ => None,
        }
    }
}

/// What a caller knows about an event; the log adds seq, id and hashes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    pub clock_synced: bool,
    pub kind: Option<EventKind>,
    pub gate: Option<GateId>,
    /// `in` | `out`.
    pub direction: Option<String>,
    /// `card`, `pin`, `face`, `plate`, `remote`, `exit_button`, … ; alarms name their type in `reason`.
    pub credential_kind: Option<String>,
    pub credential_masked: Option<String>,
    pub subject_id: Option<ResidentId>,
    /// Masked name (`张*`), never the full name.
    pub subject_name: Option<String>,
    pub result: Option<AccessResult>,
    /// Machine-readable reason (`unknown_credential`, `lease_ended`, `forced_open`, …).
    pub reason: Option<EventReason>,
    pub score: Option<f32>,
    /// File name under `<data_dir>/snapshots/`.
    pub snapshot: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl NewEvent {
    /// An event of `kind` at `at`. The daemon stamps its events with its
    /// trusted clock (`daemon::Core::event`), never the kernel's.
    pub fn stamped(kind: EventKind, at: DateTime<Utc>, clock_synced: bool) -> NewEvent {
        NewEvent {
            at,
            clock_synced,
            kind: Some(kind),
            ..NewEvent::default()
        }
    }

    /// An event of `kind` at the system clock's now: for tests and their
    /// fixtures only. No product path calls it: the daemon stamps events with
    /// `Core::event` (the trusted time floor applies), the store's own alarms
    /// take their time from the caller ([`NewEvent::stamped`]).
    pub fn now(kind: EventKind, clock_synced: bool) -> NewEvent {
        NewEvent::stamped(kind, Utc::now(), clock_synced)
    }
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: i64,
    /// UUIDv7; the same on every redelivery.
    pub id: String,
    pub at: String,
    pub clock_synced: bool,
    pub kind: EventKind,
    pub gate: Option<String>,
    pub direction: Option<String>,
    pub credential_kind: Option<String>,
    pub credential_masked: Option<String>,
    pub subject_id: Option<i64>,
    pub subject_name: Option<String>,
    pub result: Option<AccessResult>,
    pub reason: Option<String>,
    pub score: Option<f64>,
    pub snapshot: Option<String>,
    pub detail: Option<serde_json::Value>,
    #[serde(skip)]
    pub prev_hash: Vec<u8>,
    #[serde(skip)]
    pub hash: Vec<u8>,
}

/// The hash a chain starts from.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// The columns, in the order `from_row` reads them.
pub const COLUMNS: &str =
    "seq, id, at, clock_synced, kind, gate, direction, credential_kind, credential_masked, \
     subject_id, subject_name, result, reason, score, snapshot, detail, prev_hash, hash";

/// The header of an event's CSV row ([`EventRecord::csv_row`]): `gatehouse
/// log --format csv` and the console's export (which adds its local time).
pub const CSV_COLUMNS: [&str; 14] = [
    "seq",
    "id",
    "at",
    "clock_synced",
    "kind",
    "gate",
    "direction",
    "credential_kind",
    "credential_masked",
    "subject_id",
    "subject_name",
    "result",
    "reason",
    "score",
];

impl EventRecord {
    /// The event as a CSV row, in [`CSV_COLUMNS`] order.
    pub fn csv_row(&self) -> [String; 14] {
        [
            self.seq.to_string(),
            self.id.clone(),
            self.at.clone(),
            self.clock_synced.to_string(),
            self.kind.as_str().to_string(),
            self.gate.clone().unwrap_or_default(),
            self.direction.clone().unwrap_or_default(),
            self.credential_kind.clone().unwrap_or_default(),
            self.credential_masked.clone().unwrap_or_default(),
            self.subject_id.map(|s| s.to_string()).unwrap_or_default(),
            self.subject_name.clone().unwrap_or_default(),
            self.result
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
            self.reason.clone().unwrap_or_default(),
            self.score.map(|s| format!("{s:.3}")).unwrap_or_default(),
        ]
    }

    pub fn from_row(row: &Row<'_>) -> rusqlite::Result<EventRecord> {
        let kind: String = row.get(4)?;
        let result: Option<String> = row.get(11)?;
        let detail: Option<String> = row.get(15)?;
        Ok(EventRecord {
            seq: row.get(0)?,
            id: row.get(1)?,
            at: row.get(2)?,
            clock_synced: row.get(3)?,
            kind: EventKind::parse(&kind).unwrap_or(EventKind::Device),
            gate: row.get(5)?,
            direction: row.get(6)?,
            credential_kind: row.get(7)?,
            credential_masked: row.get(8)?,
            subject_id: row.get(9)?,
            subject_name: row.get(10)?,
            result: result.as_deref().and_then(AccessResult::parse),
            reason: row.get(12)?,
            score: row.get(13)?,
            snapshot: row.get(14)?,
            detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
            prev_hash: row.get(16)?,
            hash: row.get(17)?,
        })
    }

    /// The stored reason as the type; a string this build does not know is
    /// an error (a newer writer, or an edited row), never a guess.
    pub fn parsed_reason(&self) -> Result<Option<EventReason>, UnknownReason> {
        self.reason.as_deref().map(str::parse).transpose()
    }

    /// The hash this row should carry, from its fields and `prev_hash`.
    pub fn compute_hash(&self) -> [u8; 32] {
        chain_hash(&self.prev_hash, &canonical_json(self))
    }
}

/// The fields covered by the chain, in a fixed order.
fn canonical_json(e: &EventRecord) -> String {
    serde_json::json!([
        e.seq,
        e.id,
        e.at,
        e.clock_synced,
        e.kind.as_str(),
        e.gate,
        e.direction,
        e.credential_kind,
        e.credential_masked,
        e.subject_id,
        e.subject_name,
        e.result.map(|r| r.as_str()),
        e.reason,
        e.score,
        e.snapshot,
        e.detail.as_ref().map(|d| d.to_string()),
    ])
    .to_string()
}

fn chain_hash(prev: &[u8], body: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(body.as_bytes());
    h.finalize().into()
}

/// Appends an event and queues it in the outbox, durably, in one transaction.
pub fn append(conn: &Connection, event: &NewEvent) -> Result<EventRecord> {
    // BEGIN IMMEDIATE (a savepoint inside a caller's transaction): the chain
    // is read and extended under the write lock, never from a stale snapshot.
    crate::store::atomic::atomically(conn, |tx| append_in(tx, event))
}

/// One event of a batch, with the visitor pass use it records (if any).
pub struct BatchItem<'a> {
    pub event: &'a NewEvent,
    pub visitor_use: Option<i64>,
}

/// Appends `items` in one `BEGIN IMMEDIATE` transaction (one sync for the
/// lot), each in a savepoint of its own so one bad event does not sink the
/// rest; per item its record or why it failed. `Err` when the transaction
/// itself failed (nothing was stored).
pub fn append_batch(
    conn: &mut Connection,
    items: &[BatchItem<'_>],
) -> Result<Vec<Result<EventRecord>>> {
    let mut tx = conn
        // IMMEDIATE: take the write lock first, so a concurrent writer
        // makes this wait (busy timeout), never fail mid-transaction.
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .context("cannot start event transaction")?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let sp = tx.savepoint().context("cannot start event savepoint")?;
        let written = (|| {
            if let Some(pass) = item.visitor_use {
                crate::store::snapshot::consume_visitor_use(&sp, pass)?;
            }
            append_in(&sp, item.event)
        })();
        match written {
            Ok(record) => {
                sp.commit().context("cannot release event savepoint")?;
                out.push(Ok(record));
            }
            Err(e) => {
                // Dropping the savepoint rolls this event back alone.
                drop(sp);
                out.push(Err(e));
            }
        }
    }
    tx.commit().context("cannot commit events")?;
    Ok(out)
}

/// Like [`append`], inside a transaction (or savepoint) the caller commits,
/// so an event and the register change it records (a visitor pass's use)
/// land together, and several events can share one commit.
pub fn append_in(tx: &Connection, event: &NewEvent) -> Result<EventRecord> {
    let record = EventRecord {
        seq: 0,
        id: uuid::Uuid::now_v7().to_string(),
        at: event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        clock_synced: event.clock_synced,
        kind: event.kind.unwrap_or(EventKind::Device),
        gate: event.gate.as_ref().map(|g| g.to_string()),
        direction: event.direction.clone(),
        credential_kind: event.credential_kind.clone(),
        credential_masked: event.credential_masked.clone(),
        subject_id: event.subject_id.map(|r| r.0),
        subject_name: event.subject_name.clone(),
        result: event.result,
        reason: event.reason.map(|r| r.as_str().to_string()),
        // Stored as REAL (f64); round-trip through f32 keeps hashes stable.
        score: event.score.map(f64::from),
        snapshot: event.snapshot.clone(),
        detail: event.detail.clone(),
        prev_hash: Vec::new(),
        hash: Vec::new(),
    };
    let record = chain_in(tx, record)?;
    let bytes = canonical_json(&record).len() as i64;
    tx.execute(
        "INSERT INTO outbox (seq, bytes) VALUES (?1, ?2)",
        params![record.seq, bytes],
    )
    .context("cannot queue event in the outbox")?;
    Ok(record)
}

/// Writes `record` as the next link of the chain (its `seq`, `prev_hash`
/// and `hash` are set here), without an outbox row: [`append_in`] for this
/// gateway's events, and the registry's copies of its site's gates' events
/// (`site_gates`), which each gate sends to the station itself.
pub fn chain_in(tx: &Connection, mut record: EventRecord) -> Result<EventRecord> {
    let last: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT seq, hash FROM event ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .context("cannot read the last event")?;
    (record.seq, record.prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_vec()),
    };
    record.hash = record.compute_hash().to_vec();
    let detail = record.detail.as_ref().map(|d| d.to_string());
    tx.execute(
        &format!("INSERT INTO event ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"),
        params![
            record.seq,
            record.id,
            record.at,
            record.clock_synced,
            record.kind.as_str(),
            record.gate,
            record.direction,
            record.credential_kind,
            record.credential_masked,
            record.subject_id,
            record.subject_name,
            record.result.map(|r| r.as_str()),
            record.reason,
            record.score,
            record.snapshot,
            detail,
            record.prev_hash,
            record.hash,
        ],
    )
    .context("cannot write event")?;
    Ok(record)
}

/// Which events a query wants; `None` fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Inclusive lower bound on `at` (RFC 3339 UTC).
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `at`.
    pub until: Option<DateTime<Utc>>,
    pub gate: Option<String>,
    pub subject_id: Option<i64>,
    pub result: Option<AccessResult>,
    pub kind: Option<EventKind>,
    pub credential_kind: Option<String>,
    /// Only events with a larger seq (pagination cursor).
    pub after_seq: Option<i64>,
    /// At most this many rows (oldest first, or newest first with `newest_first`).
    pub limit: Option<u32>,
    /// Newest first: the last `limit` matches rather than the first.
    #[serde(default)]
    pub newest_first: bool,
}

/// Events matching `filter`, oldest first (unless `newest_first`).
pub fn query(conn: &Connection, filter: &EventFilter) -> Result<Vec<EventRecord>> {
    let mut sql = format!("SELECT {COLUMNS} FROM event WHERE 1=1");
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    let mut push = |clause: &str, value: Box<dyn rusqlite::ToSql>| {
        args.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(t) = filter.since {
        push(
            "at >=",
            Box::new(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
    }
    if let Some(t) = filter.until {
        push(
            "at <",
            Box::new(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
    }
    if let Some(g) = &filter.gate {
        push("gate =", Box::new(g.clone()));
    }
    if let Some(s) = filter.subject_id {
        push("subject_id =", Box::new(s));
    }
    if let Some(r) = filter.result {
        push("result =", Box::new(r.as_str()));
    }
    if let Some(k) = filter.kind {
        push("kind =", Box::new(k.as_str()));
    }
    if let Some(c) = &filter.credential_kind {
        push("credential_kind =", Box::new(c.clone()));
    }
    if let Some(after) = filter.after_seq {
        push("seq >", Box::new(after));
    }
    sql.push_str(if filter.newest_first {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq"
    });
    if let Some(limit) = filter.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    let mut stmt = conn.prepare(&sql).context("cannot prepare event query")?;
    let rows = stmt
        .query_map(
            rusqlite::params_from_iter(args.iter().map(|b| b.as_ref())),
            EventRecord::from_row,
        )
        .context("cannot query events")?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot read events")
}

/// A break in the hash chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub problem: String,
}

/// Walks the whole log and reports every row whose hash or link is wrong.
/// The oldest remaining row anchors the chain (retention deletes from the start).
/// Events at or after `since`, oldest first (for rebuilding the access
/// The snapshot file named by the event with this id: `None` when there is no
/// such event, `Some(None)` when it has no picture.
pub fn snapshot_of(conn: &Connection, event_id: &str) -> Result<Option<Option<String>>> {
    conn.query_row(
        "SELECT snapshot FROM event WHERE id = ?1",
        [event_id],
        |r| r.get(0),
    )
    .optional()
    .with_context(|| format!("cannot read event {event_id}"))
}

/// state after a restart; served by the `event_at` index).
pub fn since(conn: &Connection, since: DateTime<Utc>) -> Result<Vec<EventRecord>> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM event WHERE at >= ?1 AND kind IN ('access', 'alarm') ORDER BY seq"
        ))
        .context("cannot prepare recent events read")?;
    let rows = stmt
        .query_map(
            [since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)],
            EventRecord::from_row,
        )
        .context("cannot read recent events")?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot read recent events")
}

pub fn verify_chain(conn: &Connection) -> Result<(u64, Vec<ChainBreak>)> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM event ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut checked = 0u64;
    let mut breaks = Vec::new();
    let mut previous: Option<(i64, Vec<u8>)> = None;
    while let Some(row) = rows.next()? {
        let e = EventRecord::from_row(row)?;
        checked += 1;
        if e.compute_hash().as_slice() != e.hash.as_slice() {
            breaks.push(ChainBreak {
                seq: e.seq,
                problem: "row content does not match its hash (edited)".into(),
            });
        }
        if let Some((prev_seq, prev_hash)) = &previous {
            if e.seq != prev_seq + 1 {
                breaks.push(ChainBreak {
                    seq: e.seq,
                    problem: format!("rows {} to {} are missing", prev_seq + 1, e.seq - 1),
                });
            } else if &e.prev_hash != prev_hash {
                breaks.push(ChainBreak {
                    seq: e.seq,
                    problem: "does not link to the previous row's hash".into(),
                });
            }
        }
        previous = Some((e.seq, e.hash.clone()));
    }
    Ok((checked, breaks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn scratch() -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!(
            "gh-events-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        (dir, store)
    }

    #[test]
    fn append_chains_rows_and_queues_them() {
        let (dir, store) = scratch();
        let mut e = NewEvent::now(EventKind::Access, true);
        e.gate = Some("east".parse().unwrap());
        e.result = Some(AccessResult::Granted);
        e.score = Some(0.61);
        let a = append(store.conn(), &e).unwrap();
        let b = append(store.conn(), &e).unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.prev_hash, GENESIS.to_vec());
        assert_eq!(b.prev_hash, a.hash);
        assert_ne!(a.id, b.id);
        let stored: EventRecord = store
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM event WHERE seq = 2"),
                [],
                EventRecord::from_row,
            )
            .unwrap();
        assert_eq!(
            stored.compute_hash().to_vec(),
            stored.hash,
            "hash must survive the round trip"
        );
        let queued: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(queued, 2);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn verify_chain_detects_an_edited_row() {
        let (dir, store) = scratch();
        let mut e = NewEvent::now(EventKind::Access, true);
        e.result = Some(AccessResult::Denied);
        for _ in 0..3 {
            append(store.conn(), &e).unwrap();
        }
        assert_eq!(verify_chain(store.conn()).unwrap(), (3, vec![]));
        store
            .conn()
            .execute("UPDATE event SET result = 'granted' WHERE seq = 2", [])
            .unwrap();
        let (_, breaks) = verify_chain(store.conn()).unwrap();
        assert_eq!(breaks.len(), 1);
        assert_eq!(breaks[0].seq, 2);
        let denied = query(
            store.conn(),
            &EventFilter {
                result: Some(AccessResult::Denied),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(denied.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 3]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
