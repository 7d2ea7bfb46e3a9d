//! Live quotes over WebSocket, in the original `/ws/stocks` protocol: the client sends
//! `{"type":"subscribe"|"unsubscribe","symbol":"..."}`, the server answers
//! `{"status":"success"|"error","message":"..."}` and pushes `price_update` messages.
//!
//! `/ws/stocks` speaks it as the original did, for the original frontend: the acknowledgement
//! says `구독 성공`, a crypto change rate is Upbit's fraction, and in gateway mode a socket the
//! gateway forwards needs no credentials. `/api/v1/quotes/stream` is the same protocol in the
//! JSON API's terms: English acknowledgements, change rates in percent, a token always.
//!
//! Each subscription is a `watch` receiver, so the socket holds at most one pending quote per
//! instrument: a slow client gets the latest price, never a backlog. The kernel holds next to
//! nothing unsent either ([`SocketUpgrade::conflating`]), so a reader that stalls and resumes gets
//! the current price, not what the kernel queued meanwhile. Each quote is encoded once, in both
//! dialects, and every socket following the instrument sends the same bytes.
//!
//! The socket closes (4401) when its token expires, unless the client sent a fresh one:
//! `{"type":"auth","token":"<jwt>"}`.

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::State;
use axum::response::Response;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use signal_domain::{ErrorChain, InstrumentId, Quote};
use signal_web::{SocketIdentity, SocketUpgrade, SocketUser, SocketViewer};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::StreamMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use asset_core::{LiveQuote, ViewGuard};

use super::AssetState;

/// Bounds the memory one client can pin.
const MAX_SUBSCRIPTIONS: usize = 200;

pub fn routes() -> OpenApiRouter<AssetState> {
    OpenApiRouter::new()
        .routes(routes!(original_upgrade))
        .routes(routes!(upgrade))
}

/// Which words and units a socket uses; the protocol is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// The original's, on `/ws/stocks`.
    Original,
    /// The JSON API's, on `/api/v1/quotes/stream`.
    Api,
}

/// The quote socket (WebSocket) as the original spoke it. Client:
/// `{"type":"subscribe"|"unsubscribe","symbol":"005930"}`; server: `{"status","message"}` (the
/// original's Korean acknowledgements), then `price_update` messages for each subscribed
/// instrument, a crypto change rate as a fraction. In gateway mode a socket the gateway forwards
/// needs no credentials.
#[utoipa::path(
    get,
    path = "/ws/stocks",
    tag = "sockets",
    security(("bearer" = []), ("token" = []), ("session" = [])),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 426, description = "Not a WebSocket handshake", body = signal_web::ErrorBody),
    )
)]
async fn original_upgrade(
    SocketViewer(identity): SocketViewer,
    State(state): State<AssetState>,
    ws: SocketUpgrade,
) -> Response {
    tracing::debug!(user = ?identity.as_ref().map(|i| &i.user), "quote socket opened");
    ws.conflating()
        .on_upgrade(move |socket| session(socket, identity, state, Dialect::Original))
}

/// The quote socket (WebSocket) in the JSON API's terms: the protocol of `/ws/stocks` with
/// English acknowledgements and change rates in percent; a token always.
#[utoipa::path(
    get,
    path = "/api/v1/quotes/stream",
    tag = "sockets",
    security(("bearer" = []), ("token" = []), ("session" = [])),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 426, description = "Not a WebSocket handshake", body = signal_web::ErrorBody),
    )
)]
async fn upgrade(
    SocketUser(identity): SocketUser,
    State(state): State<AssetState>,
    ws: SocketUpgrade,
) -> Response {
    tracing::debug!(user = %identity.user, "quote socket opened");
    ws.conflating()
        .on_upgrade(move |socket| session(socket, Some(identity), state, Dialect::Api))
}

#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    symbol: String,
}

#[derive(Serialize)]
struct Reply {
    status: &'static str,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PriceUpdate<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbol: &'a str,
    instrument: &'a InstrumentId,
    /// As the original: a JSON number.
    price: f64,
    /// The exact price, as a decimal string.
    price_exact: String,
    /// In the socket's [`Dialect`]: percent, or on `/ws/stocks` a fraction for crypto.
    change_rate: Option<f64>,
    /// Epoch milliseconds of the trade.
    timestamp: i64,
    simulated: bool,
}

struct Socket {
    ws: WebSocket,
    dialect: Dialect,
    subscriptions: StreamMap<InstrumentId, WatchStream<Option<Arc<LiveQuote>>>>,
    /// Keeps each subscribed instrument marked as viewed live while subscribed.
    views: HashMap<InstrumentId, ViewGuard>,
}

