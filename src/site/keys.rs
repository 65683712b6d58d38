//! A gateway's site signing key (Ed25519): a file holding the base64 of its
//! 32-byte seed, mode 0600, outside the data directory like the device
//! secret, created on the first run. The registry's signs the register (its
//! public half goes into every gate's `[site] registry_key`); a gate's signs
//! its reports (its public half goes into the registry's `[site] gate_keys`).
//! `gatehouse config site-key` prints the public half.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;

use crate::signing::key_file;

const WHAT: &str = "the site signing key";

/// Loads the key at `path`, creating it when there is none.
pub fn load_or_create(path: &Path) -> Result<SigningKey> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        key_file::create(path, WHAT)?;
        tracing::info!(path = %path.display(), "created the site registry's signing key");
    }
    load(path)
}

/// Reads the key; refuses one that other users can read.
pub fn load(path: &Path) -> Result<SigningKey> {
    key_file::load(path, WHAT, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
