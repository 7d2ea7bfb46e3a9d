//! What the simulated market trades at and how much: pure functions of a random source, kept apart
//! from the timing so a seed reproduces the same prices whatever the clock does, and so the price
//! path can be tested without sleeping.

use rand::Rng;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use signal_domain::{Market, Price};

/// How far from the previous close a price may wander; a move that would leave the band goes the
/// other way instead, so demo alerts stay plausible for a whole session.
const MAX_DRIFT_PERCENT: i64 = 10;

/// Pull toward the previous close: the chance of an up-move is `0.5 - REVERSION * drift`, so at 5 %
/// above the close only 30 % of moves go up.
const REVERSION: f64 = 4.0;

/// The next traded price after `current`, on `market`'s grid, strictly positive, and within about
/// ±10 % of `prev_close` (plus at most one price unit, from rounding onto the grid).
///
/// Most moves are one to three price units, as on a liquid book; about one in ten is a sweep of
/// four to eight units.
pub fn next_price<R: Rng + ?Sized>(
    rng: &mut R,
    market: Market,
    current: Price,
    prev_close: Price,
) -> Price {
    let (now, close) = (current.value(), prev_close.value());
    let drift = ((now - close) / close).to_f64().unwrap_or(0.0);
    let up = rng.gen_bool((0.5 - REVERSION * drift).clamp(0.05, 0.95));
    let step = market.price_unit(now) * Decimal::from(step_units(rng));
    let (wanted, opposite) = if up {
        (now + step, now - step)
    } else {
        (now - step, now + step)
    };
    let band = close * Decimal::new(MAX_DRIFT_PERCENT, 2);
    let candidate = if (wanted - close).abs() <= band {
        wanted
    } else {
        opposite
    };
    // Rounding can only fail to give a price when a down-move hits zero: then the trade prints at
    // the current price instead.
    Price::new(market.round_to_unit(candidate)).unwrap_or(current)
}

fn step_units<R: Rng + ?Sized>(rng: &mut R) -> u32 {
    match rng.gen_range(0..100) {
        0..45 => 1,
        45..75 => 2,
        75..90 => 3,
        _ => rng.gen_range(4..=8),
    }
}

/// The size of one simulated trade at `price`: whole shares for stocks (1 to 500 on KRX, 1 to 300
/// in the US), and for Upbit a coin amount worth roughly 5,000 to 5,000,000 KRW with Upbit's eight
/// decimals. Sizes are log-uniform: many small trades, a few large ones.
pub fn trade_volume<R: Rng + ?Sized>(rng: &mut R, market: Market, price: Price) -> Decimal {
    match market {
        Market::Krx => Decimal::from(log_uniform(rng, 1, 500)),
        Market::Nasdaq | Market::Nyse | Market::Amex => Decimal::from(log_uniform(rng, 1, 300)),
        Market::Upbit => {
            let krw = Decimal::from(log_uniform(rng, 5_000, 5_000_000));
            (krw / price.value()).round_dp(8).max(Decimal::new(1, 8))
        }
    }
}

/// A whole number in `low..=high`, uniform in its logarithm.
fn log_uniform<R: Rng + ?Sized>(rng: &mut R, low: u64, high: u64) -> u64 {
    let exponent = rng.gen_range((low as f64).ln()..=(high as f64).ln());
    // The float cast saturates, and the clamp undoes any rounding past the ends.
    (exponent.exp().round() as u64).clamp(low, high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn price(text: &str) -> Price {
        text.parse().expect("test prices are valid")
    }

    /// A long walk from the close, returned with the close.
    fn walk(seed: u64, market: Market, close: &str, steps: usize) -> (Price, Vec<Price>) {
        let close = price(close);
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut current = close;
        let path = (0..steps)
            .map(|_| {
                current = next_price(&mut rng, market, current, close);
                current
            })
            .collect();
        (close, path)
    }

    const CASES: [(Market, &str); 8] = [
        (Market::Krx, "71000"),
        (Market::Krx, "1500"),
        (Market::Krx, "1030000"),
        (Market::Nasdaq, "230"),
        (Market::Amex, "4"),
        (Market::Nyse, "0.85"),
        (Market::Upbit, "160000000"),
        (Market::Upbit, "0.0009"),
    ];

    #[test]
    fn prices_stay_positive_on_the_grid_and_near_the_close() {
        for (market, close) in CASES {
            let (close, path) = walk(7, market, close, 20_000);
            let close = close.value();
            for p in &path {
                let p = p.value();
                assert!(p > Decimal::ZERO);
                assert_eq!(market.round_to_unit(p), p, "{market} {p} is off the grid");
                let slack = close * Decimal::new(MAX_DRIFT_PERCENT, 2) + market.price_unit(p);
                assert!(
                    (p - close).abs() <= slack,
                    "{market} {p} strayed from {close}"
                );
            }
        }
    }

    #[test]
    fn prices_move_mostly_by_a_few_units_and_sometimes_further() {
        for (market, close) in CASES {
            let (close, path) = walk(11, market, close, 20_000);
            let mut small = 0;
            let mut large = 0;
            let mut previous = close.value();
            for p in &path {
                let units = ((p.value() - previous).abs() / market.price_unit(previous)).round();
                if units <= Decimal::from(3) {
                    small += 1;
                } else {
                    large += 1;
                }
                previous = p.value();
            }
            assert!(
                small > path.len() * 8 / 10,
                "{market} {close}: {small} small moves"
            );
            assert!(large > 0, "{market} {close}: never a larger move");
            let (low, high) = path
                .iter()
                .fold((close, close), |(lo, hi), p| (lo.min(*p), hi.max(*p)));
            assert!(
                high > close && low < close,
                "{market} {close} never moved both ways"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_path() {
        for (market, close) in CASES {
            assert_eq!(
                walk(42, market, close, 1_000),
                walk(42, market, close, 1_000)
            );
            assert_ne!(
                walk(42, market, close, 1_000),
                walk(43, market, close, 1_000)
            );
        }
    }

    #[test]
    fn trade_sizes_are_realistic() {
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..10_000 {
            let krx = trade_volume(&mut rng, Market::Krx, price("71000"));
            assert!(krx.fract().is_zero() && (1..=500).contains(&krx.to_i64().unwrap_or(0)));
            let us = trade_volume(&mut rng, Market::Nyse, price("230"));
            assert!(us.fract().is_zero() && (1..=300).contains(&us.to_i64().unwrap_or(0)));
            for coin in ["160000000", "4000", "0.0009"] {
                let amount = trade_volume(&mut rng, Market::Upbit, price(coin));
                assert!(amount > Decimal::ZERO && amount.scale() <= 8);
                let krw = amount * price(coin).value();
                assert!(
                    krw >= Decimal::from(4_999) && krw <= Decimal::from(5_000_001),
                    "{amount} at {coin} is {krw} KRW"
                );
            }
        }
    }
}
