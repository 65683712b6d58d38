//! The site's register change log (issue 17, migration 012): on the registry,
//! every register change becomes an entry with a sequence number; on a gate,
//! entries are applied in order and local register changes are refused.
//!
//! Both sides are enforced by triggers that [`configure`] makes for the
//! configured role, so no caller (CLI, console, import, face enrolment, the
//! uplink's watchlist) can forget: on the registry, capture triggers note each
//! changed row in `site_pending` inside the changing transaction, and [`seal`]
//! (called by `atomically` before it commits, and by the registry's publisher
//! for writes that do not go through it) turns them into the next entry; on a
//! gate, guard triggers abort any register write outside [`apply_entry`] /
//! [`apply_snapshot`] with an error naming the registry's site.
//!
//! An entry holds the full new state of each changed row, or its deletion by
//! key, so applying it twice is applying it once. What never crosses the LAN:
//! ID-number hashes (keyed by the registry's own secret, useless elsewhere)
//! and encrypted face crops; faces travel as embeddings with their model name.

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::SiteRole;

/// Register tables with an `id` key, parents first: upserts are applied in
/// this order, deletions in the reverse. Access groups carry their windows
/// and members with them.
pub const TABLES: &[&str] = &[
    "address",
    "household",
    "person",
    "access_group",
    "card",
    "vehicle",
    "visitor_pass",
    "face",
    "watchlist",
];

/// A group's children: changed and replicated as part of their group.
const GROUP_CHILDREN: &[&str] = &["access_group_window", "access_group_member"];

/// Columns a gate may change itself: a visitor pass's remaining uses (spent
/// at its own keypad) and a face's stale flag (its own embedder).
const GATE_LOCAL_COLUMNS: &[(&str, &str)] = &[("visitor_pass", "uses_left"), ("face", "stale")];

/// Entry format version.
pub const VERSION: u32 = 1;

/// One change in an entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// The row's full new state (and, for an access group, all its windows and members).
    Upsert {
        table: String,
        row: Map<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        windows: Option<Vec<Map<String, Value>>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        members: Option<Vec<Map<String, Value>>>,
    },
    Delete {
        table: String,
        id: i64,
    },
}

/// One register change of the site, as signed by the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub v: u32,
    pub site: String,
    pub seq: i64,
    pub at: String,
    pub changes: Vec<Change>,
}

/// The whole register at `seq`, for a gate behind the compacted log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub v: u32,
    pub site: String,
    pub seq: i64,
    pub at: String,
    /// Table name → rows, including the group children.
    pub tables: Map<String, Value>,
}

/// A stored entry: its canonical body and signature (None until signed).
#[derive(Clone, Debug)]
pub struct StoredEntry {
    pub seq: i64,
    pub body: String,
    pub sig: Option<String>,
}

/// What `gate status` and `doctor` show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    pub role: String,
    pub site_id: Option<String>,
    /// Gate: the last entry applied; registry: the newest entry.
    pub seq: i64,
    /// Gate: when the last entry was applied.
    pub applied_at: Option<String>,
    /// Registry: entries up to here were compacted away.
    pub compacted_through: i64,
}

