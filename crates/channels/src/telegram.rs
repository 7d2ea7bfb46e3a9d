//! Telegram through the Bot API: messages within Telegram's limits (about one a second per chat
//! and thirty a second in all, throttled here; a 429's `retry_after` honoured), and linking a chat
//! to a channel with a deep link (`https://t.me/<bot>?start=<one-time code>`): the user opens it,
//! Telegram sends the bot `/start <code>`, and the update poller finds the pending channel that
//! holds the code. The bot token comes from the environment and never appears in a log: errors
//! are stripped of the URL that carries it.

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use signal_ports::{
    ChannelKind, ChannelRecord, ChannelState, ChannelStore, ChannelTarget, Language, SharedCache,
};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::code;
use crate::message::{Locale, Notification};
use crate::sender::{shorten, ChannelSender, SendError, Sent};

/// How the bot is reached.
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramConfig {
    /// From @BotFather. Give it through the environment
    /// (`SIGNAL_CHANNELS__TELEGRAM__BOT_TOKEN`), never a file in the repository.
    pub bot_token: Option<String>,
    pub api_url: String,
    /// The bot's @username for deep links; asked of the Bot API (`getMe`) when absent.
    pub bot_username: Option<String>,
    /// Telegram's limits: per chat and in all.
    pub per_chat_per_second: u32,
    pub per_second: u32,
    /// How long the update poller's long poll waits for news.
    pub poll_timeout_seconds: u64,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            bot_token: None,
            api_url: "https://api.telegram.org".into(),
            bot_username: None,
            per_chat_per_second: 1,
            per_second: 30,
            poll_timeout_seconds: 25,
        }
    }
}

impl std::fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("bot_token", &self.bot_token.as_ref().map(|_| "<redacted>"))
            .field("api_url", &self.api_url)
            .field("bot_username", &self.bot_username)
            .field("per_chat_per_second", &self.per_chat_per_second)
            .field("per_second", &self.per_second)
            .finish()
    }
}

const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a link code stays valid.
pub const LINK_VALIDITY: chrono::Duration = chrono::Duration::minutes(30);

#[derive(Deserialize)]
struct Answer<T> {
    ok: bool,
    result: Option<T>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<AnswerParameters>,
}

#[derive(Deserialize)]
struct AnswerParameters {
    retry_after: Option<u64>,
}

#[derive(Deserialize)]
struct Me {
    username: Option<String>,
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    message: Option<IncomingMessage>,
}

