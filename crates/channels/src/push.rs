//! Web push: the payload encrypted for the browser's subscription as RFC 8291 has it
//! (`aes128gcm`, by the pure-Rust `web-push-native` crate), POSTed to the subscription's push
//! service as RFC 8030 has it, with a VAPID (RFC 8292) signature so the push service knows who
//! sends. The VAPID key pair is generated once into the data directory, or given by
//! configuration (every instance of a deployment must share it: browsers subscribe to one key).

use async_trait::async_trait;
use base64::Engine;
use serde_json::json;
use signal_ports::{ChannelKind, ChannelRecord, ChannelTarget};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;

use crate::message::{Content, Notification};
use crate::sender::{ChannelSender, SendError, Sent};
use crate::ssrf::TargetPolicy;
use crate::webhook::outcome;

const BASE64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long a push service keeps a message for a browser that is offline. An alert older than
/// this is no longer news; it is in the history.
const TIME_TO_LIVE: Duration = Duration::from_secs(4 * 60 * 60);

/// Push services refuse payloads over 4096 bytes once encrypted; the text is cut to stay under.
const MAX_BODY_CHARS: usize = 1500;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum VapidKeyError {
    #[error("the VAPID private key is not base64url: {0}")]
    Encoding(#[source] base64::DecodeError),
    #[error("the VAPID private key is not a P-256 private key")]
    Key(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("reading or writing the VAPID key file {path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The server's VAPID key pair.
pub struct VapidKeys {
    pair: ES256KeyPair,
    public: String,
}

impl std::fmt::Debug for VapidKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKeys")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Decodes base64url with or without padding.
pub fn decode_base64url(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    BASE64URL.decode(text.trim().trim_end_matches('='))
}

impl VapidKeys {
    /// From the raw 32-byte private key in base64url (what `web-push generate-vapid-keys`
    /// prints as the private key).
    pub fn from_private_key(text: &str) -> Result<Self, VapidKeyError> {
        let bytes = decode_base64url(text).map_err(VapidKeyError::Encoding)?;
        let pair = ES256KeyPair::from_bytes(&bytes).map_err(|e| VapidKeyError::Key(e.into()))?;
        Ok(Self::of(pair))
    }

    /// A new key pair.
    pub fn generate() -> Self {
        Self::of(ES256KeyPair::generate())
    }

    /// The private key, raw and base64url: what configuration takes. A secret.
    pub fn private_key(&self) -> String {
        BASE64URL.encode(self.pair.to_bytes())
    }

    fn of(pair: ES256KeyPair) -> Self {
        let public = BASE64URL.encode(pair.public_key().public_key().to_bytes_uncompressed());
        Self { pair, public }
    }

    /// The key in `path`, or a new one written there (readable by the owner only).
    pub fn load_or_generate(path: &Path) -> Result<Self, VapidKeyError> {
        let file_error = |source| VapidKeyError::File {
            path: path.display().to_string(),
            source,
        };
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(file_error)?;
            return Self::from_private_key(&text);
        }
        let keys = Self::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(file_error)?;
        std::io::Write::write_all(&mut file, keys.private_key().as_bytes()).map_err(file_error)?;
        tracing::info!(path = %path.display(), "generated a VAPID key pair for web push");
        Ok(keys)
    }

    /// The public key browsers subscribe with (`applicationServerKey`): the uncompressed P-256
    /// point in base64url.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// `vapid t=<JWT>, k=<public key>`. The JWT's audience is the push service's origin, port
    /// included (RFC 8292 section 2).
    pub fn authorization(
        &self,
        endpoint: &reqwest::Url,
        subject: &str,
    ) -> Result<String, SendError> {
        let claims = Claims::create(web_push_native::jwt_simple::prelude::Duration::from_hours(
            12,
        ))
        .with_audience(endpoint.origin().ascii_serialization())
        .with_subject(subject);
        let token = self
            .pair
            .sign(claims)
            .map_err(|e| SendError::Build(e.into()))?;
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}

/// What the service worker receives (decrypted): enough to show the notification and act on it.
pub fn payload(message: &Notification) -> serde_json::Value {
    let mut body = message.body();
    if let Some((cut, _)) = body.char_indices().nth(MAX_BODY_CHARS) {
        body.truncate(cut);
        body.push('…');
    }
    let alert = match &message.content {
        Content::Alert(notice) => Some(json!({
            "id": notice.alert.id,
            "ruleId": notice.alert.rule_id.0,
            "instrument": notice.alert.instrument,
            "condition": notice.alert.condition.as_str(),
            "price": notice.alert.price,
        })),
        Content::Digest(_) | Content::Test => None,
    };
    // The service worker offers these as the notification's actions.
    let snooze: Vec<serde_json::Value> = message
        .snooze_links()
        .into_iter()
        .map(|link| {
            json!({
                "action": format!("snooze-{}", link.code),
                "title": format!("{} {}", message.snooze_prompt(), link.label(&message.locale)),
                "url": link.url,
            })
        })
        .collect();
    json!({
        "title": message.title(),
        "body": body,
        "url": message.link(),
        "tag": message.message_id,
        "alert": alert,
        "snooze": snooze,
    })
}

pub struct WebPushSender {
    client: reqwest::Client,
    policy: Arc<TargetPolicy>,
    keys: Arc<VapidKeys>,
    /// `mailto:` or `https:` contact for the push services' operators.
    subject: String,
}

impl WebPushSender {
    pub fn new(
        policy: Arc<TargetPolicy>,
        keys: Arc<VapidKeys>,
        subject: String,
    ) -> reqwest::Result<Self> {
        Ok(Self {
            client: policy.client(TIMEOUT)?,
            policy,
            keys,
            subject,
        })
    }
}

#[async_trait]
impl ChannelSender for WebPushSender {
    fn kind(&self) -> ChannelKind {
        ChannelKind::WebPush
    }

    async fn send(
        &self,
        channel: &ChannelRecord,
        message: &Notification,
    ) -> Result<Sent, SendError> {
        let ChannelTarget::WebPush {
            endpoint,
            p256dh,
            auth,
        } = &channel.target
        else {
            return Err(SendError::Misconfigured("not a web push channel"));
        };
        let endpoint: reqwest::Url = endpoint
            .parse()
            .map_err(|e| SendError::Build(Box::new(e)))?;
        self.policy.check_url(&endpoint)?;
        let keys = subscription_keys(p256dh, auth)?;
        let plaintext = payload(message).to_string().into_bytes();
        let encrypted = web_push_native::encrypt(plaintext, &keys.0, &keys.1)
            .map_err(|e| SendError::Build(format!("{e:?}").into()))?;
        let authorization = self.keys.authorization(&endpoint, &self.subject)?;
        let response = self
            .client
            .post(endpoint)
            .header("TTL", TIME_TO_LIVE.as_secs().to_string())
            .header("Urgency", "high")
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::AUTHORIZATION, authorization)
            .body(encrypted)
            .send()
            .await
            .map_err(SendError::transport)?;
        // 404 and 410: the subscription has expired or the browser unsubscribed.
        outcome(response, &[404, 410]).await
    }
}

/// The browser's public key and auth secret, checked.
pub fn subscription_keys(
    p256dh: &str,
    auth: &str,
) -> Result<(web_push_native::p256::PublicKey, web_push_native::Auth), SendError> {
    let invalid = |what: &'static str| SendError::Misconfigured(what);
    let public = decode_base64url(p256dh).map_err(|_| invalid("p256dh is not base64url"))?;
    let public = web_push_native::p256::PublicKey::from_sec1_bytes(&public)
        .map_err(|_| invalid("p256dh is not a P-256 public key"))?;
    let auth = decode_base64url(auth).map_err(|_| invalid("auth is not base64url"))?;
    if auth.len() != 16 {
        return Err(invalid("auth is not 16 bytes"));
    }
    Ok((public, web_push_native::Auth::clone_from_slice(&auth)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid-private-key");
        let first = VapidKeys::load_or_generate(&path).unwrap();
        let again = VapidKeys::load_or_generate(&path).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        assert_eq!(decode_base64url(first.public_key()).unwrap().len(), 65);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_vapid_audience_keeps_the_port() {
        let keys = VapidKeys::generate();
        let header = keys
            .authorization(
                &"http://127.0.0.1:4567/push/abc".parse().unwrap(),
                "mailto:ops@example.com",
            )
            .unwrap();
        let token = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split(',').next())
            .unwrap();
        let claims = keys
            .pair
            .public_key()
            .verify_token::<web_push_native::jwt_simple::claims::NoCustomClaims>(token, None)
            .unwrap();
        assert!(claims
            .audiences
            .unwrap()
            .contains(&std::collections::HashSet::from([
                "http://127.0.0.1:4567".to_string()
            ])));
    }
}
