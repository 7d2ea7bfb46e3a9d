//! When each instrument trades. Real tape is uneven — the big coins print several times a second,
//! large caps every second or two, the long tail less often — and a demo that ticks everything at
//! one pace looks fake and floods the pipeline with ticks nobody watches.

use rand::Rng;
use signal_domain::{InstrumentId, Market};
use std::time::Duration;

/// Upbit markets busy enough to trade several times a second.
const HOT_COINS: [&str; 5] = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-DOGE"];

/// How many stocks per region (KRX, US) trade at the active pace: the first ones given, since
/// callers pass instruments in catalog order, largest first.
const ACTIVE_STOCKS_PER_REGION: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rhythm {
    /// 0.1 to 0.3 s between trades.
    Hot,
    /// 1 to 3 s.
    Active,
    /// 2 to 6 s.
    Quiet,
}

impl Rhythm {
    fn mean_secs(self) -> f64 {
        match self {
            Rhythm::Hot => 0.2,
            Rhythm::Active => 2.0,
            Rhythm::Quiet => 4.0,
        }
    }

    /// The wait before the next trade, jittered by ±50 % so instruments do not tick in lockstep.
    /// `speed` must be finite and positive (see `SimulatedMarket::new`).
    pub(crate) fn next_interval<R: Rng + ?Sized>(self, rng: &mut R, speed: f64) -> Duration {
        Duration::from_secs_f64(self.mean_secs() * rng.gen_range(0.5..1.5) / speed)
    }
}

/// The rhythm of each instrument, in the order given.
pub(crate) fn rhythms<'a>(instruments: impl IntoIterator<Item = &'a InstrumentId>) -> Vec<Rhythm> {
    // Stocks seen so far in each region: [KRX, US].
    let mut seen = [0usize; 2];
    instruments
        .into_iter()
        .map(|id| match id.market() {
            Market::Upbit if HOT_COINS.contains(&id.symbol()) => Rhythm::Hot,
            Market::Upbit => Rhythm::Active,
            market => {
                let region = usize::from(market != Market::Krx);
                seen[region] += 1;
                if seen[region] <= ACTIVE_STOCKS_PER_REGION {
                    Rhythm::Active
                } else {
                    Rhythm::Quiet
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use signal_catalog::Catalog;

    fn id(text: &str) -> InstrumentId {
        text.parse().expect("test ids are valid")
    }

    #[test]
    fn big_coins_are_hot_and_the_largest_stocks_active() {
        let mut ids = vec![id("UPBIT:KRW-BTC"), id("UPBIT:KRW-ADA")];
        ids.extend((0..31).map(|n| id(&format!("KRX:{:06}", n))));
        ids.push(id("NASDAQ:AAPL"));
        let rhythms = rhythms(&ids);
        assert_eq!(rhythms[0], Rhythm::Hot);
        assert_eq!(rhythms[1], Rhythm::Active);
        assert!(rhythms[2..32].iter().all(|r| *r == Rhythm::Active));
        assert_eq!(rhythms[32], Rhythm::Quiet);
        // The US count is separate from KRX's.
        assert_eq!(rhythms[33], Rhythm::Active);
    }

    #[test]
    fn intervals_follow_the_rhythm_and_shrink_with_speed() {
        let mut rng = SmallRng::seed_from_u64(5);
        for _ in 0..1_000 {
            let hot = Rhythm::Hot.next_interval(&mut rng, 1.0);
            assert!(hot >= Duration::from_millis(100) && hot < Duration::from_millis(300));
            let quiet = Rhythm::Quiet.next_interval(&mut rng, 1.0);
            assert!(quiet >= Duration::from_secs(2) && quiet < Duration::from_secs(6));
            let fast = Rhythm::Active.next_interval(&mut rng, 100.0);
            assert!(fast >= Duration::from_millis(10) && fast < Duration::from_millis(30));
        }
    }

    #[test]
    fn the_builtin_catalog_makes_a_few_hundred_ticks_a_second() {
        let catalog = Catalog::builtin();
        let per_second: f64 = rhythms(catalog.entries().map(|e| &e.instrument.id))
            .iter()
            .map(|r| 1.0 / r.mean_secs())
            .sum();
        assert!(
            (100.0..1_000.0).contains(&per_second),
            "{per_second} ticks/s"
        );
    }
}