#[derive(Deserialize)]
struct IncomingMessage {
    chat: Chat,
    text: Option<String>,
    from: Option<From>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct From {
    language_code: Option<String>,
}

/// The Bot API, throttled to Telegram's limits.
pub struct TelegramApi {
    client: reqwest::Client,
    /// `<api_url>/bot<token>`: a secret.
    base: String,
    username: OnceCell<String>,
    all_chats: DefaultDirectRateLimiter,
    each_chat: DefaultKeyedRateLimiter<i64>,
    poll_timeout: Duration,
}

impl TelegramApi {
    /// None when no bot token is configured.
    pub fn new(config: &TelegramConfig) -> reqwest::Result<Option<Self>> {
        let Some(token) = config.bot_token.as_deref().filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        let per_second =
            |n: u32| Quota::per_second(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        let username = OnceCell::new_with(config.bot_username.clone());
        Ok(Some(Self {
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            base: format!(
                "{}/bot{}",
                config.api_url.trim_end_matches('/'),
                token.trim()
            ),
            username,
            all_chats: RateLimiter::direct(per_second(config.per_second)),
            each_chat: RateLimiter::keyed(per_second(config.per_chat_per_second)),
            poll_timeout: Duration::from_secs(config.poll_timeout_seconds),
        }))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<T, SendError> {
        let response = self
            .client
            .post(format!("{}/{method}", self.base))
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(SendError::transport)?;
        let status = response.status().as_u16();
        let answer: Answer<T> = response.json().await.map_err(SendError::transport)?;
        match (answer.ok, answer.result) {
            (true, Some(result)) => Ok(result),
            _ => {
                let code = answer.error_code.unwrap_or(status);
                let description = answer.description.unwrap_or_default();
                // 403: the user blocked the bot or left; 400 "chat not found": the chat is gone.
                let gone = code == 403
                    || (code == 400 && description.to_ascii_lowercase().contains("chat not found"));
                Err(SendError::Rejected {
                    status: code,
                    detail: shorten(&description),
                    retry_after: answer
                        .parameters
                        .and_then(|p| p.retry_after)
                        .map(Duration::from_secs),
                    gone,
                })
            }
        }
    }

    /// The bot's @username, for deep links.
    pub async fn username(&self) -> Result<&str, SendError> {
        self.username
            .get_or_try_init(|| async {
                let me: Me = self.call("getMe", &json!({}), SEND_TIMEOUT).await?;
                me.username
                    .ok_or(SendError::Misconfigured("the bot has no username"))
            })
            .await
            .map(String::as_str)
    }

    /// The deep link that links a chat with `code`.
    pub async fn link(&self, code: &str) -> Result<String, SendError> {
        Ok(format!(
            "https://t.me/{}?start={code}",
            self.username().await?
        ))
    }

    /// Sends HTML `text` to `chat`, waiting for room under Telegram's limits first.
    pub async fn send_message(&self, chat: i64, text: &str) -> Result<(), SendError> {
        self.each_chat.until_key_ready(&chat).await;
        self.all_chats.until_ready().await;
        let body = json!({
            "chat_id": chat,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        self.call::<serde_json::Value>("sendMessage", &body, SEND_TIMEOUT)
            .await
            .map(drop)
    }

    async fn updates(&self, offset: i64) -> Result<Vec<Update>, SendError> {
        let body = json!({
            "offset": offset,
            "timeout": self.poll_timeout.as_secs(),
            "allowed_updates": ["message"],
        });
        self.call("getUpdates", &body, self.poll_timeout + SEND_TIMEOUT)
            .await
    }
}

/// `<`, `>` and `&` as Telegram's HTML mode wants them.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A notification as Telegram HTML: the title in bold, the text, a link to the app, and for one
/// alert the links that snooze its rule. Links in the text rather than buttons: Telegram refuses a
/// whole message whose button points at an address it does not like (a local app's).
pub fn html(message: &Notification) -> String {
    let open = match message.locale.language {
        Language::Ko => "앱에서 보기",
        Language::En => "Open in the app",
    };
    let mut html = format!(
        "<b>{}</b>\n{}\n<a href=\"{}\">{open}</a>",
        escape_html(&message.title()),
        escape_html(&message.body()),
        escape_html(&message.link()),
    );
    let links = message.snooze_links();
    if !links.is_empty() {
        let anchors: Vec<String> = links
            .iter()
            .map(|link| {
                format!(
                    "<a href=\"{}\">{}</a>",
                    escape_html(&link.url),
                    link.label(&message.locale)
                )
            })
            .collect();
        html.push_str(&format!(
            "\n{}: {}",
            message.snooze_prompt(),
            anchors.join(" · ")
        ));
    }
    html
}

pub struct TelegramSender {
    api: Arc<TelegramApi>,
}

impl TelegramSender {
    pub fn new(api: Arc<TelegramApi>) -> Self {
        Self { api }
    }
}

#[async_trait]
impl ChannelSender for TelegramSender {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    async fn send(
        &self,
        channel: &ChannelRecord,
        message: &Notification,
    ) -> Result<Sent, SendError> {
        let ChannelTarget::Telegram {
            chat_id: Some(chat),
        } = &channel.target
        else {
            return Err(SendError::Misconfigured(
                "the Telegram chat is not linked yet",
            ));
        };
        self.api.send_message(*chat, &html(message)).await?;
        Ok(Sent { status: Some(200) })
    }
}

/// Reads the bot's updates and links chats to pending channels. One instance at a time polls
/// (Telegram allows one reader of a bot's updates); the others wait for its lease to lapse.
pub struct TelegramLinker {
    pub api: Arc<TelegramApi>,
    pub channels: Arc<dyn ChannelStore>,
    pub leases: Arc<dyn SharedCache>,
    /// This instance, as the lease holder.
    pub instance: String,
}

const POLLER_LEASE: &str = "telegram-updates";

impl TelegramLinker {
    pub async fn run(self, shutdown: CancellationToken) {
        let lease = self.api.poll_timeout + Duration::from_secs(20);
        let mut offset = 0;
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let holding = self
                .leases
                .lease(POLLER_LEASE, &self.instance, lease)
                .await
                .unwrap_or(false);
            if !holding {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
            let updates = tokio::select! {
                _ = shutdown.cancelled() => break,
                updates = self.api.updates(offset) => updates,
            };
            match updates {
                Ok(updates) => {
                    failures = 0;
                    for update in updates {
                        offset = offset.max(update.update_id + 1);
                        if let Some(message) = update.message {
                            self.handle(message).await;
                        }
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "reading Telegram updates failed");
                    let pause = Duration::from_secs(u64::from(failures.min(6)) * 5);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        let _ = self.leases.release(POLLER_LEASE, &self.instance).await;
    }

    async fn handle(&self, message: IncomingMessage) {
        let Some(code) = message
            .text
            .as_deref()
            .and_then(|text| text.strip_prefix("/start"))
            .map(str::trim)
            .filter(|code| !code.is_empty())
        else {
            return;
        };
        let chat = message.chat.id;
        let fallback = match message.from.and_then(|f| f.language_code) {
            Some(language) if language.starts_with("ko") => Language::Ko,
            _ => Language::En,
        };
        let reply = match self.link(code, chat).await {
            Ok(Some((channel, language))) => {
                tracing::info!(channel_id = channel.id, user = %channel.user, "Telegram chat linked");
                match language {
                    Language::Ko => "연결되었습니다. 가격 알림이 이 대화로 전달됩니다.",
                    Language::En => "Linked. Your price alerts will arrive in this chat.",
                }
            }
            Ok(None) => match fallback {
                Language::Ko => {
                    "이 링크는 만료되었거나 이미 사용되었습니다. 앱에서 새 링크를 만드세요."
                }
                Language::En => {
                    "This link has expired or was used already. Make a new one in the app."
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "linking a Telegram chat failed");
                return;
            }
        };
        if let Err(e) = self.api.send_message(chat, reply).await {
            tracing::warn!(error = %e, "answering a Telegram link failed");
        }
    }

    /// Activates the pending channel holding `code` with this chat; None for an unknown or
    /// expired code.
    async fn link(
        &self,
        code: &str,
        chat: i64,
    ) -> Result<Option<(ChannelRecord, Language)>, signal_ports::StoreError> {
        let now = chrono::Utc::now();
        let Some(mut channel) = self
            .channels
            .take_pending(ChannelKind::Telegram, &code::hash(code), now)
            .await?
        else {
            return Ok(None);
        };
        channel.target = ChannelTarget::Telegram {
            chat_id: Some(chat),
        };
        channel.state = ChannelState::Active;
        let settings = self
            .channels
            .settings(&channel.user)
            .await?
            .unwrap_or_default();
        let saved = self.channels.update_channel(&channel, now).await?;
        Ok(saved.map(|channel| (channel, Locale::of(&settings).language)))
    }
}
