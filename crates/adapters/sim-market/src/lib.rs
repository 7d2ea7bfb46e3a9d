//! The simulated market: a [`QuoteFeed`] that invents plausible trades so the whole system can be
//! demonstrated (and alerts seen firing) without exchange credentials or market hours. Every tick it
//! produces is marked [`QuoteSource::Simulated`], so nothing downstream can mistake it for a real
//! price.
//!
//! Prices come from [`next_price`] and sizes from [`trade_volume`], each instrument drawing from its
//! own seeded generator; the timing draws from another. So a seed fixes every instrument's price
//! path however the ticks interleave in time. It also answers for the past, as a
//! [`signal_ports::CandleHistory`], with candles made of the same steps (`history`).

mod history;
mod path;
mod rhythm;

pub use path::{next_price, trade_volume};

use async_trait::async_trait;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rhythm::Rhythm;
use rust_decimal::Decimal;
use signal_domain::{InstrumentId, Price, QuoteSource, Tick};
use signal_ports::{FeedContext, FeedError, QuoteFeed};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use tokio::time::{sleep_until, Instant};

/// Speeds are kept within this range so every wait stays a representable, non-zero duration.
const MIN_SPEED: f64 = 0.001;
const MAX_SPEED: f64 = 1_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    /// Fixes the price paths; `None` draws a fresh seed from the OS on every run.
    pub seed: Option<u64>,
    /// Multiplies the trading rhythm: 1.0 is the normal pace, 10.0 ten times as many ticks.
    pub speed: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: None,
            speed: 1.0,
        }
    }
}

/// A demo market for a fixed set of instruments, each starting at (and oscillating around) its
/// previous close.
#[derive(Debug, Clone)]
pub struct SimulatedMarket {
    instruments: Vec<(InstrumentId, Price)>,
    rhythms: Vec<Rhythm>,
    seed: Option<u64>,
    speed: f64,
}

impl SimulatedMarket {
    /// `instruments` pairs each instrument with its previous close. Pass them in catalog order
    /// (largest first): the first 30 stocks of KRX and of the US trade at the active pace, the rest
    /// more slowly. A speed outside 0.001..=1,000,000 is clamped into it; NaN or an infinite speed
    /// means 1.0.
    pub fn new(instruments: Vec<(InstrumentId, Price)>, config: SimConfig) -> Self {
        let speed = if config.speed.is_finite() {
            config.speed.clamp(MIN_SPEED, MAX_SPEED)
        } else {
            1.0
        };
        Self {
            rhythms: rhythm::rhythms(instruments.iter().map(|(id, _)| id)),
            instruments,
            seed: config.seed,
            speed,
        }
    }
}

/// One instrument's session so far.
struct Track {
    id: InstrumentId,
    prev_close: Price,
    price: Price,
    cumulative_volume: Decimal,
    rhythm: Rhythm,
    rng: SmallRng,
}

impl Track {
    fn trade(&mut self) -> Tick {
        let market = self.id.market();
        self.price = next_price(&mut self.rng, market, self.price, self.prev_close);
        let volume = trade_volume(&mut self.rng, market, self.price);
        self.cumulative_volume += volume;
        let now = chrono::Utc::now();
        Tick {
            instrument: self.id.clone(),
            price: self.price,
            trade_volume: Some(volume),
            cumulative_volume: Some(self.cumulative_volume),
            prev_close: Some(self.prev_close),
            exchange_time: now,
            received_at: now,
            source: QuoteSource::Simulated,
        }
    }
}

