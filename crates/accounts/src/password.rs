//! What a password must be, and how it is stored.
//!
//! Policy, after NIST SP 800-63B and OWASP ASVS: a minimum length (12 by default) and a maximum
//! (128, so hashing cost stays bounded), no composition rules, and a check against common and
//! easily guessed passwords. That check is zxcvbn (Dropbox's estimator, the `zxcvbn` crate): it
//! ranks the password against its frequency lists (the 30,000 most common passwords of the Xato
//! corpus of 10 million leaked passwords, English words, names, TV and film vocabulary) and
//! against keyboard walks, repeats, sequences, dates and l33t substitutions, and it is given the
//! person's email so a password made of it counts as guessable. A list alone would let
//! `Password12345` through; zxcvbn scores it as guessable and says why.
//!
//! Storage: argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane: the argon2
//! crate's defaults), a random salt per password, in PHC string form, so parameters can be raised
//! later and old hashes still verify. Text is normalised to Unicode NFKC first, so the same
//! password typed on two keyboards that compose accents differently is the same password.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::Argon2;
use std::sync::Arc;
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;

/// zxcvbn scores 0 to 4; 3 means "safely unguessable: moderate protection from an offline
/// slow-hash attack" (about 10^10 guesses), the level its authors recommend requiring.
const REQUIRED_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 12,
            max_length: 128,
        }
    }
}

/// Why a password is refused; each says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("the password must be at least {min} characters long")]
    TooShort { min: usize },
    #[error("the password must be at most {max} characters long")]
    TooLong { max: usize },
    #[error("this password is too easy to guess{}: {advice}", reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Guessable {
        /// zxcvbn's warning, e.g. "This is a top-100 common password".
        reason: Option<String>,
        advice: String,
    },
}

impl PasswordPolicy {
    /// Checks a new password; `context` lists what the person's password should not be made of
    /// (their email and its parts).
    pub fn check(&self, password: &str, context: &[&str]) -> Result<(), PasswordProblem> {
        let password = normalise(password);
        let length = password.chars().count();
        if length < self.min_length {
            return Err(PasswordProblem::TooShort {
                min: self.min_length,
            });
        }
        if length > self.max_length {
            return Err(PasswordProblem::TooLong {
                max: self.max_length,
            });
        }
        let estimate = zxcvbn::zxcvbn(&password, context);
        if estimate.score() >= REQUIRED_SCORE {
            return Ok(());
        }
        let feedback = estimate.feedback();
        let reason = feedback
            .and_then(|f| f.warning())
            .map(|w| w.to_string().trim_end_matches('.').to_string());
        let suggestions = feedback
            .map(|f| {
                f.suggestions()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|s| !s.is_empty());
        Err(PasswordProblem::Guessable {
            reason,
            advice: suggestions.unwrap_or_else(|| {
                "add a few more words or characters that are not a pattern".to_string()
            }),
        })
    }
}

/// The text that is hashed: NFKC, so equivalent Unicode spellings are one password.
fn normalise(password: &str) -> String {
    password.nfkc().collect()
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashingError(#[source] argon2::password_hash::Error);

/// Hashes and verifies passwords off the async workers. Each hash takes 19 MiB and tens of
/// milliseconds of one core, so at most `concurrency` run at once: a burst of sign-ins queues
/// instead of exhausting memory.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when no account has the email, so an unknown email costs as long as a
    /// wrong password and the timing tells nothing.
    decoy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> Result<Self, HashingError> {
        let decoy_hash = hash_blocking("a password no account has, hashed for its timing")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            decoy_hash: decoy_hash.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashingError> {
        let password = password.to_string();
        self.blocking(move || hash_blocking(&password)).await
    }

    /// True when `password` matches `stored` (a PHC string); `None` checks against the decoy and
    /// is always false.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashingError> {
        let matches_account = stored.is_some();
        let stored = stored.map_or_else(|| self.decoy_hash.to_string(), str::to_string);
        let password = password.to_string();
        let matches = self
            .blocking(move || verify_blocking(&password, &stored))
            .await?;
        Ok(matches && matches_account)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashingError> + Send + 'static,
    ) -> Result<T, HashingError> {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.permits.acquire().await;
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
    }
}

fn hash_blocking(password: &str) -> Result<String, HashingError> {
    Argon2::default()
        .hash_password(normalise(password).as_bytes())
        .map(|hash| hash.to_string())
        .map_err(HashingError)
}

fn verify_blocking(password: &str, stored: &str) -> Result<bool, HashingError> {
    match Argon2::default().verify_password(normalise(password).as_bytes(), stored) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(HashingError(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("short", &[]),
            Err(PasswordProblem::TooShort { min: 12 })
        );
        // Twelve Hangul syllables are twelve characters, though 36 bytes.
        assert_eq!(policy.check("돈터치시그널가격알림서비스", &[]), Ok(()));
        assert_eq!(
            policy.check(&"x".repeat(129), &[]),
            Err(PasswordProblem::TooLong { max: 128 })
        );
    }

    #[test]
    fn common_and_patterned_passwords_are_refused_with_a_reason() {
        let policy = PasswordPolicy::default();
        for weak in [
            "password1234",
            "qwertyuiop123",
            "123456789012",
            "aaaaaaaaaaaa",
        ] {
            match policy.check(weak, &[]) {
                Err(PasswordProblem::Guessable { advice, .. }) => assert!(!advice.is_empty()),
                other => panic!("{weak} was not refused as guessable: {other:?}"),
            }
        }
        let top = policy.check("passwordpassword", &[]).unwrap_err();
        assert!(top
            .to_string()
            .starts_with("this password is too easy to guess"));
    }

    #[test]
    fn a_password_made_of_the_email_is_guessable() {
        let policy = PasswordPolicy::default();
        let context = ["kimminjun@example.com", "kimminjun"];
        assert!(policy.check("kimminjun2024", &context).is_err());
        assert!(policy
            .check("correct horse battery staple", &context)
            .is_ok());
    }

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let hasher = PasswordHasher::new(2).unwrap();
        let stored = hasher.hash("correct horse battery staple").await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher
            .verify("correct horse battery staple", Some(&stored))
            .await
            .unwrap());
        assert!(!hasher
            .verify("correct horse battery stapler", Some(&stored))
            .await
            .unwrap());
        assert!(!hasher
            .verify("a password no account has, hashed for its timing", None)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn equivalent_unicode_spellings_are_one_password() {
        let hasher = PasswordHasher::new(1).unwrap();
        let composed = "caf\u{e9} au lait, s'il vous pla\u{ee}t";
        let decomposed = "cafe\u{301} au lait, s'il vous plai\u{302}t";
        let stored = hasher.hash(composed).await.unwrap();
        assert!(hasher.verify(decomposed, Some(&stored)).await.unwrap());
    }
}
