//! The latest quote of every instrument, and the live fan-out to quote sockets.
//!
//! Each instrument has a `watch` channel: a subscriber only ever sees the newest value, so a slow
//! client gets the latest price instead of a growing backlog, and a burst of ticks costs it
//! nothing beyond one pending value per instrument it follows.
//!
//! Every subscriber of an instrument shares one [`LiveQuote`] per quote, and with it the quote's
//! encoding for the wire: however many sockets follow the instrument, a quote is encoded once.

use signal_domain::ErrorChain;
use signal_domain::{InstrumentId, Quote};
use signal_ports::QuoteCache;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use tokio::sync::watch;

/// What an instrument's live subscribers receive: its newest quote, if it has one yet.
pub type LiveQuotes = watch::Receiver<Option<Arc<LiveQuote>>>;

/// One published quote, shared by every live subscriber of its instrument.
pub struct LiveQuote {
    pub quote: Quote,
    /// What the transport makes of the quote, made by the first subscriber that sends it.
    encoded: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl LiveQuote {
    fn new(quote: Quote) -> Self {
        Self {
            quote,
            encoded: OnceLock::new(),
        }
    }

    /// The quote as `encode` makes it, made once however many subscribers ask. The core knows
    /// no wire format: the one transport that sends quotes live chooses `E`. A caller asking for
    /// another type than the first caller gets its own encoding, made for it alone.
    pub fn encoded<E, F>(&self, encode: F) -> Arc<E>
    where
        E: Send + Sync + 'static,
        F: Fn(&Quote) -> E,
    {
        let shared = self
            .encoded
            .get_or_init(|| Box::new(Arc::new(encode(&self.quote))));
        match shared.downcast_ref::<Arc<E>>() {
            Some(encoded) => encoded.clone(),
            None => Arc::new(encode(&self.quote)),
        }
    }
}

type Channel = watch::Sender<Option<Arc<LiveQuote>>>;

#[derive(Default)]
pub struct QuoteBook {
    channels: RwLock<HashMap<InstrumentId, Channel>>,
}

impl QuoteBook {
    pub fn latest(&self, id: &InstrumentId) -> Option<Quote> {
        self.read()
            .get(id)
            .and_then(|tx| tx.borrow().as_ref().map(|live| live.quote.clone()))
    }

    pub fn all(&self) -> Vec<Quote> {
        self.read()
            .values()
            .filter_map(|tx| tx.borrow().as_ref().map(|live| live.quote.clone()))
            .collect()
    }

    pub fn publish(&self, quote: Quote) {
        if let Some(tx) = self.read().get(&quote.instrument) {
            tx.send_replace(Some(Arc::new(LiveQuote::new(quote))));
            return;
        }
        let mut channels = self.write();
        channels
            .entry(quote.instrument.clone())
            .or_insert_with(|| watch::Sender::new(None))
            .send_replace(Some(Arc::new(LiveQuote::new(quote))));
    }

    /// A receiver that sees the current quote (if any) and every later one, conflated.
    pub fn subscribe(&self, id: &InstrumentId) -> LiveQuotes {
        if let Some(tx) = self.read().get(id) {
            return tx.subscribe();
        }
        self.write()
            .entry(id.clone())
            .or_insert_with(|| watch::Sender::new(None))
            .subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<InstrumentId, Channel>> {
        // Nothing panics while holding this lock, so a poisoned lock guards no broken invariant.
        self.channels.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<InstrumentId, Channel>> {
        self.channels.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The newest known quote of each of `ids`: this instance's own, or the one another instance
/// shared, whichever was received last. An instance hears only the instruments it owns or its
/// own users view live, and its own may have stopped when it lost an instrument; the shared
/// cache trails this instance's own ticks by its write interval.
pub async fn latest_known(
    book: &QuoteBook,
    cache: &dyn QuoteCache,
    ids: &[InstrumentId],
) -> HashMap<InstrumentId, Quote> {
    let own = ids.iter().filter_map(|id| book.latest(id)).collect();
    let shared = cache.get_many(ids).await.unwrap_or_else(|e| {
        tracing::warn!(error = %ErrorChain(&e), "cannot read the shared quotes; going by this instance's own");
        Vec::new()
    });
    newest(own, shared)
}

/// One quote per instrument from both sources, the later received.
pub fn newest(own: Vec<Quote>, shared: Vec<Quote>) -> HashMap<InstrumentId, Quote> {
    let mut quotes: HashMap<InstrumentId, Quote> = HashMap::new();
    for quote in own.into_iter().chain(shared) {
        match quotes.get(&quote.instrument) {
            Some(known) if known.received_at >= quote.received_at => {}
            _ => {
                quotes.insert(quote.instrument.clone(), quote);
            }
        }
    }
    quotes
}
