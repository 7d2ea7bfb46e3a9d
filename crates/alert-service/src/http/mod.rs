//! The Alert Service's HTTP surface: the original routes, the JSON API beside them, and the alert
//! socket, over the same history store and session hub.

mod accounts;
mod api;
mod channels;
mod legacy;
mod socket;

pub use accounts::AccountsEdge;

use axum::extract::FromRef;
use signal_domain::{Failure, FailureKind};
use signal_ports::AlertHistoryStore;
use signal_web::{GatewayTrust, JwtVerifier, SocketLimits, TrustedProxies};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::metrics::AlertMetrics;
use crate::sessions::SessionHub;

#[derive(Clone)]
pub struct AlertState {
    pub history: Arc<dyn AlertHistoryStore>,
    pub hub: Arc<SessionHub>,
    pub verifier: Arc<JwtVerifier>,
    pub metrics: AlertMetrics,
    /// None when accounts are switched off.
    pub accounts: Option<Arc<AccountsEdge>>,
    pub trusted_proxies: TrustedProxies,
    pub gateway: GatewayTrust,
    /// Cancelled when the service stops: its sockets close.
    pub shutdown: CancellationToken,
    pub channels: Arc<signal_channels::ChannelService>,
    pub socket_limits: SocketLimits,
}

impl FromRef<AlertState> for Arc<JwtVerifier> {
    fn from_ref(state: &AlertState) -> Self {
        state.verifier.clone()
    }
}

impl FromRef<AlertState> for GatewayTrust {
    fn from_ref(state: &AlertState) -> Self {
        state.gateway.clone()
    }
}

impl FromRef<AlertState> for SocketLimits {
    fn from_ref(state: &AlertState) -> Self {
        state.socket_limits
    }
}

/// The caller has no alert by this id (it never existed, was deleted, or is another user's).
#[derive(Debug, thiserror::Error)]
#[error("you have no alert {0}")]
pub struct NoSuchAlert(pub i64);

impl Failure for NoSuchAlert {
    fn kind(&self) -> FailureKind {
        FailureKind::NotFound
    }
}

impl FromRef<AlertState> for TrustedProxies {
    fn from_ref(state: &AlertState) -> Self {
        state.trusted_proxies.clone()
    }
}

/// The Alert Service's API; each route adds its own operation.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "DonTouch Signal: Alert Service",
        description = "Triggered alerts (history, read state, the alert socket), built-in \
            accounts and sessions, notification channels and their deliveries, and notification \
            settings: the JSON API under `/api/v1` and the original system's routes under \
            `/alert`. Every error is the JSON `ErrorBody`. See docs/api.md for what the routes \
            mean."
    ),
    tags(
        (name = "alerts", description = "The caller's alert history"),
        (name = "accounts", description = "Built-in accounts and sign-in sessions"),
        (name = "channels", description = "Notification channels, deliveries and settings"),
        (name = "sockets", description = "Alerts pushed over WebSocket"),
        (name = "original routes", description = "The original Spring service's routes and shapes"),
        (name = "operations", description = "Health and metrics, no token needed"),
    )
)]
struct AlertApi;

pub fn router(state: AlertState) -> OpenApiRouter {
    OpenApiRouter::with_openapi(AlertApi::openapi())
        .merge(accounts::routes())
        .merge(legacy::routes())
        .merge(api::routes())
        .merge(channels::routes())
        .merge(socket::routes())
        .with_state(state)
}
