//! What both services' WebSockets share: the upgrade with the configured frame and message limits
//! (a plain HTTP request to a socket route gets a JSON error), the identity a socket holds until
//! its token expires (unless the client sends a fresh one), and the close codes that tell a
//! client why its socket ended.

use axum::extract::ws::{close_code, CloseFrame, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use signal_domain::{ErrorChain, Timestamp, UserId};
use std::borrow::Cow;
use std::sync::{Arc, Weak};

use crate::auth::JwtVerifier;

/// The close code of a socket whose token expired (4000-4999 are the application's own): the
/// client reconnects with a fresh token, or sends one before expiry to keep the socket.
pub const TOKEN_EXPIRED: u16 = 4401;

/// The largest frame and message a client may send; a larger one closes its socket with 1009.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketLimits {
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
}

impl Default for SocketLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_message_bytes: 64 * 1024,
        }
    }
}

/// The read buffer each socket starts with. A socket is idle nearly all the time and clients send
/// only small commands (a subscription is some 50 bytes, a fresh token under 1 KiB); tungstenite
/// zero-fills the whole buffer on the first read, so all of it stays resident for every open
/// socket: the default 128 KiB, and at 4 KiB still nearly half of a quote socket's memory. A
/// larger message still arrives whole: the buffer grows for the frame being read.
pub const SOCKET_READ_BUFFER_BYTES: usize = 1024;

/// Unsent bytes the kernel may hold for a conflating socket (`TCP_NOTSENT_LOWAT`): once that much
/// waits, the socket stops taking writes, so what a reader has not taken stays with the
/// application, which keeps only the newest value. What is in flight to the client is not limited,
/// so a fast reader on a distant link is not slowed.
pub const CONFLATING_UNSENT_BYTES: u32 = 1;

/// The TCP connection a request arrived on. The server puts it in every request's extensions, so
/// that a route can tune its socket; it does not keep the connection open.
#[derive(Clone)]
pub struct ConnectionSocket(Weak<std::net::TcpStream>);

impl ConnectionSocket {
    pub fn new(socket: &Arc<std::net::TcpStream>) -> Self {
        Self(Arc::downgrade(socket))
    }

    /// Lets the kernel hold at most `bytes` unsent (`TCP_NOTSENT_LOWAT`). Does nothing once the
    /// connection has gone.
    pub fn limit_unsent(&self, bytes: u32) -> std::io::Result<()> {
        match self.0.upgrade() {
            Some(socket) => socket2::SockRef::from(&*socket).set_tcp_notsent_lowat(bytes),
            None => Ok(()),
        }
    }
}

/// A WebSocket upgrade with the state's [`SocketLimits`] and small buffers; frames are written as
/// they are sent rather than gathered first (every send flushes anyway).
pub struct SocketUpgrade {
    upgrade: WebSocketUpgrade,
    connection: Option<ConnectionSocket>,
}

impl SocketUpgrade {
    /// For a socket whose every message supersedes the one before (live quotes): the kernel
    /// holds next to nothing unsent ([`CONFLATING_UNSENT_BYTES`]), so a reader that stalls and
    /// resumes gets the newest value the application kept, not a backlog the kernel queued.
    /// Alerts are never conflated: their sockets keep the kernel's buffers.
    pub fn conflating(self) -> Self {
        if let Some(connection) = &self.connection {
            if let Err(error) = connection.limit_unsent(CONFLATING_UNSENT_BYTES) {
                tracing::debug!(%error, "cannot limit a conflating socket's unsent bytes");
            }
        }
        self
    }

    /// Finishes the handshake and hands the socket to `callback`.
    pub fn on_upgrade<C, F>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> F + Send + 'static,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.upgrade.on_upgrade(callback)
    }
}

impl<S> FromRequestParts<S> for SocketUpgrade
where
    SocketLimits: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let limits = SocketLimits::from_ref(state);
        match WebSocketUpgrade::from_request_parts(parts, state).await {
            Ok(upgrade) => Ok(SocketUpgrade {
                upgrade: upgrade
                    .max_frame_size(limits.max_frame_bytes)
                    .max_message_size(limits.max_message_bytes)
                    .read_buffer_size(SOCKET_READ_BUFFER_BYTES)
                    .write_buffer_size(0),
                connection: parts.extensions.get::<ConnectionSocket>().cloned(),
            }),
            Err(rejection) => Err(not_a_socket(rejection)),
        }
    }
}

