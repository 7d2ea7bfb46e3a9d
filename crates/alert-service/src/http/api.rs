//! The JSON API for alert history: newest first, keyset-paginated, filterable by instrument and
//! read state.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use signal_domain::{ConditionKind, InstrumentId, Percent, Price, RuleId, Timestamp};
use signal_ports::{AlertRecord, HistoryQuery};
use signal_web::{ApiError, ApiPath, ApiQuery, AuthUser};
use uuid::Uuid;

use super::{AlertState, NoSuchAlert};

pub fn routes() -> Router<AlertState> {
    Router::new()
        .route("/api/v1/alerts", get(list).delete(delete_all))
        .route("/api/v1/alerts/read", post(mark_all_read))
        .route("/api/v1/alerts/{id}", get(one).delete(delete_one))
        .route("/api/v1/alerts/{id}/read", post(mark_read))
}

/// One alert, as the API and the alert socket show it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
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
    pub exchange_time: Timestamp,
    pub triggered_at: Timestamp,
    pub note: Option<String>,
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
            simulated: record.simulated,
            read: record.read_at.is_some(),
            acknowledged: record.acknowledged_at.is_some(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// An instrument id or bare symbol.
    symbol: Option<String>,
    read: Option<bool>,
    before: Option<i64>,
    limit: Option<usize>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    items: Vec<AlertView>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

/// The history store keys alerts by instrument id; a bare symbol is matched against the shapes
/// the markets use, so `005930`, `KRW-BTC` and `KRX:005930` all work.
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
        return Err(ApiError::malformed(format!(
            "symbol `{text}`: use MARKET:SYMBOL for US stocks, e.g. NASDAQ:AAPL"
        )));
    };
    InstrumentId::new(market, &upper).map_err(ApiError::malformed)
}

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

async fn one(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AlertView>, ApiError> {
    let record = state.history.get(&user, id).await?.ok_or(NoSuchAlert(id))?;
    Ok(Json(AlertView::from(&record)))
}

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

#[derive(Serialize)]
struct Changed {
    changed: u64,
}

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

#[derive(Serialize)]
struct Deleted {
    deleted: u64,
}

async fn delete_all(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
) -> Result<Json<Deleted>, ApiError> {
    let deleted = state.history.delete_all(&user).await?;
    Ok(Json(Deleted { deleted }))
}
