//! Market data port: anything that produces normalized ticks, told which instruments need them.

use async_trait::async_trait;
use signal_domain::{Instrument, InstrumentId, Tick};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::BoxError;

/// Where a feed delivers its ticks. Bounded, so a stalled consumer slows the feed instead of
/// growing memory without limit.
pub type TickSink = mpsc::Sender<Tick>;

/// Why an instrument needs live data. Ordered from the most to the least important: a feed with
/// a limited number of live streams gives them to the first ones and polls the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// Someone has an active alert rule on it: a missed price means a missed alert.
    ActiveRule,
    /// It is on someone's watchlist.
    Watched,
    /// Someone is looking at it live right now (a quote socket subscription, a quote request).
    ViewedLive,
}

/// The instruments that need live data now, each with its most important need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interest {
    pub needs: BTreeMap<InstrumentId, Need>,
}

impl Interest {
    /// Records `need` for `id`, keeping the more important of it and any need already recorded.
    pub fn add(&mut self, id: InstrumentId, need: Need) {
        self.needs
            .entry(id)
            .and_modify(|current| *current = (*current).min(need))
            .or_insert(need);
    }

    /// The instruments in order of importance (then by id), for feeds that must choose.
    pub fn by_priority(&self) -> Vec<(&InstrumentId, Need)> {
        let mut ranked: Vec<_> = self.needs.iter().map(|(id, need)| (id, *need)).collect();
        ranked.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
        ranked
    }
}

/// What a running feed is given.
pub struct FeedContext {
    pub sink: TickSink,
    /// The current interest; it changes as rules, watchlists and viewers change.
    pub interest: watch::Receiver<Arc<Interest>>,
    pub shutdown: CancellationToken,
}

/// What a feed's live connection is doing, for readiness and the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedState {
    /// Delivering what is wanted (a feed without a connection of its own always is).
    Live,
    /// Nothing is wanted from it, so it holds no connection.
    Idle,
    /// Something is wanted and the connection is down: it is reconnecting.
    Down,
}

impl FeedState {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedState::Live => "live",
            FeedState::Idle => "idle",
            FeedState::Down => "down",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("the tick consumer has gone away")]
    SinkClosed,
    #[error("feed `{feed}` failed")]
    Failed {
        feed: &'static str,
        #[source]
        source: BoxError,
    },
}

/// A source of market data.
#[async_trait]
pub trait QuoteFeed: Send + Sync + 'static {
    /// Short name for logs and metrics (`simulated`, `upbit`, `kis`).
    fn name(&self) -> &'static str;

    /// The instruments this feed lists, when it can tell (Upbit's market list); they refresh the
    /// built-in catalog. Feeds without a listing return none.
    async fn instruments(&self) -> Result<Vec<Instrument>, FeedError> {
        Ok(Vec::new())
    }

    /// Streams ticks into `ctx.sink` until `ctx.shutdown` is cancelled or the sink closes.
    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError>;

    /// What its live connection is doing now.
    fn state(&self) -> FeedState {
        FeedState::Live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_important_need_wins_and_ranks_first() {
        let btc: InstrumentId = "UPBIT:KRW-BTC".parse().unwrap();
        let samsung: InstrumentId = "KRX:005930".parse().unwrap();
        let mut interest = Interest::default();
        interest.add(btc.clone(), Need::ViewedLive);
        interest.add(samsung.clone(), Need::Watched);
        interest.add(btc.clone(), Need::ActiveRule);
        interest.add(btc.clone(), Need::Watched);
        assert_eq!(
            interest.by_priority(),
            vec![(&btc, Need::ActiveRule), (&samsung, Need::Watched)]
        );
    }
}
