//! One helper for "these writes and their audit row land together or not at
//! all", usable both on its own (a top-level `BEGIN IMMEDIATE`: take the write
//! lock up front, so a concurrent writer such as the daemon's event log makes
//! us wait instead of failing half-way) and inside a caller's transaction (a
//! savepoint, as the spreadsheet import does per row).

use anyhow::{Context, Result};
use rusqlite::Connection;

/// Runs `f` atomically on `conn`: committed if it returns `Ok`, rolled back
/// (to the savepoint, when nested) if it returns `Err`.
pub fn atomically<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let top = conn.is_autocommit();
    let (begin, commit, rollback): (&str, &str, &[&str]) = if top {
        ("BEGIN IMMEDIATE", "COMMIT", &["ROLLBACK"])
    } else {
        (
            "SAVEPOINT register_change",
            "RELEASE register_change",
            &["ROLLBACK TO register_change", "RELEASE register_change"],
        )
    };
    // Prepared (and cached) rather than batch-parsed: the import runs this per row.
    let run = |sql: &str| -> rusqlite::Result<usize> { conn.prepare_cached(sql)?.execute([]) };
    run(begin).context("cannot start a database transaction (is the database locked?)")?;
    let result = f(conn).and_then(|value| {
        // On a site's registry the change's log entry commits with it (no-op elsewhere).
        if top {
            super::site_log::seal(conn)?;
        }
        run(commit).context("cannot commit the change")?;
        Ok(value)
    });
    if result.is_err() {
        // Best effort: if the rollback itself fails SQLite has already rolled back.
        for sql in rollback {
            let _ = run(sql);
        }
    }
    result
}

/// A long batch of register changes (the spreadsheet import) as one
/// `BEGIN IMMEDIATE` transaction, with a page cache and statement cache big
/// enough for it (otherwise each row re-reads spilled pages and re-prepares
/// statements). Committed when `f` returns `Ok((value, true))`; rolled back
/// when it returns `Ok((value, false))` (a dry run) or an error. The cache
/// size is restored afterwards.
pub fn bulk<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<(T, bool)>) -> Result<T> {
    let cache_pages: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.set_prepared_statement_cache_capacity(64);
    let result = (|| {
        conn.execute_batch("BEGIN IMMEDIATE")
            .context("cannot start the transaction (is the database locked?)")?;
        let outcome = f(conn);
        let finished = match outcome {
            Ok((value, true)) => conn
                .execute_batch("COMMIT")
                .context("cannot commit the change")
                .map(|()| value),
            Ok((value, false)) => Ok(value),
            Err(e) => Err(e),
        };
        if !conn.is_autocommit() {
            // Best effort: if the rollback itself fails SQLite has already rolled back.
            let _ = conn.execute_batch("ROLLBACK");
        }
        finished
    })();
    let _ = conn.pragma_update(None, "cache_size", cache_pages);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        conn
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn rolls_back_everything_when_the_closure_fails() {
        let conn = scratch();
        let r: Result<()> = atomically(&conn, |c| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            anyhow::bail!("no")
        });
        assert!(r.is_err());
        assert_eq!(count(&conn), 0);
        assert!(conn.is_autocommit());
    }

    #[test]
    fn nests_as_a_savepoint_inside_an_outer_transaction() {
        let conn = scratch();
        conn.execute_batch("BEGIN").unwrap();
        atomically(&conn, |c| Ok(c.execute("INSERT INTO t VALUES (1)", [])?)).unwrap();
        let r: Result<()> = atomically(&conn, |c| {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            anyhow::bail!("second fails")
        });
        assert!(r.is_err());
        assert!(!conn.is_autocommit(), "outer transaction still open");
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(count(&conn), 1);
    }
}
