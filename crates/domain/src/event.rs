//! The triggered-alert event: the only thing the Asset Service tells the Alert Service. It carries
//! its own id so that every hop can be at-least-once and every consumer idempotent.

use crate::instrument::InstrumentId;
use crate::price::{Percent, Price};
use crate::rule::{ConditionKind, RuleId};
use crate::user::UserId;
use crate::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const TRIGGERED_ALERT_SCHEMA_VERSION: u16 = 1;

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
