//! Readiness port: something a service depends on, asked whether it answers now.

use async_trait::async_trait;

use crate::error::{BusError, CacheError, StoreError};

/// A dependency whose health `/health/ready` reports: the database, the shared cache, the bus,
/// a market feed, a task of the service's own.
#[async_trait]
pub trait Probe: Send + Sync + 'static {
    /// One small round trip (or a look at a state kept anyway); the caller bounds how long it
    /// waits.
    async fn probe(&self) -> Result<(), ProbeError>;
}

/// Why a dependency is down.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A task the service needs has stopped.
    #[error("it has stopped")]
    Stopped,
    /// Something is wanted from it and its connection is down.
    #[error("its connection is down")]
    Disconnected,
}
