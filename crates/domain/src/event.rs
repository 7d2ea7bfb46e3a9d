//! The events the Asset Service publishes. The triggered alert is the only thing it tells the
//! Alert Service; it carries its own id so that every hop can be at-least-once and every consumer
//! idempotent. The quote change is market data for whoever else listens, as the original system
//! published it: the newest quote of an instrument, conflated, so a later one supersedes it.

use crate::instrument::InstrumentId;
use crate::price::{Percent, Price};
use crate::quote::Quote;
use crate::rule::{ConditionKind, RuleId};
use crate::user::UserId;
use crate::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const TRIGGERED_ALERT_SCHEMA_VERSION: u16 = 1;
pub const QUOTE_CHANGED_SCHEMA_VERSION: u16 = 1;

/// Namespace of firing ids (a fixed, random UUID: it only has to differ from other namespaces).
const FIRING_NAMESPACE: Uuid = Uuid::from_u128(0x4d1f_8a0e_9c2b_4b7e_a3f5_6e21_0c9d_7b14);

/// The event id of the `ordinal`-th firing of `rule`. Deterministic, so two Asset Service
/// instances that see the same trade raise the same event, and every store and consumer on the
/// way keeps only one of them.
pub fn firing_id(rule: RuleId, ordinal: u32) -> Uuid {
    Uuid::new_v5(
        &FIRING_NAMESPACE,
        format!("{}:{ordinal}", rule.0).as_bytes(),
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggeredAlert {
    /// Unique per firing; consumers deduplicate on it.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: Uuid,
    pub schema_version: u16,
    #[schema(value_type = String)]
    pub user_id: UserId,
    pub rule_id: RuleId,
    pub instrument: InstrumentId,
    /// The venue's own symbol (005930, AAPL, KRW-BTC), as the original events carried.
    pub symbol: String,
    pub condition: ConditionKind,
    /// The absolute price level that was reached (for percent rules, the compiled level).
    pub level: Price,
    /// For percent rules, the percentage the user asked for.
    pub percent: Option<Percent>,
    /// The traded price that reached the level.
    pub price: Price,
    #[schema(value_type = String, format = DateTime)]
    pub exchange_time: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub triggered_at: Timestamp,
    pub note: Option<String>,
    pub simulated: bool,
}

/// An instrument's quote changed. Keyed by instrument on the bus; at most one per instrument per
/// conflation interval, carrying the newest quote of that interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteChanged {
    pub schema_version: u16,
    /// The venue's own symbol (005930, AAPL, KRW-BTC), as the original events carried.
    pub symbol: String,
    #[serde(flatten)]
    pub quote: Quote,
}

impl QuoteChanged {
    pub fn new(quote: Quote) -> QuoteChanged {
        QuoteChanged {
            schema_version: QUOTE_CHANGED_SCHEMA_VERSION,
            symbol: quote.instrument.symbol().to_string(),
            quote,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firing_ids_name_one_firing_of_one_rule() {
        assert_eq!(firing_id(RuleId(7), 1), firing_id(RuleId(7), 1));
        assert_ne!(firing_id(RuleId(7), 1), firing_id(RuleId(7), 2));
        assert_ne!(firing_id(RuleId(7), 1), firing_id(RuleId(8), 1));
    }

    #[test]
    fn a_quote_change_is_the_quote_with_its_symbol_and_schema_version() {
        let now: Timestamp = "2026-11-24T01:00:00Z".parse().unwrap();
        let tick = crate::Tick {
            instrument: "KRX:005930".parse().unwrap(),
            price: "63100".parse().unwrap(),
            trade_volume: None,
            cumulative_volume: Some(9694968.into()),
            prev_close: Some("62300".parse().unwrap()),
            exchange_time: now,
            received_at: now,
            source: crate::QuoteSource::Kis,
        };
        let event = QuoteChanged::new(Quote::after(&tick, None).with_session(true));
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["schemaVersion"], 1);
        assert_eq!(json["instrument"], "KRX:005930");
        assert_eq!(json["symbol"], "005930");
        assert_eq!(json["price"], "63100");
        assert_eq!(json["change"], "800");
        assert_eq!(json["marketOpen"], true);
        assert_eq!(json["source"], "kis");
        let back: QuoteChanged = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
