//! The original Spring Asset Service's routes and message shapes, so its gateway and frontend can
//! switch over. Identity comes from the verified token, or, in gateway mode, from the gateway's
//! `X-Auth-User` (see [`signal_web::gateway`]). Units are the original's: a crypto change rate is
//! Upbit's fraction, a stock's a percentage, where the JSON API has percentages throughout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use signal_domain::{AssetClass, Condition, ConditionKind, Failure, FailureKind, Market, Quote};
use signal_web::{ApiError, ApiPath, ApiQuery, AuthUser};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AssetState;
use asset_core::CoreError;
use asset_core::Listing;

pub fn routes() -> OpenApiRouter<AssetState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(top_movers))
        .routes(routes!(add_favorite, remove_favorite, favorites))
        .routes(routes!(set_target, remove_target))
        .routes(routes!(targets))
        .routes(routes!(asset))
}

/// `{symbol, koreanName, englishName, price, changeRate}` as the original returned it (numbers as
/// JSON numbers, change rate in the original's units), plus the unambiguous instrument id.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LegacyAsset)]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Keyword {
    /// Symbol or name, Korean or English.
    #[param(example = "삼성")]
    keyword: String,
}

/// Every instrument matching the keyword, best match first; an empty keyword lists them all, as
/// the original's `LIKE '%%'` did (the original frontend loads its lists that way).
#[utoipa::path(
    get,
    path = "/asset/search",
    tag = "original routes",
    params(Keyword),
    responses((status = 200, body = Vec<AssetSummary>))
)]
async fn search(
    AuthUser(_caller): AuthUser,
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

/// One instrument; looking at it starts its live prices, as in the original.
#[utoipa::path(
    get,
    path = "/asset/{symbol}",
    tag = "original routes",
    params(("symbol" = String, Path, description = super::api::INSTRUMENT_PARAM, example = "005930")),
    responses(
        (status = 200, body = AssetSummary),
        (status = 404, description = "No such instrument", body = signal_web::ErrorBody),
    )
)]
async fn asset(
    AuthUser(_caller): AuthUser,
    State(state): State<AssetState>,
    ApiPath(symbol): ApiPath<String>,
) -> Result<Json<AssetSummary>, ApiError> {
    let id = state.assets.resolve(&symbol)?;
    let listing = state.assets.listing(&id).await?;
    // As the original: looking at an instrument starts a live subscription to it.
    state.assets.glance(&id);
    Ok(Json(listing.into()))
}

/// 3 stocks then 3 cryptos with the largest absolute change.
#[utoipa::path(
    get,
    path = "/asset/top-movers",
    tag = "original routes",
    responses((status = 200, body = Vec<AssetSummary>))
)]
async fn top_movers(
    AuthUser(_caller): AuthUser,
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SymbolParam {
    /// An instrument id or bare symbol.
    #[param(example = "005930")]
    symbol: String,
}

/// Adds to the watchlist.
#[utoipa::path(
    post,
    path = "/asset/favorite",
    tag = "original routes",
    params(SymbolParam),
    responses(
        (status = 200, description = "Added"),
        (status = 404, description = "No such instrument", body = signal_web::ErrorBody),
        (status = 409, description = "Already on the watchlist", body = signal_web::ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/asset/favorite",
    tag = "original routes",
    params(SymbolParam),
    responses(
        (status = 200, description = "Removed"),
        (status = 404, description = "Not on the watchlist, or no such instrument", body = signal_web::ErrorBody),
    )
)]
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

/// The watchlist's symbols, in the order added.
#[utoipa::path(
    get,
    path = "/asset/favorite",
    tag = "original routes",
    responses((status = 200, body = Vec<String>))
)]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct TargetParams {
    /// An instrument id or bare symbol.
    #[param(example = "005930")]
    symbol: String,
    /// An exact decimal.
    #[param(
        pattern = r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$",
        example = "71900"
    )]
    target_price: String,
    /// `ABOVE` or `BELOW`.
    #[param(pattern = "^(ABOVE|BELOW)$", example = "ABOVE")]
    condition: String,
}

/// Sets the user's one target on the symbol, replacing the previous one.
#[utoipa::path(
    post,
    path = "/asset/target-price",
    tag = "original routes",
    params(TargetParams),
    responses(
        (status = 200, description = "Set"),
        (status = 404, description = "No such instrument", body = signal_web::ErrorBody),
        (status = 422, description = "A price or condition that cannot be a target", body = signal_web::ErrorBody),
    )
)]
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

/// Removes the user's target on the symbol.
#[utoipa::path(
    delete,
    path = "/asset/target-price",
    tag = "original routes",
    params(SymbolParam),
    responses(
        (status = 200, description = "Removed"),
        (status = 404, description = "No target on it, or no such instrument", body = signal_web::ErrorBody),
    )
)]
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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LegacyTarget)]
struct TargetView {
    user_email: String,
    symbol: String,
    target_price: f64,
    condition: &'static str,
    instrument: String,
    rule_id: i64,
}

/// The user's active targets.
#[utoipa::path(
    get,
    path = "/asset/target-prices",
    tag = "original routes",
    responses((status = 200, body = Vec<TargetView>))
)]
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
