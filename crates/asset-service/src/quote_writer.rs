//! Writes the latest quotes to the shared cache off the tick path. Over Redis each write is a
//! network round trip; the pipeline must not wait for one per tick. It leaves the newest quote
//! per instrument here, and a task flushes what changed, conflated, every few milliseconds.

use signal_domain::{InstrumentId, Quote};
use signal_ports::QuoteCache;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long quotes gather before a flush: later quotes of an instrument replace earlier ones.
const CONFLATION: Duration = Duration::from_millis(50);

#[derive(Default)]
pub struct QuoteWriter {
    pending: Mutex<HashMap<InstrumentId, Quote>>,
    ready: Notify,
}

impl QuoteWriter {
    /// Never waits: the quote replaces any unwritten one of the same instrument.
    pub fn offer(&self, quote: Quote) {
        self.lock().insert(quote.instrument.clone(), quote);
        self.ready.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstrumentId, Quote>> {
        // Nothing panics while holding the lock; the map stays consistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Flushes until shutdown, then once more.
    pub async fn run(self: Arc<Self>, cache: Arc<dyn QuoteCache>, shutdown: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = self.ready.notified() => false,
            };
            if !stopping {
                tokio::time::sleep(CONFLATION).await;
            }
            let batch: Vec<Quote> = self.lock().drain().map(|(_, q)| q).collect();
            for quote in &batch {
                if let Err(e) = cache.put(quote).await {
                    tracing::warn!(error = %e, instrument = %quote.instrument, "quote cache write failed");
                }
            }
            if stopping {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_domain::{Price, QuoteSource, Tick};

    fn quote(price: &str) -> Quote {
        let now = chrono::Utc::now();
        Quote::after(
            &Tick {
                instrument: "UPBIT:KRW-BTC".parse().unwrap(),
                price: price.parse::<Price>().unwrap(),
                trade_volume: None,
                cumulative_volume: None,
                prev_close: None,
                exchange_time: now,
                received_at: now,
                source: QuoteSource::Upbit,
            },
            None,
        )
    }

    #[derive(Default)]
    struct CountingCache {
        writes: Mutex<Vec<Quote>>,
    }

    #[async_trait::async_trait]
    impl QuoteCache for CountingCache {
        async fn put(&self, quote: &Quote) -> Result<(), signal_ports::StoreError> {
            self.writes.lock().unwrap().push(quote.clone());
            Ok(())
        }
        async fn get(&self, _: &InstrumentId) -> Result<Option<Quote>, signal_ports::StoreError> {
            Ok(None)
        }
        async fn get_many(
            &self,
            _: &[InstrumentId],
        ) -> Result<Vec<Quote>, signal_ports::StoreError> {
            Ok(Vec::new())
        }
        async fn all(&self) -> Result<Vec<Quote>, signal_ports::StoreError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_quotes_is_written_once_with_the_newest_price() {
        let writer = Arc::new(QuoteWriter::default());
        let cache = Arc::new(CountingCache::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(writer.clone().run(cache.clone(), shutdown.clone()));
        for price in ["100", "101", "102"] {
            writer.offer(quote(price));
        }
        tokio::time::sleep(CONFLATION * 3).await;
        shutdown.cancel();
        task.await.unwrap();
        let writes = cache.writes.lock().unwrap();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].price.to_string(), "102");
    }
}
