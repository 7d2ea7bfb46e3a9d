//! Alert Service: consumes triggered alerts, stores each once in the user's history, pushes it to
//! every open session of that user, and serves the history. Its I/O comes in through the ports in
//! [`AlertDeps`].

mod announcement;
mod consumer;
mod http;
mod metrics;
mod push;
mod sessions;

use axum::Router;
use prometheus::Registry;
use signal_ports::{AlertHistoryStore, AlertInbox, Broadcast, SharedCache};
use signal_web::{
    openapi, ops_router, Dependency, GatewayTrust, JwtVerifier, Readiness, SocketLimits,
    TaskRunning, TrustedProxies,
};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use http::AccountsEdge;
pub use metrics::AlertMetrics;

/// How often account housekeeping runs (restoring ended sessions to an emptied shared cache,
/// deleting long-expired sessions).
const ACCOUNTS_MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

pub struct AlertDeps {
    pub history: Arc<dyn AlertHistoryStore>,
    pub inbox: Box<dyn AlertInbox>,
    /// Carries each stored alert to the instance holding the user's sockets.
    pub broadcast: Arc<dyn Broadcast>,
    /// Built-in accounts; None when tokens come from another identity provider.
    pub accounts: Option<AccountsEdge>,
    /// Proxies whose `X-Forwarded-For` names the client (for per-address sign-in limits).
    pub trusted_proxies: TrustedProxies,
    /// Gateway mode: whether, and from whom, a user named by the gateway in front is believed.
    pub gateway: GatewayTrust,
    /// Notification channels beyond the socket, and their delivery workers.
    pub channels: signal_channels::Channels,
    /// Claims shared by the instances (one reads the Telegram bot's updates at a time).
    pub leases: Arc<dyn SharedCache>,
    /// This instance's name among the others.
    pub instance: String,
}

pub struct AlertService {
    pub router: Router,
    /// What `/health/ready` checks: the consumer; add the adapters' dependencies to it.
    pub readiness: Readiness,
    pub tasks: Vec<JoinHandle<()>>,
}

pub async fn start(
    deps: AlertDeps,
    verifier: Arc<JwtVerifier>,
    socket_limits: SocketLimits,
    registry: &Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<AlertService> {
    let metrics = AlertMetrics::register(registry)?;
    let delivery_metrics = signal_channels::DeliveryMetrics::register(registry)?;
    let hub = Arc::new(sessions::SessionHub::default());
    // Bumped for every stored alert, so the delivery workers look for its deliveries at once.
    let (stored, wake) = tokio::sync::watch::channel(0u64);
    let running = Arc::new(AtomicBool::new(true));
    let (pushes, announcements_out) = push::Pushes::new(hub.clone(), metrics.clone(), stored);
    // Subscribed before the consumer starts, so no announcement can go unheard.
    let announcements_in = deps.broadcast.subscribe().await?;
    let listener = tokio::spawn(push::run_listener(
        announcements_in,
        pushes.clone(),
        shutdown.clone(),
    ));
    let announcer = tokio::spawn(push::run_announcer(
        announcements_out,
        deps.broadcast,
        metrics.clone(),
        shutdown.clone(),
    ));
    let channels = deps.channels.service.clone();
    let deliveries = deps.channels.start(
        deps.history.clone(),
        delivery_metrics,
        wake,
        deps.leases,
        deps.instance,
        shutdown.clone(),
    );
    let consumer = tokio::spawn(consumer::run_consumer(
        deps.inbox,
        deps.history.clone(),
        channels.clone(),
        pushes,
        metrics.clone(),
        running.clone(),
        shutdown.clone(),
    ));
    let accounts = deps.accounts.map(Arc::new);
    let mut tasks = vec![consumer, listener, announcer];
    if let Some(edge) = &accounts {
        // Once before serving, so sessions ended before a restart are refused from the first
        // request on, then periodically.
        maintain_accounts_once(&edge.accounts).await;
        tasks.push(tokio::spawn(maintain_accounts(
            edge.accounts.clone(),
            shutdown.clone(),
        )));
    }
    let state = http::AlertState {
        history: deps.history,
        hub,
        verifier,
        metrics,
        accounts,
        trusted_proxies: deps.trusted_proxies,
        gateway: deps.gateway,
        shutdown: shutdown.clone(),
        channels,
        socket_limits,
    };
    let readiness = Readiness::default();
    readiness.add(Dependency {
        name: "consumer",
        required: true,
        probe: Arc::new(TaskRunning(running)),
    });
    let (router, api) = http::router(state)
        .merge(ops_router(registry.clone(), readiness.clone()))
        .split_for_parts();
    let router = router.merge(openapi::docs_routes(&openapi::complete(api)));
    tasks.extend(deliveries);
    Ok(AlertService {
        router,
        readiness,
        tasks,
    })
}

async fn maintain_accounts_once(accounts: &signal_accounts::Accounts) {
    if let Err(e) = accounts.maintain(chrono::Utc::now()).await {
        let error: &dyn std::error::Error = &e;
        tracing::warn!(error, "account housekeeping failed; retrying later");
    }
}

async fn maintain_accounts(accounts: Arc<signal_accounts::Accounts>, shutdown: CancellationToken) {
    let start = tokio::time::Instant::now() + ACCOUNTS_MAINTENANCE_EVERY;
    let mut every = tokio::time::interval_at(start, ACCOUNTS_MAINTENANCE_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => maintain_accounts_once(&accounts).await,
        }
    }
}
