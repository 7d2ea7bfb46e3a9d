//! The Alert Service's HTTP surface: the original routes, the JSON API beside them, and the alert
//! socket, over the same history store and session hub.

mod accounts;
mod api;
mod channels;
mod legacy;
mod socket;

pub use accounts::AccountsEdge;

use axum::extract::FromRef;
use axum::Router;
use signal_domain::{Failure, FailureKind};
use signal_ports::AlertHistoryStore;
use signal_web::{GatewayTrust, JwtVerifier, SocketLimits, TrustedProxies};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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

pub fn router(state: AlertState) -> Router {
    Router::new()
        .merge(accounts::routes())
        .merge(legacy::routes())
        .merge(api::routes())
        .merge(channels::routes())
        .merge(socket::routes())
        .with_state(state)
}
