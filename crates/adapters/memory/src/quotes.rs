//! Latest quote per instrument, held in this process.

use async_trait::async_trait;
use signal_domain::{InstrumentId, Quote};
use signal_ports::{CacheError, QuoteCache};
use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Default)]
pub struct MemoryQuoteCache {
    quotes: RwLock<HashMap<InstrumentId, Quote>>,
}

impl MemoryQuoteCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<InstrumentId, Quote>> {
        // A writer cannot panic while holding the lock (it only inserts), so poisoning carries no
        // broken invariant; recover the map.
        self.quotes.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl QuoteCache for MemoryQuoteCache {
    async fn put(&self, quote: &Quote) -> Result<(), CacheError> {
        self.quotes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(quote.instrument.clone(), quote.clone());
        Ok(())
    }

    async fn get(&self, id: &InstrumentId) -> Result<Option<Quote>, CacheError> {
        Ok(self.read().get(id).cloned())
    }

    async fn get_many(&self, ids: &[InstrumentId]) -> Result<Vec<Quote>, CacheError> {
        let quotes = self.read();
        Ok(ids
            .iter()
            .filter_map(|id| quotes.get(id).cloned())
            .collect())
    }

    async fn all(&self) -> Result<Vec<Quote>, CacheError> {
        Ok(self.read().values().cloned().collect())
    }
}
