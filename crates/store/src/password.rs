//! Password hashing: argon2id with the crate's default parameters (19 MiB, 2 passes,
//! about 50 ms on one core), stored as a PHC string that names its own parameters.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// A valid hash of no one's password (of "parley", with the default parameters), checked
/// against when a name has no account, so that a missing account costs the same time as
/// a wrong password and timing does not tell which names exist.
pub(crate) const DUMMY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0oTjgTn8dg0+9qKyqvFoqrbs6H+fNyNUrWWZDQzt4Ys";

/// Hashes `password` with a fresh random salt.
pub(crate) fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches `stored`; a stored hash that cannot be read matches
/// nothing.
pub(crate) fn matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_matches_its_password_only() {
        let stored = hash("correct horse").expect("hashes");
        assert!(stored.starts_with("$argon2id$"));
        assert!(matches("correct horse", &stored));
        assert!(!matches("correct horsE", &stored));
        assert!(!matches("correct horse", "not a hash"));
        assert_ne!(hash("correct horse").expect("hashes"), stored, "salted");
        assert!(PasswordHash::new(DUMMY).is_ok(), "the dummy is a hash that costs a check");
        assert!(!matches("correct horse", DUMMY));
    }
}
