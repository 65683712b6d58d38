//! What signed messages share, below every layer that signs or checks them
//! (the station's commands and replies in `uplink`, the site's change log in
//! `store::site_log` and `site`, the keys named in `config`): RFC 8785
//! canonical JSON and Ed25519 public keys as base64 text.

pub mod canonical;
pub mod key_file;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;

/// A public key from its base64 text (32 bytes), with the problem in words.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = B64
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?
        .try_into()
        .map_err(|v: Vec<u8>| {
            format!("expected 32 bytes (an Ed25519 public key), got {}", v.len())
        })?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

/// A public key as the base64 text configs and `parse_public_key` use.
pub fn public_key_text(key: &VerifyingKey) -> String {
    B64.encode(key.to_bytes())
}
