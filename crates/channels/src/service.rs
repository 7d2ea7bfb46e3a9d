//! The channel use cases behind the HTTP API: add, change, test and remove a channel, rotate a
//! webhook secret, link a Telegram chat, confirm an email address, read deliveries, and the
//! user's notification settings. Every check a person can fail is a [`ChannelError`] naming the
//! field.

use signal_catalog::Catalog;
use signal_domain::{ErrorChain, Failure, FailureKind, Timestamp, TriggeredAlert, UserId};
use signal_ports::{
    ChannelKind, ChannelRecord, ChannelState, ChannelStore, ChannelTarget, DeliveryAttempt,
    DeliveryQuery, DeliveryRecord, DeliveryStore, NewChannel, PendingCode, StoreError,
    UserSettings,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

use crate::code;
use crate::email::{EmailSender, CONFIRMATION_VALIDITY};
use crate::message::{Content, Locale, Notification, RuleMessage};
use crate::push::{subscription_keys, VapidKeys};
use crate::sender::{self, ChannelSender, SendError};
use crate::ssrf::{refusal_in, TargetPolicy};
use crate::telegram::{TelegramApi, LINK_VALIDITY};
use crate::template::Template;
use crate::webhook;

/// Channels one user may have.
pub const MAX_CHANNELS_PER_USER: usize = 20;
/// Longest URL accepted (webhook, push endpoint).
const MAX_URL_BYTES: usize = 2048;
const MAX_NAME_CHARS: usize = 100;
/// How long the previous webhook secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);
/// The most a user may set as their per-channel cap.
pub const MAX_CAP_PER_MINUTE: u32 = 60;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("you have no channel {0}")]
    NotFound(i64),
    #[error("{0} channels are not set up on this server")]
    NotConfigured(ChannelKind),
    #[error("you already have {MAX_CHANNELS_PER_USER} channels; remove one first")]
    TooMany,
    #[error("{0}")]
    Conflict(&'static str),
    #[error("this confirmation link has expired or was used already")]
    UnknownCode,
    /// What a pending channel needs to prove itself (the Telegram Bot API, the mail server)
    /// cannot be reached now.
    #[error("{what} cannot be reached now; try again later")]
    Unreachable {
        what: &'static str,
        #[source]
        source: SendError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Failure for ChannelError {
    fn kind(&self) -> FailureKind {
        match self {
            ChannelError::Invalid { .. } | ChannelError::NotConfigured(_) => FailureKind::Invalid,
            ChannelError::NotFound(_) | ChannelError::UnknownCode => FailureKind::NotFound,
            ChannelError::TooMany => FailureKind::LimitReached,
            ChannelError::Conflict(_) => FailureKind::Conflict,
            ChannelError::Unreachable { .. } => FailureKind::Unavailable,
            ChannelError::Store(store) => store.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ChannelError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ChannelError {
    ChannelError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// What a new channel sends to.
#[derive(Debug, Clone, PartialEq)]
pub enum NewTarget {
    WebPush {
        endpoint: String,
        p256dh: String,
        auth: String,
    },
    Webhook {
        url: String,
        template: Option<String>,
    },
    Telegram,
    Email {
        address: String,
    },
}

/// A channel just made, with what is shown only now.
#[derive(Debug, Clone)]
pub struct Created {
    pub channel: ChannelRecord,
    /// A webhook's signing secret.
    pub secret: Option<String>,
    /// A Telegram deep link, with its expiry.
    pub link: Option<(String, Timestamp)>,
}

/// Changes to a channel; `None` leaves a part as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelUpdate {
    pub name: Option<String>,
    pub url: Option<String>,
    /// `Some(None)` removes the template.
    pub template: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// What the use cases work with.
pub struct ChannelService {
    pub store: Arc<dyn ChannelStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub senders: BTreeMap<ChannelKind, Arc<dyn ChannelSender>>,
    pub policy: Arc<TargetPolicy>,
    pub vapid: Option<Arc<VapidKeys>>,
    pub telegram: Option<Arc<TelegramApi>>,
    pub email: Option<Arc<EmailSender>>,
    /// The web app's address, for links.
    pub app_url: String,
    /// The instruments' names, which messages use.
    pub catalog: Arc<Catalog>,
}

impl ChannelService {
    pub fn vapid_public_key(&self) -> Option<&str> {
        self.vapid.as_deref().map(VapidKeys::public_key)
    }

    /// The kinds this server can send.
    pub fn available(&self) -> Vec<ChannelKind> {
        self.senders.keys().copied().collect()
    }

    fn sender(&self, kind: ChannelKind) -> Result<&Arc<dyn ChannelSender>, ChannelError> {
        self.senders
            .get(&kind)
            .ok_or(ChannelError::NotConfigured(kind))
    }

    pub async fn list(&self, user: &UserId) -> Result<Vec<ChannelRecord>, ChannelError> {
        Ok(self.store.channels(user).await?)
    }

    pub async fn get(&self, user: &UserId, id: i64) -> Result<ChannelRecord, ChannelError> {
        self.store
            .channel(user, id)
            .await?
            .ok_or(ChannelError::NotFound(id))
    }

    pub async fn create(
        &self,
        user: &UserId,
        name: Option<String>,
        target: NewTarget,
    ) -> Result<Created, ChannelError> {
        let kind = match &target {
            NewTarget::WebPush { .. } => ChannelKind::WebPush,
            NewTarget::Webhook { .. } => ChannelKind::Webhook,
            NewTarget::Telegram => ChannelKind::Telegram,
            NewTarget::Email { .. } => ChannelKind::Email,
        };
        self.sender(kind)?;
        let existing = self.store.channels(user).await?;
        let name = match name {
            Some(name) => checked_name(&name)?,
            None => default_name(kind),
        };
        let now = chrono::Utc::now();
        let mut secret = None;
        let mut pending = None;
        let (target, state) = match target {
            NewTarget::WebPush {
                endpoint,
                p256dh,
                auth,
            } => {
                self.check_url("endpoint", &endpoint).await?;
                subscription_keys(&p256dh, &auth).map_err(|e| invalid("keys", e.to_string()))?;
                // The same browser subscribing again renews its channel rather than adding one.
                if let Some(same) = existing.iter().find(|c| {
                    matches!(&c.target, ChannelTarget::WebPush { endpoint: e, .. } if *e == endpoint)
                }) {
                    let mut renewed = same.clone();
                    renewed.target = ChannelTarget::WebPush {
                        endpoint,
                        p256dh,
                        auth,
                    };
                    renewed.state = ChannelState::Active;
                    renewed.disabled_reason = None;
                    renewed.disabled_at = None;
                    let channel = self
                        .store
                        .update_channel(&renewed, now)
                        .await?
                        .ok_or(ChannelError::NotFound(same.id))?;
                    return Ok(Created {
                        channel,
                        secret: None,
                        link: None,
                    });
                }
                (
                    ChannelTarget::WebPush {
                        endpoint,
                        p256dh,
                        auth,
                    },
                    ChannelState::Active,
                )
            }
            NewTarget::Webhook { url, template } => {
                self.check_url("url", &url).await?;
                let template = checked_template(template)?;
                let new_secret = webhook::new_secret();
                secret = Some(new_secret.clone());
                (
                    ChannelTarget::Webhook {
                        url,
                        template,
                        secret: new_secret,
                        previous_secret: None,
                        previous_secret_expires_at: None,
                    },
                    ChannelState::Active,
                )
            }
            NewTarget::Telegram => {
                pending = Some((code::new_code(), now + LINK_VALIDITY));
                (
                    ChannelTarget::Telegram { chat_id: None },
                    ChannelState::Pending,
                )
            }
            NewTarget::Email { address } => {
                let address = checked_address(&address)?;
                if existing.iter().any(|c| {
                    matches!(&c.target, ChannelTarget::Email { address: a } if a.eq_ignore_ascii_case(&address))
                }) {
                    return Err(ChannelError::Conflict(
                        "you already have a channel for this address",
                    ));
                }
                pending = Some((code::new_code(), now + CONFIRMATION_VALIDITY));
                (ChannelTarget::Email { address }, ChannelState::Pending)
            }
        };
        if existing.len() >= MAX_CHANNELS_PER_USER {
            return Err(ChannelError::TooMany);
        }
        let channel = self
            .store
            .create_channel(
                &NewChannel {
                    user: user.clone(),
                    name,
                    target,
                    state,
                    pending_code: pending.as_ref().map(|(code, expires_at)| PendingCode {
                        hash: code::hash(code),
                        expires_at: *expires_at,
                    }),
                },
                now,
            )
            .await?;
        let link = match pending {
            Some((code, expires_at)) => self.prove(&channel, &code, expires_at).await?,
            None => None,
        };
        Ok(Created {
            channel,
            secret,
            link,
        })
    }

    /// Starts the proof that a pending channel's target is its user's: the Telegram deep link
    /// to show, or the confirmation mail sent.
    async fn prove(
        &self,
        channel: &ChannelRecord,
        code: &str,
        expires_at: Timestamp,
    ) -> Result<Option<(String, Timestamp)>, ChannelError> {
        match &channel.target {
            ChannelTarget::Telegram { .. } => {
                let api = self
                    .telegram
                    .as_ref()
                    .ok_or(ChannelError::NotConfigured(ChannelKind::Telegram))?;
                let link = api
                    .link(code)
                    .await
                    .map_err(|source| ChannelError::Unreachable {
                        what: "the Telegram Bot API",
                        source,
                    })?;
                Ok(Some((link, expires_at)))
            }
            ChannelTarget::Email { address } => {
                let email = self
                    .email
                    .as_ref()
                    .ok_or(ChannelError::NotConfigured(ChannelKind::Email))?;
                let settings = self.settings(&channel.user).await?;
                let link = format!(
                    "{}/api/v1/channels/email/confirm?token={code}",
                    self.app_url.trim_end_matches('/')
                );
                email
                    .send_confirmation(address, &link, &Locale::of(&settings))
                    .await
                    .map_err(|source| ChannelError::Unreachable {
                        what: "the mail server",
                        source,
                    })?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// A new Telegram link, or a new confirmation mail, for a pending channel.
    pub async fn renew_proof(
        &self,
        user: &UserId,
        id: i64,
    ) -> Result<Option<(String, Timestamp)>, ChannelError> {
        let channel = self.get(user, id).await?;
        let validity = match (&channel.target, channel.state) {
            (_, state) if state != ChannelState::Pending => {
                return Err(ChannelError::Conflict("the channel is already linked"))
            }
            (ChannelTarget::Telegram { .. }, _) => LINK_VALIDITY,
            (ChannelTarget::Email { .. }, _) => CONFIRMATION_VALIDITY,
            _ => return Err(ChannelError::Conflict("this channel needs no link")),
        };
        let code = code::new_code();
        let expires_at = chrono::Utc::now() + validity;
        self.store
            .set_pending_code(
                user,
                id,
                &PendingCode {
                    hash: code::hash(&code),
                    expires_at,
                },
            )
            .await?;
        self.prove(&channel, &code, expires_at).await
    }

    /// Confirms the email address whose confirmation link holds `token`.
    pub async fn confirm_email(&self, token: &str) -> Result<ChannelRecord, ChannelError> {
        let now = chrono::Utc::now();
        let mut channel = self
            .store
            .take_pending(ChannelKind::Email, &code::hash(token), now)
            .await?
            .ok_or(ChannelError::UnknownCode)?;
        channel.state = ChannelState::Active;
        let id = channel.id;
        self.store
            .update_channel(&channel, now)
            .await?
            .ok_or(ChannelError::NotFound(id))
    }

    pub async fn update(
        &self,
        user: &UserId,
        id: i64,
        update: ChannelUpdate,
    ) -> Result<ChannelRecord, ChannelError> {
        let mut channel = self.get(user, id).await?;
        if let Some(name) = update.name {
            channel.name = checked_name(&name)?;
        }
        if update.url.is_some() || update.template.is_some() {
            let ChannelTarget::Webhook { url, template, .. } = &mut channel.target else {
                return Err(invalid("url", "only a webhook has a URL and a template"));
            };
            if let Some(new_url) = update.url {
                self.check_url("url", &new_url).await?;
                *url = new_url;
            }
            if let Some(new_template) = update.template {
                *template = checked_template(new_template)?;
            }
        }
        let now = chrono::Utc::now();
        match (update.enabled, channel.state) {
            (Some(true), ChannelState::Disabled) => {
                channel.state = if proven(&channel.target) {
                    ChannelState::Active
                } else {
                    ChannelState::Pending
                };
                channel.disabled_reason = None;
                channel.disabled_at = None;
            }
            (Some(false), ChannelState::Active | ChannelState::Pending) => {
                channel.state = ChannelState::Disabled;
                channel.disabled_reason = Some("turned off by you".into());
                channel.disabled_at = Some(now);
            }
            _ => {}
        }
        let turned_off =
            channel.state == ChannelState::Disabled && channel.disabled_at == Some(now);
        let saved = self
            .store
            .update_channel(&channel, now)
            .await?
            .ok_or(ChannelError::NotFound(id))?;
        if turned_off {
            // What was waiting for it is not sent when it comes back later.
            self.store
                .disable_channel(id, "turned off by you", now)
                .await?;
        }
        Ok(saved)
    }

    pub async fn delete(&self, user: &UserId, id: i64) -> Result<(), ChannelError> {
        if self.store.delete_channel(user, id).await? {
            Ok(())
        } else {
            Err(ChannelError::NotFound(id))
        }
    }

    /// A new webhook secret, returned once; the previous one keeps signing for a day.
    pub async fn rotate_secret(&self, user: &UserId, id: i64) -> Result<String, ChannelError> {
        let mut channel = self.get(user, id).await?;
        let ChannelTarget::Webhook {
            secret,
            previous_secret,
            previous_secret_expires_at,
            ..
        } = &mut channel.target
        else {
            return Err(ChannelError::Conflict(
                "only a webhook has a signing secret",
            ));
        };
        let now = chrono::Utc::now();
        let fresh = webhook::new_secret();
        *previous_secret = Some(std::mem::replace(secret, fresh.clone()));
        *previous_secret_expires_at = Some(now + ROTATION_OVERLAP);
        self.store
            .update_channel(&channel, now)
            .await?
            .ok_or(ChannelError::NotFound(id))?;
        Ok(fresh)
    }

    /// Sends a test message now and records it among the channel's deliveries. A receiver that
    /// is gone disables the channel, as an alert would.
    pub async fn test(&self, user: &UserId, id: i64) -> Result<DeliveryRecord, ChannelError> {
        let channel = self.get(user, id).await?;
        if channel.state == ChannelState::Pending {
            return Err(ChannelError::Conflict(
                "the channel is not linked or confirmed yet",
            ));
        }
        let sender = self.sender(channel.kind())?;
        let settings = self.settings(user).await?;
        let message = Notification {
            message_id: Uuid::now_v7(),
            locale: Locale::of(&settings),
            content: Content::Test,
            app_url: self.app_url.clone(),
        };
        let (result, attempt) = sender::attempt(sender.as_ref(), &channel, &message).await;
        let now = attempt.at;
        let delivery = self
            .deliveries
            .record_test(&channel, message.message_id, &attempt)
            .await?;
        if let Err(error) = &result {
            if error.is_gone() {
                self.store
                    .disable_channel(
                        channel.id,
                        &format!("the receiver is gone: {}", ErrorChain(error)),
                        now,
                    )
                    .await?;
            }
        }
        Ok(delivery)
    }

    pub async fn deliveries(
        &self,
        user: &UserId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryRecord>, ChannelError> {
        Ok(self.deliveries.deliveries(user, query).await?)
    }

    pub async fn delivery(
        &self,
        user: &UserId,
        id: i64,
    ) -> Result<Option<(DeliveryRecord, Vec<DeliveryAttempt>)>, ChannelError> {
        let Some(delivery) = self.deliveries.delivery(user, id).await? else {
            return Ok(None);
        };
        let attempts = self.deliveries.attempts(delivery.id).await?;
        Ok(Some((delivery, attempts)))
    }

    /// The message of the rule that raised `event`, worded for the rule's owner; None when the
    /// rule has none.
    pub async fn rule_message(
        &self,
        event: &TriggeredAlert,
    ) -> Result<Option<RuleMessage>, StoreError> {
        if event.message.is_none() {
            return Ok(None);
        }
        let settings = self
            .store
            .settings(&event.user_id)
            .await?
            .unwrap_or_default();
        Ok(RuleMessage::of(event, &settings, self.catalog.clone()))
    }

    /// The user's settings, or the defaults until they save some.
    pub async fn settings(&self, user: &UserId) -> Result<UserSettings, ChannelError> {
        Ok(self.store.settings(user).await?.unwrap_or_default())
    }

    pub async fn put_settings(
        &self,
        user: &UserId,
        settings: UserSettings,
    ) -> Result<UserSettings, ChannelError> {
        settings.time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
            invalid(
                "timeZone",
                format!(
                    "`{}` is not an IANA time zone such as Asia/Seoul",
                    settings.time_zone
                ),
            )
        })?;
        if let Some(quiet) = settings.quiet_hours {
            if quiet.start == quiet.end {
                return Err(invalid("quietHours", "start and end must differ"));
            }
        }
        if !(1..=MAX_CAP_PER_MINUTE).contains(&settings.max_per_channel_per_minute) {
            return Err(invalid(
                "maxPerChannelPerMinute",
                format!("must be between 1 and {MAX_CAP_PER_MINUTE}"),
            ));
        }
        let now = chrono::Utc::now();
        self.store.put_settings(user, &settings, now).await?;
        // Alerts held back under the old settings (quiet hours, cap) are reconsidered at once.
        self.deliveries.release_waiting(user, now).await?;
        Ok(settings)
    }

    /// Checks a user-given URL when it is saved: well-formed, http(s), and not pointing at a
    /// refused address (its name is resolved now as well as at every send).
    async fn check_url(&self, field: &'static str, text: &str) -> Result<(), ChannelError> {
        if text.len() > MAX_URL_BYTES {
            return Err(invalid(field, format!("longer than {MAX_URL_BYTES} bytes")));
        }
        let url: reqwest::Url = text
            .parse()
            .map_err(|e| invalid(field, format!("not a URL: {e}")))?;
        self.policy
            .check_url(&url)
            .map_err(|e| invalid(field, e.to_string()))?;
        if let Some(url::Host::Domain(host)) = url.host() {
            if let Err(e) = self.policy.resolve(host).await {
                let reason = match refusal_in(&e) {
                    Some(refused) => refused.to_string(),
                    None => format!("{host} does not resolve: {e}"),
                };
                return Err(invalid(field, reason));
            }
        }
        Ok(())
    }
}

/// True when a channel's target is known to be its user's (linked or confirmed).
fn proven(target: &ChannelTarget) -> bool {
    !matches!(target, ChannelTarget::Telegram { chat_id: None })
}

fn default_name(kind: ChannelKind) -> String {
    match kind {
        ChannelKind::WebPush => "Browser",
        ChannelKind::Webhook => "Webhook",
        ChannelKind::Telegram => "Telegram",
        ChannelKind::Email => "Email",
    }
    .to_string()
}

fn checked_name(name: &str) -> Result<String, ChannelError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_string())
}

fn checked_template(template: Option<String>) -> Result<Option<String>, ChannelError> {
    match template {
        Some(source) if !source.trim().is_empty() => {
            Template::parse(&source).map_err(|e| invalid("template", e.to_string()))?;
            Ok(Some(source))
        }
        _ => Ok(None),
    }
}

fn checked_address(address: &str) -> Result<String, ChannelError> {
    let address = address.trim();
    address
        .parse::<lettre::Address>()
        .map_err(|e| invalid("address", format!("not an email address: {e}")))?;
    Ok(address.to_string())
}
