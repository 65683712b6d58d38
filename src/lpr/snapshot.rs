//! Keeps the picture that came with a plate event under
//! `<data_dir>/snapshots/`, where the event names it and retention purges it.
//!
//! Pictures show drivers and passengers, so the folder and files are readable
//! by the service only. The write is not fsynced: the barrier must not wait on
//! the SD card, and losing the last seconds' pictures in a power cut is
//! acceptable where losing the event (which the store fsyncs) is not.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::domain::GateId;

/// The folder under the data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

/// A file name that sorts by time and never collides:
/// `lpr-car-in-20261127T020000.123Z-0190f2c4.jpg`.
pub fn file_name(gate: &GateId, at: DateTime<Utc>) -> String {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "lpr-{gate}-{}-{}.jpg",
        at.format("%Y%m%dT%H%M%S%.3fZ"),
        &unique[unique.len() - 8..]
    )
}

/// Writes `jpeg` as `dir/name` (via a temporary name, so a reader never sees
/// half a picture).
pub fn save(dir: &Path, name: &str, jpeg: &[u8]) -> Result<PathBuf> {
    create_private_dir(dir)
        .with_context(|| format!("cannot create snapshot folder {}", dir.display()))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = private_file(&tmp)?;
        file.write_all(jpeg)?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("cannot write snapshot {}", path.display()))
    })?;
    Ok(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_a_private_file_named_for_gate_and_time() {
        let root = std::env::temp_dir().join(format!("gh-snap-{}", rand::random::<u32>()));
        let gate: GateId = "car-in".parse().unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-27T10:00:00.123+08:00")
            .unwrap()
            .with_timezone(&Utc);
        let name = file_name(&gate, at);
        assert!(
            name.starts_with("lpr-car-in-20261127T020000.123Z-"),
            "{name}"
        );
        assert_ne!(name, file_name(&gate, at));
        let path = save(&dir(&root), &name, &[0xFF, 0xD8, 0xFF, 0xD9]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), [0xFF, 0xD8, 0xFF, 0xD9]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o007, 0, "snapshot readable by others: {mode:o}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
