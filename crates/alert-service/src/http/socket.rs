//! The alert socket. Every open socket of a user receives each of their alerts. On connect the
//! socket first replays the alerts the user has not acknowledged (oldest first), then streams new
//! ones; the client acknowledges with `{"type":"ack","id":N}` (or `"ids":[...]`), and whatever it
//! has not acknowledged comes again on its next connection.
//!
//! Messages keep the original push's fields (`symbol, targetPrice, currentPrice, condition,
//! timestamp`), add `triggeredPrice` (as the original history names the price) and the alert's
//! id and exact values.
//!
//! The original frontend, on `/ws/socket/alert`, never sends anything and reconnects 3 s after
//! every close: on that route an alert counts as acknowledged once it has been pushed, so each
//! reconnect does not replay every alert again. `/api/v1/alerts/stream` leaves acknowledging to
//! the client.
//!
//! An acknowledgement can only name alerts this socket has sent, so its cost is bounded by what
//! the socket delivered, not by what the client writes.
//!
//! The socket closes (4401) when its token expires, unless the client sent a fresh one:
//! `{"type":"auth","token":"<jwt>"}`.

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use signal_domain::ErrorChain;
use signal_domain::UserId;
use signal_ports::{micros_since, AlertRecord, LATENCY_TARGET};
use signal_web::{SocketIdentity, SocketUpgrade, SocketUser};
use std::collections::{BTreeSet, HashSet};
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::AlertView;
use super::AlertState;

/// Alerts replayed per connection; more stay for the next one or for the history API.
const REPLAY_LIMIT: usize = 500;

pub fn routes() -> OpenApiRouter<AlertState> {
    OpenApiRouter::new()
        .routes(routes!(original_upgrade))
        .routes(routes!(upgrade))
}

/// Who acknowledges the alerts a socket pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acknowledging {
    /// Pushing an alert acknowledges it: the original frontend cannot.
    OnPush,
    /// The client, with `{"type":"ack"}`.
    ByClient,
}

/// The alert socket (WebSocket) as the original spoke it: the caller's unacknowledged alerts
/// first, then each new one; each alert counts as acknowledged once pushed.
#[utoipa::path(
    get,
    path = "/ws/socket/alert",
    tag = "sockets",
    security(("bearer" = []), ("token" = []), ("session" = [])),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 426, description = "Not a WebSocket handshake", body = signal_web::ErrorBody),
    )
)]
async fn original_upgrade(
    SocketUser(identity): SocketUser,
    State(state): State<AlertState>,
    ws: SocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| session(socket, identity, state, Acknowledging::OnPush))
}

/// The alert socket (WebSocket) in the JSON API's terms: the caller's unacknowledged alerts
/// first, then each new one; the client acknowledges with `{"type":"ack","id":N}`.
#[utoipa::path(
    get,
    path = "/api/v1/alerts/stream",
    tag = "sockets",
    security(("bearer" = []), ("token" = []), ("session" = [])),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 426, description = "Not a WebSocket handshake", body = signal_web::ErrorBody),
    )
)]
async fn upgrade(
    SocketUser(identity): SocketUser,
    State(state): State<AlertState>,
    ws: SocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| session(socket, identity, state, Acknowledging::ByClient))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertMessage {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    alert: AlertView,
    target_price: f64,
    current_price: f64,
    /// The same price as `currentPrice`, under the name the original frontend reads.
    triggered_price: f64,
    /// Epoch milliseconds when the rule fired.
    timestamp: i64,
    /// True when sent from the unacknowledged backlog on connect.
    replayed: bool,
}

#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    id: Option<i64>,
    #[serde(default)]
    ids: Vec<i64>,
}

/// What one socket needs to push alerts.
struct Pusher<'a> {
    state: &'a AlertState,
    user: &'a UserId,
    acknowledging: Acknowledging,
    /// Alerts this socket has sent: none is sent twice on one connection.
    sent: HashSet<i64>,
}

