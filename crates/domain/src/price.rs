//! Exact prices. The original system used doubles, so a target of 71,900 could miss a trade at
//! 71,900; every price here is a decimal, compared exactly, and travels as a decimal string.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A strictly positive exact price in the instrument's quote currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Price(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("a price must be greater than zero, got {0}")]
    NotPositive(Decimal),
    #[error("`{0}` has too many digits for a price")]
    TooPrecise(String),
}

impl crate::Failure for PriceError {
    fn kind(&self) -> crate::FailureKind {
        crate::FailureKind::Invalid
    }
}

/// Upper bound (10^18) that keeps every arithmetic step on prices (percent levels, bands) far from
/// `Decimal`'s 28-digit limit.
fn max_price() -> Decimal {
    Decimal::from(1_000_000_000_000_000i64)
}

impl Price {
    pub fn new(value: Decimal) -> Result<Self, PriceError> {
        if value <= Decimal::ZERO {
            return Err(PriceError::NotPositive(value));
        }
        if value > max_price() || value.scale() > 12 {
            return Err(PriceError::TooPrecise(value.to_string()));
        }
        Ok(Self(value.normalize()))
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// Price as a float, for the original API's JSON numbers and for metrics only.
    pub fn to_f64_lossy(self) -> f64 {
        decimal_to_f64(self.0)
    }
}

pub(crate) fn decimal_to_f64(value: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    value.to_f64().unwrap_or(f64::NAN)
}

/// Parses user text as an exact decimal; accepts plain and scientific notation.
pub(crate) fn parse_decimal(text: &str) -> Result<Decimal, PriceError> {
    let trimmed = text.trim();
    Decimal::from_str(trimmed)
        .or_else(|_| Decimal::from_scientific(trimmed))
        .map_err(|_| PriceError::NotANumber(text.to_string()))
}

impl FromStr for Price {
    type Err = PriceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Price::new(parse_decimal(s)?)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<Price> for Decimal {
    fn from(price: Price) -> Self {
        price.0
    }
}

impl Serialize for Price {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserializer.deserialize_any(DecimalVisitor)?;
        Price::new(value).map_err(serde::de::Error::custom)
    }
}

/// Accepts a decimal as a JSON string or number. A JSON number arrives as an f64; its shortest
/// round-trip text is exactly what the client wrote for any value with up to 15 significant digits,
/// so `71900` or `169.785` stay exact.
pub(crate) struct DecimalVisitor;

impl serde::de::Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal number, as a JSON number or string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_decimal(v).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
        if !v.is_finite() {
            return Err(E::custom("not a finite number"));
        }
        parse_decimal(&format!("{v}")).map_err(E::custom)
    }
}

/// Deserializes an optional exact decimal from a JSON string or number (see [`DecimalVisitor`]),
/// for fields that are amounts rather than prices.
pub fn optional_decimal<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Decimal>, D::Error> {
    struct Exact(Decimal);
    impl<'de> Deserialize<'de> for Exact {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(DecimalVisitor).map(Exact)
        }
    }
    Ok(Option::<Exact>::deserialize(deserializer)?.map(|e| e.0))
}

impl utoipa::PartialSchema for Price {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Exact decimal price, as a string (a JSON number is accepted on input)",
            ))
            .examples(["71900", "169.785"])
            .into()
    }
}

impl utoipa::ToSchema for Price {}

/// A percentage: `1.5` means 1.5 %, never a fraction (the original mixed both in one field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Percent(Decimal);

impl Percent {
    pub fn new(value: Decimal) -> Self {
        Self(value.normalize())
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// `(price - reference) / reference`, in percent, rounded to 4 decimal places.
    pub fn change(price: Decimal, reference: Decimal) -> Option<Self> {
        if reference.is_zero() {
            return None;
        }
        let pct = (price - reference) / reference * Decimal::ONE_HUNDRED;
        Some(Self::new(pct.round_dp(4)))
    }

    pub fn to_f64_lossy(self) -> f64 {
        decimal_to_f64(self.0)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Percent::new(deserializer.deserialize_any(DecimalVisitor)?))
    }
}

impl utoipa::PartialSchema for Percent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A percentage as an exact decimal string: \"1.5\" is 1.5 %",
            ))
            .examples(["1.5", "-0.85"])
            .into()
    }
}

impl utoipa::ToSchema for Percent {}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn json_numbers_and_strings_parse_exactly() {
        let p: Price = serde_json::from_str("169.785").unwrap();
        assert_eq!(p.value(), dec!(169.785));
        let p: Price = serde_json::from_str("\"71900\"").unwrap();
        assert_eq!(p.value(), dec!(71900));
        let p: Price = serde_json::from_str("71900").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"71900\"");
    }

    #[test]
    fn rejects_zero_negative_and_garbage() {
        assert!(serde_json::from_str::<Price>("-1").is_err());
        assert!(serde_json::from_str::<Price>("0").is_err());
        assert!(serde_json::from_str::<Price>("\"abc\"").is_err());
        assert!("1e30".parse::<Price>().is_err());
    }

    #[test]
    fn trailing_zeros_do_not_change_identity() {
        assert_eq!(
            "71900.00".parse::<Price>().unwrap(),
            "71900".parse::<Price>().unwrap()
        );
    }

    #[test]
    fn change_is_a_percentage() {
        let pct = Percent::change(dec!(162876000), dec!(163158000)).unwrap();
        assert_eq!(pct.value(), dec!(-0.1728));
    }
}
