//! The station's Ed25519 signing key: a file holding the base64 of the 32-byte
//! seed, mode 0600. Its public half goes into each gateway's
//! `[uplink] station_keys`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;

/// Creates a new key file (never overwrites one) and returns the public key.
pub fn generate_key_file(path: &Path) -> Result<VerifyingKey> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {} (an existing key is never overwritten)",
                path.display()
            )
        })?;
    writeln!(file, "{}", B64.encode(seed))?;
    file.sync_all()?;
    Ok(key.verifying_key())
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read station key {}", path.display()))?;
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{}: permissions {mode:o} let other users read the station key; run chmod 600",
            path.display()
        );
    }
    let seed: [u8; 32] = B64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| {
            format!(
                "{}: expected the base64 of a 32-byte Ed25519 seed (made by `gatehouse station keygen`)",
                path.display()
            )
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_reloads_and_is_never_overwritten() {
        let dir = std::env::temp_dir().join(format!(
            "gh-stkey-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("station.key");
        let public = generate_key_file(&path).unwrap();
        assert_eq!(load_signing_key(&path).unwrap().verifying_key(), public);
        assert!(generate_key_file(&path).is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(format!("{:#}", load_signing_key(&path).unwrap_err()).contains("chmod 600"));
        fs::remove_dir_all(&dir).ok();
    }
}