/// Makes the triggers of `role` (dropping any other role's) and records the
/// role and site. Cheap when nothing changed: gateways call it at every open.
pub fn configure(conn: &Connection, role: SiteRole, site_id: &str) -> Result<()> {
    let (stored_role, stored_site): (String, Option<String>) = conn
        .query_row(
            "SELECT role, site_id FROM site_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("cannot read the site role")?;
    let triggers: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'site\\_%' ESCAPE '\\'",
        [],
        |r| r.get(0),
    )?;
    let wanted = expected_trigger_count(role);
    // A standalone gateway has no site in the database (and writes nothing at open).
    let site = (role != SiteRole::Standalone).then_some(site_id);
    if stored_role == role.as_str() && stored_site.as_deref() == site && triggers == wanted {
        return Ok(());
    }
    super::atomic::atomically(conn, |conn| {
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'site\\_%' ESCAPE '\\'")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for name in names {
            conn.execute_batch(&format!("DROP TRIGGER IF EXISTS \"{name}\""))?;
        }
        conn.execute(
            "UPDATE site_state SET role = ?1, site_id = ?2 WHERE id = 1",
            params![role.as_str(), site],
        )?;
        let sql = match role {
            SiteRole::Standalone => String::new(),
            SiteRole::Registry => capture_triggers(),
            SiteRole::Gate => guard_triggers(conn, site_id)?,
        };
        conn.execute_batch(&sql)
            .context("cannot create the site triggers")?;
        Ok(())
    })
    .with_context(|| format!("cannot set the site role to {}", role.as_str()))
}

/// Insert, update and delete triggers on every register table, for either role.
fn expected_trigger_count(role: SiteRole) -> i64 {
    match role {
        SiteRole::Standalone => 0,
        SiteRole::Registry => 3 * (TABLES.len() + GROUP_CHILDREN.len()) as i64,
        // And the one noting visitor uses spent here.
        SiteRole::Gate => 3 * (TABLES.len() + GROUP_CHILDREN.len()) as i64 + 1,
    }
}

/// AFTER triggers noting (table, key) of every changed register row.
fn capture_triggers() -> String {
    let mut sql = String::new();
    let mut add = |table: &str, tbl: &str, new_key: &str, old_key: &str| {
        for (suffix, event, keys) in [
            ("ai", "INSERT", vec![new_key]),
            ("au", "UPDATE", vec![old_key, new_key]),
            ("ad", "DELETE", vec![old_key]),
        ] {
            let inserts: String = keys
                .iter()
                .map(|k| format!("INSERT INTO site_pending (tbl, key) VALUES ('{tbl}', {k}); "))
                .collect();
            sql.push_str(&format!(
                "CREATE TRIGGER site_capture_{table}_{suffix} AFTER {event} ON {table} BEGIN {inserts}END;\n"
            ));
        }
    };
    for table in TABLES {
        add(table, table, "NEW.id", "OLD.id");
    }
    for table in GROUP_CHILDREN {
        add(table, "access_group", "NEW.group_id", "OLD.group_id");
    }
    sql
}

/// BEFORE triggers refusing register writes outside an apply transaction.
fn guard_triggers(conn: &Connection, site_id: &str) -> Result<String> {
    let message = format!(
        "this gateway is a gate of site {site_id}: the register is changed at the site registry, not here"
    )
    .replace('\'', "''");
    let when = "WHEN (SELECT applying FROM site_state WHERE id = 1) = 0";
    let mut sql = String::new();
    for table in TABLES.iter().chain(GROUP_CHILDREN) {
        let local: Vec<&str> = GATE_LOCAL_COLUMNS
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, c)| *c)
            .collect();
        let update = if local.is_empty() {
            "UPDATE".to_string()
        } else {
            let columns: Vec<String> = columns_of(conn, table)?
                .into_iter()
                .filter(|c| !local.contains(&c.as_str()))
                .collect();
            format!("UPDATE OF {}", columns.join(", "))
        };
        if *table == "visitor_pass" {
            // A use spent here (not one applied from the registry) is reported to it.
            sql.push_str(&format!(
                "CREATE TRIGGER site_uses_visitor_pass AFTER UPDATE OF uses_left ON visitor_pass \
                 {when} AND NEW.uses_left IS NOT NULL AND NEW.uses_left IS NOT OLD.uses_left \
                 BEGIN INSERT INTO site_uses (pass_id, uses_left) VALUES (NEW.id, NEW.uses_left); END;\n"
            ));
        }
        for (suffix, event) in [
            ("bi", "INSERT".to_string()),
            ("bu", update),
            ("bd", "DELETE".into()),
        ] {
            sql.push_str(&format!(
                "CREATE TRIGGER site_guard_{table}_{suffix} BEFORE {event} ON {table} {when} \
                 BEGIN SELECT RAISE(ABORT, '{message}'); END;\n"
            ));
        }
    }
    Ok(sql)
}

