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
    (
        "010_card_format",
        include_str!("migrations/010_card_format.sql"),
    ),
    (
        "011_mask_id_numbers",
        include_str!("migrations/011_mask_id_numbers.sql"),
    ),
    ("012_site_log", include_str!("migrations/012_site_log.sql")),
    (
        "013_household_code",
        include_str!("migrations/013_household_code.sql"),
    ),
    (
        "014_site_gates",
        include_str!("migrations/014_site_gates.sql"),
    ),
    (
        "015_site_log_unsigned",
        include_str!("migrations/015_site_log_unsigned.sql"),
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
        // IMMEDIATE, and the version read again under the write lock: a CLI
        // and the daemon opening a new schema at once migrate it once.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now >= version {
            continue;
        }
        tx.execute_batch(sql)
            .with_context(|| format!("migration {name} failed"))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(migration = name, "applied schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at the schema before `name`, as an older gatehouse left it.
    fn before(name: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        let upto = MIGRATIONS.iter().position(|(n, _)| *n == name).unwrap();
        for (i, (_, sql)) in MIGRATIONS.iter().enumerate().take(upto) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", i as i64 + 1)
                .unwrap();
        }
        conn
    }

    #[test]
    fn cards_keep_working_in_the_format_they_were_last_granted_in() {
        let mut conn = before("010_card_format");
        let t = "2026-11-01T08:00:00.000Z";
        for (id, card) in [(1, "10:12345"), (2, "10:7"), (3, "20:555")] {
            conn.execute(
                "INSERT INTO person (id, name, role, status, created_at, created_by, updated_at, updated_by)
                 VALUES (?1, '张三', 'owner', 'active', ?2, 't', ?2, 't')",
                rusqlite::params![id, t],
            )
            .unwrap();
            // Assigned without --format: the smallest that fits.
            conn.execute(
                "INSERT INTO card (card_key, format, person_id, created_at, created_by)
                 VALUES (?1, 'wiegand26', ?2, ?3, 't')",
                rusqlite::params![card, id, t],
            )
            .unwrap();
        }
        let event = |seq: i64, subject: i64, masked: &str, result: &str, format: &str| {
            format!(
                "INSERT INTO event (seq, id, at, clock_synced, kind, gate, credential_kind, credential_masked,
                     subject_id, result, detail, prev_hash, hash)
                 VALUES ({seq}, 'e{seq}', '{t}', 1, 'access', 'east', 'card', '{masked}', {subject},
                     '{result}', '{{\"format\": \"{format}\"}}', x'00', x'00')"
            )
        };
        for sql in [
            // R1's reader sends 34-bit frames: granted twice that way.
            event(1, 1, "10:***45", "granted", "wiegand34"),
            event(2, 1, "10:***45", "granted", "wiegand34"),
            // R2 was granted as 26-bit, then someone tried its numbers as 37-bit.
            event(3, 2, "10:7", "granted", "wiegand26"),
            event(4, 2, "10:7", "denied", "wiegand37"),
            // R3's card was never used.
        ] {
            conn.execute_batch(&sql).unwrap();
        }
        apply(&mut conn).unwrap();
        let format = |key: &str| -> String {
            conn.query_row("SELECT format FROM card WHERE card_key = ?1", [key], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(format("10:12345"), "wiegand34");
        assert_eq!(format("10:7"), "wiegand26");
        assert_eq!(format("20:555"), "wiegand26");
    }

    #[test]
    fn migration_011_remasks_stored_id_numbers_completely() {
        let mut conn = Connection::open_in_memory().unwrap();
        let before = MIGRATIONS
            .iter()
            .position(|(name, _)| *name == "011_mask_id_numbers")
            .unwrap();
        for (_, sql) in &MIGRATIONS[..before] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", before as i64)
            .unwrap();
        for (name, masked) in [("甲", "110105********002X"), ("乙", "E1*****78")] {
            conn.execute(
                "INSERT INTO person (name, id_masked, role, created_at, created_by, updated_at, updated_by)
                 VALUES (?1, ?2, 'owner', 't', 'test', 't', 'test')",
                rusqlite::params![name, masked],
            )
            .unwrap();
        }
        apply(&mut conn).unwrap();
        let masked: Vec<String> = conn
            .prepare("SELECT id_masked FROM person ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(masked, ["******************", "*********"]);
    }
}
