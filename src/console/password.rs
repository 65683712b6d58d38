//! Console passwords: the policy a new password must meet, and Argon2id
//! hashing (PHC strings with a random salt). Hashing is slow on purpose;
//! call these from a blocking task.

use anyhow::{anyhow, Result};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 10;

/// Why a proposed password is refused, in English (the page translates).
pub fn check_policy(account: &str, password: &str) -> Result<(), &'static str> {
    let n = password.chars().count();
    if n < MIN_LENGTH {
        return Err("the password is shorter than 10 characters");
    }
    if n > 128 {
        return Err("the password is longer than 128 characters");
    }
    if password.trim().eq_ignore_ascii_case(account.trim()) {
        return Err("the password is the account name");
    }
    if password.chars().all(|c| password.starts_with(c)) {
        return Err("the password repeats one character");
    }
    Ok(())
}

/// An Argon2id PHC string for `password`.
pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the account does not exist, so a wrong
/// name takes as long as a wrong password.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password, never valid").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_right_password_and_are_salted() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterY", &a));
        assert!(!verify("anything", "not a hash"));
    }

    #[test]
    fn policy_refuses_short_name_like_and_repeated_passwords() {
        assert!(check_policy("wang", "short").is_err());
        assert!(check_policy("wangmanager", "WangManager").is_err());
        assert!(check_policy("wang", "aaaaaaaaaaaa").is_err());
        assert!(check_policy("wang", "门禁 2025 清波小区").is_ok());
    }
}