fn columns_of(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let columns: Vec<String> = conn
        .prepare(&format!("PRAGMA table_info({table})"))?
        .query_map([], |r| r.get(1))?
        .collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        bail!("no register table {table:?}");
    }
    Ok(columns)
}

/// Turns the pending changes into the next entry, inside the caller's
/// transaction. Returns its seq, or None when nothing was pending.
pub fn seal(conn: &Connection) -> Result<Option<i64>> {
    let pending: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM site_pending)")?
        .query_row([], |r| r.get(0))
        .context("cannot read the pending site changes")?;
    if !pending {
        return Ok(None);
    }
    let site: Option<String> =
        conn.query_row("SELECT site_id FROM site_state WHERE id = 1", [], |r| {
            r.get(0)
        })?;
    let keys: Vec<(String, i64)> = conn
        .prepare("SELECT tbl, key FROM site_pending GROUP BY tbl, key ORDER BY min(id)")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut changes = Vec::with_capacity(keys.len());
    for (table, key) in keys {
        changes.push(current_state(conn, &table, key)?);
    }
    order(&mut changes);
    let seq = head(conn)? + 1;
    let entry = Entry {
        v: VERSION,
        site: site.unwrap_or_default(),
        seq,
        at: super::now_rfc3339(),
        changes,
    };
    let body = canonical(&entry)?;
    conn.execute(
        "INSERT INTO site_log (seq, at, body) VALUES (?1, ?2, ?3)",
        params![seq, entry.at, body],
    )
    .context("cannot append to the site log")?;
    conn.execute("DELETE FROM site_pending", [])?;
    Ok(Some(seq))
}

/// Seals whatever is pending in a transaction of its own (writes that did not
/// go through `atomically`: face enrolment, addresses, the watchlist).
pub fn seal_pending(conn: &Connection) -> Result<Option<i64>> {
    super::atomic::atomically(conn, seal)
}

/// The canonical JSON (RFC 8785) of a value: the bytes that are signed.
pub fn canonical<T: Serialize>(value: &T) -> Result<String> {
    let value = serde_json::to_value(value).context("cannot serialise a site log entry")?;
    Ok(crate::signing::canonical::to_string(&value))
}

/// Deletions first (children before parents), then upserts parents first.
fn order(changes: &mut [Change]) {
    let rank = |c: &Change| -> (u8, i64) {
        match c {
            Change::Delete { table, .. } => (0, -(table_rank(table) as i64)),
            Change::Upsert { table, .. } => (1, table_rank(table) as i64),
        }
    };
    changes.sort_by_key(rank);
}

fn table_rank(table: &str) -> usize {
    TABLES
        .iter()
        .position(|t| *t == table)
        .unwrap_or(TABLES.len())
}

/// The row's state now: an upsert of its full row, or its deletion.
fn current_state(conn: &Connection, table: &str, id: i64) -> Result<Change> {
    if !TABLES.contains(&table) {
        bail!("site_pending names an unknown table {table:?}");
    }
    let Some(row) = read_rows(conn, table, "id = ?1", id)?.into_iter().next() else {
        return Ok(Change::Delete {
            table: table.to_string(),
            id,
        });
    };
    let (windows, members) = if table == "access_group" {
        (
            Some(read_rows(conn, "access_group_window", "group_id = ?1", id)?),
            Some(read_rows(conn, "access_group_member", "group_id = ?1", id)?),
        )
    } else {
        (None, None)
    };
    Ok(Change::Upsert {
        table: table.to_string(),
        row,
        windows,
        members,
    })
}

