//! Shared state port: what every instance of a service must see alike.

use async_trait::async_trait;
use signal_domain::{InstrumentId, Quote};

use crate::store::StoreError;

/// The latest quote per instrument.
#[async_trait]
pub trait QuoteCache: Send + Sync + 'static {
    async fn put(&self, quote: &Quote) -> Result<(), StoreError>;
    async fn get(&self, id: &InstrumentId) -> Result<Option<Quote>, StoreError>;
    async fn get_many(&self, ids: &[InstrumentId]) -> Result<Vec<Quote>, StoreError>;
    async fn all(&self) -> Result<Vec<Quote>, StoreError>;
}
