//! Beside the tick's path: the catalog follows what the live feeds list. A feed that can tell
//! (Upbit's market list) is asked at start and then every so often, so a market listed while the
//! service runs can be searched, watched and given rules without a restart.

use signal_catalog::Catalog;
use signal_domain::ErrorChain;
use signal_ports::QuoteFeed;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Merges `feed`'s listing into `catalog` now and every `every`, until shutdown.
pub async fn follow_listings(
    feed: Arc<dyn QuoteFeed>,
    catalog: Arc<RwLock<Catalog>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut rounds = tokio::time::interval(every);
    rounds.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = rounds.tick() => {}
        }
        let listed = tokio::select! {
            _ = shutdown.cancelled() => return,
            listed = feed.instruments() => listed,
        };
        match listed {
            Ok(listed) if listed.is_empty() => {}
            Ok(listed) => {
                let count = listed.len();
                // Catalog updates replace entries whole, so a poisoned lock holds a consistent
                // catalog.
                let added = catalog
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .merge_listing(listed);
                if added.is_empty() {
                    tracing::debug!(feed = feed.name(), count, "instrument list unchanged");
                } else {
                    tracing::info!(feed = feed.name(), count, ?added, "new instruments listed");
                }
            }
            Err(error) => {
                tracing::warn!(feed = feed.name(), error = %ErrorChain(&error), "instrument list unavailable; trying again later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use signal_domain::{Instrument, InstrumentId};
    use signal_ports::{FeedContext, FeedError};
    use std::sync::Mutex;

    /// A feed whose listing the test changes.
    #[derive(Default)]
    struct Listing(Mutex<Vec<Instrument>>);

    #[async_trait]
    impl QuoteFeed for Listing {
        fn name(&self) -> &'static str {
            "listing"
        }

        async fn instruments(&self) -> Result<Vec<Instrument>, FeedError> {
            Ok(self.0.lock().unwrap().clone())
        }

        async fn run(&self, _: FeedContext) -> Result<(), FeedError> {
            Ok(())
        }
    }

    fn coin(symbol: &str) -> Instrument {
        Instrument {
            id: format!("UPBIT:{symbol}").parse().unwrap(),
            korean_name: format!("{symbol} 코인"),
            english_name: format!("{symbol} coin"),
            warning: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_market_listed_after_start_joins_the_catalog_on_the_next_round() {
        let feed = Arc::new(Listing::default());
        feed.0.lock().unwrap().push(coin("KRW-BTC"));
        let catalog = Arc::new(RwLock::new(Catalog::builtin()));
        let before = catalog.read().unwrap().len();
        let shutdown = CancellationToken::new();
        let every = Duration::from_secs(600);
        let task = tokio::spawn(follow_listings(
            feed.clone(),
            catalog.clone(),
            every,
            shutdown.clone(),
        ));
        let new: InstrumentId = "UPBIT:KRW-NEWCOIN".parse().unwrap();
        tokio::time::sleep(every / 2).await;
        assert_eq!(catalog.read().unwrap().len(), before);

        feed.0.lock().unwrap().push(coin("KRW-NEWCOIN"));
        tokio::time::sleep(every).await;
        assert!(catalog.read().unwrap().get(&new).is_some());
        assert_eq!(catalog.read().unwrap().resolve("krw-newcoin"), Ok(new));
        shutdown.cancel();
        task.await.unwrap();
    }
}
