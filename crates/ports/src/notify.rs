//! Notification channels beyond the socket: the channels each user set up (web push, webhook,
//! Telegram, email), one delivery record per (alert, channel), and the user's notification
//! settings. Deliveries are created in the transaction that stores their alert (see
//! [`crate::AlertHistoryStore::insert_if_absent`]), so an alert in history always has them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use signal_domain::{Timestamp, UserId};
use uuid::Uuid;

use crate::error::StoreError;

/// How a channel reaches its user.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    WebPush,
    Webhook,
    Telegram,
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] = [
        ChannelKind::WebPush,
        ChannelKind::Webhook,
        ChannelKind::Telegram,
        ChannelKind::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::WebPush => "web_push",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Email => "email",
        }
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is none of an enumeration's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

/// The variant of `all` whose `name` is `text`.
fn parse_name<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    what: &'static str,
    text: &str,
) -> Result<T, UnknownName> {
    all.iter()
        .copied()
        .find(|v| name(*v) == text)
        .ok_or_else(|| UnknownName {
            what,
            value: text.to_string(),
            expected: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
        })
}

impl std::str::FromStr for ChannelKind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(&ChannelKind::ALL, ChannelKind::as_str, "channel kind", s)
    }
}

/// Where a channel sends, per kind. Stored as JSON; secrets in it are never shown after creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelTarget {
    /// A browser's push subscription (RFC 8030 endpoint and the RFC 8291 keys, base64url).
    WebPush {
        endpoint: String,
        p256dh: String,
        auth: String,
    },
    /// A Standard Webhooks endpoint.
    Webhook {
        url: String,
        /// The body, with `{{placeholders}}`; the default JSON body when absent.
        template: Option<String>,
        /// `whsec_` + base64 of the signing key.
        secret: String,
        /// The secret before the last rotation, still signed with until it expires, so a
        /// receiver can switch over without refusing anything.
        previous_secret: Option<String>,
        previous_secret_expires_at: Option<Timestamp>,
    },
    /// A Telegram chat, known once the user has sent the bot its one-time link code.
    Telegram { chat_id: Option<i64> },
    /// An email address, confirmed by a link sent to it.
    Email { address: String },
}

impl ChannelTarget {
    pub fn kind(&self) -> ChannelKind {
        match self {
            ChannelTarget::WebPush { .. } => ChannelKind::WebPush,
            ChannelTarget::Webhook { .. } => ChannelKind::Webhook,
            ChannelTarget::Telegram { .. } => ChannelKind::Telegram,
            ChannelTarget::Email { .. } => ChannelKind::Email,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelState {
    /// Receives alerts.
    Active,
    /// Waiting for the user to prove the target is theirs (Telegram link, email confirmation).
    Pending,
    /// Stopped after a permanent failure (or by the user); `disabled_reason` says why.
    Disabled,
}

impl ChannelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelState::Active => "active",
            ChannelState::Pending => "pending",
            ChannelState::Disabled => "disabled",
        }
    }
}

impl std::str::FromStr for ChannelState {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            ChannelState::Active,
            ChannelState::Pending,
            ChannelState::Disabled,
        ];
        parse_name(&all, ChannelState::as_str, "channel state", s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRecord {
    pub id: i64,
    pub user: UserId,
    pub name: String,
    pub target: ChannelTarget,
    pub state: ChannelState,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl ChannelRecord {
    pub fn kind(&self) -> ChannelKind {
        self.target.kind()
    }
}

/// A one-time code that proves a pending channel's target belongs to its user. Only its hash is
/// stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCode {
    pub hash: String,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewChannel {
    pub user: UserId,
    pub name: String,
    pub target: ChannelTarget,
    pub state: ChannelState,
    pub pending_code: Option<PendingCode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt, a retry, the end of quiet hours or room under the cap.
    Pending,
    Delivered,
    /// Given up: a permanent failure, or every retry failed.
    Failed,
    /// Not sent: its channel was disabled or deleted, or its alert deleted, before it went out.
    Skipped,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Skipped => "skipped",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
            DeliveryStatus::Skipped,
        ];
        parse_name(&all, DeliveryStatus::as_str, "delivery status", s)
    }
}

/// One alert (or one test message) on its way to one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: i64,
    /// None for a test message.
    pub alert_id: Option<i64>,
    pub event_id: Uuid,
    pub user: UserId,
    pub channel_id: i64,
    pub kind: ChannelKind,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it is due next (for a pending delivery).
    pub next_attempt_at: Timestamp,
    /// The message that carries it: its event id when sent alone, a digest's id when gathered
    /// with others. Fixed before the first attempt, so every retry sends the same message.
    pub message_id: Option<Uuid>,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// From the alert firing to its delivery.
    pub latency_ms: Option<i64>,
}

/// One try at sending one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub at: Timestamp,
    pub ok: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What became of an attempt, for the deliveries it carried.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Delivered {
        at: Timestamp,
    },
    /// Failed; try again at `at`.
    Retry {
        at: Timestamp,
    },
    /// Failed for good.
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryQuery {
    pub channel_id: Option<i64>,
    pub alert_id: Option<i64>,
    /// Keyset pagination, newest first.
    pub before_id: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Ko,
    En,
}

/// Hours of the day (in the user's time zone) when no channel but the socket notifies; what
/// arrives meanwhile waits until they end. `start > end` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub start: chrono::NaiveTime,
    pub end: chrono::NaiveTime,
}

