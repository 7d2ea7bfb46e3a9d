//! Operability endpoints every service serves: liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::json;
use std::sync::Arc;

/// Answers whether the service can do its work now (its database reachable, its consumer running).
pub trait Readiness: Send + Sync + 'static {
    /// `Err` names what is not ready.
    fn ready(&self) -> Result<(), String>;
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

async fn ready(State(state): State<OpsState>) -> impl IntoResponse {
    match state.readiness.ready() {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": reason })),
        ),
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
        Err(e) => crate::ApiError::Internal(format!("encoding metrics: {e}")).into_response(),
    }
}
