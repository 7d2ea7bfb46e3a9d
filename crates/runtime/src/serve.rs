//! Serving a service's router on its address until shutdown, and the process-level concerns
//! around it: logging, CORS, signals.

use anyhow::Context;
use axum::serve::ListenerExt;
use axum::Router;
use signal_domain::ErrorChain;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

/// Binds `bind` and serves `router` (with CORS for `allowed_origins` and request tracing) until
/// `shutdown`; returns the bound address, which differs from `bind` for port 0.
pub async fn serve(
    bind: SocketAddr,
    router: Router,
    allowed_origins: &[String],
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let addr = listener.local_addr()?;
    let app = router
        .layer(cors_layer(allowed_origins)?)
        .layer(TraceLayer::new_for_http());
    // Alerts and quotes are small messages that must leave at once: without TCP_NODELAY a push
    // written while the client's acknowledgement of the previous one is pending waits for it
    // (Nagle), which on Linux's delayed ACKs costs tens of milliseconds.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted connection");
        }
    });
    let task = tokio::spawn(async move {
        // The peer address reaches handlers that limit per client address.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = server.await {
            tracing::error!(error = %ErrorChain(&e), %addr, "HTTP server failed");
        }
    });
    Ok((addr, task))
}

/// Browsers may call the API only from the configured origins.
fn cors_layer(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let origins = origins
        .iter()
        .map(|o| {
            o.parse()
                .with_context(|| format!("invalid CORS origin `{o}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods(tower_http::cors::Any)
        .allow_headers(tower_http::cors::Any))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Structured logs on stderr: `text` or `json`, level from `RUST_LOG` (default info).
pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
