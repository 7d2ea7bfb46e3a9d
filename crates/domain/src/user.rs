//! The identity every user-owned row hangs from: the verified claim of the caller's token.

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use std::fmt;

/// Kept inline up to 23 bytes (longer ids are shared, not copied, when cloned): the engine holds
/// one per rule, and a heap string would add an allocation to every rule held.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(SmolStr);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a user id must be 1 to 320 printable characters")]
pub struct UserIdError;

impl UserId {
    pub fn new(raw: impl Into<String>) -> Result<Self, UserIdError> {
        let raw = raw.into();
        let ok = !raw.trim().is_empty() && raw.len() <= 320 && !raw.chars().any(char::is_control);
        ok.then(|| Self(SmolStr::from(raw))).ok_or(UserIdError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
