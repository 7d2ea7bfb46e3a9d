//! Webhooks as the Standard Webhooks specification has them: `webhook-id` (the message id: the
//! alert's event id, the same on every retry), `webhook-timestamp` and `webhook-signature`
//! (HMAC-SHA256 over `id.timestamp.body` with the endpoint's `whsec_` secret, signed by the
//! specification's own crate). After a rotation the previous secret signs too, for a day, so a
//! receiver can switch over without refusing a message.

use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use serde_json::json;
use signal_ports::{ChannelKind, ChannelRecord, ChannelTarget};
use std::sync::Arc;
use std::time::Duration;

use crate::message::{Content, Notification};
use crate::schedule::parse_retry_after;
use crate::sender::{shorten, ChannelSender, SendError, Sent};
use crate::ssrf::TargetPolicy;
use crate::template::{Template, TemplateValues};

pub const SECRET_PREFIX: &str = "whsec_";

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The `webhook-signature` header: one `v1,<base64>` per secret, space-separated.
pub fn signature(
    secrets: &[&str],
    message_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, SendError> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let signer =
            standardwebhooks::Webhook::new(secret).map_err(|e| SendError::Build(Box::new(e)))?;
        signatures.push(
            signer
                .sign(message_id, timestamp, body.as_bytes())
                .map_err(|e| SendError::Build(Box::new(e)))?,
        );
    }
    Ok(signatures.join(" "))
}

/// The body and its content type: the user's template, or the default JSON event.
pub fn body(
    template: Option<&str>,
    channel_id: i64,
    message: &Notification,
) -> Result<(&'static str, String), SendError> {
    let Some(source) = template else {
        return Ok(("application/json", default_body(channel_id, message)));
    };
    let template = Template::parse(source).map_err(|e| SendError::Build(Box::new(e)))?;
    let rendered: Vec<String> = match &message.content {
        Content::Test => vec![template.render(&TemplateValues::sample())],
        _ => message
            .notices()
            .iter()
            .map(|notice| template.render(&notice.template_values(&message.locale)))
            .collect(),
    };
    // A digest carries every alert's rendering: a JSON array, or one per line.
    let body = match (rendered.as_slice(), template.is_json()) {
        ([one], _) => one.clone(),
        (many, true) => format!("[{}]", many.join(",")),
        (many, false) => many.join("\n"),
    };
    Ok((template.content_type(), body))
}

fn default_body(channel_id: i64, message: &Notification) -> String {
    let timestamp = chrono::Utc::now();
    let event = match &message.content {
        Content::Alert(notice) => json!({
            "type": "alert.triggered",
            "timestamp": timestamp,
            "data": notice.json(&message.app_url),
        }),
        Content::Digest(notices) => json!({
            "type": "alert.digest",
            "timestamp": timestamp,
            "data": {
                "count": notices.len(),
                "alerts": notices.iter().map(|n| n.json(&message.app_url)).collect::<Vec<_>>(),
            },
        }),
        Content::Test => json!({
            "type": "channel.test",
            "timestamp": timestamp,
            "data": {"channelId": channel_id, "message": message.body()},
        }),
    };
    event.to_string()
}

/// Reads at most a little of a response body, for the delivery's last error.
pub async fn answer_excerpt(mut response: reqwest::Response) -> Option<String> {
    const LIMIT: usize = 1024;
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= LIMIT {
            break;
        }
    }
    shorten(&String::from_utf8_lossy(&bytes))
}

/// What an HTTP answer means for the delivery; `gone` statuses stop the channel.
pub async fn outcome(response: reqwest::Response, gone: &[u16]) -> Result<Sent, SendError> {
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(Sent {
            status: Some(status),
        });
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
    Err(SendError::Rejected {
        status,
        detail: answer_excerpt(response).await,
        retry_after,
        gone: gone.contains(&status),
    })
}

pub struct WebhookSender {
    client: reqwest::Client,
    policy: Arc<TargetPolicy>,
}

impl WebhookSender {
    pub fn new(policy: Arc<TargetPolicy>) -> reqwest::Result<Self> {
        Ok(Self {
            client: policy.client(TIMEOUT)?,
            policy,
        })
    }
}

#[async_trait]
impl ChannelSender for WebhookSender {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    async fn send(
        &self,
        channel: &ChannelRecord,
        message: &Notification,
    ) -> Result<Sent, SendError> {
        let ChannelTarget::Webhook {
            url,
            template,
            secret,
            previous_secret,
            previous_secret_expires_at,
        } = &channel.target
        else {
            return Err(SendError::Misconfigured("not a webhook channel"));
        };
        let url: reqwest::Url = url.parse().map_err(|e| SendError::Build(Box::new(e)))?;
        self.policy.check_url(&url)?;
        let (content_type, body) = body(template.as_deref(), channel.id, message)?;
        let now = chrono::Utc::now();
        let mut secrets = vec![secret.as_str()];
        if let (Some(previous), Some(until)) = (previous_secret, previous_secret_expires_at) {
            if *until > now {
                secrets.push(previous);
            }
        }
        let message_id = message.message_id.to_string();
        let signature = signature(&secrets, &message_id, now.timestamp(), &body)?;
        let response = self
            .client
            .post(url)
            .header("webhook-id", &message_id)
            .header("webhook-timestamp", now.timestamp().to_string())
            .header("webhook-signature", signature)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(SendError::transport)?;
        // 410 Gone: the receiver says the endpoint is no more.
        outcome(response, &[410]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_with_the_reference_implementation() {
        let secret = new_secret();
        assert!(secret.starts_with(SECRET_PREFIX));
        let body = r#"{"type":"alert.triggered"}"#;
        let now = chrono::Utc::now().timestamp();
        let header = signature(&[&secret], "msg_1", now, body).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        headers.insert("webhook-signature", header.parse().unwrap());
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(body.as_bytes(), &headers)
            .unwrap();
    }

    #[test]
    fn after_a_rotation_both_secrets_sign() {
        let (old, new) = (new_secret(), new_secret());
        let body = "{}";
        let now = chrono::Utc::now().timestamp();
        let header = signature(&[&new, &old], "msg_2", now, body).unwrap();
        assert_eq!(header.split(' ').count(), 2);
        for secret in [&old, &new] {
            let mut headers = http::HeaderMap::new();
            headers.insert("webhook-id", "msg_2".parse().unwrap());
            headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
            headers.insert("webhook-signature", header.parse().unwrap());
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(body.as_bytes(), &headers)
                .unwrap();
        }
    }
}
