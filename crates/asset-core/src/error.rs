//! The use cases' error: what a caller is refused and why, or which dependency failed. Business
//! rules (the active-rule limit, one watchlist entry per instrument) are decided here, not in the
//! store.

use signal_catalog::ResolveError;
use signal_domain::{Failure, FailureKind, InstrumentId, RuleError, RuleId};
use signal_ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The text names no catalogued instrument, or several.
    #[error(transparent)]
    UnresolvedInstrument(#[from] ResolveError),
    #[error("unknown instrument `{0}`")]
    UnknownInstrument(InstrumentId),
    #[error("you have no rule {0}")]
    NoSuchRule(RuleId),
    /// The original API's one target per instrument: a one-shot ABOVE or BELOW rule.
    #[error("you have no target on {0}")]
    NoTarget(InstrumentId),
    #[error("{0} is already on your watchlist")]
    AlreadyWatched(InstrumentId),
    #[error("{0} is not on your watchlist")]
    NotWatched(InstrumentId),
    #[error(transparent)]
    InvalidRule(#[from] RuleError),
    #[error("limit reached: at most {limit} active rules per user")]
    RuleLimit { limit: usize },
    /// The engine has stopped taking commands: the service is shutting down.
    #[error("the trigger engine is shutting down")]
    EngineStopped,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backfill(#[from] crate::BackfillError),
}

impl From<crate::engine::EngineStopped> for CoreError {
    fn from(_: crate::engine::EngineStopped) -> Self {
        CoreError::EngineStopped
    }
}

impl Failure for CoreError {
    fn kind(&self) -> FailureKind {
        match self {
            CoreError::UnresolvedInstrument(_)
            | CoreError::UnknownInstrument(_)
            | CoreError::NoSuchRule(_)
            | CoreError::NoTarget(_)
            | CoreError::NotWatched(_) => FailureKind::NotFound,
            CoreError::AlreadyWatched(_) => FailureKind::Conflict,
            CoreError::InvalidRule(_) => FailureKind::Invalid,
            CoreError::RuleLimit { .. } => FailureKind::LimitReached,
            CoreError::EngineStopped => FailureKind::Unavailable,
            CoreError::Store(error) => error.kind(),
            CoreError::Backfill(crate::BackfillError::Store(error)) => error.kind(),
            CoreError::Backfill(crate::BackfillError::History { .. }) => FailureKind::Unavailable,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            CoreError::InvalidRule(error) => error.field(),
            _ => None,
        }
    }
}
