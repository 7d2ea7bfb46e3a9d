//! The events the Asset Service publishes. The triggered alert is the only thing it tells the
//! Alert Service; it carries its own id so that every hop can be at-least-once and every consumer
//! idempotent. The quote change is market data for whoever else listens, as the original system
//! published it: the newest quote of an instrument, conflated, so a later one supersedes it.

use crate::instrument::InstrumentId;
use crate::params::ConditionParams;
use crate::price::{Percent, Price};
use crate::quote::Quote;
use crate::rule::{ConditionKind, RuleId};
use crate::user::UserId;
use crate::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The version producers write unless told to write the first one.
pub const TRIGGERED_ALERT_SCHEMA_VERSION: u16 = 2;
/// The first version: its fields only, for consumers that have not moved to the second.
pub const TRIGGERED_ALERT_SCHEMA_V1: u16 = 1;
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
    /// Since version 2: every parameter of the condition, named as the rule API names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub params: Option<ConditionParams>,
    /// Since version 2: the rule's second condition, for a rule of two joined by AND.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub also: Option<AlsoCondition>,
    /// Since version 2: the ids of the user's notification channels the alert goes to; absent,
    /// all of them. Sockets always receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<i64>>,
    /// Since version 2: the rule's message template, as the user wrote it, for the notifications
    /// to render.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Since version 2: the trade's change against the previous close, in percent, when the
    /// previous close is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_percent: Option<Percent>,
}

/// The second condition of a rule of two, as a version 2 event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlsoCondition {
    pub condition: ConditionKind,
    pub params: ConditionParams,
    /// How long after the first condition the second may be met, and the reverse.
    pub within_seconds: u32,
}

impl TriggeredAlert {
    /// The event in version `version`: the first version drops every field added since, so a
    /// consumer of that version reads exactly what it always did.
    pub fn in_version(&self, version: u16) -> TriggeredAlert {
        if version >= TRIGGERED_ALERT_SCHEMA_VERSION {
            return self.clone();
        }
        TriggeredAlert {
            schema_version: TRIGGERED_ALERT_SCHEMA_V1,
            params: None,
            also: None,
            channels: None,
            message: None,
            change_percent: None,
            ..self.clone()
        }
    }
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

    fn schema(version: u16) -> serde_json::Value {
        let path = format!(
            "{}/../../docs/schemas/triggered-alert.v{version}.schema.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn fields(json: &serde_json::Value) -> std::collections::BTreeSet<String> {
        json.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn each_version_writes_the_fields_of_its_schema() {
        let now: Timestamp = "2026-11-24T01:00:00Z".parse().unwrap();
        let rsi = crate::Condition::Rsi {
            direction: crate::Direction::Up,
            bars: 14,
            level: 70.into(),
            interval: crate::Interval::H1,
        };
        let event = TriggeredAlert {
            event_id: firing_id(RuleId(7), 1),
            schema_version: TRIGGERED_ALERT_SCHEMA_VERSION,
            user_id: UserId::new("alice").unwrap(),
            rule_id: RuleId(7),
            instrument: "KRX:005930".parse().unwrap(),
            symbol: "005930".into(),
            condition: rsi.kind(),
            level: "71900".parse().unwrap(),
            percent: None,
            price: "71900".parse().unwrap(),
            exchange_time: now,
            triggered_at: now,
            note: None,
            simulated: false,
            params: Some(ConditionParams::of(rsi)),
            also: Some(AlsoCondition {
                condition: ConditionKind::CrossUp,
                params: ConditionParams {
                    level: Some(100.into()),
                    ..ConditionParams::default()
                },
                within_seconds: 3600,
            }),
            channels: Some(vec![3]),
            message: Some("{{name}} RSI over 70".into()),
            change_percent: Some(Percent::new("-1.25".parse().unwrap())),
        };
        let v2 = serde_json::to_value(&event).unwrap();
        let v2_schema = schema(2);
        assert_eq!(v2["schemaVersion"], 2);
        assert_eq!(
            v2["params"],
            serde_json::json!({"level": "70", "interval": "1h", "bars": 14})
        );
        assert_eq!(fields(&v2), fields(&v2_schema["properties"]));
        assert_eq!(serde_json::from_value::<TriggeredAlert>(v2).unwrap(), event);

        let v1 = serde_json::to_value(event.in_version(TRIGGERED_ALERT_SCHEMA_V1)).unwrap();
        let v1_schema = schema(1);
        assert_eq!(v1["schemaVersion"], 1);
        assert_eq!(fields(&v1), fields(&v1_schema["properties"]));
        let read = serde_json::from_value::<TriggeredAlert>(v1).unwrap();
        assert_eq!((read.params, read.channels), (None, None), "all channels");
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
