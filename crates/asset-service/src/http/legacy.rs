//! The original Spring Asset Service's routes and message shapes, so its gateway and frontend can
//! switch over. Identity comes from the verified token, or, in gateway mode, from the gateway's
//! `X-Auth-User` (see [`signal_web::gateway`]). Units are the original's: a crypto change rate is
//! Upbit's fraction, a stock's a percentage, where the JSON API has percentages throughout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use signal_domain::{AssetClass, Condition, ConditionKind, Failure, FailureKind, Market, Quote};
use signal_web::{ApiError, ApiPath, ApiQuery, AuthUser};

use super::AssetState;
use asset_core::CoreError;
use asset_core::Listing;

pub fn routes() -> Router<AssetState> {
    Router::new()
        .route("/asset/search", get(search))
        .route("/asset/top-movers", get(top_movers))
        .route(
            "/asset/favorite",
            post(add_favorite).delete(remove_favorite).get(favorites),
        )
        .route(
            "/asset/target-price",
            post(set_target).delete(remove_target),
        )
        .route("/asset/target-prices", get(targets))
        .route("/asset/{symbol}", get(asset))
}

/// `{symbol, koreanName, englishName, price, changeRate}` as the original returned it (numbers as
/// JSON numbers, change rate in the original's units), plus the unambiguous instrument id.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AssetSummary {
    symbol: String,
    korean_name: String,
    english_name: String,
    price: Option<f64>,
    change_rate: Option<f64>,
    instrument: String,
    market: String,
    simulated: bool,
}

impl From<Listing> for AssetSummary {
    fn from(listing: Listing) -> Self {
        let id = &listing.entry.instrument.id;
        Self {
            symbol: id.symbol().to_string(),
            korean_name: listing.entry.instrument.korean_name.clone(),
            english_name: listing.entry.instrument.english_name.clone(),
            price: listing.quote.as_ref().map(|q| q.price.to_f64_lossy()),
            change_rate: listing.quote.as_ref().and_then(original_change_rate),
            instrument: id.to_string(),
            market: id.market().to_string(),
            simulated: listing.quote.as_ref().is_some_and(|q| q.simulated),
        }
    }
}

/// The change against the previous close as the original sent it: for crypto Upbit's
/// `signed_change_rate`, a fraction (0.0123 for +1.23 %), for stocks KIS's percentage. The
/// original frontend multiplies a crypto rate by 100 and shows a stock's as it is.
pub(super) fn original_change_rate(quote: &Quote) -> Option<f64> {
    let percent = quote.change_percent?.value();
    let rate = match quote.instrument.asset_class() {
        AssetClass::Crypto => percent / Decimal::ONE_HUNDRED,
        AssetClass::Stock => percent,
    };
    rate.to_f64()
}

#[derive(Deserialize)]
struct Keyword {
    keyword: String,
}

/// Every instrument matching the keyword, best match first; an empty keyword lists them all, as
/// the original's `LIKE '%%'` did (the original frontend loads its lists that way).
async fn search(
    AuthUser(_): AuthUser,
    State(state): State<AssetState>,
    ApiQuery(query): ApiQuery<Keyword>,
) -> Json<Vec<AssetSummary>> {
    let listings = if query.keyword.trim().is_empty() {
        state.assets.everything().await
    } else {
        state.assets.search(&query.keyword, usize::MAX).await
    };
    Json(listings.into_iter().map(AssetSummary::from).collect())
}

async fn asset(
    AuthUser(_): AuthUser,
    State(state): State<AssetState>,
    ApiPath(symbol): ApiPath<String>,
) -> Result<Json<AssetSummary>, ApiError> {
    let id = state.assets.resolve(&symbol)?;
    let listing = state.assets.listing(&id).await?;
    // As the original: looking at an instrument starts a live subscription to it.
    state.assets.glance(&id);
    Ok(Json(listing.into()))
}

