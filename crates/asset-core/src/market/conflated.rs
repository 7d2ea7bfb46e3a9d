//! Hands quotes to slow outlets off the tick path. Writing to Redis or publishing to Kafka is a
//! network round trip; the pipeline must not wait for one per tick. It leaves the newest quote per
//! instrument here, and a task hands what changed, conflated, to the outlet once per interval:
//! the shared cache every few milliseconds, the market-data topic about once a second.

use async_trait::async_trait;
use signal_domain::ErrorChain;
use signal_domain::{InstrumentId, Quote, QuoteChanged};
use signal_ports::{MarketDataPublisher, QuoteCache};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Where conflated quotes go. Failures are the outlet's to report: the next batch carries newer
/// quotes anyway.
#[async_trait]
pub trait QuoteOutlet: Send + Sync + 'static {
    async fn deliver(&self, batch: Vec<Quote>);
}

pub struct ConflatedQuotes {
    pending: Mutex<HashMap<InstrumentId, Quote>>,
    ready: Notify,
    interval: Duration,
}

impl ConflatedQuotes {
    /// Quotes gather for `interval` before a delivery; later quotes of an instrument replace
    /// earlier ones.
    pub fn new(interval: Duration) -> Self {
        Self {
            pending: Mutex::default(),
            ready: Notify::new(),
            interval,
        }
    }

    /// Never waits: the quote replaces any undelivered one of the same instrument.
    pub fn offer(&self, quote: Quote) {
        self.lock().insert(quote.instrument.clone(), quote);
        self.ready.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstrumentId, Quote>> {
        // Nothing panics while holding the lock; the map stays consistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers until shutdown, then once more.
    pub async fn run(self: Arc<Self>, outlet: Arc<dyn QuoteOutlet>, shutdown: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = self.ready.notified() => false,
            };
            if !stopping {
                tokio::time::sleep(self.interval).await;
            }
            let batch: Vec<Quote> = self.lock().drain().map(|(_, q)| q).collect();
            if !batch.is_empty() {
                outlet.deliver(batch).await;
            }
            if stopping {
                return;
            }
        }
    }
}

/// The shared cache of latest quotes (Redis in production).
pub struct CacheOutlet(pub Arc<dyn QuoteCache>);

#[async_trait]
impl QuoteOutlet for CacheOutlet {
    async fn deliver(&self, batch: Vec<Quote>) {
        for quote in &batch {
            if let Err(e) = self.0.put(quote).await {
                tracing::warn!(error = %ErrorChain(&e), instrument = %quote.instrument, "quote cache write failed");
            }
        }
    }
}

/// Market-data change events on the bus, for consumers outside the system.
pub struct MarketDataOutlet(pub Arc<dyn MarketDataPublisher>);

#[async_trait]
impl QuoteOutlet for MarketDataOutlet {
    async fn deliver(&self, batch: Vec<Quote>) {
        let count = batch.len();
        let events: Vec<QuoteChanged> = batch.into_iter().map(QuoteChanged::new).collect();
        if let Err(e) = self.0.publish(&events).await {
            tracing::warn!(error = %ErrorChain(&e), count, "market data not published; newer quotes will be");
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
        async fn put(&self, quote: &Quote) -> Result<(), signal_ports::CacheError> {
            self.writes.lock().unwrap().push(quote.clone());
            Ok(())
        }
        async fn get(&self, _: &InstrumentId) -> Result<Option<Quote>, signal_ports::CacheError> {
            Ok(None)
        }
        async fn get_many(
            &self,
            _: &[InstrumentId],
        ) -> Result<Vec<Quote>, signal_ports::CacheError> {
            Ok(Vec::new())
        }
        async fn all(&self) -> Result<Vec<Quote>, signal_ports::CacheError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_quotes_is_written_once_with_the_newest_price() {
        let interval = Duration::from_millis(50);
        let writer = Arc::new(ConflatedQuotes::new(interval));
        let cache = Arc::new(CountingCache::default());
        let shutdown = CancellationToken::new();
        let outlet = Arc::new(CacheOutlet(cache.clone()));
        let task = tokio::spawn(writer.clone().run(outlet, shutdown.clone()));
        for price in ["100", "101", "102"] {
            writer.offer(quote(price));
        }
        tokio::time::sleep(interval * 3).await;
        shutdown.cancel();
        task.await.unwrap();
        let writes = cache.writes.lock().unwrap();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].price.to_string(), "102");
    }
}
