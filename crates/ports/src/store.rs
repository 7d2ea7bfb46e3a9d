//! Relational store ports. Every method takes the owning user where a row belongs to one, so a
//! user can only ever see or change their own data.

use async_trait::async_trait;
use rust_decimal::Decimal;
use signal_domain::{
    AlertRule, ConditionKind, InstrumentId, Price, RuleId, RuleSpec, RuleState, Timestamp,
    TriggeredAlert, UserId,
};
use uuid::Uuid;

use crate::error::{BoxError, StoreError};

/// What a write that must keep a user under their active-rule limit did.
#[derive(Debug, Clone, PartialEq)]
pub enum Capped<T> {
    Stored(T),
    /// Nothing was written: it would have taken the user past the limit.
    LimitReached,
}

#[async_trait]
pub trait WatchlistStore: Send + Sync + 'static {
    /// Adds to the user's watchlist; false when it was there already.
    async fn add(
        &self,
        user: &UserId,
        instrument: &InstrumentId,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Removes it; false when it was not there.
    async fn remove(&self, user: &UserId, instrument: &InstrumentId) -> Result<bool, StoreError>;
    /// Oldest first.
    async fn list(&self, user: &UserId) -> Result<Vec<(InstrumentId, Timestamp)>, StoreError>;
    /// Every instrument on anyone's watchlist: these need live data.
    async fn watched_instruments(&self) -> Result<Vec<InstrumentId>, StoreError>;
}

/// A change of a rule's state decided by the trigger engine, stored together with the events it
/// raised.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleChange {
    pub rule: RuleId,
    pub state: RuleState,
    /// Set when the change is a firing.
    pub fired_at: Option<Timestamp>,
    /// How many times the rule has fired, this change included. Stored as a maximum, so an
    /// instance repeating a firing another already stored changes nothing.
    pub trigger_count: u32,
}

/// Whether a rule is paused, and until when it is snoozed: what a user sets on a rule without
/// changing its condition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleHold {
    pub paused_at: Option<Timestamp>,
    pub snoozed_until: Option<Timestamp>,
}

/// How the rules changed since a moment: what an engine that was in step then needs to catch up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesChanged {
    /// Every rule written (created, changed by its user, fired) since, whatever its state now.
    pub written: Vec<AlertRule>,
    /// The rules deleted since.
    pub deleted: Vec<RuleId>,
}

impl RulesChanged {
    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.deleted.is_empty()
    }
}

