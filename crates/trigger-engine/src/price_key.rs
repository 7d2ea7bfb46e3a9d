//! Exact integer keys for prices and levels, so the indexes and the quiet-tick check compare `i128`s
//! instead of `Decimal`s (whose comparison rescales when scales differ).
//!
//! A valid `Price` has at most 12 decimal places and is at most 10^18, so in units of 10^-12 it is
//! an integer below 10^31. A level can have up to 28 decimal places; rounding it up for rules that
//! fire at or above it, and down for rules that fire at or below it, keeps "the price reached the
//! level" exactly as true or false as it is for the decimals.

use rust_decimal::Decimal;
use signal_domain::{Direction, Price};

/// Decimal places a `Price` may carry (`Price::new` rejects more).
const PRICE_SCALE: u32 = 12;

/// Every price key is below this, so a level clamped to it keeps its comparisons with prices, and
/// stepping a clamped key by one cannot overflow.
const KEY_LIMIT: i128 = 10i128.pow(31);

pub(crate) fn price_key(price: Price) -> i128 {
    // Exact for every valid price, so the rounding direction does not matter.
    level_key(Direction::Up, price.value())
}

/// The key `k` such that, for every price `p`, `direction.reached(p, level)` holds exactly when
/// `key_reached(direction, price_key(p), k)` does.
pub(crate) fn level_key(direction: Direction, level: Decimal) -> i128 {
    let mantissa = level.mantissa();
    let scale = level.scale();
    let key = if scale <= PRICE_SCALE {
        10i128
            .checked_pow(PRICE_SCALE - scale)
            .and_then(|factor| mantissa.checked_mul(factor))
            .unwrap_or(if mantissa < 0 { -KEY_LIMIT } else { KEY_LIMIT })
    } else {
        // A decimal's scale is at most 28, so the divisor is at most 10^16.
        let divisor = 10i128.pow(scale - PRICE_SCALE);
        let floor = mantissa.div_euclid(divisor);
        let exact = mantissa.rem_euclid(divisor) == 0;
        match direction {
            Direction::Up if !exact => floor + 1,
            _ => floor,
        }
    };
    key.clamp(-KEY_LIMIT, KEY_LIMIT)
}

/// The key, on the opposite side, that a price key reaches exactly when the price has gone strictly
/// back past `threshold` for a rule of `direction`: for Up, `p < t` is `p <= t - 1` in keys.
pub(crate) fn retreat_key(direction: Direction, threshold: Decimal) -> i128 {
    let key = level_key(direction, threshold);
    match direction {
        Direction::Up => key - 1,
        Direction::Down => key + 1,
    }
}

/// `Direction::reached` on keys.
pub(crate) fn key_reached(direction: Direction, price_key: i128, key: i128) -> bool {
    match direction {
        Direction::Up => price_key >= key,
        Direction::Down => price_key <= key,
    }
}

pub(crate) fn opposite(direction: Direction) -> Direction {
    match direction {
        Direction::Up => Direction::Down,
        Direction::Down => Direction::Up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_price() -> impl Strategy<Value = Price> {
        (1i64..=1_000_000_000_000_000, 0u32..=12, any::<bool>()).prop_filter_map(
            "a valid price",
            |(mantissa, scale, small)| {
                let value = if small {
                    mantissa % 100_000 + 1
                } else {
                    mantissa
                };
                Price::new(Decimal::new(value, scale)).ok()
            },
        )
    }

    /// A price, and a level that is often just beside it.
    fn price_and_level() -> impl Strategy<Value = (Price, Decimal)> {
        any_price().prop_flat_map(|price| {
            let traded = price.value();
            let level = prop_oneof![
                // A few key units (10^-12) away: where an off-by-one would show.
                (-3i64..=3).prop_map(move |units| traded.saturating_add(Decimal::new(units, 12))),
                // Close, with more decimal places than a price may have.
                (-1000i64..1000, 0u32..=28).prop_map(move |(offset, scale)| {
                    traded.saturating_add(Decimal::new(offset, scale))
                }),
                (any::<i128>(), 0u32..=28).prop_filter_map("a decimal", |(mantissa, scale)| {
                    Decimal::try_from_i128_with_scale(mantissa >> 32, scale).ok()
                }),
            ];
            (Just(price), level)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn keys_preserve_reaching_exactly((price, level) in price_and_level()) {
            let p = price_key(price);
            for direction in [Direction::Up, Direction::Down] {
                prop_assert_eq!(
                    key_reached(direction, p, level_key(direction, level)),
                    direction.reached(price.value(), level)
                );
                prop_assert_eq!(
                    key_reached(opposite(direction), p, retreat_key(direction, level)),
                    !direction.reached(price.value(), level)
                );
            }
        }
    }

    #[test]
    fn trailing_zeros_and_tiny_fractions_are_exact() {
        let price: Price = "71900.00".parse().unwrap();
        let level = Decimal::new(71900, 0);
        assert!(key_reached(
            Direction::Up,
            price_key(price),
            level_key(Direction::Up, level)
        ));
        let above = level + Decimal::new(1, 20);
        assert!(!key_reached(
            Direction::Up,
            price_key(price),
            level_key(Direction::Up, above)
        ));
        assert!(key_reached(
            Direction::Down,
            price_key(price),
            level_key(Direction::Down, above)
        ));
    }
}
