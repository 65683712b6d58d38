//! Numbered schema migrations, applied in order at open; `PRAGMA user_version`
//! records how many ran. Never edit a released migration: add the next one.

use anyhow::{Context, Result};
use rusqlite::Connection;

/// (name, SQL) in order. Migration N sets user_version to N.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "001_registers",
        include_str!("migrations/001_registers.sql"),
    ),
    ("002_events", include_str!("migrations/002_events.sql")),
    (
        "003_register_version",
        include_str!("migrations/003_register_version.sql"),
    ),
    ("004_uplink", include_str!("migrations/004_uplink.sql")),
    ("005_faces", include_str!("migrations/005_faces.sql")),
    (
        "006_watchlist_version",
        include_str!("migrations/006_watchlist_version.sql"),
    ),
    ("007_console", include_str!("migrations/007_console.sql")),
    (
        "008_strangers",
        include_str!("migrations/008_strangers.sql"),
    ),
    (
        "009_trusted_time",
        include_str!("migrations/009_trusted_time.sql"),
    ),
];

pub fn count() -> i64 {
    MIGRATIONS.len() as i64
}

pub fn apply(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > count() {
        anyhow::bail!(
            "database schema version {current} is newer than this gatehouse ({}); refusing to touch it",
            count()
        );
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {name} failed"))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(migration = name, "applied schema migration");
    }
    Ok(())
}