#[async_trait]
impl QuoteFeed for SimulatedMarket {
    fn name(&self) -> &'static str {
        "simulated"
    }

    /// Every instrument trades, whatever the interest: the demo shows a whole market.
    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        let FeedContext { sink, shutdown, .. } = ctx;
        let mut seeder = match self.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_entropy(),
        };
        let mut tracks: Vec<Track> = self
            .instruments
            .iter()
            .zip(&self.rhythms)
            .map(|((id, close), &rhythm)| Track {
                id: id.clone(),
                prev_close: *close,
                price: *close,
                cumulative_volume: Decimal::ZERO,
                rhythm,
                rng: SmallRng::seed_from_u64(seeder.gen()),
            })
            .collect();
        let mut clock = SmallRng::seed_from_u64(seeder.gen());

        // Min-heap of (when, which instrument) trades next.
        let start = Instant::now();
        let mut queue: BinaryHeap<Reverse<(Instant, usize)>> = tracks
            .iter()
            .enumerate()
            .map(|(i, track)| {
                Reverse((
                    start + track.rhythm.next_interval(&mut clock, self.speed),
                    i,
                ))
            })
            .collect();

        while let Some(Reverse((due, i))) = queue.pop() {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                _ = sleep_until(due) => {}
            }
            let tick = tracks[i].trade();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                sent = sink.send(tick) => sent.map_err(|_| FeedError::SinkClosed)?,
            }
            // Scheduled from now rather than from `due`, so a consumer that stalled is not
            // answered with a burst of catch-up ticks.
            let next = Instant::now() + tracks[i].rhythm.next_interval(&mut clock, self.speed);
            queue.push(Reverse((next, i)));
        }
        // No instruments: nothing to trade, but a feed runs until it is told to stop.
        shutdown.cancelled().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    fn context(sink: signal_ports::TickSink, shutdown: CancellationToken) -> FeedContext {
        FeedContext {
            sink,
            interest: tokio::sync::watch::channel(Default::default()).1,
            shutdown,
        }
    }

    use super::*;
    use signal_catalog::Catalog;
    use signal_domain::Market;
    use std::collections::HashMap;
    use std::time::Duration;
    use tokio::sync::mpsc;
    use tokio::time::timeout;

    const FAST: f64 = 1_000.0;

    fn builtin_instruments() -> Vec<(InstrumentId, Price)> {
        Catalog::builtin()
            .entries()
            .filter_map(|e| Some((e.instrument.id.clone(), e.reference_price?)))
            .collect()
    }

    fn market(instruments: Vec<(InstrumentId, Price)>, seed: u64) -> SimulatedMarket {
        SimulatedMarket::new(
            instruments,
            SimConfig {
                seed: Some(seed),
                speed: FAST,
            },
        )
    }

    /// Runs the feed until `done` says the ticks so far suffice, then cancels it and checks that
    /// it stopped cleanly.
    async fn collect(feed: SimulatedMarket, done: impl Fn(&[Tick]) -> bool) -> Vec<Tick> {
        let (tx, mut rx) = mpsc::channel(256);
        let token = CancellationToken::new();
        let handle = tokio::spawn({
            let token = token.clone();
            async move { feed.run(context(tx, token)).await }
        });
        let mut ticks = Vec::new();
        while !done(&ticks) {
            match timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some(tick)) => ticks.push(tick),
                Ok(None) => panic!("feed stopped early: {:?}", handle.await),
                Err(_) => panic!("no tick for 10 s after {} ticks", ticks.len()),
            }
        }
        token.cancel();
        let stopped = timeout(Duration::from_secs(1), handle).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "feed did not stop cleanly: {stopped:?}"
        );
        ticks
    }

    #[tokio::test]
    async fn ticks_are_positive_on_the_grid_and_marked_simulated() {
        let instruments = builtin_instruments();
        let closes: HashMap<_, _> = instruments.iter().cloned().collect();
        let ticks = collect(market(instruments, 1), |t| t.len() >= 5_000).await;

        let mut totals: HashMap<&InstrumentId, Decimal> = HashMap::new();
        for tick in &ticks {
            let market = tick.instrument.market();
            let price = tick.price.value();
            assert!(price > Decimal::ZERO);
            assert_eq!(
                market.round_to_unit(price),
                price,
                "{tick:?} is off the grid"
            );
            assert_eq!(tick.source, QuoteSource::Simulated);
            assert_eq!(tick.prev_close, closes.get(&tick.instrument).copied());
            assert_eq!(tick.exchange_time, tick.received_at);

            let volume = tick.trade_volume.expect("every trade has a size");
            assert!(volume > Decimal::ZERO);
            if market != Market::Upbit {
                assert!(volume.fract().is_zero(), "{tick:?} trades part of a share");
            }
            let total = totals.entry(&tick.instrument).or_default();
            *total += volume;
            assert_eq!(tick.cumulative_volume, Some(*total));
        }
    }

    #[tokio::test]
    async fn every_instrument_ticks() {
        // Past the 30 active stocks per region, so the quiet rhythm is covered too.
        let instruments = builtin_instruments();
        let all = instruments.len();
        let ticks = collect(market(instruments, 2), |ticks| {
            ticks
                .iter()
                .map(|t| &t.instrument)
                .collect::<std::collections::HashSet<_>>()
                .len()
                == all
        })
        .await;
        assert!(ticks.len() >= all);
    }

    // Virtual time: the rhythm, not the machine's load, decides who ticks how often.
    #[tokio::test(start_paused = true)]
    async fn big_coins_tick_more_often_than_quiet_stocks() {
        let btc: InstrumentId = "UPBIT:KRW-BTC".parse().expect("valid id");
        let quiet: InstrumentId = "AMEX:NGD".parse().expect("valid id");
        let count = |ticks: &[Tick], id: &InstrumentId| {
            ticks.iter().filter(|t| &t.instrument == id).count()
        };
        // Slow enough that the hot rhythm's waits stay above the timer's millisecond resolution.
        let feed = SimulatedMarket::new(
            builtin_instruments(),
            SimConfig {
                seed: Some(3),
                speed: 100.0,
            },
        );
        let ticks = collect(feed, |t| count(t, &quiet) >= 5).await;
        // The rhythms differ twentyfold; leave room for jitter and timer rounding.
        assert!(
            count(&ticks, &btc) > 5 * 5,
            "{} BTC ticks",
            count(&ticks, &btc)
        );
    }

    #[tokio::test]
    async fn prices_stay_in_a_sane_band_around_the_close() {
        let ticks = collect(market(builtin_instruments(), 4), |t| t.len() >= 20_000).await;
        for tick in ticks {
            let close = tick
                .prev_close
                .expect("simulated ticks carry the close")
                .value();
            let drift = ((tick.price.value() - close) / close).abs();
            assert!(drift <= Decimal::new(11, 2), "{tick:?} strayed {drift}");
        }
    }

    #[tokio::test]
    async fn the_same_seed_gives_every_instrument_the_same_path() {
        fn paths(ticks: &[Tick]) -> HashMap<InstrumentId, Vec<Price>> {
            let mut paths: HashMap<_, Vec<_>> = HashMap::new();
            for tick in ticks {
                paths
                    .entry(tick.instrument.clone())
                    .or_default()
                    .push(tick.price);
            }
            paths
        }
        let instruments: Vec<_> = builtin_instruments().into_iter().step_by(25).collect();
        let enough = |ticks: &[Tick]| {
            let paths = paths(ticks);
            paths.len() == 21 && paths.values().all(|p| p.len() >= 10)
        };
        assert_eq!(instruments.len(), 21);
        let first = paths(&collect(market(instruments.clone(), 9), enough).await);
        let second = paths(&collect(market(instruments, 9), enough).await);
        for (id, path) in &first {
            let other = &second[id];
            let n = path.len().min(other.len());
            assert_eq!(path[..n], other[..n], "{id} took another path");
        }
    }

    #[tokio::test]
    async fn cancelling_stops_the_feed_even_when_the_sink_is_full() {
        let (tx, _rx) = mpsc::channel(1);
        let token = CancellationToken::new();
        let feed = market(builtin_instruments(), 5);
        let handle = tokio::spawn({
            let token = token.clone();
            async move { feed.run(context(tx, token)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        token.cancel();
        let stopped = timeout(Duration::from_secs(1), handle).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    }

    #[tokio::test]
    async fn an_empty_market_waits_for_cancellation() {
        let (tx, _rx) = mpsc::channel(1);
        let token = CancellationToken::new();
        token.cancel();
        let feed = market(Vec::new(), 6);
        assert!(feed.run(context(tx, token)).await.is_ok());
    }

    #[tokio::test]
    async fn a_closed_sink_is_an_error() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let feed = market(builtin_instruments(), 7);
        let result = timeout(
            Duration::from_secs(1),
            feed.run(context(tx, CancellationToken::new())),
        )
        .await;
        assert!(
            matches!(result, Ok(Err(FeedError::SinkClosed))),
            "{result:?}"
        );
    }

    #[test]
    fn it_is_named_simulated_and_tolerates_odd_speeds() {
        let odd = |speed| SimulatedMarket::new(Vec::new(), SimConfig { seed: None, speed }).speed;
        assert_eq!(odd(f64::NAN), 1.0);
        assert_eq!(odd(-3.0), MIN_SPEED);
        assert_eq!(odd(1e12), MAX_SPEED);
        assert_eq!(market(Vec::new(), 0).name(), "simulated");
        assert_eq!(SimConfig::default().speed, 1.0);
    }
}
