//! Asset Service: the HTTP surface over the core ([`asset_core`]): the original routes, the JSON
//! API, the quote socket, health and metrics. The core does everything else; this crate reads
//! requests, calls the use cases and shapes their answers.

mod http;
mod sources;

use axum::Router;
use prometheus::Registry;
use signal_web::{ops_router, JwtVerifier, NotReady, Readiness, SocketLimits};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use asset_core::{AssetDeps, AssetMetrics, AssetSettings, CoreError, StartError};
use signal_catalog::Catalog;
use signal_ports::{Interest, OutboxStore, TickSink};
pub use sources::{NoQuote, PriceSource, PriceSources, Unavailable};

/// A started service: its routes, where feeds deliver ticks, which instruments need them, and
/// its background tasks.
pub struct AssetService {
    pub router: Router,
    pub ticks: TickSink,
    pub interest: watch::Receiver<Arc<Interest>>,
    /// The instrument master the service searches; feeds refresh it.
    pub catalog: Arc<RwLock<Catalog>>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Ready when the trigger engine runs and the database answers a probe in time.
struct AssetReadiness {
    engine_running: Arc<AtomicBool>,
    /// Probed with the relay's own query: the smallest read that needs the database.
    outbox: Arc<dyn OutboxStore>,
}

/// How long the database may take to answer the readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[async_trait::async_trait]
impl Readiness for AssetReadiness {
    async fn ready(&self) -> Result<(), NotReady> {
        if !self.engine_running.load(Ordering::Relaxed) {
            return Err(NotReady::Stopped("the trigger engine"));
        }
        let unreachable = |source: signal_web::Cause| NotReady::Unreachable {
            dependency: "the database",
            source,
        };
        match tokio::time::timeout(PROBE_TIMEOUT, self.outbox.pending_outbox(1)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(unreachable(Box::new(error))),
            Err(elapsed) => Err(unreachable(Box::new(elapsed))),
        }
    }
}

/// Starts the core and serves it. `sources` says where each market's prices come from, so an
/// instrument without a quote says why.
pub async fn start(
    deps: AssetDeps,
    settings: AssetSettings,
    sources: PriceSources,
    socket_limits: SocketLimits,
    verifier: Arc<JwtVerifier>,
    registry: &Registry,
    shutdown: CancellationToken,
) -> Result<AssetService, StartError> {
    let calendar = Arc::new(settings.calendar.clone());
    let outbox = deps.outbox.clone();
    let core = asset_core::start(deps, settings, registry, shutdown.clone()).await?;
    let state = http::AssetState {
        assets: core.assets,
        verifier,
        metrics: core.metrics,
        sources: Arc::new(sources),
        calendar,
        shutdown,
        socket_limits,
    };
    let readiness = Arc::new(AssetReadiness {
        engine_running: core.engine_running,
        outbox,
    });
    let router = http::router(state).merge(ops_router(registry.clone(), readiness));
    Ok(AssetService {
        router,
        ticks: core.ticks,
        interest: core.interest,
        catalog: core.catalog,
        tasks: core.tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_store_sql::{connect, Schema, SqlAssetStore};

    #[tokio::test]
    async fn readiness_fails_naming_the_database_once_it_cannot_be_reached() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/asset.db?mode=rwc", dir.path().display());
        let pool = connect(&url, Schema::Asset).await.unwrap();
        let readiness = AssetReadiness {
            engine_running: Arc::new(AtomicBool::new(true)),
            outbox: Arc::new(SqlAssetStore::new(pool.clone())),
        };
        readiness.ready().await.unwrap();

        pool.close().await;
        let not_ready = readiness.ready().await.unwrap_err();
        assert_eq!(not_ready.to_string(), "the database cannot be reached");
    }
}
