//! The station's Ed25519 signing key: a file holding the base64 of the 32-byte
//! seed, mode 0600. Its public half goes into each gateway's
//! `[uplink] station_keys`.

use std::path::Path;

use anyhow::Result;
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::signing::key_file;

const WHAT: &str = "the station key";

/// Creates a new key file (never overwrites one) and returns the public key.
pub fn generate_key_file(path: &Path) -> Result<VerifyingKey> {
    Ok(key_file::create(path, WHAT)?.verifying_key())
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    key_file::load(path, WHAT, " (made by `gatehouse station keygen`)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

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
