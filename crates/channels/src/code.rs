//! One-time codes that prove a pending channel's target is its user's (a Telegram deep link, an
//! email confirmation link). Only their SHA-256 is stored, so the table cannot be used to link a
//! chat or confirm an address.

use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};

/// A new code: 32 letters and digits (also valid as a Telegram `start` parameter).
pub fn new_code() -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
}

/// What the store keeps of a code.
pub fn hash(code: &str) -> String {
    Sha256::digest(code.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unguessable_and_hash_stably() {
        let (a, b) = (new_code(), new_code());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(hash(&a), hash(&format!(" {a}\n")));
        assert_eq!(hash(&a).len(), 64);
    }
}
