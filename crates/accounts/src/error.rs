use crate::email::EmailError;
use crate::password::{HashingError, PasswordProblem};
use signal_domain::{Failure, FailureKind};
use signal_ports::{CacheError, StoreError};
use std::time::Duration;

/// Why an account use case refused or failed. Refusals name the request field they are about,
/// as the JSON bodies name them (`email`, `password`, `currentPassword`, `newPassword`).
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    InvalidEmail(EmailError),
    #[error("{problem}")]
    WeakPassword {
        field: &'static str,
        problem: PasswordProblem,
    },
    #[error("an account with this email already exists; sign in instead")]
    EmailTaken,
    #[error("wrong email or password")]
    WrongCredentials,
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("the new password is the same as the current one")]
    SamePassword,
    #[error("too many sign-in attempts; try again in {} seconds", .retry_after.as_secs())]
    TooManyAttempts { retry_after: Duration },
    #[error("this user has no account here (its token came from elsewhere)")]
    NoAccount,
    #[error("you have no active session by this id")]
    NoSuchSession,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Hashing(#[from] HashingError),
}

impl Failure for AccountError {
    fn kind(&self) -> FailureKind {
        match self {
            AccountError::InvalidEmail(_)
            | AccountError::WeakPassword { .. }
            | AccountError::WrongCurrentPassword
            | AccountError::SamePassword => FailureKind::Invalid,
            AccountError::EmailTaken => FailureKind::Conflict,
            AccountError::WrongCredentials => FailureKind::Unauthenticated,
            AccountError::TooManyAttempts { .. } => FailureKind::RateLimited,
            AccountError::NoAccount | AccountError::NoSuchSession => FailureKind::NotFound,
            AccountError::Store(e) => e.kind(),
            AccountError::Cache(e) => e.kind(),
            AccountError::Hashing(_) => FailureKind::Internal,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            AccountError::InvalidEmail(_) => Some("email"),
            AccountError::WeakPassword { field, .. } => Some(field),
            AccountError::WrongCurrentPassword => Some("currentPassword"),
            AccountError::SamePassword => Some("newPassword"),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            AccountError::TooManyAttempts { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}
