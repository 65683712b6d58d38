//! The local SQLite database: registers, events, audit. The gate works from
//! this file with the network down.
//!
//! Architecture Invariant: every read and write of the database goes through
//! this module's functions (the CLI, the daemon and the console share them);
//! one writer connection per process, short transactions, WAL so readers never
//! block the gate.

pub mod addresses;
pub mod atomic;
pub mod cards;
pub mod console;
pub mod events;
pub mod faces;
pub mod groups;
mod migrations;
pub mod outbox;
pub mod people;
pub mod retention;
pub mod secret;
pub mod snapshot;
pub mod station_queries;
pub mod strangers;
pub mod trusted_time;
pub mod vehicles;
pub mod visitors;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OpenFlags};

pub use secret::DeviceSecret;

/// An open database plus the device secret that keys its hashes.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    secret: DeviceSecret,
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir`, applies pending
    /// migrations and loads (or creates) the device secret beside it.
    pub fn open(db_path: &Path, data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let secret = DeviceSecret::load_or_create(data_dir)?;
        let conn = Connection::open_with_flags(
            db_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open database {}", db_path.display()))?;
        configure(&conn)
            .with_context(|| format!("cannot configure database {}", db_path.display()))?;
        let mut store = Store {
            conn,
            path: db_path.to_path_buf(),
            secret,
        };
        migrations::apply(&mut store.conn)
            .with_context(|| format!("cannot migrate database {}", db_path.display()))?;
        Ok(store)
    }

    /// Opens the database named by a config (after `--data-dir` was applied).
    pub fn open_config(config: &crate::config::Config) -> Result<Store> {
        Store::open(&config.database_path(), config.data_dir())
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn secret(&self) -> &DeviceSecret {
        &self.secret
    }

    /// Records who did what. Call inside the transaction that made the change,
    /// so a change and its audit row land together or not at all.
    pub fn audit(
        conn: &Connection,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Option<&serde_json::Value>,
    ) -> Result<()> {
        conn.execute(
            "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                now_rfc3339(),
                actor,
                action,
                subject,
                detail.map(|d| d.to_string())
            ],
        )
        .context("cannot write audit row")?;
        Ok(())
    }

    /// Schema version after migrations (for `doctor` and tests).
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: an event acknowledged to the caller survives a power cut.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Deleted or overwritten personal data is zeroed on disk, not left in free pages.
    conn.pragma_update(None, "secure_delete", true)?;
    // The gate's lookups and the event writer reuse a few dozen statements.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The current instant as stored in the database: RFC 3339 UTC, milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Who is running this command, for audit rows written by the CLI.
pub fn os_user() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .map(|u| format!("os:{u}"))
        .unwrap_or_else(|_| "os:unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_a_fresh_database_with_foreign_keys_and_wal() {
        let dir = std::env::temp_dir().join(format!("gh-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        let fk: i64 = store
            .conn()
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        let mode: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        assert_eq!(mode, "wal");
        assert_eq!(store.schema_version().unwrap(), migrations::count());
        drop(store);
        // Reopening applies nothing new and keeps the version.
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), migrations::count());
        std::fs::remove_dir_all(&dir).ok();
    }
}
