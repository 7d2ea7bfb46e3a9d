//! Exact integer keys for prices, levels and volumes, so that the indexes and every comparison on
//! the tick path work on `i128`s instead of `Decimal`s (whose comparison rescales when scales
//! differ).
//!
//! A key counts units of 10^-12. A valid `Price` has at most 12 decimal places and is at most
//! 10^18, so its key is exact and below 10^31. A level can have up to 28 decimal places: "the price
//! is at or above the level" is exactly "the price key is at or above the level's key rounded up",
//! and "the price is above the level" is "the price key is above the level's key rounded down",
//! so every rule compares keys with `>=` only and stays exactly as true or false as the decimals.

use rust_decimal::Decimal;
use signal_domain::Price;

/// Decimal places a key keeps.
pub(crate) const SCALE: u32 = 12;

/// Every price key is below this, and every key is clamped into `-LIMIT..=LIMIT`, so a clamped
/// level keeps its comparisons with prices and a key can be stepped by one without overflowing.
pub(crate) const LIMIT: i128 = 10i128.pow(31);

/// Powers of ten up to 10^SCALE.
const POWERS: [u64; 13] = {
    let mut powers = [1u64; 13];
    let mut i = 1;
    while i < powers.len() {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};

/// The key of a price: exact, since a price has at most `SCALE` decimal places.
#[inline]
pub(crate) fn price_key(price: Price) -> i128 {
    let value = price.value();
    let scale = value.scale();
    let factor = POWERS.get(SCALE.saturating_sub(scale) as usize);
    match (u64::try_from(value.mantissa()), factor) {
        // Nearly every price: a mantissa of 64 bits times at most 10^12 is one widening
        // multiplication (below 2^104, so it cannot overflow), where two 128-bit factors would
        // take several, and every trade computes this.
        (Ok(mantissa), Some(&factor)) if scale <= SCALE => {
            i128::try_from(u128::from(mantissa) * u128::from(factor))
                .unwrap_or(LIMIT)
                .min(LIMIT)
        }
        _ => unusual_price_key(price),
    }
}

/// The key of a price with a mantissa beyond 64 bits. Out of line, so that the common path reads
/// the price's parts where they are rather than copying the whole price first for this call.
#[cold]
#[inline(never)]
fn unusual_price_key(price: Price) -> i128 {
    floor_key(price.value())
}

/// The largest key at or below `value`.
pub(crate) fn floor_key(value: Decimal) -> i128 {
    rounded_key(value, false)
}

/// The smallest key at or above `value`.
pub(crate) fn ceil_key(value: Decimal) -> i128 {
    rounded_key(value, true)
}

fn rounded_key(value: Decimal, up: bool) -> i128 {
    let mantissa = value.mantissa();
    let scale = value.scale();
    let key = if scale <= SCALE {
        i128::from(POWERS[(SCALE - scale) as usize])
            .checked_mul(mantissa)
            .unwrap_or(if mantissa < 0 { -LIMIT } else { LIMIT })
    } else {
        // A decimal's scale is at most 28, so the divisor is at most 10^16.
        let divisor = 10i128.pow(scale - SCALE);
        let floor = mantissa.div_euclid(divisor);
        if up && mantissa.rem_euclid(divisor) != 0 {
            floor + 1
        } else {
            floor
        }
    };
    key.clamp(-LIMIT, LIMIT)
}

/// The cut that a price key is at or above exactly when the price is at or above `level`.
pub(crate) fn at_or_above(level: Decimal) -> i128 {
    ceil_key(level)
}

/// The cut that a price key is at or above exactly when the price is strictly above `level`.
pub(crate) fn strictly_above(level: Decimal) -> i128 {
    floor_key(level) + 1
}

/// The decimal a key stands for (exact: a key has `SCALE` decimal places).
pub(crate) fn key_value(key: i128) -> Decimal {
    Decimal::try_from_i128_with_scale(key, SCALE)
        .map(|value| value.normalize())
        .unwrap_or(if key < 0 { Decimal::MIN } else { Decimal::MAX })
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
        fn cuts_preserve_comparisons_exactly((price, level) in price_and_level()) {
            let key = price_key(price);
            prop_assert_eq!(key >= at_or_above(level), price.value() >= level);
            prop_assert_eq!(key >= strictly_above(level), price.value() > level);
            prop_assert_eq!(key_value(key), price.value());
        }
    }

    #[test]
    fn trailing_zeros_and_tiny_fractions_are_exact() {
        let price: Price = "71900.00".parse().unwrap();
        let level = Decimal::new(71900, 0);
        assert!(price_key(price) >= at_or_above(level));
        assert!(price_key(price) < strictly_above(level));
        let above = level + Decimal::new(1, 20);
        assert!(price_key(price) < at_or_above(above));
        assert!(price_key(price) < strictly_above(above));
    }

    #[test]
    fn keys_saturate_instead_of_overflowing() {
        assert_eq!(ceil_key(Decimal::MAX), LIMIT);
        assert_eq!(floor_key(Decimal::MIN), -LIMIT);
        assert_eq!(key_value(LIMIT * 10), Decimal::MAX);
    }
}
