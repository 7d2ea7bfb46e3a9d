//! The JSON API for alert history: newest first, keyset-paginated, filterable by instrument and
//! read state.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signal_domain::{ConditionKind, InstrumentId, Percent, Price, RuleId};
use signal_ports::{AlertRecord, HistoryQuery};
use signal_web::{ApiError, ApiPath, ApiQuery, AuthUser};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{AlertState, NoSuchAlert};

pub fn routes() -> OpenApiRouter<AlertState> {
    OpenApiRouter::new()
        .routes(routes!(list, delete_all))
        .routes(routes!(mark_all_read))
        .routes(routes!(one, delete_one))
        .routes(routes!(mark_read))
}

/// One alert, as the API and the alert socket show it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Alert)]
pub struct AlertView {
    pub id: i64,
    pub event_id: Uuid,
    pub rule_id: RuleId,
    pub instrument: InstrumentId,
    pub symbol: String,
    pub condition: ConditionKind,
    pub level: Price,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<Percent>,
    pub price: Price,
    pub exchange_time: DateTime<Utc>,
    pub triggered_at: DateTime<Utc>,
    pub note: Option<String>,
    /// The rule's message, rendered in its owner's language and time zone when the alert was
    /// stored: what the alert says. Absent when the rule has no message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub simulated: bool,
    pub read: bool,
    pub acknowledged: bool,
}

impl From<&AlertRecord> for AlertView {
    fn from(record: &AlertRecord) -> Self {
        Self {
            id: record.id,
            event_id: record.event_id,
            rule_id: record.rule_id,
            instrument: record.instrument.clone(),
            symbol: record.instrument.symbol().to_string(),
            condition: record.condition,
            level: record.level,
            percent: record.percent,
            price: record.price,
            exchange_time: record.exchange_time,
            triggered_at: record.triggered_at,
            note: record.note.clone(),
            message: record.message.clone(),
            simulated: record.simulated,
            read: record.read_at.is_some(),
            acknowledged: record.acknowledged_at.is_some(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// An instrument id or bare symbol.
    #[param(example = "005930")]
    symbol: Option<String>,
    /// Only read (true) or unread (false) alerts.
    read: Option<bool>,
    /// Alerts older than this id: the `nextBefore` of the previous page.
    before: Option<i64>,
    /// 1 to 500 (default 50); larger values are taken as 500.
    limit: Option<usize>,
}

/// A page of alerts, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AlertPage)]
struct Page {
    items: Vec<AlertView>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

/// The history store keys alerts by instrument id; a bare symbol is matched against the shapes
/// the markets use, so `005930`, `KRW-BTC` and `KRX:005930` all work. Anything else is a 422
/// naming `symbol`.
fn instrument_filter(text: &str) -> Result<InstrumentId, ApiError> {
    if let Ok(id) = text.parse::<InstrumentId>() {
        return Ok(id);
    }
    let upper = text.trim().to_ascii_uppercase();
    let market = if upper.contains('-') {
        signal_domain::Market::Upbit
    } else if upper.len() == 6 && upper.chars().all(|c| c.is_ascii_digit()) {
        signal_domain::Market::Krx
    } else {
        return Err(ApiError::invalid_field(
            "symbol",
            format!(
                "symbol `{}`: use MARKET:SYMBOL for US stocks, e.g. NASDAQ:AAPL",
                signal_domain::abbreviate(text)
            ),
        ));
    };
    // A readable query whose value names no instrument: refused as a value, not as unreadable.
    InstrumentId::new(market, &upper).map_err(|e| ApiError::invalid_field("symbol", e))
}

/// The caller's alerts, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(ListQuery),
    responses((status = 200, body = Page))
)]
async fn list(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let history_query = HistoryQuery {
        instrument: query.symbol.as_deref().map(instrument_filter).transpose()?,
        read: query.read,
        before_id: query.before,
        limit: query.limit.unwrap_or(50).clamp(1, 500),
    };
    let page = state.history.list(&user, &history_query).await?;
    Ok(Json(Page {
        items: page.items.iter().map(AlertView::from).collect(),
        next_before: page.next_before_id,
    }))
}

/// One of the caller's alerts.
#[utoipa::path(
    get,
    path = "/api/v1/alerts/{id}",
    tag = "alerts",
    params(("id" = i64, Path, description = "The alert's id", example = 1)),
    responses(
        (status = 200, body = AlertView),
        (status = 404, description = "The caller has no such alert", body = signal_web::ErrorBody),
    )
)]
async fn one(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AlertView>, ApiError> {
    let record = state.history.get(&user, id).await?.ok_or(NoSuchAlert(id))?;
    Ok(Json(AlertView::from(&record)))
}

/// Marks one of the caller's alerts read (which also acknowledges it).
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/read",
    tag = "alerts",
    params(("id" = i64, Path, description = "The alert's id", example = 1)),
    responses(
        (status = 204, description = "Marked read"),
        (status = 404, description = "The caller has no such alert", body = signal_web::ErrorBody),
    )
)]
async fn mark_read(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    if state
        .history
        .mark_read(&user, id, chrono::Utc::now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(NoSuchAlert(id).into())
    }
}

#[derive(Serialize, ToSchema)]
struct Changed {
    /// How many alerts were marked read.
    changed: u64,
}

/// Marks all of the caller's alerts read.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/read",
    tag = "alerts",
    responses((status = 200, body = Changed))
)]
async fn mark_all_read(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
) -> Result<Json<Changed>, ApiError> {
    let changed = state
        .history
        .mark_all_read(&user, chrono::Utc::now())
        .await?;
    Ok(Json(Changed { changed }))
}

/// Deletes one of the caller's alerts.
#[utoipa::path(
    delete,
    path = "/api/v1/alerts/{id}",
    tag = "alerts",
    params(("id" = i64, Path, description = "The alert's id", example = 1)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "The caller has no such alert", body = signal_web::ErrorBody),
    )
)]
async fn delete_one(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    if state.history.delete(&user, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(NoSuchAlert(id).into())
    }
}

#[derive(Serialize, ToSchema)]
struct Deleted {
    /// How many alerts were deleted.
    deleted: u64,
}

/// Deletes all of the caller's alerts.
#[utoipa::path(
    delete,
    path = "/api/v1/alerts",
    tag = "alerts",
    responses((status = 200, body = Deleted))
)]
async fn delete_all(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
) -> Result<Json<Deleted>, ApiError> {
    let deleted = state.history.delete_all(&user).await?;
    Ok(Json(Deleted { deleted }))
}