/// `identity` None: a socket the gateway forwarded without credentials, which never expires.
async fn session(
    ws: WebSocket,
    mut identity: Option<SocketIdentity>,
    state: AssetState,
    dialect: Dialect,
) {
    state.metrics.quote_sockets_open.inc();
    let mut socket = Socket {
        ws,
        dialect,
        subscriptions: StreamMap::new(),
        views: HashMap::new(),
    };
    // One timer and one shutdown waiter for the socket's life, not one per message sent.
    let mut deadline = identity.as_ref().and_then(SocketIdentity::deadline);
    let expiry = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now));
    tokio::pin!(expiry);
    let stopping = state.shutdown.cancelled();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            incoming = socket.ws.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let reauthenticated = match identity.as_mut() {
                        Some(identity) => identity.reauthenticate(&text).await,
                        None => None,
                    };
                    let sent = match reauthenticated {
                        Some(reply) => {
                            deadline = identity.as_ref().and_then(SocketIdentity::deadline);
                            if let Some(deadline) = deadline {
                                expiry.as_mut().reset(deadline);
                            }
                            socket.send_json(&reply).await
                        }
                        None => {
                            let reply = socket.handle(&state, &text);
                            socket.send_json(&reply).await
                        }
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    if let Some(frame) = signal_web::socket::close_frame_for(e) {
                        let _ = socket.ws.send(Message::Close(Some(frame))).await;
                    }
                    break;
                }
                Some(Ok(_)) => {}
            },
            Some((_, live)) = socket.subscriptions.next(), if !socket.subscriptions.is_empty() => {
                let Some(live) = live else { continue };
                let sent = match live.encoded(PriceUpdateFrames::encode).as_ref() {
                    Ok(frames) => {
                        let frame = frames.in_dialect(socket.dialect).clone();
                        socket.ws.send(Message::Text(frame)).await.is_ok()
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot encode a quote; closing its socket");
                        false
                    }
                };
                if !sent {
                    break;
                }
            }
            () = &mut expiry, if deadline.is_some() => {
                if let Some(identity) = &identity {
                    let _ = socket.ws.send(Message::Close(Some(identity.expired_frame()))).await;
                }
                break;
            }
            // A stopping service closes its sockets ("going away"), so clients reconnect at
            // once, to this instance once it is back or to another.
            () = &mut stopping => {
                let _ = socket.ws.send(Message::Close(Some(CloseFrame {
                    code: close_code::AWAY,
                    reason: "the service is stopping".into(),
                }))).await;
                break;
            }
        }
    }
    state.metrics.quote_sockets_open.dec();
}

impl Socket {
    fn handle(&mut self, state: &AssetState, text: &str) -> Reply {
        let error = |message: String| Reply {
            status: "error",
            message: signal_web::limit_message(&message),
        };
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                return error(format!(
                    "expected {{\"type\":\"subscribe\"|\"unsubscribe\",\"symbol\":\"...\"}}: {e}"
                ))
            }
        };
        let id = match state.assets.resolve(&message.symbol) {
            Ok(id) => id,
            Err(e) => return error(ErrorChain(&e).to_string()),
        };
        match message.kind.as_str() {
            "subscribe" => {
                if self.subscriptions.len() >= MAX_SUBSCRIPTIONS
                    && !self.subscriptions.contains_key(&id)
                {
                    return error(format!(
                        "at most {MAX_SUBSCRIPTIONS} subscriptions per socket"
                    ));
                }
                let (updates, view) = state.assets.follow(&id);
                self.subscriptions
                    .insert(id.clone(), WatchStream::new(updates));
                self.views.insert(id.clone(), view);
                Reply {
                    status: "success",
                    message: match self.dialect {
                        // The original frontend takes a reply containing `구독 성공` as its
                        // acknowledgement.
                        Dialect::Original => format!("구독 성공: {}", id.symbol()),
                        Dialect::Api => format!("subscribed to {id}"),
                    },
                }
            }
            "unsubscribe" => {
                self.subscriptions.remove(&id);
                self.views.remove(&id);
                Reply {
                    status: "success",
                    message: match self.dialect {
                        Dialect::Original => format!("구독 해제: {}", id.symbol()),
                        Dialect::Api => format!("unsubscribed from {id}"),
                    },
                }
            }
            other => error(format!(
                "unknown type `{other}` (expected subscribe or unsubscribe)"
            )),
        }
    }

    async fn send_json<T: Serialize>(&mut self, value: &T) -> Result<(), axum::Error> {
        let text = serde_json::to_string(value).map_err(axum::Error::new)?;
        self.ws.send(Message::Text(text.into())).await
    }
}

/// A quote's `price_update` in both dialects, encoded once and shared by every socket that
/// sends it.
struct PriceUpdateFrames {
    original: Utf8Bytes,
    api: Utf8Bytes,
}

impl PriceUpdateFrames {
    fn encode(quote: &Quote) -> Result<Self, serde_json::Error> {
        let frame =
            |dialect| serde_json::to_string(&price_update(quote, dialect)).map(Utf8Bytes::from);
        Ok(Self {
            original: frame(Dialect::Original)?,
            api: frame(Dialect::Api)?,
        })
    }

    fn in_dialect(&self, dialect: Dialect) -> &Utf8Bytes {
        match dialect {
            Dialect::Original => &self.original,
            Dialect::Api => &self.api,
        }
    }
}

fn price_update(quote: &Quote, dialect: Dialect) -> PriceUpdate<'_> {
    PriceUpdate {
        kind: "price_update",
        symbol: quote.instrument.symbol(),
        instrument: &quote.instrument,
        price: quote.price.to_f64_lossy(),
        price_exact: quote.price.to_string(),
        change_rate: match dialect {
            Dialect::Original => super::legacy::original_change_rate(quote),
            Dialect::Api => quote.change_percent.map(|p| p.to_f64_lossy()),
        },
        timestamp: quote.exchange_time.timestamp_millis(),
        simulated: quote.simulated,
    }
}
