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
    #[error(
        "`{}` is not a number: write digits with an optional leading `-`, `.` and exponent, \
         e.g. 71900, 169.785 or 1.5e3",
        crate::abbreviate(.0)
    )]
    NotANumber(String),
    #[error("a price must be greater than zero, got {0}")]
    NotPositive(Decimal),
    #[error("`{}` has too many digits for a price (at most 12 decimal places)", crate::abbreviate(.0))]
    TooPrecise(String),
    #[error(
        "`{}` cannot be kept exactly: at most {MAX_SIGNIFICANT_DIGITS} digits before and after \
         the decimal point together",
        crate::abbreviate(.0)
    )]
    Inexact(String),
    #[error(
        "a decimal number with a fraction or an exponent must be read from its text, not \
         from a binary float; send it as a string"
    )]
    Float,
}

impl crate::Failure for PriceError {
    fn kind(&self) -> crate::FailureKind {
        crate::FailureKind::Invalid
    }
}

/// The most significant digits (and decimal places) a `Decimal` holds exactly.
pub const MAX_SIGNIFICANT_DIGITS: usize = 28;

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

/// Parses text as an exact decimal, in the grammar of a JSON number (`-`, digits, an optional
/// fraction, an optional exponent; leading zeros allowed). Nothing else is accepted: no spaces,
/// no `+` sign, no `_` separators. The result is the value written, digit for digit: text that
/// would need rounding to fit is refused instead.
pub fn parse_decimal(text: &str) -> Result<Decimal, PriceError> {
    let not_a_number = || PriceError::NotANumber(text.to_string());
    let inexact = || PriceError::Inexact(text.to_string());
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (mantissa, ""),
    };
    if !is_digits(whole) || (mantissa.contains('.') && !is_digits(fraction)) {
        return Err(not_a_number());
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(exponent) => {
            let magnitude = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if !is_digits(magnitude) {
                return Err(not_a_number());
            }
            // Anything beyond this magnitude cannot be held exactly whatever the digits.
            if magnitude.len() > 4 {
                return Err(inexact());
            }
            exponent.parse().map_err(|_| not_a_number())?
        }
    };
    // The value is `digits × 10^-scale`; leading zeros add nothing, trailing zeros only scale.
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    let without_trailing = significant.trim_end_matches('0');
    let trailing_zeros = (significant.len() - without_trailing.len()) as i64;
    if without_trailing.is_empty() {
        return Ok(Decimal::ZERO);
    }
    let mut scale = fraction.len() as i64 - exponent - trailing_zeros;
    let mut magnitude: i128 = if without_trailing.len() <= MAX_SIGNIFICANT_DIGITS {
        without_trailing.parse().map_err(|_| inexact())?
    } else {
        return Err(inexact());
    };
    if scale < 0 {
        let integer_digits = without_trailing.len() as i64 - scale;
        if integer_digits > MAX_SIGNIFICANT_DIGITS as i64 {
            return Err(inexact());
        }
        magnitude *= 10i128.pow(scale.unsigned_abs() as u32);
        scale = 0;
    }
    if scale > MAX_SIGNIFICANT_DIGITS as i64 {
        return Err(inexact());
    }
    let signed = if negative { -magnitude } else { magnitude };
    Decimal::try_from_i128_with_scale(signed, scale as u32).map_err(|_| inexact())
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

/// An optional decimal field of a request, as a string or an integer (see [`DecimalVisitor`]).
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

/// Accepts a decimal as a string or an integer. A number with a fraction has been through a
/// binary float by the time a visitor sees it, so it is refused rather than guessed at: clients
/// send such values as strings.
struct DecimalVisitor;

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

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Decimal, E> {
        Err(E::custom(PriceError::Float))
    }
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

/// How a decimal parameter (a level, a percentage, a band) may be sent: a string with a JSON
/// number's grammar, or a JSON integer; never a JSON number with a fraction, which would have been
/// through binary floating point. For the OpenAPI documents only.
pub struct DecimalInput;

/// The grammar [`parse_decimal`] reads.
pub const DECIMAL_PATTERN: &str = "^-?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?$";

impl utoipa::PartialSchema for DecimalInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(DECIMAL_PATTERN)),
            )
            .item(ObjectBuilder::new().schema_type(Type::Integer))
            .description(Some(
                "An exact decimal: a string (\"71900.5\", \"1.5e3\"; at most 28 significant digits) \
                 or a JSON integer; a JSON number with a fraction or an exponent is refused",
            ))
            .examples(["71900.5"])
            .into()
    }
}

impl utoipa::ToSchema for DecimalInput {}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn strings_and_integers_parse_exactly_and_floats_are_refused() {
        let p: Price = serde_json::from_str("\"169.785\"").unwrap();
        assert_eq!(p.value(), dec!(169.785));
        assert_eq!(
            serde_json::from_str::<Price>("169.785")
                .unwrap_err()
                .to_string(),
            format!("{} at line 1 column 7", PriceError::Float)
        );
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

    #[test]
    fn decimal_text_is_read_digit_for_digit() {
        let exact = |text: &str| parse_decimal(text).unwrap().to_string();
        assert_eq!(exact("71900"), "71900");
        assert_eq!(exact("-0.85"), "-0.85");
        assert_eq!(exact("1.5e3"), "1500");
        assert_eq!(exact("1.5E+3"), "1500");
        assert_eq!(exact("15e-1"), "1.5");
        assert_eq!(exact("00071900.500"), "71900.5");
        assert_eq!(exact("1.00000000000000000001"), "1.00000000000000000001");
        assert_eq!(exact("0e-5"), "0");
        assert_eq!(
            exact("1234567890123456789012345678"),
            "1234567890123456789012345678"
        );
    }

    #[test]
    fn malformed_or_unrepresentable_decimal_text_is_refused() {
        for malformed in [
            "", " 5", "5 ", "+5", "1_000", "1,000", "1.", ".5", "5e", "e5", "--5", "0x10", "NaN",
            "inf", "1.2.3", "1e+", "١٢",
        ] {
            assert!(
                matches!(parse_decimal(malformed), Err(PriceError::NotANumber(_))),
                "{malformed:?} was accepted"
            );
        }
        for inexact in [
            "1.00000000000000000000000000001",
            "12345678901234567890123456789",
            "1e28",
            "1e-29",
            "1e99999",
        ] {
            assert!(
                matches!(parse_decimal(inexact), Err(PriceError::Inexact(_))),
                "{inexact:?} was not refused as inexact"
            );
        }
        assert!(matches!(
            "1.00000000000000000001".parse::<Price>(),
            Err(PriceError::TooPrecise(_))
        ));
    }

    #[test]
    fn messages_quote_only_a_prefix_of_the_input() {
        let long = "9".repeat(1_000_000) + "x";
        let message = parse_decimal(&long).unwrap_err().to_string();
        assert!(message.len() < 300, "{} bytes", message.len());
    }
}