#[async_trait]
pub trait RuleStore: Send + Sync + 'static {
    /// Creates an armed rule, unless the user already has `limit` active rules.
    async fn create(
        &self,
        user: &UserId,
        spec: &RuleSpec,
        limit: usize,
        at: Timestamp,
    ) -> Result<Capped<AlertRule>, StoreError>;
    /// Creates armed rules in one transaction, in order, unless that would take the user past
    /// `limit` active rules; then none is created.
    async fn create_many(
        &self,
        user: &UserId,
        specs: &[RuleSpec],
        limit: usize,
        at: Timestamp,
    ) -> Result<Capped<Vec<AlertRule>>, StoreError>;
    /// Creates armed rules of several users in one transaction: each one unless its user would
    /// have more than `limit` active rules (a user's first ones in order are created, as many as
    /// fit). One outcome per rule, in order.
    async fn create_each(
        &self,
        rules: &[(UserId, RuleSpec)],
        limit: usize,
        at: Timestamp,
    ) -> Result<Vec<Capped<AlertRule>>, StoreError>;
    async fn get(&self, user: &UserId, id: RuleId) -> Result<Option<AlertRule>, StoreError>;
    /// The user's rules, newest first; only active ones when `active_only`.
    async fn list(&self, user: &UserId, active_only: bool) -> Result<Vec<AlertRule>, StoreError>;
    /// Replaces the user-chosen part and re-arms the rule (re-activating counts against `limit`).
    /// None when the user has no such rule.
    async fn update(
        &self,
        user: &UserId,
        id: RuleId,
        spec: &RuleSpec,
        limit: usize,
        at: Timestamp,
    ) -> Result<Option<Capped<AlertRule>>, StoreError>;
    /// Deletes those of `ids` that are the user's, all at once; returns the ones deleted.
    async fn delete_many(&self, user: &UserId, ids: &[RuleId]) -> Result<Vec<RuleId>, StoreError>;
    /// In one transaction: deletes those of `replaced` that are the user's and creates an armed
    /// rule, unless that would take the user past `limit`; then nothing changes.
    async fn replace(
        &self,
        user: &UserId,
        replaced: &[RuleId],
        spec: &RuleSpec,
        limit: usize,
        at: Timestamp,
    ) -> Result<Capped<AlertRule>, StoreError>;
    /// Sets the rule's pause and snooze, leaving its state alone. None when the user has no such
    /// rule.
    async fn hold(
        &self,
        user: &UserId,
        id: RuleId,
        hold: RuleHold,
        at: Timestamp,
    ) -> Result<Option<AlertRule>, StoreError>;
    /// Every active rule of every user that is not paused: what the trigger engine evaluates.
    async fn active_rules(&self) -> Result<Vec<AlertRule>, StoreError>;
    /// The rules written and deleted at or after `since` (by the writers' clocks), of every
    /// user: what reconciling an engine reads, in proportion to what changed.
    async fn changed_since(&self, since: Timestamp) -> Result<RulesChanged, StoreError>;
    /// In one transaction: the rule state changes and the events they raised, into the outbox.
    /// Either all of it is stored or none.
    async fn apply_changes(
        &self,
        changes: &[RuleChange],
        events: &[TriggeredAlert],
    ) -> Result<(), StoreError>;
}

/// One event in the outbox, waiting for the relay.
#[derive(Debug)]
pub struct OutboxEntry {
    pub id: i64,
    /// The event, unless what is stored cannot be read back as one.
    pub event: Result<TriggeredAlert, UnreadableEvent>,
}

/// A stored event that cannot be read back: it can never be published.
#[derive(Debug, thiserror::Error)]
#[error("the stored event cannot be read")]
pub struct UnreadableEvent(#[source] pub BoxError);

/// An event the relay set aside for good, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    pub event_id: String,
    /// The event as stored.
    pub payload: String,
    pub reason: String,
    pub created_at: Timestamp,
    pub dead_at: Timestamp,
}

/// The relay's side of the outbox: the events [`RuleStore::apply_changes`] stored, from pending
/// to sent (and deleted after a while), or to dead letters an operator can look at.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// The oldest pending events, at most `limit`, in the order they were stored.
    async fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;
    async fn mark_outbox_sent(&self, ids: &[i64], at: Timestamp) -> Result<(), StoreError>;
    /// Sets the event aside for good, with the reason: it is no longer pending.
    async fn dead_letter(&self, id: i64, reason: &str, at: Timestamp) -> Result<(), StoreError>;
    /// Dead letters, newest first, at most `limit`.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;
    /// Puts a dead letter back in line for the relay; false when there is no such dead letter.
    async fn requeue_dead_letter(&self, id: i64) -> Result<bool, StoreError>;
    /// Deletes at most `limit` events sent before `before`; returns how many went.
    async fn delete_sent(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError>;
    /// Puts the events sent at or after `since` back in line for the relay, after the bus lost
    /// what it had acknowledged; returns how many.
    async fn resend_sent_since(&self, since: Timestamp) -> Result<u64, StoreError>;
    /// How far behind the relay is.
    async fn outbox_lag(&self) -> Result<OutboxLag, StoreError>;
}

/// The events waiting for the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxLag {
    pub pending: u64,
    /// When the oldest of them was stored; None when nothing is pending.
    pub oldest: Option<Timestamp>,
}

/// Renders an alert's message from its stored record; None leaves the standard wording.
pub type AlertMessage = dyn Fn(&AlertRecord) -> Option<String> + Send + Sync;

