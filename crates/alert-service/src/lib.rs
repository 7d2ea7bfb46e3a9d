//! Alert Service: consumes triggered alerts, stores each once in the user's history, pushes it to
//! every open session of that user, and serves the history. Its I/O comes in through the ports in
//! [`AlertDeps`].

mod consumer;
mod http;
mod metrics;
mod sessions;

use axum::Router;
use prometheus::Registry;
use signal_ports::{AlertHistoryStore, AlertInbox, Broadcast};
use signal_web::{ops_router, JwtVerifier, NotReady, Readiness};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use metrics::AlertMetrics;

pub struct AlertDeps {
    pub history: Arc<dyn AlertHistoryStore>,
    pub inbox: Box<dyn AlertInbox>,
    /// Carries each stored alert to the instance holding the user's sockets.
    pub broadcast: Arc<dyn Broadcast>,
}

pub struct AlertService {
    pub router: Router,
    pub tasks: Vec<JoinHandle<()>>,
}

struct ConsumerRunning(Arc<AtomicBool>);

#[async_trait::async_trait]
impl Readiness for ConsumerRunning {
    async fn ready(&self) -> Result<(), NotReady> {
        self.0
            .load(Ordering::Relaxed)
            .then_some(())
            .ok_or(NotReady::Stopped("the alert consumer"))
    }
}

pub async fn start(
    deps: AlertDeps,
    verifier: Arc<JwtVerifier>,
    registry: &Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<AlertService> {
    let metrics = AlertMetrics::register(registry)?;
    let hub = Arc::new(sessions::SessionHub::default());
    let running = Arc::new(AtomicBool::new(true));
    // Subscribed before the consumer starts, so no announcement can go unheard.
    let announcements = deps.broadcast.subscribe().await?;
    let pusher = tokio::spawn(consumer::run_pusher(
        announcements,
        hub.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let consumer = tokio::spawn(consumer::run_consumer(
        deps.inbox,
        deps.history.clone(),
        deps.broadcast,
        metrics.clone(),
        running.clone(),
        shutdown,
    ));
    let state = http::AlertState {
        history: deps.history,
        hub,
        verifier,
        metrics,
    };
    let router = http::router(state).merge(ops_router(
        registry.clone(),
        Arc::new(ConsumerRunning(running)),
    ));
    Ok(AlertService {
        router,
        tasks: vec![consumer, pusher],
    })
}
