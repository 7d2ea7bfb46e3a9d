//! Shared state port: what every instance of a service must see alike.

use async_trait::async_trait;
use futures::stream::BoxStream;
use signal_domain::{InstrumentId, Quote};

use crate::error::{BroadcastError, CacheError};
use std::time::Duration;

/// The latest quote per instrument.
#[async_trait]
pub trait QuoteCache: Send + Sync + 'static {
    async fn put(&self, quote: &Quote) -> Result<(), CacheError>;
    async fn get(&self, id: &InstrumentId) -> Result<Option<Quote>, CacheError>;
    async fn get_many(&self, ids: &[InstrumentId]) -> Result<Vec<Quote>, CacheError>;
    async fn all(&self) -> Result<Vec<Quote>, CacheError>;
}

/// Small shared values with an expiry, claims that only one instance can hold at a time, and
/// leases: exchange tokens cached until they expire, the right to issue a new one, and which
/// instance evaluates which instruments.
#[async_trait]
pub trait SharedCache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError>;
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError>;
    /// Claims `key` for `ttl` unless it is already claimed; true when this caller got it. A claim
    /// is never released early: it doubles as a rate limit ("at most once per `ttl`").
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, CacheError>;
    /// Holds `key` for `holder` until `ttl` from now: takes it when free, extends it when
    /// `holder` already holds it. True when `holder` holds it now.
    async fn lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, CacheError>;
    /// Gives `key` up, so another holder can take it at once; nothing when `holder` does not
    /// hold it.
    async fn release(&self, key: &str, holder: &str) -> Result<(), CacheError>;
}

/// Messages every instance of a service hears: how an alert consumed on one instance reaches the
/// user's sockets on another.
#[async_trait]
pub trait Broadcast: Send + Sync + 'static {
    async fn publish(&self, message: &[u8]) -> Result<(), BroadcastError>;
    /// Every message published from now on, by any instance (this one included).
    async fn subscribe(&self) -> Result<BoxStream<'static, Vec<u8>>, BroadcastError>;
}
