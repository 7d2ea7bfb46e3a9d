//! What an Alert Service instance tells every instance (itself included) about an alert it has
//! stored, so each pushes it to the sockets of that user it holds. The message is its own,
//! versioned type rather than the history row: instances of two builds run side by side during a
//! rolling deploy, and the table may change without the message changing.

use serde::{Deserialize, Serialize};
use signal_domain::{ConditionKind, InstrumentId, Percent, Price, RuleId, Timestamp, UserId};
use signal_ports::AlertRecord;
use uuid::Uuid;

/// The one version there is. A message of another is skipped, not misread.
const VERSION: u16 = 1;

/// An alert stored in history, as announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertStored {
    pub version: u16,
    /// The instance that stored it, and has pushed it to its own sockets already. Absent from
    /// the messages of builds that pushed only what they heard back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Uuid>,
    /// The history row's id: what the client acknowledges.
    pub id: i64,
    pub event_id: Uuid,
    pub user: UserId,
    pub rule_id: RuleId,
    pub instrument: InstrumentId,
    pub condition: ConditionKind,
    pub level: Price,
    pub percent: Option<Percent>,
    pub price: Price,
    pub exchange_time: Timestamp,
    pub triggered_at: Timestamp,
    pub stored_at: Timestamp,
    pub note: Option<String>,
    pub simulated: bool,
    /// The rule's message as rendered for its owner. Absent from the messages of builds that
    /// did not render messages, and for rules without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why an announcement was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("not an alert announcement")]
    Json(#[from] serde_json::Error),
    #[error("an alert announcement of version {0}, which this build does not read")]
    Version(u16),
}

impl AlertStored {
    /// The announcement of a row just stored by instance `origin`.
    pub fn of(origin: Uuid, record: &AlertRecord) -> Self {
        Self {
            version: VERSION,
            origin: Some(origin),
            id: record.id,
            event_id: record.event_id,
            user: record.user.clone(),
            rule_id: record.rule_id,
            instrument: record.instrument.clone(),
            condition: record.condition,
            level: record.level,
            percent: record.percent,
            price: record.price,
            exchange_time: record.exchange_time,
            triggered_at: record.triggered_at,
            stored_at: record.stored_at,
            note: record.note.clone(),
            simulated: record.simulated,
            message: record.message.clone(),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Unreadable> {
        let message: Self = serde_json::from_slice(bytes)?;
        if message.version != VERSION {
            return Err(Unreadable::Version(message.version));
        }
        Ok(message)
    }

    /// The alert as a fresh row: nobody has read or acknowledged it yet.
    pub fn into_record(self) -> AlertRecord {
        AlertRecord {
            id: self.id,
            event_id: self.event_id,
            user: self.user,
            rule_id: self.rule_id,
            instrument: self.instrument,
            condition: self.condition,
            level: self.level,
            price: self.price,
            exchange_time: self.exchange_time,
            triggered_at: self.triggered_at,
            stored_at: self.stored_at,
            note: self.note,
            simulated: self.simulated,
            percent: self.percent,
            message: self.message,
            read_at: None,
            acknowledged_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AlertRecord {
        let now = chrono::Utc::now();
        AlertRecord {
            id: 42,
            event_id: Uuid::now_v7(),
            user: UserId::new("alice").unwrap(),
            rule_id: RuleId(7),
            instrument: "KRX:005930".parse().unwrap(),
            condition: ConditionKind::Above,
            level: "71900".parse().unwrap(),
            price: "71900".parse().unwrap(),
            exchange_time: now,
            triggered_at: now,
            stored_at: now,
            note: Some("take profit".into()),
            simulated: false,
            percent: None,
            message: Some("Samsung Electronics at 71900, 2026-12-02 10:26:16 KST".into()),
            read_at: None,
            acknowledged_at: None,
        }
    }

    #[test]
    fn an_announcement_carries_the_alert_and_its_version() {
        let record = record();
        let bytes = serde_json::to_vec(&AlertStored::of(Uuid::new_v4(), &record)).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["level"], "71900");
        assert_eq!(AlertStored::decode(&bytes).unwrap().into_record(), record);
    }

    #[test]
    fn another_version_is_refused_rather_than_misread() {
        let mut json = serde_json::to_value(AlertStored::of(Uuid::new_v4(), &record())).unwrap();
        json["version"] = 2.into();
        let bytes = serde_json::to_vec(&json).unwrap();
        assert!(matches!(
            AlertStored::decode(&bytes),
            Err(Unreadable::Version(2))
        ));
    }
}
