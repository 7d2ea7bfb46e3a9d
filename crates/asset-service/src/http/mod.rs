//! The Asset Service's HTTP surface. The original system's routes (`legacy`) and the cleaner JSON
//! API (`api`) are two thin shapes over the same use cases ([`Assets`]): handlers read the
//! request, call a use case and shape its answer; the use case's error converts to the response.

mod api;
mod candles;
mod legacy;
mod quote_socket;

use axum::extract::FromRef;
use axum::Router;
use signal_web::{GatewayTrust, JwtVerifier, SocketLimits};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use asset_core::{AssetMetrics, Assets};
use signal_domain::MarketCalendar;

use crate::PriceSources;

#[derive(Clone)]
pub struct AssetState {
    pub assets: Arc<Assets>,
    pub verifier: Arc<JwtVerifier>,
    pub gateway: GatewayTrust,
    pub metrics: AssetMetrics,
    /// Where each market's prices come from, to say why an instrument has no quote.
    pub sources: Arc<PriceSources>,
    pub calendar: Arc<MarketCalendar>,
    /// Cancelled when the service stops: its sockets close.
    pub shutdown: CancellationToken,
    pub socket_limits: SocketLimits,
}

impl FromRef<AssetState> for Arc<JwtVerifier> {
    fn from_ref(state: &AssetState) -> Self {
        state.verifier.clone()
    }
}

impl FromRef<AssetState> for GatewayTrust {
    fn from_ref(state: &AssetState) -> Self {
        state.gateway.clone()
    }
}

impl FromRef<AssetState> for SocketLimits {
    fn from_ref(state: &AssetState) -> Self {
        state.socket_limits
    }
}

pub fn router(state: AssetState) -> Router {
    Router::new()
        .merge(legacy::routes())
        .merge(api::routes())
        .merge(candles::routes())
        .merge(quote_socket::routes())
        .with_state(state)
}
