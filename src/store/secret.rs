//! The per-device secret: 32 random bytes in `<data_dir>/device.key` (mode
//! 0600), kept outside the database so a copied database alone does not reveal
//! which ID numbers or PINs it holds.

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
}

impl std::fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceSecret({})", self.path.display())
    }
}

impl DeviceSecret {
    pub fn load_or_create(data_dir: &Path) -> Result<DeviceSecret> {
        let path = data_dir.join(FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    anyhow::anyhow!(
                        "{}: expected 32 bytes, found {}; the device secret is damaged",
                        path.display(),
                        bytes.len()
                    )
                })?;
                let mode = fs::metadata(&path)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    bail!("{}: permissions {mode:o} let other users read the device secret; run chmod 600", path.display());
                }
                Ok(DeviceSecret { key, path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("cannot create device secret {}", path.display()))?;
                file.write_all(&key)?;
                file.sync_all()?;
                tracing::info!(path = %path.display(), "created device secret");
                Ok(DeviceSecret { key, path })
            }
            Err(e) => {
                Err(e).with_context(|| format!("cannot read device secret {}", path.display()))
            }
        }
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
}
