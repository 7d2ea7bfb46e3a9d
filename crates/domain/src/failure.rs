//! How a failure reads to whoever asked, whatever carried the request. Errors that can reach a
//! caller (a use case's refusal, a store that cannot be reached) say which kind of failure they
//! are; the HTTP edge turns the kind into a status, and other edges may do the same, without
//! either side knowing the other.

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// The kinds of failure a caller can tell apart and act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The request cannot be read at all (malformed syntax, a bad path or query string).
    Malformed,
    /// The caller did not prove who they are.
    Unauthenticated,
    /// The caller is known, and may not do this.
    Forbidden,
    /// What the request names does not exist, or is not the caller's.
    NotFound,
    /// It exists already, or another change got there first.
    Conflict,
    /// Readable, but not acceptable (a level that is not a price, a rule that cannot be).
    Invalid,
    /// Acceptable, but over a limit the caller has reached.
    LimitReached,
    /// Too many requests in too short a time; the same request may succeed after a while.
    RateLimited,
    /// Something the service depends on cannot serve now; the same request may succeed later.
    Unavailable,
    /// A fault of the service itself.
    Internal,
}

/// An error that knows which [`FailureKind`] it is.
pub trait Failure: Error + Send + Sync + 'static {
    fn kind(&self) -> FailureKind;

    /// The input field the failure is about, when it is about one (`password`, `level`).
    fn field(&self) -> Option<&str> {
        None
    }

    /// How long the caller should wait before trying again, when that is known.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// An error and every cause under it on one line (`top: cause: root cause`), for logs and for
/// messages a person reads. Errors here keep their cause as a source rather than in their own
/// message, so this is how the whole story gets told.
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("loading the rules failed")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("the database cannot be reached")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn the_chain_tells_every_cause_once() {
        let error = Outer(Inner(std::io::Error::other("connection refused")));
        assert_eq!(
            ErrorChain(&error).to_string(),
            "loading the rules failed: the database cannot be reached: connection refused"
        );
    }
}