fn not_a_socket(rejection: axum::extract::ws::rejection::WebSocketUpgradeRejection) -> Response {
    let detail = rejection.body_text();
    let status = match rejection.status() {
        StatusCode::METHOD_NOT_ALLOWED => StatusCode::METHOD_NOT_ALLOWED,
        // A client that did not ask to upgrade is told how to.
        _ => StatusCode::UPGRADE_REQUIRED,
    };
    let mut response = crate::edge::error_response(
        status,
        &format!(
            "this is a WebSocket endpoint: open it with a WebSocket client (upgrade: websocket). \
             {detail}"
        ),
    );
    if status == StatusCode::UPGRADE_REQUIRED {
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    response.into_response()
}

/// The close frame for a socket whose client broke a limit while sending: 1009 for a frame or
/// message over the size limit. None for other failures (the connection is gone).
pub fn close_frame_for(error: axum::Error) -> Option<CloseFrame> {
    let inner = error.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(capacity)) => {
            // A close reason holds at most 123 bytes.
            let reason = capacity.to_string();
            let reason = if reason.len() <= 120 {
                reason
            } else {
                "message too large".to_string()
            };
            Some(CloseFrame {
                code: close_code::SIZE,
                reason: reason.into(),
            })
        }
        _ => None,
    }
}

/// The user of an open socket, and until when their token holds. A client keeps its socket past
/// that moment by sending a fresh token for the same user over it:
/// `{"type":"auth","token":"<jwt>"}`.
pub struct SocketIdentity {
    pub user: UserId,
    expires_at: Option<Timestamp>,
    verifier: Arc<JwtVerifier>,
}

#[derive(Deserialize)]
struct AuthMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    token: Option<String>,
}

impl SocketIdentity {
    /// `expires_at` None: the identity holds as long as the socket (one not proven by a token).
    pub fn new(user: UserId, expires_at: Option<Timestamp>, verifier: Arc<JwtVerifier>) -> Self {
        Self {
            user,
            expires_at,
            verifier,
        }
    }

    /// Resolves when the token has expired, its leeway passed; never for an identity without
    /// expiry.
    pub async fn expired(&self) {
        match self.deadline() {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }

    /// The moment the token has expired, its leeway passed, on tokio's clock; None for an
    /// identity without expiry. For a socket that keeps one timer and resets it after
    /// [`Self::reauthenticate`].
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        let expires_at = self.expires_at?;
        let leeway = chrono::Duration::from_std(self.verifier.leeway()).unwrap_or_default();
        let left = (expires_at + leeway - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        Some(tokio::time::Instant::now() + left)
    }

    /// The close frame of a socket whose token expired.
    pub fn expired_frame(&self) -> CloseFrame {
        CloseFrame {
            code: TOKEN_EXPIRED,
            reason: "the token expired: reconnect with a fresh one".into(),
        }
    }

    /// Takes a client message that is `{"type":"auth","token":"<jwt>"}`: a token for the same
    /// user extends the socket to that token's expiry. Returns the reply, or None for any other
    /// message (the socket's own protocol reads it).
    pub async fn reauthenticate(&mut self, text: &str) -> Option<Value> {
        let message: AuthMessage = serde_json::from_str(text).ok()?;
        if message.kind != "auth" {
            return None;
        }
        let refused = |why: &str| json!({"type": "auth", "status": "error", "message": crate::limit_message(why)});
        let Some(token) = message.token else {
            return Some(refused(
                r#"an auth message carries a fresh token: {"type":"auth","token":"<jwt>"}"#,
            ));
        };
        // Boxed: verifying may fetch the identity provider's keys, and that future, inlined,
        // would enlarge every open socket's task for a message most sockets never receive.
        Some(match Box::pin(self.verifier.verify(&token)).await {
            Ok(verified) if verified.user == self.user => {
                self.expires_at = verified.expires_at;
                json!({
                    "type": "auth",
                    "status": "success",
                    "expiresAt": verified.expires_at,
                    "message": "the socket now lasts until the new token expires",
                })
            }
            Ok(_) => {
                refused("the token is another user's; a socket keeps the user it was opened for")
            }
            Err(e) => refused(&format!("the token was not accepted: {}", ErrorChain(&e))),
        })
    }
}
