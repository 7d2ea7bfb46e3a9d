//! The seam every channel implements: send one message to one channel, and say whether a failure
//! is worth retrying.

use async_trait::async_trait;
use signal_domain::ErrorChain;
use signal_ports::{ChannelKind, ChannelRecord, DeliveryAttempt};
use std::time::{Duration, Instant};

use crate::message::Notification;
use crate::ssrf::{refusal_in, TargetRefused};

/// What the receiver acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The HTTP status, where there is one.
    pub status: Option<u16>,
}

/// Why a message did not go out. Keep the cause in the chain: `ErrorChain` tells it whole.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the receiver answered HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Rejected {
        status: u16,
        /// What the receiver said, shortened.
        detail: Option<String>,
        retry_after: Option<Duration>,
        /// The target is gone for good (410, an expired push subscription, a blocked bot).
        gone: bool,
    },
    #[error("refused")]
    Refused(#[source] TargetRefused),
    #[error("could not reach the receiver ({})", transport_kind(.0))]
    Transport(#[source] reqwest::Error),
    #[error("the channel is not set up for sending: {0}")]
    Misconfigured(&'static str),
    #[error("the mail server refused the message")]
    Smtp(#[source] lettre::transport::smtp::Error),
    #[error("building the message failed")]
    Build(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<TargetRefused> for SendError {
    fn from(refused: TargetRefused) -> Self {
        SendError::Refused(refused)
    }
}

/// What kind of transport failure: a refused target is named plainly (its reason follows in the
/// chain).
fn transport_kind(error: &reqwest::Error) -> &'static str {
    if refusal_in(error).is_some() {
        "refused"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    }
}

impl SendError {
    /// Wraps a transport error, dropping its URL.
    pub fn transport(error: reqwest::Error) -> Self {
        SendError::Transport(error.without_url())
    }

    /// True when retrying cannot help and the channel should stop.
    pub fn is_gone(&self) -> bool {
        matches!(self, SendError::Rejected { gone: true, .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Rejected { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One channel kind's way of sending.
#[async_trait]
pub trait ChannelSender: Send + Sync + 'static {
    fn kind(&self) -> ChannelKind;

    /// A limit of the kind itself on messages per channel per minute, below the user's cap
    /// (email: one a minute per address).
    fn max_per_minute(&self) -> Option<u32> {
        None
    }

    /// Sends `message` to `channel`. Called again with the same message id after a failure or a
    /// crash, so the receiver can tell a retry from a new message.
    async fn send(
        &self,
        channel: &ChannelRecord,
        message: &Notification,
    ) -> Result<Sent, SendError>;
}

/// Sends `message` through `sender` and describes the attempt as the delivery log keeps it.
pub async fn attempt(
    sender: &dyn ChannelSender,
    channel: &ChannelRecord,
    message: &Notification,
) -> (Result<Sent, SendError>, DeliveryAttempt) {
    let started = Instant::now();
    let result = sender.send(channel, message).await;
    let attempt = DeliveryAttempt {
        at: chrono::Utc::now(),
        ok: result.is_ok(),
        status: match &result {
            Ok(sent) => sent.status,
            Err(e) => e.status(),
        },
        error: result.as_ref().err().map(|e| ErrorChain(e).to_string()),
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
    };
    (result, attempt)
}

/// Cuts a receiver's answer down to something worth keeping in a delivery's last error.
pub fn shorten(text: &str) -> Option<String> {
    const MAX: usize = 200;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(if end < text.len() {
        format!("{}…", &text[..end])
    } else {
        text.to_string()
    })
}
