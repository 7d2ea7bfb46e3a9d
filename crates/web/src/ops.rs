//! Operability endpoints every service serves: liveness, readiness and Prometheus metrics.

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::json;
use signal_domain::ErrorChain;
use std::sync::Arc;

use crate::error::{ApiError, Cause};

/// Why a service cannot do its work now.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// A task the service needs has stopped.
    #[error("{0} has stopped")]
    Stopped(&'static str),
    /// A dependency did not answer its probe.
    #[error("{dependency} cannot be reached")]
    Unreachable {
        dependency: &'static str,
        #[source]
        source: Cause,
    },
}

/// Answers whether the service can do its work now (its database reachable, its consumer running).
#[async_trait]
pub trait Readiness: Send + Sync + 'static {
    async fn ready(&self) -> Result<(), NotReady>;
}

#[derive(Clone)]
struct OpsState {
    registry: Registry,
    readiness: Arc<dyn Readiness>,
}

/// `/health/live`, `/health/ready` and `/metrics`.
pub fn ops_router(registry: Registry, readiness: Arc<dyn Readiness>) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({ "status": "up" })) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(OpsState {
            registry,
            readiness,
        })
}

/// The reason names what is not ready; what lies under it (addresses, driver messages) goes to
/// the log only.
async fn ready(State(state): State<OpsState>) -> impl IntoResponse {
    match state.readiness.ready().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(not_ready) => {
            tracing::warn!(reason = %ErrorChain(&not_ready), "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not_ready", "reason": not_ready.to_string() })),
            )
        }
    }
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    let mut buffer = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut buffer) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                TextEncoder::new().format_type().to_string(),
            )],
            buffer,
        )
            .into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    }
}
