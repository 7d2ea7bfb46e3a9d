//! Email over SMTP with `lettre`: a plain-text and an HTML part, the message id derived from the
//! message's own (so a retry is recognisably the same mail), at most one mail a minute per
//! address (more become one digest), and a confirmation link before the first alert, so nobody can
//! have alerts sent to someone else's address.

use async_trait::async_trait;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use signal_ports::{ChannelKind, ChannelRecord, ChannelTarget, Language};
use std::time::Duration;

use crate::message::{Locale, Notification};
use crate::sender::{ChannelSender, SendError, Sent};

/// How the mail server is reached.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://host:25`, `smtp://user:password@host:587?tls=required` or
    /// `smtps://user:password@host:465`. Give credentials through the environment
    /// (`SIGNAL_CHANNELS__EMAIL__SMTP_URL`). Email is off when unset.
    pub smtp_url: Option<String>,
    /// The sender, e.g. `DonTouch Signal <alerts@example.com>`.
    pub from: Option<String>,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmailConfigError {
    #[error("channels.email.smtp_url is not a valid SMTP URL")]
    Url(#[source] lettre::transport::smtp::Error),
    #[error("channels.email.from must be set with channels.email.smtp_url")]
    NoSender,
    #[error("channels.email.from is not a mailbox: {0}")]
    Sender(#[source] lettre::address::AddressError),
}

/// How long to wait for the mail server.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How long an address confirmation link stays valid.
pub const CONFIRMATION_VALIDITY: chrono::Duration = chrono::Duration::days(2);

/// SMTP reply codes that mean the recipient is gone for good (RFC 5321: mailbox unavailable,
/// user not local, mailbox name not allowed).
const RECIPIENT_GONE: [u16; 3] = [550, 551, 553];

pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailSender {
    /// None when no SMTP server is configured.
    pub fn new(config: &EmailConfig) -> Result<Option<Self>, EmailConfigError> {
        let Some(url) = config.smtp_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(EmailConfigError::Url)?
            .timeout(Some(TIMEOUT))
            .build();
        let from = config
            .from
            .as_deref()
            .filter(|from| !from.trim().is_empty())
            .ok_or(EmailConfigError::NoSender)?
            .parse()
            .map_err(EmailConfigError::Sender)?;
        Ok(Some(Self { transport, from }))
    }

    async fn deliver(&self, mail: Message) -> Result<Sent, SendError> {
        match self.transport.send(mail).await {
            Ok(response) => Ok(Sent {
                status: Some(u16::from(response.code())),
            }),
            Err(error) => match error.status().map(u16::from) {
                Some(code) if error.is_permanent() => Err(SendError::Rejected {
                    status: code,
                    detail: Some(error.to_string()),
                    retry_after: None,
                    gone: RECIPIENT_GONE.contains(&code),
                }),
                _ => Err(SendError::Smtp(error)),
            },
        }
    }

    fn mail(
        &self,
        to: &str,
        message_id: String,
        subject: &str,
        text: String,
        html: String,
    ) -> Result<Message, SendError> {
        let to: Mailbox = to.parse().map_err(|e| SendError::Build(Box::new(e)))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )
            .map_err(|e| SendError::Build(Box::new(e)))
    }

    /// Sends the link that confirms `address` for a channel.
    pub async fn send_confirmation(
        &self,
        address: &str,
        link: &str,
        locale: &Locale,
    ) -> Result<Sent, SendError> {
        let (subject, line, button) = match locale.language {
            Language::Ko => (
                "DonTouch Signal 이메일 확인",
                "이 주소로 가격 알림을 받으려면 아래 링크를 여세요. 요청하지 않았다면 무시하세요.",
                "이메일 확인",
            ),
            Language::En => (
                "Confirm your email for DonTouch Signal",
                "Open the link below to receive price alerts at this address. If you did not ask for this, ignore this mail.",
                "Confirm email",
            ),
        };
        let text = format!("{line}\n\n{link}\n");
        let html = format!(
            "<p>{}</p><p><a href=\"{}\">{}</a></p>",
            escape(line),
            escape(link),
            escape(button)
        );
        let id = format!("<confirm-{}@dontouch-signal>", uuid::Uuid::now_v7());
        let mail = self.mail(address, id, subject, text, html)?;
        self.deliver(mail).await
    }
}

/// `&`, `<`, `>` and `"` for HTML text and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML part: the title, each line of the text, a link to the app.
pub fn html(message: &Notification) -> String {
    let open = match message.locale.language {
        Language::Ko => "앱에서 보기",
        Language::En => "Open in the app",
    };
    let lines: String = message
        .body()
        .lines()
        .map(|line| format!("<p style=\"margin:4px 0\">{}</p>", escape(line)))
        .collect();
    let links = message.snooze_links();
    let snooze = if links.is_empty() {
        String::new()
    } else {
        let anchors: Vec<String> = links
            .iter()
            .map(|link| {
                format!(
                    "<a href=\"{}\">{}</a>",
                    escape(&link.url),
                    link.label(&message.locale)
                )
            })
            .collect();
        format!(
            "<p>{}: {}</p>",
            message.snooze_prompt(),
            anchors.join(" · ")
        )
    };
    format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><h2 style=\"margin:0 0 8px\">{}</h2>{lines}<p><a href=\"{}\">{open}</a></p>{snooze}</body></html>",
        escape(&message.title()),
        escape(&message.link()),
    )
}

/// The plain-text part: the title, the text, the link to the app, and the snooze links.
pub fn text(message: &Notification) -> String {
    let mut text = format!(
        "{}\n\n{}\n\n{}\n",
        message.title(),
        message.body(),
        message.link()
    );
    let links = message.snooze_links();
    if !links.is_empty() {
        text.push_str(&format!("\n{}:\n", message.snooze_prompt()));
        for link in links {
            text.push_str(&format!("{}: {}\n", link.label(&message.locale), link.url));
        }
    }
    text
}

#[async_trait]
impl ChannelSender for EmailSender {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn max_per_minute(&self) -> Option<u32> {
        Some(1)
    }

    async fn send(
        &self,
        channel: &ChannelRecord,
        message: &Notification,
    ) -> Result<Sent, SendError> {
        let ChannelTarget::Email { address } = &channel.target else {
            return Err(SendError::Misconfigured("not an email channel"));
        };
        let mail = self.mail(
            address,
            format!("<{}@dontouch-signal>", message.message_id),
            &message.title(),
            text(message),
            html(message),
        )?;
        self.deliver(mail).await
    }
}
