//! The per-device secret: 32 random bytes (mode 0600) at `store.device_key`,
//! by default `/etc/gatehouse/device.key`: outside the data directory, so a
//! copied database or data directory alone does not reveal which ID numbers or
//! PINs it holds, nor decrypt face crops. Older installs kept it at
//! `<data_dir>/device.key`; it is moved on first open (with a log line), or, if
//! it cannot be moved (the daemon under `ProtectSystem=strict`), it is used
//! where it lies with an error-level log line naming the command that moves
//! it: the gate keeps working, and `doctor` keeps warning.
//!
//! Architecture Invariant: a leaf below `domain`, `access` and `store` (all
//! three key hashes with it); it imports nothing from the crate.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const FILE_NAME: &str = "device.key";

#[derive(Clone)]
pub struct DeviceSecret {
    key: [u8; 32],
    path: PathBuf,
    /// This process created (or moved) the file just now.
    fresh: bool,
}

impl std::fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceSecret({})", self.path.display())
    }
}

impl DeviceSecret {
    /// The secret at `<dir>/device.key`, created if missing: scratch setups
    /// (tests, the demo) whose key may sit beside their database.
    pub fn load_or_create(dir: &Path) -> Result<DeviceSecret> {
        DeviceSecret::open(&dir.join(FILE_NAME), None)
    }

    /// The secret at `path`, created if missing. If it is missing and
    /// `legacy` (the old `<data_dir>/device.key`) exists, that file is moved
    /// to `path` first, so an existing install keeps its hashes; if it cannot
    /// be moved, it is used in place (logged as an error).
    pub fn open(path: &Path, legacy: Option<&Path>) -> Result<DeviceSecret> {
        match fs::read(path) {
            Ok(bytes) => DeviceSecret::from_file(path, bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(old) = legacy.filter(|old| *old != path && old.exists()) {
                    if let Err(e) = move_legacy(old, path) {
                        // A gate that will not start locks residents out: keep
                        // the old key in place, loudly (doctor warns too).
                        tracing::error!("{e:#}");
                        let bytes = fs::read(old).with_context(|| {
                            format!("cannot read device secret {}", old.display())
                        })?;
                        return DeviceSecret::from_file(old, bytes);
                    }
                    let bytes = fs::read(path)
                        .with_context(|| format!("cannot read device secret {}", path.display()))?;
                    let mut secret = DeviceSecret::from_file(path, bytes)?;
                    secret.fresh = true;
                    return Ok(secret);
                }
                DeviceSecret::create(path)
            }
            Err(e) => {
                Err(e).with_context(|| format!("cannot read device secret {}", path.display()))
            }
        }
    }

    fn from_file(path: &Path, bytes: Vec<u8>) -> Result<DeviceSecret> {
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!(
                "{}: expected 32 bytes, found {}; the device secret is damaged",
                path.display(),
                bytes.len()
            )
        })?;
        // systemd guards its credentials directory itself (the files may be 0440).
        let is_credential = std::env::var_os("CREDENTIALS_DIRECTORY")
            .is_some_and(|dir| path.starts_with(Path::new(&dir)));
        let mode = fs::metadata(path)?.permissions().mode() & 0o777;
        if !is_credential && mode & 0o077 != 0 {
            bail!(
                "{}: permissions {mode:o} let other users read the device secret; run chmod 600",
                path.display()
            );
        }
        Ok(DeviceSecret {
            key,
            path: path.to_path_buf(),
            fresh: false,
        })
    }

    fn create(path: &Path) -> Result<DeviceSecret> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| {
                format!(
                    "cannot create {} for the device secret (store.device_key)",
                    parent.display()
                )
            })?;
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| {
                format!(
                    "cannot create device secret {} (store.device_key)",
                    path.display()
                )
            })?;
        file.write_all(&key)?;
        file.sync_all()?;
        tracing::info!(path = %path.display(), "created device secret");
        Ok(DeviceSecret {
            key,
            path: path.to_path_buf(),
            fresh: true,
        })
    }

    /// Where the key was read from (for `doctor` and log lines).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this process created or moved the file (so may set its owner).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// HMAC-SHA256 of `data` under this device's key, domain-separated by `label`.
    pub fn keyed_hash(&self, label: &str, data: &[u8]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(label.as_bytes());
        mac.update(b"\0");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// A 32-byte key for another purpose (e.g. encrypting face crops), derived
    /// so the purposes never share key material.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        self.keyed_hash("derive-key", purpose.as_bytes())
    }
}