async fn session(
    mut ws: WebSocket,
    mut identity: SocketIdentity,
    state: AlertState,
    acknowledging: Acknowledging,
) {
    let user = identity.user.clone();
    state.metrics.alert_sockets_open.inc();
    // Register before reading the backlog, so nothing stored in between is missed; `sent` keeps
    // an alert that is both in the backlog and pushed live from going out twice.
    let mut handle = state.hub.register(&user);
    let mut pusher = Pusher {
        state: &state,
        user: &user,
        acknowledging,
        sent: HashSet::new(),
    };
    // Why the socket is being closed, when the client is told.
    let mut closing = None;
    let replay = state.history.unacknowledged(&user, REPLAY_LIMIT).await;
    let mut open = match replay {
        Ok(backlog) => pusher.send_all(&mut ws, &backlog, true).await,
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), %user, "reading unacknowledged alerts failed");
            false
        }
    };
    while open {
        tokio::select! {
            incoming = ws.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    open = match identity.reauthenticate(&text).await {
                        Some(reply) => ws.send(Message::Text(reply.to_string().into())).await.is_ok(),
                        None => handle_client(&mut ws, &state, &user, &text, &pusher.sent).await,
                    };
                }
                Some(Ok(Message::Close(_))) | None => open = false,
                Some(Err(e)) => {
                    closing = signal_web::socket::close_frame_for(e);
                    open = false;
                }
                Some(Ok(_)) => {}
            },
            alert = handle.alerts.recv() => match alert {
                Some(record) => {
                    open = pusher.send_all(&mut ws, std::slice::from_ref(&*record), false).await;
                }
                // The hub dropped this session (too slow): close so the client reconnects and
                // gets its backlog.
                None => open = false,
            },
            () = identity.expired() => {
                closing = Some(identity.expired_frame());
                open = false;
            }
            // A stopping service closes its sockets ("going away"), so clients reconnect at
            // once, to this instance once it is back or to another, and get their backlog.
            () = state.shutdown.cancelled() => {
                let _ = ws.send(Message::Close(Some(CloseFrame {
                    code: close_code::AWAY,
                    reason: "the service is stopping".into(),
                }))).await;
                return state.metrics.alert_sockets_open.dec();
            }
        }
    }
    let _ = ws.send(Message::Close(closing)).await;
    state.metrics.alert_sockets_open.dec();
}

impl Pusher<'_> {
    /// Sends the records this socket has not sent yet; false once the socket is gone.
    async fn send_all(
        &mut self,
        ws: &mut WebSocket,
        records: &[AlertRecord],
        replayed: bool,
    ) -> bool {
        for record in records {
            if !self.sent.insert(record.id) {
                continue;
            }
            let price = record.price.to_f64_lossy();
            let message = AlertMessage {
                kind: "alert",
                alert: AlertView::from(record),
                target_price: record.level.to_f64_lossy(),
                current_price: price,
                triggered_price: price,
                timestamp: record.triggered_at.timestamp_millis(),
                replayed,
            };
            let Ok(text) = serde_json::to_string(&message) else {
                continue;
            };
            // The socket's write; `fired_us`: how long ago the alert fired when the socket
            // took it up.
            let writing = tracing::debug_span!(
                target: LATENCY_TARGET,
                "alert.push",
                replayed,
                fired_us = micros_since(record.triggered_at),
            );
            if ws
                .send(Message::Text(text.into()))
                .instrument(writing)
                .await
                .is_err()
            {
                return false;
            }
            self.state.metrics.alerts_pushed.inc();
            if self.acknowledging == Acknowledging::OnPush {
                self.acknowledge(record.id).await;
            }
        }
        true
    }

    /// An alert that cannot be marked stays unacknowledged: the next connection sends it again.
    async fn acknowledge(&self, id: i64) {
        let result = self
            .state
            .history
            .acknowledge(self.user, id, chrono::Utc::now())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %ErrorChain(&e), "acknowledging a pushed alert failed");
        }
    }
}

async fn handle_client(
    ws: &mut WebSocket,
    state: &AlertState,
    user: &UserId,
    text: &str,
    sent: &HashSet<i64>,
) -> bool {
    let reply = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) if message.kind == "ack" => acknowledge(state, user, message, sent).await,
        Ok(message) if message.kind == "ping" => serde_json::json!({ "type": "pong" }),
        Ok(message) => error_reply(&format!(
            "unknown type `{}` (expected ack or ping)",
            signal_domain::abbreviate(&message.kind)
        )),
        Err(e) => error_reply(&format!("expected {{\"type\":\"ack\",\"id\":N}}: {e}")),
    };
    ws.send(Message::Text(reply.to_string().into()))
        .await
        .is_ok()
}

fn error_reply(message: &str) -> serde_json::Value {
    serde_json::json!({ "type": "error", "message": signal_web::limit_message(message) })
}

/// Acknowledges the alerts of `message` that this socket sent; the others are not this socket's
/// to acknowledge and are left alone. A list longer than what was sent is refused whole.
async fn acknowledge(
    state: &AlertState,
    user: &UserId,
    message: ClientMessage,
    sent: &HashSet<i64>,
) -> serde_json::Value {
    let listed = message.ids.len() + usize::from(message.id.is_some());
    if listed > sent.len() {
        return error_reply(&format!(
            "this socket has sent {} alert(s); an ack may name at most that many ids, and only \
             theirs",
            sent.len()
        ));
    }
    let ids: BTreeSet<i64> = message
        .id
        .into_iter()
        .chain(message.ids)
        .filter(|id| sent.contains(id))
        .collect();
    let mut acknowledged = Vec::with_capacity(ids.len());
    for id in ids {
        match state
            .history
            .acknowledge(user, id, chrono::Utc::now())
            .await
        {
            Ok(true) => acknowledged.push(id),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %ErrorChain(&e), "acknowledging an alert failed"),
        }
    }
    serde_json::json!({ "type": "acked", "ids": acknowledged })
}