/// One alert in a user's history.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub id: i64,
    pub event_id: Uuid,
    pub user: UserId,
    pub rule_id: RuleId,
    pub instrument: InstrumentId,
    pub condition: ConditionKind,
    pub level: Price,
    pub price: Price,
    pub exchange_time: Timestamp,
    pub triggered_at: Timestamp,
    pub stored_at: Timestamp,
    pub note: Option<String>,
    pub simulated: bool,
    pub percent: Option<signal_domain::Percent>,
    /// The rule's message rendered for its owner when the alert was stored; None when the rule
    /// has none (the alert is worded the standard way).
    pub message: Option<String>,
    pub read_at: Option<Timestamp>,
    pub acknowledged_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    pub instrument: Option<InstrumentId>,
    /// Some(true): read only; Some(false): unread only.
    pub read: Option<bool>,
    /// Only records with an id below this one (keyset pagination, newest first).
    pub before_id: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub items: Vec<AlertRecord>,
    /// Pass as `before_id` for the next page; None on the last page.
    pub next_before_id: Option<i64>,
}

#[async_trait]
pub trait AlertHistoryStore: Send + Sync + 'static {
    /// Stores the alert unless one with the same event id exists, and, in the same transaction,
    /// its message (what `message` renders from the new record, whose id it may name) and one
    /// pending delivery for each of the user's active notification channels. Returns the new
    /// record, or None for a redelivery (which creates nothing).
    async fn insert_if_absent(
        &self,
        event: &TriggeredAlert,
        message: &AlertMessage,
        at: Timestamp,
    ) -> Result<Option<AlertRecord>, StoreError>;
    async fn list(&self, user: &UserId, query: &HistoryQuery) -> Result<HistoryPage, StoreError>;
    async fn get(&self, user: &UserId, id: i64) -> Result<Option<AlertRecord>, StoreError>;
    /// Marks read (and so acknowledged). False when the user has no such alert.
    async fn mark_read(&self, user: &UserId, id: i64, at: Timestamp) -> Result<bool, StoreError>;
    /// Marks every alert of the user read; returns how many changed.
    async fn mark_all_read(&self, user: &UserId, at: Timestamp) -> Result<u64, StoreError>;
    /// Records that a client received the alert. False when the user has no such alert.
    async fn acknowledge(&self, user: &UserId, id: i64, at: Timestamp) -> Result<bool, StoreError>;
    /// Alerts not yet acknowledged, oldest first, at most `limit`.
    async fn unacknowledged(
        &self,
        user: &UserId,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError>;
    async fn delete(&self, user: &UserId, id: i64) -> Result<bool, StoreError>;
    async fn delete_all(&self, user: &UserId) -> Result<u64, StoreError>;
}

/// One minute of trading in one instrument. Prices are exact; `volume` is the sum of the trade
/// sizes the feeds reported (zero when a feed reports none).
#[derive(Debug, Clone, PartialEq)]
pub struct Candle {
    pub instrument: InstrumentId,
    /// The start of the minute (UTC, whole minute).
    pub minute: Timestamp,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Decimal,
    pub trades: u32,
}

/// One trading day of one instrument, as the exchange closed it: the market's own day (KRX and US
/// sessions in their time zones, Upbit's UTC day).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyCandle {
    pub instrument: InstrumentId,
    pub day: chrono::NaiveDate,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Decimal,
}

#[async_trait]
pub trait CandleStore: Send + Sync + 'static {
    /// Writes the candles, replacing any stored candle of the same instrument and minute: the
    /// caller holds the whole minute, so its values are the truth. Where one call names the same
    /// minute twice, the later entry wins.
    async fn upsert_candles(&self, candles: &[Candle]) -> Result<(), StoreError>;
    /// Candles of `instrument` whose minute is in `[from, to)`, oldest first, at most `limit`
    /// (the oldest ones, so a client pages forward from the last minute it got).
    async fn candles(
        &self,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<Candle>, StoreError>;
}