fn read_rows(
    conn: &Connection,
    table: &str,
    filter: &str,
    key: i64,
) -> Result<Vec<Map<String, Value>>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT * FROM {table} WHERE {filter} ORDER BY rowid"
    ))?;
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let rows = stmt
        .query_map([key], |r| row_to_json(table, &names, r))?
        .collect::<rusqlite::Result<_>>()
        .with_context(|| format!("cannot read {table}"))?;
    Ok(rows)
}

fn all_rows(conn: &Connection, table: &str) -> Result<Vec<Value>> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))?;
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let rows = stmt
        .query_map([], |r| row_to_json(table, &names, r).map(Value::Object))?
        .collect::<rusqlite::Result<_>>()
        .with_context(|| format!("cannot read {table}"))?;
    Ok(rows)
}

fn row_to_json(
    table: &str,
    names: &[String],
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Map<String, Value>> {
    let mut out = Map::new();
    for (i, name) in names.iter().enumerate() {
        let value: SqlValue = row.get(i)?;
        out.insert(name.clone(), redacted(table, name, value));
    }
    Ok(out)
}

/// A column's value as it crosses the LAN.
fn redacted(table: &str, column: &str, value: SqlValue) -> Value {
    match (table, column, value) {
        // Keyed by the registry's own device secret: meaningless at a gate.
        ("person", "id_hash", _) => Value::Null,
        // Biometric data leaves only as the embedding; the crop stays at the registry.
        ("face", "crop", _) => blob(&[]),
        (_, _, SqlValue::Null) => Value::Null,
        (_, _, SqlValue::Integer(i)) => Value::from(i),
        (_, _, SqlValue::Real(f)) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        (_, _, SqlValue::Text(s)) => Value::String(s),
        (_, _, SqlValue::Blob(b)) => blob(&b),
    }
}

fn blob(bytes: &[u8]) -> Value {
    let mut m = Map::new();
    m.insert("b64".into(), Value::String(B64.encode(bytes)));
    Value::Object(m)
}

fn to_sql(table: &str, column: &str, value: &Value) -> Result<SqlValue> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Object(m) => match m.get("b64").and_then(Value::as_str) {
            Some(text) if m.len() == 1 => SqlValue::Blob(
                B64.decode(text)
                    .with_context(|| format!("{table}.{column}: not base64"))?,
            ),
            _ => bail!("{table}.{column}: expected a value or {{\"b64\": …}}"),
        },
        Value::Array(_) => bail!("{table}.{column}: an array is not a column value"),
    })
}

/// The newest seq (0 for an empty log).
pub fn head(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT max(coalesce((SELECT max(seq) FROM site_log), 0), compacted_through)
             FROM site_state WHERE id = 1",
        )?
        .query_row([], |r| r.get(0))?)
}

/// Entries not yet signed, oldest first.
pub fn unsigned(conn: &Connection) -> Result<Vec<StoredEntry>> {
    entries_where(conn, "sig IS NULL", 0, i64::MAX)
}

/// Records the registry's signature of an entry.
pub fn set_signature(conn: &Connection, seq: i64, sig: &str) -> Result<()> {
    conn.execute(
        "UPDATE site_log SET sig = ?2 WHERE seq = ?1 AND sig IS NULL",
        params![seq, sig],
    )
    .with_context(|| format!("cannot store the signature of site log entry {seq}"))?;
    Ok(())
}

/// Signed entries after `after`, oldest first, at most `limit`.
pub fn entries_after(conn: &Connection, after: i64, limit: usize) -> Result<Vec<StoredEntry>> {
    entries_where(conn, "seq > ?1 AND sig IS NOT NULL", after, limit as i64)
}

