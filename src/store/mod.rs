//! The local SQLite database: registers, events, audit. The gate works from
//! this file with the network down.
//!
//! Architecture Invariant: every read and write of the database goes through
//! this module's functions (the CLI, the daemon and the console share them;
//! no SQL text outside it). One writer per process ([`Writer`]), whose
//! transactions are `BEGIN IMMEDIATE` and short; reads that write nothing
//! use read-only connections ([`Readers`]), which in WAL mode never take the
//! writer's lock, so readers never block the gate.

pub mod addresses;
pub mod atomic;
pub mod cards;
pub mod console;
pub mod events;
pub mod faces;
pub mod groups;
mod migrations;
pub mod nonces;
pub mod outbox;
pub mod people;
pub mod readers;
pub mod retention;
pub mod site_gates;
pub mod site_log;
pub mod snapshot;
pub mod station_queries;
pub mod strangers;
pub mod trusted_time;
pub mod vehicles;
pub mod visitors;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OpenFlags};

use crate::secret::{self, DeviceSecret};
pub use readers::Readers;

/// An open database plus the device secret that keys its hashes.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    secret: DeviceSecret,
}

impl Store {
    /// Opens (creating if needed) the database with the device secret at
    /// `<data_dir>/device.key`: scratch setups (tests) whose key may sit beside
    /// their database. A gateway opens through [`Store::open_config`].
    pub fn open(db_path: &Path, data_dir: &Path) -> Result<Store> {
        Store::open_with_key(db_path, data_dir, &data_dir.join(secret::FILE_NAME))
    }

    /// Opens (creating if needed) the database in `data_dir`, applies pending
    /// migrations and loads (or creates) the device secret at `key_path`; an
    /// old `<data_dir>/device.key` is moved there first. The database files
    /// are created, and kept, readable by their owner only.
    pub fn open_with_key(db_path: &Path, data_dir: &Path, key_path: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let secret = DeviceSecret::open(key_path, Some(&data_dir.join(secret::FILE_NAME)))?;
        let db_created = create_owner_only(db_path)?;
        // root running the CLI first must not leave files the daemon's user
        // cannot read: what this process created goes to the data directory's owner.
        let created = [
            secret.is_fresh().then_some(key_path),
            db_created.then_some(db_path),
        ];
        give_to_owner_of(data_dir, created.into_iter().flatten());
        let conn = Connection::open_with_flags(
            db_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open database {}", db_path.display()))?;
        configure(&conn)
            .with_context(|| format!("cannot configure database {}", db_path.display()))?;
        // SQLite gives -wal and -shm the main file's mode; an older install's
        // files (created under the service's umask 0027) are tightened here.
        tighten_db_files(db_path);
        let mut store = Store {
            conn,
            path: db_path.to_path_buf(),
            secret,
        };
        migrations::apply(&mut store.conn)
            .with_context(|| format!("cannot migrate database {}", db_path.display()))?;
        Ok(store)
    }

    /// Opens the database named by a config (after `--data-dir` was applied),
    /// with the device secret where the config keeps it.
    pub fn open_config(config: &crate::config::Config) -> Result<Store> {
        let store = Store::open_with_key(
            &config.database_path(),
            config.data_dir(),
            &config.device_key_path(),
        )?;
        // The site role's triggers live in the database, so a process that
        // opens it without the config (or forgets the role) is held to it too.
        site_log::configure(store.conn(), config.site.role, &config.site.id)?;
        Ok(store)
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

/// The process's one writer: the read-write [`Store`] behind a mutex, shared
/// by every part of the daemon that changes the database (the gates' event
/// log, the uplink, the cameras, the console, station commands). Cheap to
/// clone. Readers use [`Readers`] instead and never take this lock.
#[derive(Clone)]
pub struct Writer(Arc<Mutex<Store>>);

impl Writer {
    pub fn new(store: Store) -> Writer {
        Writer(Arc::new(Mutex::new(store)))
    }

    /// The store, for one short write (blocking: call from a blocking context).
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves SQLite consistent (an open
        // transaction is rolled back when its guard drops).
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates an empty database file with mode 0600 before SQLite opens it
/// (an empty file is a valid empty database), whatever the umask. True when
/// it created the file.
fn create_owner_only(db_path: &Path) -> Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db_path)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot create database {}", db_path.display())),
    }
}

/// As root, hands files this process just created to the owner of `dir`
/// (`gatehouse:gatehouse` on an install); otherwise nothing to do.
fn give_to_owner_of<'a>(dir: &Path, paths: impl Iterator<Item = &'a Path>) {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let Ok(owner) = std::fs::metadata(dir) else {
        return;
    };
    for path in paths {
        if let Err(e) = std::os::unix::fs::chown(path, Some(owner.uid()), Some(owner.gid())) {
            tracing::warn!(path = %path.display(), error = %e, "cannot hand the file to the data directory's owner");
        }
    }
}

/// Sets the database, its -wal and -shm to 0600 where they allow more; best
/// effort (a file owned by someone else keeps its mode and opens as before).
fn tighten_db_files(db_path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut wal = db_path.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = db_path.as_os_str().to_owned();
    shm.push("-shm");
    for path in [
        db_path.to_path_buf(),
        PathBuf::from(wal),
        PathBuf::from(shm),
    ] {
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.permissions().mode() & 0o077 != 0 {
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
        }
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

    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_the_database_wal_and_shm_readable_by_the_owner_only() {
        let dir = std::env::temp_dir().join(format!("gh-store-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("g.db");
        let store = Store::open(&db, &dir).unwrap();
        // A write makes SQLite create the -wal and -shm files.
        Store::audit(store.conn(), "test", "touch", None, None).unwrap();
        for name in ["g.db", "g.db-wal", "g.db-shm"] {
            assert_eq!(mode_of(&dir.join(name)), 0o600, "{name}");
        }
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn tightens_an_older_installs_world_readable_database() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("gh-store-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("g.db");
        drop(Store::open(&db, &dir).unwrap());
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(Store::open(&db, &dir).unwrap());
        assert_eq!(mode_of(&db), 0o600);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_gateway_keeps_its_device_secret_outside_the_data_directory() {
        let dir = std::env::temp_dir().join(format!("gh-store-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config_path = dir.join("gatehouse.toml");
        std::fs::write(
            &config_path,
            "[site]\nid = \"s\"\ngateway_id = \"g\"\nname = \"n\"\n\n[store]\ndata_dir = \"data\"\n",
        )
        .unwrap();
        let config = crate::config::Config::load(&config_path).unwrap();
        let store = Store::open_config(&config).unwrap();
        assert_eq!(store.secret().path(), dir.join(secret::FILE_NAME));
        let data_files: Vec<String> = std::fs::read_dir(dir.join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !data_files.iter().any(|f| f.contains("key")),
            "{data_files:?}"
        );
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }
}