/// Moves an old install's `<data_dir>/device.key` to `to`: a rename, or a
/// copy (0600, synced) and delete across filesystems. On failure the error says
/// exactly how to move it by hand; the old file is left where it was.
fn move_legacy(from: &Path, to: &Path) -> Result<()> {
    let attempt = || -> std::io::Result<()> {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        match fs::rename(from, to) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(18) => {
                // EXDEV: another filesystem (/etc and /var/lib often are).
                let bytes = fs::read(from)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(to)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                fs::remove_file(from)
            }
            Err(e) => Err(e),
        }
    };
    attempt().map_err(|e| {
        anyhow::anyhow!(
            "the device secret is still at {from}, inside the data directory, and could not be moved \
             to {to} (store.device_key): {e}; it is used where it lies until moved once as root: \
             install -m 600 -o gatehouse -g gatehouse {from} {to} && rm {from}",
            from = from.display(),
            to = to.display()
        )
    })?;
    tracing::warn!(
        from = %from.display(),
        to = %to.display(),
        "moved the device secret out of the data directory"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_secret_with_0600_and_reloads_the_same_key() {
        let dir = std::env::temp_dir().join(format!("gh-secret-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let a = DeviceSecret::load_or_create(&dir).unwrap();
        let mode = fs::metadata(dir.join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let b = DeviceSecret::load_or_create(&dir).unwrap();
        assert_eq!(a.keyed_hash("id", b"x"), b.keyed_hash("id", b"x"));
        assert_ne!(a.keyed_hash("id", b"x"), a.keyed_hash("pin", b"x"));
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn moves_an_old_installs_key_out_of_the_data_directory() {
        let dir = std::env::temp_dir().join(format!("gh-secret-move-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let data = dir.join("data");
        fs::create_dir_all(&data).unwrap();
        let old = DeviceSecret::load_or_create(&data).unwrap();
        let new_path = dir.join("etc/device.key");
        let moved = DeviceSecret::open(&new_path, Some(&data.join(FILE_NAME))).unwrap();
        assert_eq!(moved.keyed_hash("id", b"x"), old.keyed_hash("id", b"x"));
        assert!(!data.join(FILE_NAME).exists(), "the old key stays behind");
        let mode = fs::metadata(&new_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn keeps_using_an_old_key_it_cannot_move_and_says_how_to_move_it() {
        let dir = std::env::temp_dir().join(format!("gh-secret-stuck-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let data = dir.join("data");
        fs::create_dir_all(&data).unwrap();
        let old = DeviceSecret::load_or_create(&data).unwrap();
        // The key's directory is a dangling link: the key reads as missing,
        // and the move cannot create its directory.
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("etc")).unwrap();
        let err = move_legacy(&data.join(FILE_NAME), &dir.join("etc/device.key"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("could not be moved") && err.contains("install -m 600"),
            "{err}"
        );
        let kept =
            DeviceSecret::open(&dir.join("etc/device.key"), Some(&data.join(FILE_NAME))).unwrap();
        assert_eq!(kept.path(), data.join(FILE_NAME), "used where it lies");
        assert_eq!(kept.keyed_hash("id", b"x"), old.keyed_hash("id", b"x"));
        assert!(data.join(FILE_NAME).exists(), "the old key is kept");
        fs::remove_dir_all(&dir).ok();
    }
}