/// What a user chose about being notified. Language and time zone also shape every message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSettings {
    pub language: Language,
    /// An IANA time zone name, e.g. `Asia/Seoul`.
    pub time_zone: String,
    pub quiet_hours: Option<QuietHours>,
    /// At most this many messages per channel per minute; more are gathered into one digest.
    pub max_per_channel_per_minute: u32,
}

impl Default for UserSettings {
    fn default() -> Self {
        Self {
            language: Language::Ko,
            time_zone: "Asia/Seoul".into(),
            quiet_hours: None,
            max_per_channel_per_minute: 10,
        }
    }
}

/// The channels of each user and their settings.
#[async_trait]
pub trait ChannelStore: Send + Sync + 'static {
    async fn create_channel(
        &self,
        channel: &NewChannel,
        at: Timestamp,
    ) -> Result<ChannelRecord, StoreError>;
    /// The user's channels, oldest first.
    async fn channels(&self, user: &UserId) -> Result<Vec<ChannelRecord>, StoreError>;
    async fn channel(&self, user: &UserId, id: i64) -> Result<Option<ChannelRecord>, StoreError>;
    /// Any user's channel, for the delivery workers.
    async fn channel_by_id(&self, id: i64) -> Result<Option<ChannelRecord>, StoreError>;
    /// Saves the channel's name, target and state. None when the user has no such channel.
    async fn update_channel(
        &self,
        channel: &ChannelRecord,
        at: Timestamp,
    ) -> Result<Option<ChannelRecord>, StoreError>;
    /// Replaces the one-time code of a pending channel (a new link).
    async fn set_pending_code(
        &self,
        user: &UserId,
        id: i64,
        code: &PendingCode,
    ) -> Result<bool, StoreError>;
    /// Deletes the channel and its pending deliveries; false when the user has no such channel.
    async fn delete_channel(&self, user: &UserId, id: i64) -> Result<bool, StoreError>;
    /// The pending channel of `kind` holding this unexpired code. The code is consumed.
    async fn take_pending(
        &self,
        kind: ChannelKind,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<Option<ChannelRecord>, StoreError>;
    /// Stops a channel after a permanent failure; its pending deliveries are skipped.
    async fn disable_channel(&self, id: i64, reason: &str, at: Timestamp)
        -> Result<(), StoreError>;
    /// The user's settings; None until they save some.
    async fn settings(&self, user: &UserId) -> Result<Option<UserSettings>, StoreError>;
    async fn put_settings(
        &self,
        user: &UserId,
        settings: &UserSettings,
        at: Timestamp,
    ) -> Result<(), StoreError>;
}

/// The deliveries: claimed by the workers of any instance, each claim exclusive.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Claims up to `limit` active channels of `kind` that have deliveries due at `now` and are
    /// not claimed, until `claimed_until`, and returns those due deliveries. Other claims (any
    /// instance) skip a claimed channel, so one worker at a time sends to it; a worker that dies
    /// holding a claim only delays its deliveries until the claim lapses.
    async fn claim_due(
        &self,
        kind: ChannelKind,
        now: Timestamp,
        claimed_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Extends the claim on channels still being worked on.
    async fn extend_claim(&self, channel_ids: &[i64], until: Timestamp) -> Result<(), StoreError>;
    /// Gives claimed channels back.
    async fn release_claim(&self, channel_ids: &[i64]) -> Result<(), StoreError>;
    /// Fixes the message that carries these deliveries.
    async fn assign_message(&self, ids: &[i64], message_id: Uuid) -> Result<(), StoreError>;
    /// Puts pending deliveries off until `until` without counting an attempt (quiet hours, cap).
    async fn defer(&self, ids: &[i64], until: Timestamp) -> Result<(), StoreError>;
    /// Makes the user's deliveries that wait without having been tried (quiet hours, cap) due at
    /// `now`: their settings changed. Retries keep their schedule.
    async fn release_waiting(&self, user: &UserId, now: Timestamp) -> Result<(), StoreError>;
    /// Records an attempt at these deliveries and its outcome. Deliveries no longer pending
    /// (their channel was disabled meanwhile) keep their status.
    async fn record_attempt(
        &self,
        ids: &[i64],
        attempt: &DeliveryAttempt,
        outcome: &DeliveryOutcome,
    ) -> Result<(), StoreError>;
    /// Marks pending deliveries skipped, with the reason.
    async fn skip(&self, ids: &[i64], reason: &str) -> Result<(), StoreError>;
    /// When each message to the channel delivered since `since` went out, oldest first.
    async fn sent_since(
        &self,
        channel_id: i64,
        since: Timestamp,
    ) -> Result<Vec<Timestamp>, StoreError>;
    /// Stores a test message's delivery, already attempted.
    async fn record_test(
        &self,
        channel: &ChannelRecord,
        message_id: Uuid,
        attempt: &DeliveryAttempt,
    ) -> Result<DeliveryRecord, StoreError>;
    /// The user's deliveries, newest first.
    async fn deliveries(
        &self,
        user: &UserId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    async fn delivery(&self, user: &UserId, id: i64) -> Result<Option<DeliveryRecord>, StoreError>;
    /// A delivery's attempts, oldest first.
    async fn attempts(&self, delivery_id: i64) -> Result<Vec<DeliveryAttempt>, StoreError>;
}
