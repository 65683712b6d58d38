//! The station commands' nonces (table `uplink_nonce`): a nonce seen once is
//! refused as a replay until its command's expiry is far enough behind the
//! trusted floor (the uplink's dispatcher decides when; this module keeps the rows).

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};

/// When `nonce` was first seen (RFC 3339), if it was.
pub fn seen_at(conn: &Connection, nonce: &str) -> Result<Option<String>> {
    conn.query_row(
        "SELECT seen_at FROM uplink_nonce WHERE nonce = ?1",
        [nonce],
        |r| r.get(0),
    )
    .optional()
    .context("cannot read the command nonces")
}

/// A command's nonce, kept until [`prune`] drops it.
pub struct SeenNonce<'a> {
    pub nonce: &'a str,
    pub officer: &'a str,
    pub command: &'a str,
    pub expires_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// Keeps a nonce (call inside the transaction that audits the command).
pub fn insert(conn: &Connection, n: &SeenNonce<'_>) -> Result<()> {
    conn.execute(
        "INSERT INTO uplink_nonce (nonce, officer, command, expires_at, seen_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![n.nonce, n.officer, n.command, rfc3339(n.expires_at), rfc3339(n.seen_at)],
    )
    .with_context(|| format!("cannot keep nonce {}", n.nonce))?;
    Ok(())
}

/// Drops nonces whose command expired before `before`.
pub fn prune(conn: &Connection, before: DateTime<Utc>) -> Result<usize> {
    conn.execute(
        "DELETE FROM uplink_nonce WHERE expires_at < ?1",
        [rfc3339(before)],
    )
    .context("cannot prune the command nonces")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
