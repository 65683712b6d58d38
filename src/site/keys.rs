//! The registry's Ed25519 signing key: a file holding the base64 of its
//! 32-byte seed, mode 0600, outside the data directory like the device
//! secret, created on the registry's first run. Its public half goes into
//! every gate's `[site] registry_key`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use rand::RngCore;

/// Loads the key at `path`, creating it when there is none.
pub fn load_or_create(path: &Path) -> Result<SigningKey> {
    if !path.exists() {
        create(path)?;
        tracing::info!(path = %path.display(), "created the site registry's signing key");
    }
    load(path)
}

fn create(path: &Path) -> Result<()> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the site signing key {}", path.display()))?;
    writeln!(file, "{}", B64.encode(seed))?;
    file.sync_all()?;
    Ok(())
}

/// Reads the key; refuses one that other users can read.
pub fn load(path: &Path) -> Result<SigningKey> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the site signing key {}", path.display()))?;
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{}: permissions {mode:o} let other users read the site signing key; run chmod 600",
            path.display()
        );
    }
    let seed: [u8; 32] = B64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| {
            format!(
                "{}: expected the base64 of a 32-byte Ed25519 seed",
                path.display()
            )
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_key_once_owner_only_and_reloads_it() {
        let dir = std::env::temp_dir().join(format!(
            "gh-sitekey-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let path = dir.join("site.key");
        let first = load_or_create(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_or_create(&path).unwrap().to_bytes(), first.to_bytes());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(format!("{:#}", load(&path).unwrap_err()).contains("chmod 600"));
        fs::remove_dir_all(&dir).ok();
    }
}