async fn top_movers(
    AuthUser(_): AuthUser,
    State(state): State<AssetState>,
) -> Json<Vec<AssetSummary>> {
    let of_class = |class| move |market: Market| market.asset_class() == class;
    let stocks = state
        .assets
        .top_movers(of_class(AssetClass::Stock), 3)
        .await;
    let cryptos = state
        .assets
        .top_movers(of_class(AssetClass::Crypto), 3)
        .await;
    Json(
        stocks
            .into_iter()
            .chain(cryptos)
            .map(AssetSummary::from)
            .collect(),
    )
}

#[derive(Deserialize)]
struct SymbolParam {
    symbol: String,
}

async fn add_favorite(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiQuery(param): ApiQuery<SymbolParam>,
) -> Result<StatusCode, ApiError> {
    let id = state.assets.resolve(&param.symbol)?;
    state.assets.watch(&user, &id).await?;
    Ok(StatusCode::OK)
}

/// Removes the symbol from the watchlist and, as the original did, the user's targets on it.
async fn remove_favorite(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiQuery(param): ApiQuery<SymbolParam>,
) -> Result<StatusCode, ApiError> {
    let id = state.assets.resolve(&param.symbol)?;
    state.assets.unwatch(&user, &id).await?;
    state.assets.remove_targets(&user, &id).await?;
    Ok(StatusCode::OK)
}

async fn favorites(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
) -> Result<Json<Vec<String>>, ApiError> {
    let list = state.assets.watchlist(&user).await?;
    Ok(Json(
        list.iter().map(|id| id.symbol().to_string()).collect(),
    ))
}

/// A target the original API's form could send but no rule can be.
#[derive(Debug, thiserror::Error)]
enum TargetError {
    #[error("condition must be ABOVE or BELOW")]
    NotALevel,
    #[error("targetPrice")]
    Price(#[source] signal_domain::PriceError),
}

impl Failure for TargetError {
    fn kind(&self) -> FailureKind {
        FailureKind::Invalid
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetParams {
    symbol: String,
    target_price: String,
    condition: String,
}

async fn set_target(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiQuery(params): ApiQuery<TargetParams>,
) -> Result<StatusCode, ApiError> {
    let id = state.assets.resolve(&params.symbol)?;
    let kind: ConditionKind = params.condition.parse()?;
    if !matches!(kind, ConditionKind::Above | ConditionKind::Below) {
        return Err(TargetError::NotALevel.into());
    }
    let level = params
        .target_price
        .parse::<signal_domain::Price>()
        .map_err(TargetError::Price)?;
    let condition = Condition::from_parts(kind, level.value())?;
    state.assets.set_target(&user, &id, condition).await?;
    Ok(StatusCode::OK)
}

async fn remove_target(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiQuery(param): ApiQuery<SymbolParam>,
) -> Result<StatusCode, ApiError> {
    let id = state.assets.resolve(&param.symbol)?;
    if state.assets.remove_targets(&user, &id).await? == 0 {
        return Err(CoreError::NoTarget(id).into());
    }
    Ok(StatusCode::OK)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetView {
    user_email: String,
    symbol: String,
    target_price: f64,
    condition: &'static str,
    instrument: String,
    rule_id: i64,
}

async fn targets(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
) -> Result<Json<Vec<TargetView>>, ApiError> {
    let rules = state.assets.targets(&user).await?;
    Ok(Json(
        rules
            .into_iter()
            .filter_map(|rule| {
                let (Condition::Above(level) | Condition::Below(level)) = rule.spec.condition
                else {
                    return None;
                };
                Some(TargetView {
                    user_email: user.to_string(),
                    symbol: rule.spec.instrument.symbol().to_string(),
                    target_price: level.to_f64_lossy(),
                    condition: rule.spec.condition.kind().as_str(),
                    instrument: rule.spec.instrument.to_string(),
                    rule_id: rule.id.0,
                })
            })
            .collect(),
    ))
}