fn entries_where(
    conn: &Connection,
    filter: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEntry>> {
    let sql = format!(
        "SELECT seq, body, sig FROM site_log WHERE {filter} AND seq > ?1 ORDER BY seq LIMIT ?2"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![after, limit], |r| {
            Ok(StoredEntry {
                seq: r.get(0)?,
                body: r.get(1)?,
                sig: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()
        .context("cannot read the site log")?;
    Ok(rows)
}

/// The first seq still in the log after compaction (a gate that applied less
/// than this minus one needs the snapshot).
pub fn compacted_through(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT compacted_through FROM site_state WHERE id = 1",
        [],
        |r| r.get(0),
    )?)
}

/// Drops all but the newest `keep` entries (the snapshot stands for them).
pub fn compact(conn: &Connection, keep: i64) -> Result<i64> {
    super::atomic::atomically(conn, |conn| {
        let upto = (head(conn)? - keep.max(0)).max(compacted_through(conn)?);
        conn.execute("DELETE FROM site_log WHERE seq <= ?1", [upto])?;
        conn.execute(
            "UPDATE site_state SET compacted_through = ?1 WHERE id = 1",
            [upto],
        )?;
        Ok(upto)
    })
    .context("cannot compact the site log")
}

/// The whole register now, as the snapshot at the newest seq (anything
/// pending is sealed first, so the two agree).
pub fn snapshot(conn: &Connection) -> Result<(Snapshot, String)> {
    super::atomic::atomically(conn, |conn| {
        seal(conn)?;
        let site: Option<String> =
            conn.query_row("SELECT site_id FROM site_state WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        let mut tables = Map::new();
        for table in TABLES.iter().chain(GROUP_CHILDREN) {
            tables.insert(table.to_string(), Value::Array(all_rows(conn, table)?));
        }
        let snapshot = Snapshot {
            v: VERSION,
            site: site.unwrap_or_default(),
            seq: head(conn)?,
            at: super::now_rfc3339(),
            tables,
        };
        let body = canonical(&snapshot)?;
        Ok((snapshot, body))
    })
    .context("cannot take a snapshot of the register")
}

/// This gateway's place in the site.
pub fn status(conn: &Connection) -> Result<Status> {
    let (role, site_id, applied_seq, applied_at, compacted_through): (
        String,
        Option<String>,
        i64,
        Option<String>,
        i64,
    ) = conn
        .query_row(
            "SELECT role, site_id, applied_seq, applied_at, compacted_through FROM site_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .context("cannot read the site state")?;
    let seq = if role == "registry" {
        head(conn)?
    } else {
        applied_seq
    };
    Ok(Status {
        role,
        site_id,
        seq,
        applied_at,
        compacted_through,
    })
}

/// A visitor-pass use a gate spent: the pass and its uses left after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorUse {
    pub pass: i64,
    pub uses_left: i64,
}

/// Gate: the uses spent here and not yet reported, oldest first, with the
/// row id to [`clear_uses`] through.
pub fn unreported_uses(conn: &Connection) -> Result<(i64, Vec<VisitorUse>)> {
    let rows: Vec<(i64, VisitorUse)> = conn
        .prepare_cached("SELECT id, pass_id, uses_left FROM site_uses ORDER BY id")?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                VisitorUse {
                    pass: r.get(1)?,
                    uses_left: r.get(2)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()
        .context("cannot read the visitor uses to report")?;
    let upto = rows.last().map(|(id, _)| *id).unwrap_or(0);
    Ok((upto, rows.into_iter().map(|(_, u)| u).collect()))
}

/// Gate → registry: every use spent here and not yet acknowledged, up to row
/// `upto` of `site_uses`. Each report carries them all, so a lost one is
/// covered by the next; `batch` names it for the acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UseReport {
    pub batch: String,
    pub upto: i64,
    pub uses: Vec<VisitorUse>,
}

/// Registry → gate, retained: the report `batch` is merged (committed), so
/// the gate forgets its rows through `upto`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UseAck {
    pub batch: String,
    pub upto: i64,
}

/// Registry: merges every use of a gate's report ([`merge_use`] each, so a
/// repeated report changes nothing); how many lowered a pass.
pub fn merge_uses(conn: &Connection, gate: &str, report: &UseReport) -> Result<usize> {
    let mut lowered = 0;
    for u in &report.uses {
        if merge_use(conn, gate, *u)? {
            lowered += 1;
        }
    }
    Ok(lowered)
}

/// Gate: forgets the uses reported, up to row `upto`.
pub fn clear_uses(conn: &Connection, upto: i64) -> Result<()> {
    conn.execute("DELETE FROM site_uses WHERE id <= ?1", [upto])
        .context("cannot clear the reported visitor uses")?;
    Ok(())
}

/// Registry: takes a gate's report of a pass's uses left. Uses only go down,
/// so the lower count wins and a repeated report changes nothing; a change
/// becomes an entry like any other and reaches every gate. True if it lowered.
pub fn merge_use(conn: &Connection, gate: &str, report: VisitorUse) -> Result<bool> {
    super::atomic::atomically(conn, |conn| {
        let n = conn.execute(
            "UPDATE visitor_pass SET uses_left = max(?2, 0)
             WHERE id = ?1 AND uses_left IS NOT NULL AND uses_left > max(?2, 0)",
            params![report.pass, report.uses_left],
        )?;
        if n > 0 {
            super::Store::audit(
                conn,
                &format!("site:{gate}"),
                "visitor.use",
                Some(&report.pass.to_string()),
                Some(&serde_json::json!({ "uses_left": report.uses_left })),
            )?;
        }
        Ok(n > 0)
    })
    .with_context(|| {
        format!(
            "cannot record gate {gate}'s use of visitor pass {}",
            report.pass
        )
    })
}

/// [`status`] of the database at `db_path`, opened read-only (`doctor`,
/// `gate status`: nothing is created or migrated).
pub fn status_at(db_path: &std::path::Path) -> Result<Status> {
    let conn = Connection::open_with_flags(
        db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open database {}", db_path.display()))?;
    status(&conn).with_context(|| format!("{}", db_path.display()))
}

/// The last entry a gate applied.
pub fn applied_seq(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT applied_seq FROM site_state WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
}

/// Applies one verified entry, which must be the next one, in one
/// transaction; its changes and the new applied seq land together.
pub fn apply_entry(conn: &Connection, entry: &Entry) -> Result<()> {
    within_apply(conn, entry.seq, |conn| {
        let applied = applied_seq(conn)?;
        if entry.seq != applied + 1 {
            bail!("entry {} does not follow the applied {applied}", entry.seq);
        }
        for change in &entry.changes {
            apply_change(conn, change)?;
        }
        Ok(())
    })
    .with_context(|| format!("cannot apply site log entry {}", entry.seq))
}

/// Replaces the whole register with a verified snapshot, in one transaction.
pub fn apply_snapshot(conn: &Connection, snapshot: &Snapshot) -> Result<()> {
    within_apply(conn, snapshot.seq, |conn| {
        for table in GROUP_CHILDREN.iter().chain(TABLES.iter().rev()) {
            conn.execute(&format!("DELETE FROM {table}"), [])?;
        }
        for table in TABLES.iter().chain(GROUP_CHILDREN) {
            let rows = match snapshot.tables.get(*table) {
                Some(Value::Array(rows)) => rows,
                None => continue,
                Some(_) => bail!("snapshot table {table} is not a list of rows"),
            };
            for row in rows {
                let Value::Object(row) = row else {
                    bail!("snapshot table {table}: a row is not an object");
                };
                insert_row(conn, table, row, false)?;
            }
        }
        Ok(())
    })
    .with_context(|| format!("cannot apply the register snapshot at {}", snapshot.seq))
}

fn within_apply(
    conn: &Connection,
    seq: i64,
    f: impl FnOnce(&Connection) -> Result<()>,
) -> Result<()> {
    super::atomic::atomically(conn, |conn| {
        // Checked at commit, so rows may arrive in any order within the change.
        conn.pragma_update(None, "defer_foreign_keys", true)?;
        conn.execute("UPDATE site_state SET applying = 1 WHERE id = 1", [])?;
        f(conn)?;
        conn.execute(
            "UPDATE site_state SET applying = 0, applied_seq = ?1, applied_at = ?2 WHERE id = 1",
            params![seq, super::now_rfc3339()],
        )?;
        Ok(())
    })
}

fn apply_change(conn: &Connection, change: &Change) -> Result<()> {
    match change {
        Change::Delete { table, id } => {
            let table = known_table(table)?;
            conn.execute(&format!("DELETE FROM {table} WHERE id = ?1"), [id])
                .with_context(|| format!("cannot delete {table} {id}"))?;
        }
        Change::Upsert {
            table,
            row,
            windows,
            members,
        } => {
            let table = known_table(table)?;
            insert_row(conn, table, row, true)?;
            if table == "access_group" {
                let id = row
                    .get("id")
                    .and_then(Value::as_i64)
                    .context("access_group row without an id")?;
                for (child, rows) in GROUP_CHILDREN.iter().zip([windows, members]) {
                    conn.execute(&format!("DELETE FROM {child} WHERE group_id = ?1"), [id])?;
                    for r in rows.iter().flatten() {
                        insert_row(conn, child, r, false)?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn known_table(table: &str) -> Result<&'static str> {
    TABLES
        .iter()
        .find(|t| **t == table)
        .copied()
        .with_context(|| format!("unknown register table {table:?}"))
}

/// Inserts a row (as an upsert on `id` when `upsert`); only the table's own
/// columns are accepted, so a signed entry still cannot name SQL.
fn insert_row(
    conn: &Connection,
    table: &str,
    row: &Map<String, Value>,
    upsert: bool,
) -> Result<()> {
    let known = columns_of(conn, table)?;
    let mut columns = Vec::with_capacity(row.len());
    let mut values = Vec::with_capacity(row.len());
    for (column, value) in row {
        if !known.contains(column) {
            bail!("{table} has no column {column:?}");
        }
        columns.push(column.as_str());
        values.push(to_sql(table, column, value)?);
    }
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let mut sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(", "),
        placeholders.join(", ")
    );
    if upsert {
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| **c != "id")
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        if updates.is_empty() {
            sql.push_str(" ON CONFLICT(id) DO NOTHING");
        } else {
            sql.push_str(&format!(
                " ON CONFLICT(id) DO UPDATE SET {}",
                updates.join(", ")
            ));
        }
    }
    conn.prepare_cached(&sql)?
        .execute(rusqlite::params_from_iter(values))
        .with_context(|| format!("cannot write {table} row"))?;
    Ok(())
}

/// One stored entry by seq (tests, the registry's answers).
pub fn entry(conn: &Connection, seq: i64) -> Result<Option<StoredEntry>> {
    conn.query_row(
        "SELECT seq, body, sig FROM site_log WHERE seq = ?1",
        [seq],
        |r| {
            Ok(StoredEntry {
                seq: r.get(0)?,
                body: r.get(1)?,
                sig: r.get(2)?,
            })
        },
    )
    .optional()
    .context("cannot read the site log")
}

/// A digest of the replicated register, equal on the registry and on every
/// gate that has applied the same seq (what `snapshot` would send).
pub fn register_hash(conn: &Connection) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for table in TABLES.iter().chain(GROUP_CHILDREN) {
        hasher.update(table.as_bytes());
        for row in all_rows(conn, table)? {
            let row = match (*table, row) {
                // Gate-local columns do not count toward divergence.
                ("face", Value::Object(mut m)) => {
                    m.remove("stale");
                    Value::Object(m)
                }
                (_, row) => row,
            };
            hasher.update(crate::signing::canonical::to_string(&row).as_bytes());
        }
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
