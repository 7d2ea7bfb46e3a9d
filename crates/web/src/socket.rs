//! What both services' WebSockets share: the upgrade with the configured frame and message limits
//! (a plain HTTP request to a socket route gets a JSON error), and the close code that tells a
//! client why its socket ended.

use axum::extract::ws::{close_code, CloseFrame, WebSocketUpgrade};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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
/// only small commands; tungstenite's default 128 KiB buffer is zero-filled on the first read, so
/// it stayed resident for every open socket. A larger message still arrives whole: the buffer
/// grows for the frame being read.
pub const SOCKET_READ_BUFFER_BYTES: usize = 4 * 1024;

/// A WebSocket upgrade with the state's [`SocketLimits`] and small buffers; frames are written as
/// they are sent rather than gathered first (every send flushes anyway).
pub struct SocketUpgrade(pub WebSocketUpgrade);

impl<S> FromRequestParts<S> for SocketUpgrade
where
    SocketLimits: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let limits = SocketLimits::from_ref(state);
        match WebSocketUpgrade::from_request_parts(parts, state).await {
            Ok(upgrade) => Ok(SocketUpgrade(
                upgrade
                    .max_frame_size(limits.max_frame_bytes)
                    .max_message_size(limits.max_message_bytes)
                    .read_buffer_size(SOCKET_READ_BUFFER_BYTES)
                    .write_buffer_size(0),
            )),
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
