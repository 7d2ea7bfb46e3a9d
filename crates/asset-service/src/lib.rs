//! Asset Service: the HTTP surface over the core ([`asset_core`]): the original routes, the JSON
//! API, the quote socket, health and metrics. The core does everything else; this crate reads
//! requests, calls the use cases and shapes their answers.

mod http;
mod sources;

use axum::Router;
use prometheus::Registry;
use signal_web::{
    openapi, ops_router, Dependency, GatewayTrust, JwtVerifier, Readiness, SocketLimits,
    TaskRunning,
};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use asset_core::{
    follow_listings, AssetDeps, AssetMetrics, AssetSettings, CoreError, StartError,
};
use signal_catalog::Catalog;
use signal_ports::{Interest, TickSink};
pub use sources::{NoQuote, PriceSource, PriceSources, Unavailable};

/// A started service: its routes, where feeds deliver ticks, which instruments need them, and
/// its background tasks.
pub struct AssetService {
    pub router: Router,
    pub ticks: TickSink,
    pub interest: watch::Receiver<Arc<Interest>>,
    /// The instrument master the service searches; feeds refresh it.
    pub catalog: Arc<RwLock<Catalog>>,
    /// What `/health/ready` checks: the engine; add the adapters' dependencies to it.
    pub readiness: Readiness,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Who the callers are and what their sockets may send.
pub struct HttpEdge {
    pub verifier: Arc<JwtVerifier>,
    /// Gateway mode: whether, and from whom, a user named by the gateway in front is believed.
    pub gateway: GatewayTrust,
    pub socket_limits: SocketLimits,
}

/// Starts the core and serves it. `sources` says where each market's prices come from, so an
/// instrument without a quote says why.
pub async fn start(
    deps: AssetDeps,
    settings: AssetSettings,
    sources: PriceSources,
    edge: HttpEdge,
    registry: &Registry,
    shutdown: CancellationToken,
) -> Result<AssetService, StartError> {
    let calendar = Arc::new(settings.calendar.clone());
    let core = asset_core::start(deps, settings, registry, shutdown.clone()).await?;
    let state = http::AssetState::new(http::AssetShared {
        assets: core.assets,
        verifier: edge.verifier,
        gateway: edge.gateway,
        metrics: core.metrics,
        sources: Arc::new(sources),
        calendar,
        shutdown,
        socket_limits: edge.socket_limits,
    });
    let readiness = Readiness::default();
    readiness.add(Dependency {
        name: "engine",
        required: true,
        probe: Arc::new(TaskRunning(core.engine_running)),
    });
    let (router, api) = http::router(state)
        .merge(ops_router(registry.clone(), readiness.clone()))
        .split_for_parts();
    let router = router.merge(openapi::docs_routes(&openapi::complete(api)));
    Ok(AssetService {
        router,
        ticks: core.ticks,
        interest: core.interest,
        catalog: core.catalog,
        readiness,
        tasks: core.tasks,
    })
}
