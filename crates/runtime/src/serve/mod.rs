//! Serving a service's router on its address until shutdown, with the limits that keep one
//! client from wearing the service down: connection counts per address and in all, header-read
//! and idle timeouts, head and body sizes, and a request rate per client address. Every refusal
//! is a JSON error, including those hyper writes by itself (see [`connection`]).

mod admission;
mod connection;
mod rate;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::settings::{HttpSettings, Settings};
use admission::Admission;
use signal_web::TrustedProxies;

/// How long a stopping server lets open requests finish.
const DRAIN: Duration = Duration::from_secs(10);

/// Binds `bind` and serves `router` (with the CORS origins, trusted proxies and limits of
/// `settings`, and request tracing) until `shutdown`; returns the bound address, which differs
/// from `bind` for port 0.
pub async fn serve(
    bind: SocketAddr,
    router: Router,
    settings: &Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let addr = listener.local_addr()?;
    let http = &settings.http;
    let trusted = settings.forwarding_proxies();
    let app = edge(
        router,
        &settings.cors_allowed_origins,
        http,
        trusted.clone(),
        &shutdown,
    )?;
    let limits = Arc::new(connection::ConnectionLimits::from(http));
    let admission = Arc::new(Admission::new(http));
    let task = tokio::spawn(async move {
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = shutdown.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it was taken: the
                    // listener itself is fine; wait a moment instead of spinning.
                    tracing::warn!(error = %e, %addr, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Alerts and quotes are small messages that must leave at once: without TCP_NODELAY a
            // push written while the client's acknowledgement of the previous one is pending waits
            // for it (Nagle), which on Linux's delayed ACKs costs tens of milliseconds.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted connection");
            }
            let ticket = match admission.admit(peer.ip(), trusted.trusts(peer.ip())) {
                Ok(ticket) => ticket,
                Err(refusal) => {
                    connections.spawn(connection::refuse(stream, refusal));
                    continue;
                }
            };
            connections.spawn(connection::serve_connection(
                stream,
                peer,
                connection::ConnectionContext {
                    app: app.clone(),
                    limits: limits.clone(),
                    shutdown: shutdown.clone(),
                    drain: DRAIN,
                },
                ticket,
            ));
        }
        connections.close();
        connections.wait().await;
    });
    Ok((addr, task))
}

/// The router with everything every server's edge has: the head and body limits, the rate limit
/// per client address, CORS, request tracing without query strings, and JSON for every error
/// any of them (or the router) answers. A service's router brings its own JSON fallbacks for
/// unknown routes and methods (`signal_web::edge::with_json_fallbacks`); the one origin's
/// router falls back to the web app instead.
fn edge(
    router: Router,
    allowed_origins: &[String],
    http: &HttpSettings,
    trusted: TrustedProxies,
    shutdown: &CancellationToken,
) -> anyhow::Result<Router> {
    let head_limits = Arc::new(HeadLimits {
        max_uri_bytes: http.max_uri_bytes,
        max_header_bytes: http.max_header_bytes,
    });
    let mut app = router
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(http.max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            check_head(head_limits.clone(), request, next)
        }));
    if let Some(limit) = rate::per_address(http, trusted, shutdown.clone()) {
        app = app.layer(limit);
    }
    Ok(app
        .layer(cors_layer(allowed_origins)?)
        .layer(axum::middleware::map_response(
            signal_web::edge::into_json_error,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<axum::body::Body>| {
                // The path only: a query string may carry a token (`?token=` on sockets).
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                )
            }),
        ))
}

struct HeadLimits {
    max_uri_bytes: usize,
    max_header_bytes: usize,
}

/// 414 and 431 below the sizes at which hyper refuses a head by itself; both as JSON.
async fn check_head(
    limits: Arc<HeadLimits>,
    request: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > limits.max_uri_bytes {
        return signal_web::edge::error_response(
            StatusCode::URI_TOO_LONG,
            &format!(
                "the request target has {target} bytes; at most {} are accepted",
                limits.max_uri_bytes
            ),
        );
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > limits.max_header_bytes {
        return signal_web::edge::error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!(
                "the request headers have {headers} bytes; at most {} are accepted",
                limits.max_header_bytes
            ),
        );
    }
    next.run(request).await
}

/// Browsers may call the API only from the configured origins. Each must be an origin
/// (`scheme://host[:port]`); `*` is refused: with sessions in cookies, any origin would be
/// allowed to act for the signed-in user.
pub fn cors_layer(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let origins = origins
        .iter()
        .map(|origin| {
            anyhow::ensure!(
                origin != "*",
                "`*` (any origin) is not allowed; list each origin that serves a web client, \
                 e.g. [\"https://app.example\"]"
            );
            let uri: axum::http::Uri = origin
                .parse()
                .with_context(|| format!("`{origin}` is not an origin"))?;
            let is_origin = matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some()
                && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
                && !origin.ends_with('/');
            anyhow::ensure!(
                is_origin,
                "`{origin}` is not an origin: write scheme://host[:port] with no path or \
                 trailing slash, e.g. https://app.example"
            );
            HeaderValue::from_str(origin).with_context(|| format!("`{origin}` is not an origin"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods(tower_http::cors::Any)
        .allow_headers(tower_http::cors::Any)
        .expose_headers([header::RETRY_AFTER]))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_or_a_path_is_not_an_origin() {
        let refused = |origin: &str| {
            cors_layer(&[origin.to_string()])
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default()
        };
        assert!(refused("*").contains("not allowed"), "{}", refused("*"));
        assert!(refused("https://app.example/").contains("not an origin"));
        assert!(refused("https://app.example/app").contains("not an origin"));
        assert!(refused("app.example").contains("not an origin"));
        assert!(cors_layer(&["https://app.example:8443".to_string()]).is_ok());
    }
}
