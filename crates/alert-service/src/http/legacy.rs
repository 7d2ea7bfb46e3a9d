//! The original Spring Alert Service's routes: the user's history, delete one, delete all.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use signal_ports::{AlertRecord, HistoryQuery};
use signal_web::{ApiError, ApiPath, AuthUser};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AlertState, NoSuchAlert};

/// The original returned the whole history; this caps it at the newest alerts.
const LEGACY_HISTORY_LIMIT: usize = 1000;

pub fn routes() -> OpenApiRouter<AlertState> {
    OpenApiRouter::new()
        .routes(routes!(history, delete_all))
        .routes(routes!(delete_one))
}

/// `{id, userEmail, symbol, targetPrice, triggeredPrice, condition, triggeredAt}` as the original.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LegacyAlert {
    id: i64,
    user_email: String,
    symbol: String,
    target_price: f64,
    triggered_price: f64,
    condition: &'static str,
    triggered_at: DateTime<Utc>,
    instrument: String,
}

impl From<AlertRecord> for LegacyAlert {
    fn from(record: AlertRecord) -> Self {
        Self {
            id: record.id,
            user_email: record.user.to_string(),
            symbol: record.instrument.symbol().to_string(),
            target_price: record.level.to_f64_lossy(),
            triggered_price: record.price.to_f64_lossy(),
            condition: record.condition.as_str(),
            triggered_at: record.triggered_at,
            instrument: record.instrument.to_string(),
        }
    }
}

/// The user's alerts, newest first (at most 1000).
#[utoipa::path(
    get,
    path = "/alert",
    tag = "original routes",
    responses((status = 200, body = Vec<LegacyAlert>))
)]
async fn history(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
) -> Result<Json<Vec<LegacyAlert>>, ApiError> {
    let query = HistoryQuery {
        limit: LEGACY_HISTORY_LIMIT,
        ..Default::default()
    };
    let page = state.history.list(&user, &query).await?;
    Ok(Json(
        page.items.into_iter().map(LegacyAlert::from).collect(),
    ))
}

/// Deletes one of the user's alerts.
#[utoipa::path(
    delete,
    path = "/alert/{id}",
    tag = "original routes",
    params(("id" = i64, Path, description = "The alert's id", example = 1)),
    responses(
        (status = 200, description = "Deleted"),
        (status = 404, description = "The caller has no such alert", body = signal_web::ErrorBody),
    )
)]
async fn delete_one(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    if state.history.delete(&user, id).await? {
        Ok(StatusCode::OK)
    } else {
        Err(NoSuchAlert(id).into())
    }
}

/// Deletes all of the user's alerts.
#[utoipa::path(
    delete,
    path = "/alert",
    tag = "original routes",
    responses((status = 200, description = "Deleted"))
)]
async fn delete_all(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
) -> Result<StatusCode, ApiError> {
    state.history.delete_all(&user).await?;
    Ok(StatusCode::OK)
}
