//! An Ed25519 signing key on disk, one format for the station's key and the
//! site registry's: the base64 of the 32-byte seed on one line, mode 0600,
//! created only where no file is (an existing key is never overwritten) and
//! refused when other users can read it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use rand::RngCore;

/// Writes a new random key to `path` (never over an existing file); `what`
/// names the key in errors ("the station key").
pub fn create(path: &Path, what: &str) -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {what} {} (an existing key is never overwritten)",
                path.display()
            )
        })?;
    writeln!(file, "{}", B64.encode(seed))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {what} {}", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads the key at `path`; `made_by` ends the error for a file that holds no
/// key (e.g. " (made by `gatehouse station keygen`)").
pub fn load(path: &Path, what: &str, made_by: &str) -> Result<SigningKey> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mode = fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{}: permissions {mode:o} let other users read {what}; run chmod 600",
            path.display()
        );
    }
    let seed: [u8; 32] = B64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| {
            format!(
                "{}: expected the base64 of a 32-byte Ed25519 seed{made_by}",
                path.display()
            )
        })?;
    Ok(SigningKey::from_bytes(&seed))
}
