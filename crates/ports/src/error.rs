//! The errors of the ports. Each port has its own, so a caller can tell a store it cannot reach
//! from a bus that refused an event; every adapter keeps its own error (sqlx's, Redis's,
//! librdkafka's) as the source, so logs tell the whole story.

use signal_domain::{Failure, FailureKind};

/// Any adapter's own error, kept as the source of a port's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The relational store's errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write: a row with this key exists already.
    #[error("a stored row already has this key")]
    Conflict(#[source] BoxError),
    /// The store cannot be reached: connection refused, pool exhausted, timed out.
    #[error("the store cannot be reached")]
    Unavailable(#[source] BoxError),
    /// The store was reached and failed the statement.
    #[error("the store failed a statement")]
    Failed(#[source] BoxError),
    /// A stored value cannot be read back as what it should be.
    #[error("stored {what} cannot be read")]
    Corrupt {
        what: &'static str,
        #[source]
        source: BoxError,
    },
}

impl Failure for StoreError {
    fn kind(&self) -> FailureKind {
        match self {
            StoreError::Conflict(_) => FailureKind::Conflict,
            StoreError::Unavailable(_) => FailureKind::Unavailable,
            StoreError::Failed(_) | StoreError::Corrupt { .. } => FailureKind::Internal,
        }
    }
}

/// The event bus's errors.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus cannot take events now; the same events may go through later.
    #[error("the event bus cannot be reached")]
    Unavailable(#[source] BoxError),
    /// The bus refused one event of the batch for good (it cannot be encoded, or the broker
    /// calls it invalid): sending it again cannot succeed. Events before it went through.
    #[error("the event bus refused event {index} of the batch")]
    Refused {
        /// Its position in the batch handed to `publish`.
        index: usize,
        #[source]
        source: BoxError,
    },
    /// The bus has shut down.
    #[error("the event bus has shut down")]
    Closed,
}

impl Failure for BusError {
    fn kind(&self) -> FailureKind {
        match self {
            BusError::Unavailable(_) | BusError::Closed => FailureKind::Unavailable,
            BusError::Refused { .. } => FailureKind::Internal,
        }
    }
}

/// The shared cache's errors (latest quotes, expiring values, claims, leases).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache cannot be reached.
    #[error("the shared cache cannot be reached")]
    Unavailable(#[source] BoxError),
    /// The cache was reached and failed the command.
    #[error("the shared cache failed a command")]
    Failed(#[source] BoxError),
    /// A cached value cannot be read back as what it should be.
    #[error("a cached {what} cannot be read")]
    Corrupt {
        what: &'static str,
        #[source]
        source: BoxError,
    },
}

impl Failure for CacheError {
    fn kind(&self) -> FailureKind {
        match self {
            CacheError::Unavailable(_) => FailureKind::Unavailable,
            CacheError::Failed(_) | CacheError::Corrupt { .. } => FailureKind::Internal,
        }
    }
}

/// The errors of broadcast channels between instances.
#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    /// The channel cannot be reached, to publish or to subscribe.
    #[error("the broadcast channel cannot be reached")]
    Unavailable(#[source] BoxError),
}

impl Failure for BroadcastError {
    fn kind(&self) -> FailureKind {
        match self {
            BroadcastError::Unavailable(_) => FailureKind::Unavailable,
        }
    }
}
