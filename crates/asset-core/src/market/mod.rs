//! The market stage, the first a tick goes through: it folds each tick into its instrument's
//! quote (stamped open or closed by the market calendar), publishes the quote in the quote book
//! for live sockets, hands it to the conflated outlets (the shared cache, the market-data topic)
//! and the tick to the candle aggregator, and forwards the quotes of the instruments this
//! instance follows to the engine. Nothing here waits on the network: the outlets and candles
//! run in tasks of their own.

pub(crate) mod candles;
pub(crate) mod conflated;
pub(crate) mod quote_book;

pub(crate) use quote_book::{latest_known, newest, QuoteBook};
pub use quote_book::{LiveQuote, LiveQuotes};

use signal_domain::{MarketCalendar, Quote, QuoteSource, Tick};
use signal_ownership::ShardSet;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::metrics::AssetMetrics;
use candles::CandleSink;
use conflated::ConflatedQuotes;

pub(crate) struct MarketStage {
    pub book: Arc<QuoteBook>,
    pub calendar: MarketCalendar,
    /// The shared cache's latest quotes, written behind the tick path.
    pub quote_cache_outlet: Arc<ConflatedQuotes>,
    /// Market-data events, published behind the tick path, when anyone outside hears them.
    pub market_data_outlet: Option<Arc<ConflatedQuotes>>,
    pub candles: CandleSink,
    /// The shards whose instruments this instance evaluates or is taking over.
    pub following: watch::Receiver<ShardSet>,
    /// Where the quotes of followed instruments go to be evaluated.
    pub engine: mpsc::Sender<Quote>,
    pub metrics: AssetMetrics,
}

impl MarketStage {
    /// Takes ticks until `shutdown` or until every feed is gone.
    pub(crate) async fn run(
        mut self,
        mut ticks: mpsc::Receiver<Tick>,
        shutdown: CancellationToken,
    ) {
        let mut following = *self.following.borrow_and_update();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Ok(()) = self.following.changed() => following = *self.following.borrow_and_update(),
                tick = ticks.recv() => match tick {
                    Some(tick) => self.on_tick(tick, following).await,
                    None => break,
                },
            }
        }
    }

    async fn on_tick(&mut self, tick: Tick, following: ShardSet) {
        let open = self
            .calendar
            .session(tick.instrument.market(), chrono::Utc::now())
            .is_open();
        let quote =
            Quote::after(&tick, self.book.latest(&tick.instrument).as_ref()).with_session(open);
        self.metrics
            .ticks_processed
            .with_label_values(&[source_label(tick.source)])
            .inc();
        self.quote_cache_outlet.offer(quote.clone());
        // Market data and candles have one producer per instrument, its owner; an instance
        // streaming another's instrument for its own viewers only shares the latest quote.
        let followed = following.owns(&tick.instrument);
        if followed {
            if let Some(outlet) = &self.market_data_outlet {
                outlet.offer(quote.clone());
            }
            self.candles.offer(&tick);
        }
        self.book.publish(quote.clone());
        if followed {
            // A closed queue means the engine has stopped: the service is shutting down.
            let _ = self.engine.send(quote).await;
        }
    }
}

fn source_label(source: QuoteSource) -> &'static str {
    match source {
        QuoteSource::Simulated => "simulated",
        QuoteSource::Upbit => "upbit",
        QuoteSource::Kis => "kis",
    }
}
