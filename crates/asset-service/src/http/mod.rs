//! The Asset Service's HTTP surface. The original system's routes (`legacy`) and the cleaner JSON
//! API (`api`) are two thin shapes over the same use cases ([`Assets`]): handlers read the
//! request, call a use case and shape its answer; the use case's error converts to the response.

mod api;
mod candles;
mod legacy;
mod quote_socket;

use axum::extract::FromRef;
use signal_web::{GatewayTrust, JwtVerifier, SocketLimits};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use asset_core::{AssetMetrics, Assets};
use signal_domain::MarketCalendar;

use crate::PriceSources;

/// What the handlers share, behind one `Arc`: axum clones the state for every `State` extractor
/// of every request, and cloning the parts one by one (a dozen metric handles, and a
/// cancellation token whose clone takes a lock) was a tenth of a quote request's CPU.
#[derive(Clone)]
pub struct AssetState(Arc<AssetShared>);

impl AssetState {
    pub fn new(shared: AssetShared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AssetState {
    type Target = AssetShared;

    fn deref(&self) -> &AssetShared {
        &self.0
    }
}

pub struct AssetShared {
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

/// The Asset Service's API; each route adds its own operation.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "DonTouch Signal: Asset Service",
        description = "Instruments, quotes, watchlists and alert rules: the JSON API under \
            `/api/v1`, the original system's routes under `/asset`, and the quote socket. Prices \
            are exact decimal strings in the JSON API and JSON numbers in the original routes; \
            every error is the JSON `ErrorBody`. See docs/api.md for what the routes mean."
    ),
    tags(
        (name = "instruments", description = "Search, quotes and candles"),
        (name = "watchlist", description = "The caller's watchlist"),
        (name = "rules", description = "The caller's alert rules"),
        (name = "sockets", description = "Live quotes over WebSocket"),
        (name = "original routes", description = "The original Spring service's routes and shapes"),
        (name = "operations", description = "Health and metrics, no token needed"),
    )
)]
struct AssetApi;

pub fn router(state: AssetState) -> OpenApiRouter {
    OpenApiRouter::with_openapi(AssetApi::openapi())
        .merge(legacy::routes())
        .merge(api::routes())
        .merge(candles::routes())
        .merge(quote_socket::routes())
        .with_state(state)
}
