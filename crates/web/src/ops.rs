//! Operability endpoints every service serves: liveness, readiness and Prometheus metrics.

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use futures::future::join_all;
use prometheus::{Encoder, Registry, TextEncoder};
use serde::Serialize;
use serde_json::json;
use signal_domain::ErrorChain;
use signal_ports::{Probe, ProbeError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::{timeout, Instant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;

/// One dependency of a service, as its readiness reports it.
#[derive(Clone)]
pub struct Dependency {
    /// How the readiness body names it: `database`, `redis`, `kafka`, `upbit`.
    pub name: &'static str,
    /// Whether the service cannot do its work while this is down: then readiness fails (503).
    /// A dependency that is not required is reported and changes nothing.
    pub required: bool,
    pub probe: Arc<dyn Probe>,
}

/// A task the service needs (the trigger engine, the alert consumer), up while it runs.
pub struct TaskRunning(pub Arc<AtomicBool>);

#[async_trait]
impl Probe for TaskRunning {
    async fn probe(&self) -> Result<(), ProbeError> {
        if self.0.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(ProbeError::Stopped)
        }
    }
}

/// How long one probe may take before its dependency counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an answer is reused: an orchestrator, a load balancer and an operator asking at
/// once cost the dependencies one round of probes.
const REUSE_FOR: Duration = Duration::from_secs(1);

/// What `/health/ready` checks. The service adds what it runs itself; whoever wires its adapters
/// adds those (the database, the shared cache, the bus, the market feeds). Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    dependencies: Arc<RwLock<Vec<Dependency>>>,
    last: Arc<Mutex<Option<(Instant, Report)>>>,
}

/// One round of probes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Readiness)]
pub struct Report {
    pub status: &'static str,
    /// Every dependency by name: `up` or `down`, whether it is required, and why it is down.
    pub checks: BTreeMap<&'static str, Check>,
    /// The names of those down, required or not.
    pub down: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub status: &'static str,
    pub required: bool,
    /// What is wrong, without what lies under it (addresses, driver messages: those are logged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
struct TimedOut(Duration);

impl Readiness {
    pub fn add(&self, dependency: Dependency) {
        self.dependencies
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(dependency);
    }

    /// Probes every dependency at once, each for at most [`PROBE_TIMEOUT`], or gives the answer
    /// of a round finished within [`REUSE_FOR`].
    pub async fn report(&self) -> Report {
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref() {
            if at.elapsed() < REUSE_FOR {
                return report.clone();
            }
        }
        let dependencies = self
            .dependencies
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let probed = join_all(dependencies.iter().map(|dependency| async move {
            match timeout(PROBE_TIMEOUT, dependency.probe.probe()).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => {
                    tracing::warn!(dependency = dependency.name, error = %ErrorChain(&error), "dependency down");
                    Some(error.to_string())
                }
                Err(_) => {
                    let error = TimedOut(PROBE_TIMEOUT);
                    tracing::warn!(dependency = dependency.name, error = %error, "dependency down");
                    Some(error.to_string())
                }
            }
        }))
        .await;
        let mut report = Report {
            status: "ready",
            checks: BTreeMap::new(),
            down: Vec::new(),
        };
        for (dependency, error) in dependencies.iter().zip(probed) {
            if error.is_some() {
                report.down.push(dependency.name);
                if dependency.required {
                    report.status = "not_ready";
                }
            }
            report.checks.insert(
                dependency.name,
                Check {
                    status: if error.is_some() { "down" } else { "up" },
                    required: dependency.required,
                    error,
                },
            );
        }
        *last = Some((Instant::now(), report.clone()));
        report
    }
}

#[derive(Clone)]
struct OpsState {
    registry: Registry,
    readiness: Readiness,
}

/// `/health/live`, `/health/ready` and `/metrics`.
pub fn ops_router(registry: Registry, readiness: Readiness) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .with_state(OpsState {
            registry,
            readiness,
        })
}

/// `{"status": "up"}`.
#[derive(Serialize, utoipa::ToSchema)]
struct Live {
    status: String,
}

/// The process runs and answers.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Alive", body = Live))
)]
async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "up" }))
}

/// 200 when every required dependency is up, 503 naming what is down otherwise.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Report),
        (status = 503, description = "A required dependency is down", body = Report),
    )
)]
async fn ready(State(state): State<OpsState>) -> impl IntoResponse {
    let report = state.readiness.report().await;
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

/// Prometheus metrics, in its text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use signal_ports::StoreError;
    use tower::ServiceExt;

    struct Down;

    #[async_trait]
    impl Probe for Down {
        async fn probe(&self) -> Result<(), ProbeError> {
            let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "10.0.0.5:5432");
            Err(StoreError::Unavailable(Box::new(cause)).into())
        }
    }

    struct Silent;

    #[async_trait]
    impl Probe for Silent {
        async fn probe(&self) -> Result<(), ProbeError> {
            std::future::pending().await
        }
    }

    fn dependency(name: &'static str, required: bool, probe: impl Probe) -> Dependency {
        Dependency {
            name,
            required,
            probe: Arc::new(probe),
        }
    }

    async fn ready_body(readiness: Readiness) -> (StatusCode, serde_json::Value) {
        let (router, _) = ops_router(Registry::new(), readiness).split_for_parts();
        let response = router
            .oneshot(Request::get("/health/ready").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_required_dependency_down_answers_503_naming_it_and_not_its_address() {
        let readiness = Readiness::default();
        let engine = Arc::new(AtomicBool::new(true));
        readiness.add(dependency("engine", true, TaskRunning(engine.clone())));
        readiness.add(dependency("database", true, Down));
        let (status, body) = ready_body(readiness).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "not_ready");
        assert_eq!(body["down"], json!(["database"]));
        assert_eq!(
            body["checks"]["engine"],
            json!({"status": "up", "required": true})
        );
        assert_eq!(
            body["checks"]["database"],
            json!({"status": "down", "required": true, "error": "the store cannot be reached"})
        );
    }

    #[tokio::test]
    async fn a_dependency_that_is_not_required_is_reported_and_leaves_the_service_ready() {
        let readiness = Readiness::default();
        readiness.add(dependency(
            "database",
            true,
            TaskRunning(Arc::new(AtomicBool::new(true))),
        ));
        readiness.add(dependency("upbit", false, Down));
        let (status, body) = ready_body(readiness).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ready");
        assert_eq!(body["down"], json!(["upbit"]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_does_not_answer_counts_as_down() {
        let readiness = Readiness::default();
        readiness.add(dependency("kafka", true, Silent));
        let (status, body) = ready_body(readiness).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["checks"]["kafka"]["error"], "no answer within 2s");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_reused_briefly_then_probed_again() {
        let readiness = Readiness::default();
        let engine = Arc::new(AtomicBool::new(true));
        readiness.add(dependency("engine", true, TaskRunning(engine.clone())));
        assert!(readiness.report().await.is_ready());
        engine.store(false, Ordering::Relaxed);
        assert!(
            readiness.report().await.is_ready(),
            "the last answer, reused"
        );
        tokio::time::advance(REUSE_FOR).await;
        let report = readiness.report().await;
        assert_eq!(report.down, ["engine"]);
        assert_eq!(
            report.checks["engine"].error.as_deref(),
            Some("it has stopped")
        );
    }
}
