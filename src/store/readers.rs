//! Read-only connections for everything that only reads: the console's pages
//! and CSV export, the cameras' gallery, watchlist and stranger search, the
//! uplink's outbox reads, `doctor`. In WAL mode a reader sees the last commit
//! while the writer writes, so these never take the writer's lock
//! ([`super::Writer`]) and a long read (an export of 100,000 events) never
//! delays a gate's event.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

/// Idle connections kept for reuse; more readers at once each open their own.
const KEEP_IDLE: usize = 4;

/// Opens `db_path` read-only (`SQLITE_OPEN_READ_ONLY` and `query_only`): a
/// write through it is an error, never a second writer.
pub fn open_read_only(db_path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open database {} for reading", db_path.display()))?;
    (|| -> rusqlite::Result<()> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "query_only", true)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(())
    })()
    .with_context(|| format!("cannot configure reader of {}", db_path.display()))?;
    Ok(conn)
}

/// A small pool of read-only connections to one database; cheap to clone.
#[derive(Clone)]
pub struct Readers(Arc<Inner>);

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Connections are opened on first use (the writer creates and migrates
    /// the database first).
    pub fn new(db_path: &Path) -> Readers {
        Readers(Arc::new(Inner {
            path: db_path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Runs `f` on a read-only connection (blocking: call from a blocking
    /// context). The connection goes back to the pool afterwards.
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> R) -> Result<R> {
        let pooled = self.0.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_read_only(&self.0.path)?,
        };
        let out = f(&conn);
        // A read left open (a statement not reset) would pin an old snapshot:
        // only a connection back in autocommit mode is reused.
        if conn.is_autocommit() {
            let mut idle = self.0.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < KEEP_IDLE {
                idle.push(conn);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_commits_and_refuses_to_write() {
        let dir = std::env::temp_dir().join(format!(
            "gh-readers-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        let store = super::super::Store::open(&dir.join("g.db"), &dir).unwrap();
        let readers = Readers::new(store.path());
        super::super::Store::audit(store.conn(), "test", "one", None, None).unwrap();
        let n: i64 = readers
            .read(|c| c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0)))
            .unwrap()
            .unwrap();
        assert_eq!(n, 1);
        let write = readers
            .read(|c| c.execute("DELETE FROM audit", []))
            .unwrap();
        assert!(write.is_err(), "a reader wrote");
        // The writer holding a write transaction does not block a reader.
        store.conn().execute_batch("BEGIN IMMEDIATE").unwrap();
        super::super::Store::audit(store.conn(), "test", "two", None, None).unwrap();
        let n: i64 = readers
            .read(|c| c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0)))
            .unwrap()
            .unwrap();
        assert_eq!(
            n, 1,
            "the reader sees the last commit, not the open transaction"
        );
        store.conn().execute_batch("COMMIT").unwrap();
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }
}
