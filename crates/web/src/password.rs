//! Password hashes: argon2id with the argon2 crate's default parameters (19 MiB, 2 passes,
//! 1 lane: OWASP's recommendation), a random 16-byte salt each, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$...`). Verification takes its parameters from the
//! stored string, so stronger parameters later keep old hashes working.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::{Error, Result};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, in bytes (argon2 takes any length; this bounds the work a
/// sign-in form can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a new password is refused, if it is.
pub fn check_new(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password is shorter than {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password is longer than {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    if password.chars().any(|c| c == '\n' || c == '\r') {
        return Err("the password contains a line break".into());
    }
    Ok(())
}

/// The PHC string of `password` (checked with [`check_new`] first). CPU-bound (tens of
/// milliseconds): async callers run it on a blocking thread.
pub fn hash(password: &str) -> Result<String> {
    check_new(password).map_err(Error::WeakPassword)?;
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|source| Error::HashPassword { source })?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`; a malformed string matches
/// nothing. CPU-bound, as [`hash`].
pub fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash no password is known for, with the default parameters: an unknown user's
/// sign-in is verified against it, so that it takes as long as a known user's and the
/// answer's timing does not tell which names exist.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: LazyLock<String> = LazyLock::new(|| {
        let secret = spinewatch_triage::auth::new_secret().unwrap_or_else(|_| "x".repeat(64));
        // A 64-character password always passes `check_new`; only a broken RNG could fail
        // here, and then every comparison against "" fails (quickly).
        hash(&secret).unwrap_or_default()
    });
    &DUMMY
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterz", &a));
        assert!(!verify("correct horse battery", "not a hash"));
        assert!(!verify("anything at all", dummy_hash()));
        assert!(dummy_hash().starts_with("$argon2id$"));
    }

    #[test]
    fn short_and_multi_line_passwords_are_refused() {
        assert!(check_new("123456789").is_err());
        assert!(check_new("1234567890").is_ok());
        // Characters, not bytes: ten accented letters pass.
        assert!(check_new("éééééééééé").is_ok());
        assert!(check_new("12345\n67890").is_err());
        assert!(matches!(hash("short"), Err(Error::WeakPassword(_))));
    }
}
