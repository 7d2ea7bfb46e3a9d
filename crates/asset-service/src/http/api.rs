//! The JSON API beside the original routes: market-qualified ids, exact decimal strings, rules
//! with every option, and errors that name the problem.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signal_domain::{
    AlertRule, AssetClass, Condition, ConditionKind, ConditionParams, ConjunctParams, Failure,
    FailureKind, InstrumentId, Interval, Market, Quote, Repeat, RuleId, RuleState,
};
use signal_web::{ApiError, ApiJson, ApiPath, ApiQuery, AuthUser};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AssetState;
use crate::Unavailable;
use asset_core::Listing;

pub fn routes() -> OpenApiRouter<AssetState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(instrument))
        .routes(routes!(movers))
        .routes(routes!(watchlist))
        .routes(routes!(watch, unwatch))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(create_rules))
        .routes(routes!(preview_rule))
        .routes(routes!(get_rule, update_rule, delete_rule))
        .routes(routes!(pause_rule))
        .routes(routes!(resume_rule))
        .routes(routes!(snooze_rule, unsnooze_rule))
}

/// An instrument id (`KRX:005930`, `NASDAQ:AAPL`, `UPBIT:KRW-BTC`) or the bare symbol the
/// original used (`005930`, `AAPL`, `KRW-BTC`).
pub(super) const INSTRUMENT_PARAM: &str =
    "An instrument id (`KRX:005930`) or bare symbol (`005930`)";

/// An instrument of the catalog with its latest quote, or why it has none.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Instrument)]
struct InstrumentView {
    id: InstrumentId,
    market: signal_domain::Market,
    symbol: String,
    korean_name: String,
    english_name: String,
    /// The quote currency: `KRW` or `USD`.
    currency: &'static str,
    /// The venue flags the instrument (Upbit's market warning, a KRX trading halt).
    warning: bool,
    quote: Option<Quote>,
    /// Why `quote` is null, when it is: a sentence for a person...
    #[serde(skip_serializing_if = "Option::is_none")]
    quote_unavailable: Option<String>,
    /// ...the same reason as a code for a client, to word in its reader's language...
    #[serde(skip_serializing_if = "Option::is_none")]
    quote_unavailable_reason: Option<Unavailable>,
    /// ...and, when the market is closed, when it opens again.
    #[serde(skip_serializing_if = "Option::is_none")]
    quote_resumes_at: Option<DateTime<Utc>>,
}

fn view(listing: Listing, state: &AssetState) -> InstrumentView {
    let id = listing.entry.instrument.id.clone();
    let no_quote = listing.quote.is_none().then(|| {
        state
            .sources
            .why_no_quote(id.market(), &state.calendar, chrono::Utc::now())
    });
    InstrumentView {
        market: id.market(),
        symbol: id.symbol().to_string(),
        currency: id.market().currency(),
        korean_name: listing.entry.instrument.korean_name,
        english_name: listing.entry.instrument.english_name,
        warning: listing.entry.instrument.warning,
        quote_unavailable_reason: no_quote.as_ref().map(|n| n.reason),
        quote_resumes_at: no_quote.as_ref().and_then(|n| n.resumes_at),
        quote_unavailable: no_quote.map(|n| n.sentence),
        quote: listing.quote,
        id,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// Symbol or name, Korean or English; ranked exact symbol, exact name, symbol prefix, name
    /// prefix, substring.
    #[param(example = "samsung")]
    q: String,
    /// 1 to 100 (default 20); larger values are taken as 100.
    limit: Option<usize>,
}

/// Search the instruments.
#[utoipa::path(
    get,
    path = "/api/v1/instruments",
    tag = "instruments",
    params(SearchQuery),
    responses((status = 200, description = "Best match first", body = Vec<InstrumentView>))
)]
async fn search(
    AuthUser(_caller): AuthUser,
    State(state): State<AssetState>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Json<Vec<InstrumentView>> {
    let limit = query.limit.unwrap_or(20).clamp(1, 100);
    Json(
        state
            .assets
            .search(&query.q, limit)
            .await
            .into_iter()
            .map(|l| view(l, &state))
            .collect(),
    )
}

/// One instrument with its latest quote.
#[utoipa::path(
    get,
    path = "/api/v1/instruments/{id}",
    tag = "instruments",
    params(("id" = String, Path, description = INSTRUMENT_PARAM, example = "KRX:005930")),
    responses(
        (status = 200, body = InstrumentView),
        (status = 404, description = "No such instrument", body = signal_web::ErrorBody),
    )
)]
async fn instrument(
    AuthUser(_caller): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<InstrumentView>, ApiError> {
    let id = state.assets.resolve(&id)?;
    Ok(Json(view(state.assets.listing(&id).await?, &state)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MoversQuery {
    /// Per group, 1 to 50 (default 5); larger values are taken as 50.
    limit: Option<usize>,
}

/// The largest moves of each tab of the web app (KRX, US, crypto), and of stocks together.
#[derive(Serialize, ToSchema)]
struct Movers {
    krx: Vec<InstrumentView>,
    us: Vec<InstrumentView>,
    crypto: Vec<InstrumentView>,
    stocks: Vec<InstrumentView>,
}

/// Top movers.
#[utoipa::path(
    get,
    path = "/api/v1/movers",
    tag = "instruments",
    params(MoversQuery),
    responses((status = 200, body = Movers))
)]
async fn movers(
    AuthUser(_caller): AuthUser,
    State(state): State<AssetState>,
    ApiQuery(query): ApiQuery<MoversQuery>,
) -> Json<Movers> {
    let limit = query.limit.unwrap_or(5).clamp(1, 50);
    let views = |listings: Vec<Listing>| listings.into_iter().map(|l| view(l, &state)).collect();
    let assets = &state.assets;
    Json(Movers {
        krx: views(assets.top_movers(|m| m == Market::Krx, limit).await),
        us: views(
            assets
                .top_movers(
                    |m| matches!(m, Market::Nasdaq | Market::Nyse | Market::Amex),
                    limit,
                )
                .await,
        ),
        crypto: views(assets.top_movers(|m| m == Market::Upbit, limit).await),
        stocks: views(
            assets
                .top_movers(|m| m.asset_class() == AssetClass::Stock, limit)
                .await,
        ),
    })
}

/// The caller's watchlist, in the order added.
#[utoipa::path(
    get,
    path = "/api/v1/watchlist",
    tag = "watchlist",
    responses((status = 200, body = Vec<InstrumentView>))
)]
async fn watchlist(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
) -> Result<Json<Vec<InstrumentView>>, ApiError> {
    let ids = state.assets.watchlist(&user).await?;
    let views = state
        .assets
        .listings(&ids)
        .await
        .into_iter()
        .map(|l| view(l, &state))
        .collect();
    Ok(Json(views))
}

/// Adds an instrument to the watchlist; answers with it, so a person sees what was added.
#[utoipa::path(
    put,
    path = "/api/v1/watchlist/{id}",
    tag = "watchlist",
    params(("id" = String, Path, description = INSTRUMENT_PARAM, example = "KRX:005930")),
    responses(
        (status = 201, description = "Added", body = InstrumentView),
        (status = 404, description = "No such instrument", body = signal_web::ErrorBody),
        (status = 409, description = "Already on the watchlist", body = signal_web::ErrorBody),
    )
)]
async fn watch(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<InstrumentView>), ApiError> {
    let id = state.assets.resolve(&id)?;
    state.assets.watch(&user, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(view(state.assets.listing(&id).await?, &state)),
    ))
}

/// Removes an instrument from the watchlist.
#[utoipa::path(
    delete,
    path = "/api/v1/watchlist/{id}",
    tag = "watchlist",
    params(("id" = String, Path, description = INSTRUMENT_PARAM, example = "KRX:005930")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "Not on the watchlist, or no such instrument", body = signal_web::ErrorBody),
    )
)]
async fn unwatch(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = state.assets.resolve(&id)?;
    state.assets.unwatch(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How often a rule fires.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
enum RepeatMode {
    #[default]
    Once,
    Every,
    /// At most once per bar of `interval`.
    OncePerBar,
    /// On the close of each bar of `interval` that closes with the condition met.
    OncePerBarClose,
}

/// A rule as a client writes it: its `condition` kind with that kind's parameters beside it (see
/// [`ConditionParams`]: ABOVE takes a `level`, MOVE_DOWN a `percent` and `windowSeconds`, ...).
/// The per-bar frequencies use the condition's own `interval`, or, for a condition that has none,
/// the `interval` given.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "71900", "note": "take profit"}))]
struct RuleRequest {
    /// An instrument id or bare symbol.
    instrument: String,
    condition: ConditionKind,
    #[serde(flatten)]
    params: ConditionParams,
    #[serde(default)]
    repeat: RepeatMode,
    /// For `every`: minimum time between two alerts. Default 300 s.
    cooldown_seconds: Option<u32>,
    /// For `every`: how far past the level the price must go back before the rule re-arms.
    #[serde(default, deserialize_with = "signal_domain::price::optional_decimal")]
    #[schema(value_type = Option<signal_domain::DecimalInput>)]
    rearm_band: Option<rust_decimal::Decimal>,
    expires_at: Option<DateTime<Utc>>,
    note: Option<String>,
    /// The ids of the user's notification channels the rule's alerts go to; absent or null, all
    /// of them; `[]`, none (the app's sockets always receive).
    channels: Option<Vec<i64>>,
    /// A second condition that must be met too, within `withinSeconds` of the first.
    and: Option<AndRequest>,
    /// What the rule's alerts say, with `{{placeholders}}`.
    message: Option<String>,
    /// Whatever else the body holds: refused, naming the first such field.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, serde_json::Value>,
}

/// The second condition as a client writes it: `{"condition": "CROSS_UP", "level": ...,
/// "withinSeconds": 3600}`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AndRequest {
    condition: ConditionKind,
    #[serde(flatten)]
    params: ConditionParams,
    within_seconds: Option<u32>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, serde_json::Value>,
}

const DEFAULT_COOLDOWN_SECONDS: u32 = 300;

/// A rule request whose fields do not fit together.
#[derive(Debug, thiserror::Error)]
enum RuleRequestError {
    #[error("cooldownSeconds and rearmBand apply only to repeat `every`")]
    RepeatOptionsWithoutEvery,
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("repeat `{0}` needs the `interval` of its bars")]
    NoInterval(&'static str),
}

impl Failure for RuleRequestError {
    fn kind(&self) -> FailureKind {
        FailureKind::Invalid
    }

    fn field(&self) -> Option<&str> {
        match self {
            RuleRequestError::RepeatOptionsWithoutEvery => Some("repeat"),
            RuleRequestError::UnknownField(field) => Some(field),
            RuleRequestError::NoInterval(_) => Some("interval"),
        }
    }
}

impl RuleRequest {
    /// The condition, and the interval given for the bars of a per-bar frequency when the
    /// condition has no interval of its own.
    fn condition(&self) -> Result<(Condition, Option<Interval>), ApiError> {
        if let Some(field) = self.unknown.keys().next() {
            return Err(RuleRequestError::UnknownField(field.clone()).into());
        }
        let mut params = self.params.clone();
        let per_bar = matches!(
            self.repeat,
            RepeatMode::OncePerBar | RepeatMode::OncePerBarClose
        );
        let bars_of = if per_bar && !self.condition.takes_interval() {
            params.take_interval()?
        } else {
            None
        };
        Ok((params.condition(self.condition)?, bars_of))
    }

    fn repeat(&self, condition: Condition, bars_of: Option<Interval>) -> Result<Repeat, ApiError> {
        if self.repeat != RepeatMode::Every
            && (self.cooldown_seconds.is_some() || self.rearm_band.is_some())
        {
            return Err(RuleRequestError::RepeatOptionsWithoutEvery.into());
        }
        // A condition's own interval is the default; another one given is refused by the spec.
        let interval = |name| {
            bars_of
                .or(condition.interval())
                .ok_or(RuleRequestError::NoInterval(name))
        };
        Ok(match self.repeat {
            RepeatMode::Once => Repeat::Once,
            RepeatMode::Every => Repeat::Every {
                cooldown: chrono::Duration::seconds(i64::from(
                    self.cooldown_seconds.unwrap_or(DEFAULT_COOLDOWN_SECONDS),
                )),
                rearm_band: self.rearm_band.unwrap_or_default(),
            },
            RepeatMode::OncePerBar => Repeat::OncePerBar(interval("once_per_bar")?),
            RepeatMode::OncePerBarClose => Repeat::OncePerBarClose(interval("once_per_bar_close")?),
        })
    }

    fn into_spec(self, state: &AssetState) -> Result<signal_domain::RuleSpec, ApiError> {
        let instrument = state.assets.resolve(&self.instrument)?;
        let (condition, bars_of) = self.condition()?;
        let repeat = self.repeat(condition, bars_of)?;
        let and = self
            .and
            .map(|and| {
                if let Some(field) = and.unknown.keys().next() {
                    return Err(RuleRequestError::UnknownField(format!("and.{field}")).into());
                }
                let conjunct = ConjunctParams {
                    condition: and.condition,
                    params: and.params,
                    within_seconds: and.within_seconds,
                };
                conjunct.conjunct().map_err(ApiError::from)
            })
            .transpose()?;
        let mut spec = state
            .assets
            .rule_spec(instrument, condition, repeat, self.expires_at, self.note)?
            .with_channels(self.channels)?;
        if let Some(and) = and {
            spec = spec.with_and(and)?;
        }
        if let Some(message) = &self.message {
            spec = spec.with_message(message)?;
        }
        Ok(spec)
    }
}

/// A rule: the request's fields (for a per-bar frequency with its `interval`) and its state.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Rule)]
struct RuleView {
    id: RuleId,
    instrument: InstrumentId,
    symbol: String,
    condition: ConditionKind,
    /// The condition's parameters, named as in a request; with the `interval` of a per-bar
    /// frequency.
    #[serde(flatten)]
    params: ConditionParams,
    repeat: RepeatMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    cooldown_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rearm_band: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    note: Option<String>,
    /// The channel ids the rule's alerts go to; null for all.
    channels: Option<Vec<i64>>,
    and: Option<ConjunctParams>,
    message: Option<String>,
    /// `armed`, `cooling`, `triggered` or `expired`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cooling_until: Option<DateTime<Utc>>,
    /// Paused by the user: not evaluated until resumed.
    paused: bool,
    paused_at: Option<DateTime<Utc>>,
    /// It cannot fire before this instant.
    snoozed_until: Option<DateTime<Utc>>,
    trigger_count: u32,
    last_triggered_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<AlertRule> for RuleView {
    fn from(rule: AlertRule) -> Self {
        let mut params = ConditionParams::of(rule.spec.condition);
        let (repeat, cooldown_seconds, rearm_band) = match rule.spec.repeat {
            Repeat::Once => (RepeatMode::Once, None, None),
            Repeat::Every {
                cooldown,
                rearm_band,
            } => (
                RepeatMode::Every,
                Some(cooldown.num_seconds()),
                Some(rearm_band.normalize().to_string()),
            ),
            Repeat::OncePerBar(_) => (RepeatMode::OncePerBar, None, None),
            Repeat::OncePerBarClose(_) => (RepeatMode::OncePerBarClose, None, None),
        };
        if let (None, Some(interval)) = (&params.interval, rule.spec.repeat.interval()) {
            params.interval = Some(interval.to_string());
        }
        Self {
            id: rule.id,
            symbol: rule.spec.instrument.symbol().to_string(),
            instrument: rule.spec.instrument,
            condition: rule.spec.condition.kind(),
            params,
            repeat,
            cooldown_seconds,
            rearm_band,
            expires_at: rule.spec.expires_at,
            note: rule.spec.note,
            channels: rule.spec.channels,
            and: rule.spec.and.map(ConjunctParams::of),
            message: rule.spec.message,
            state: rule.state.name(),
            cooling_until: match rule.state {
                RuleState::Cooling { until, .. } => Some(until),
                _ => None,
            },
            paused: rule.paused_at.is_some(),
            paused_at: rule.paused_at,
            snoozed_until: rule.snoozed_until,
            trigger_count: rule.trigger_count,
            last_triggered_at: rule.last_triggered_at,
            created_at: rule.created_at,
            updated_at: rule.updated_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RuleListQuery {
    /// Only armed and cooling rules.
    #[serde(default)]
    active: bool,
}

/// The caller's rules, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/rules",
    tag = "rules",
    params(RuleListQuery),
    responses((status = 200, body = Vec<RuleView>))
)]
async fn list_rules(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiQuery(query): ApiQuery<RuleListQuery>,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    let rules = state.assets.rules(&user, query.active).await?;
    Ok(Json(rules.into_iter().map(RuleView::from).collect()))
}

/// Creates a rule.
#[utoipa::path(
    post,
    path = "/api/v1/rules",
    tag = "rules",
    request_body = RuleRequest,
    responses(
        (status = 201, description = "Created", body = RuleView),
        (status = 404, description = "No such instrument", body = signal_web::ErrorBody),
        (status = 422, description = "A parameter missing, out of range or not the kind's (`field` names it); or too many active rules (`limit_reached`)", body = signal_web::ErrorBody),
    )
)]
async fn create_rule(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiJson(request): ApiJson<RuleRequest>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    let spec = request.into_spec(&state)?;
    let rule = state.assets.create_rule(&user, &spec).await?;
    Ok((StatusCode::CREATED, Json(rule.into())))
}

/// Most rules one batch may create.
const MAX_BATCH: usize = 1_000;

/// Rules to create together.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rules": [
    {"instrument": "KRX:005930", "condition": "ABOVE", "level": "71900"},
    {"instrument": "UPBIT:KRW-BTC", "condition": "BELOW", "level": "90000000", "repeat": "every"}
]}))]
struct BatchRequest {
    /// 1 to 1,000 rules, each as `POST /api/v1/rules` takes it. Each is read on its own, so
    /// every bad one is named in the refusal. (The schema states no maximum: a body of more
    /// than 1,000 rules is usually refused for its size first, 413, before it is counted.)
    #[schema(value_type = Vec<RuleRequest>, min_items = 1)]
    rules: Vec<serde_json::Value>,
}

/// The created rules, in the order of the request.
#[derive(Serialize, ToSchema)]
#[schema(as = CreatedRules)]
struct CreatedRulesView {
    rules: Vec<RuleView>,
}

/// Why a batch was refused: the error body of every route and, when rules are at fault, each of
/// them by its index in the request.
#[derive(Serialize, ToSchema)]
struct BatchRefusal {
    /// `validation` or `limit_reached`.
    error: &'static str,
    message: String,
    /// The field at fault; for a bad rule the first one's, as `rules[1].level` (or `rules[1]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// Every bad rule, in the order of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<Vec<RefusedRule>>,
}

/// One rule of a batch that cannot be created.
#[derive(Serialize, ToSchema)]
struct RefusedRule {
    /// Its position in the request's `rules`, from 0.
    index: usize,
    /// The field at fault, when the refusal is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    message: String,
}

/// A batch refused for its rules, or a refusal like any other route's.
enum BatchError {
    Rules(Vec<RefusedRule>),
    Api(ApiError),
}

impl From<ApiError> for BatchError {
    fn from(error: ApiError) -> Self {
        BatchError::Api(error)
    }
}

impl From<asset_core::CoreError> for BatchError {
    fn from(error: asset_core::CoreError) -> Self {
        BatchError::Api(error.into())
    }
}

impl IntoResponse for BatchError {
    fn into_response(self) -> axum::response::Response {
        match self {
            BatchError::Api(error) => error.into_response(),
            BatchError::Rules(refused) => {
                let (field, message) = match refused.first() {
                    Some(first) => (
                        Some(match &first.field {
                            Some(field) => format!("rules[{}].{field}", first.index),
                            None => format!("rules[{}]", first.index),
                        }),
                        format!(
                            "{} of the rules cannot be created, so none was: rules[{}]: {}",
                            refused.len(),
                            first.index,
                            first.message
                        ),
                    ),
                    None => (None, "the rules cannot be created".to_string()),
                };
                let body = BatchRefusal {
                    error: "validation",
                    message,
                    field,
                    rules: Some(refused),
                };
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
        }
    }
}

/// Creates up to 1,000 rules at once, all or none: in one transaction, within the same
/// per-user limit of active rules as creating them one by one.
#[utoipa::path(
    post,
    path = "/api/v1/rules/batch",
    tag = "rules",
    request_body = BatchRequest,
    responses(
        (status = 201, description = "All created, in the order of the request", body = CreatedRulesView),
        (status = 422, description = "Nothing was created: rules that cannot be, each by its index and field (`rules`); no rules or more than 1,000 (`field` is `rules`); or more than the caller may hold (`limit_reached`)", body = BatchRefusal),
    )
)]
async fn create_rules(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiJson(request): ApiJson<BatchRequest>,
) -> Result<(StatusCode, Json<CreatedRulesView>), BatchError> {
    if request.rules.is_empty() || request.rules.len() > MAX_BATCH {
        return Err(ApiError::invalid_field(
            "rules",
            format!(
                "a batch holds 1 to {MAX_BATCH} rules, not {}",
                request.rules.len()
            ),
        )
        .into());
    }
    let mut specs = Vec::with_capacity(request.rules.len());
    let mut refused = Vec::new();
    for (index, rule) in request.rules.into_iter().enumerate() {
        let spec = serde_json::from_value::<RuleRequest>(rule)
            .map_err(ApiError::invalid)
            .and_then(|rule| rule.into_spec(&state));
        match spec {
            Ok(spec) => specs.push(spec),
            // An unknown instrument is a fault of the rule here, not a missing resource.
            Err(error) if matches!(error.kind(), FailureKind::Invalid | FailureKind::NotFound) => {
                refused.push(RefusedRule {
                    index,
                    field: error.field().map(str::to_string).or_else(|| {
                        matches!(error.kind(), FailureKind::NotFound)
                            .then(|| "instrument".to_string())
                    }),
                    message: error.message(),
                })
            }
            Err(error) => return Err(error.into()),
        }
    }
    if !refused.is_empty() {
        return Err(BatchError::Rules(refused));
    }
    let rules = state.assets.create_rules(&user, &specs).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedRulesView {
            rules: rules.into_iter().map(RuleView::from).collect(),
        }),
    ))
}

#[derive(Serialize, ToSchema)]
struct PreviewCount {
    /// 1, 7 or 30.
    days: i64,
    fired: usize,
}

#[derive(Serialize, ToSchema)]
#[schema(as = PreviewFiring)]
struct PreviewFiringView {
    at: DateTime<Utc>,
    price: signal_domain::Price,
}

/// How often a rule would have fired over the stored minute candles of the last 30 days.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Preview)]
struct PreviewView {
    instrument: InstrumentId,
    condition: ConditionKind,
    /// Firings over the last 1, 7 and 30 days.
    counts: Vec<PreviewCount>,
    /// The most recent firings, oldest first.
    firings: Vec<PreviewFiringView>,
    /// Candles replayed, and the minute of the first.
    candles: usize,
    since: Option<DateTime<Utc>>,
    approximation: &'static str,
}

/// How often the rule in the body would have fired, without saving it.
#[utoipa::path(
    post,
    path = "/api/v1/rules/preview",
    tag = "rules",
    request_body = RuleRequest,
    responses(
        (status = 200, body = PreviewView),
        (status = 404, description = "No such instrument", body = signal_web::ErrorBody),
        (status = 422, description = "As for creating the rule", body = signal_web::ErrorBody),
    )
)]
async fn preview_rule(
    AuthUser(_caller): AuthUser,
    State(state): State<AssetState>,
    ApiJson(request): ApiJson<RuleRequest>,
) -> Result<Json<PreviewView>, ApiError> {
    let spec = request.into_spec(&state)?;
    let preview = state.assets.preview(&spec, chrono::Utc::now()).await?;
    Ok(Json(PreviewView {
        condition: spec.condition.kind(),
        instrument: spec.instrument,
        counts: preview
            .counts
            .iter()
            .map(|&(days, fired)| PreviewCount { days, fired })
            .collect(),
        firings: preview
            .firings
            .iter()
            .map(|firing| PreviewFiringView {
                at: firing.at,
                price: firing.price,
            })
            .collect(),
        candles: preview.candles,
        since: preview.since,
        approximation: asset_core::APPROXIMATION,
    }))
}

/// One of the caller's rules.
#[utoipa::path(
    get,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = i64, Path, description = "The rule's id", example = 1)),
    responses(
        (status = 200, body = RuleView),
        (status = 404, description = "The caller has no such rule", body = signal_web::ErrorBody),
    )
)]
async fn get_rule(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RuleView>, ApiError> {
    Ok(Json(state.assets.rule(&user, RuleId(id)).await?.into()))
}

/// Replaces one of the caller's rules and re-arms it.
#[utoipa::path(
    put,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = i64, Path, description = "The rule's id", example = 1)),
    request_body = RuleRequest,
    responses(
        (status = 200, body = RuleView),
        (status = 404, description = "The caller has no such rule, or no such instrument", body = signal_web::ErrorBody),
        (status = 422, description = "As for creating the rule", body = signal_web::ErrorBody),
    )
)]
async fn update_rule(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<RuleRequest>,
) -> Result<Json<RuleView>, ApiError> {
    let spec = request.into_spec(&state)?;
    Ok(Json(
        state
            .assets
            .update_rule(&user, RuleId(id), &spec)
            .await?
            .into(),
    ))
}

/// Deletes one of the caller's rules.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = i64, Path, description = "The rule's id", example = 1)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "The caller has no such rule", body = signal_web::ErrorBody),
    )
)]
async fn delete_rule(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.assets.delete_rule(&user, RuleId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses one of the caller's rules: it keeps its state and is not evaluated until resumed.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/pause",
    tag = "rules",
    params(("id" = i64, Path, description = "The rule's id", example = 1)),
    responses(
        (status = 200, body = RuleView),
        (status = 404, description = "The caller has no such rule", body = signal_web::ErrorBody),
        (status = 422, description = "A value out of range (`field` names it)", body = signal_web::ErrorBody),
    )
)]
async fn pause_rule(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RuleView>, ApiError> {
    Ok(Json(
        state.assets.pause_rule(&user, RuleId(id)).await?.into(),
    ))
}

/// Resumes a paused rule, and ends its snooze.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/resume",
    tag = "rules",
    params(("id" = i64, Path, description = "The rule's id", example = 1)),
    responses(
        (status = 200, body = RuleView),
        (status = 404, description = "The caller has no such rule", body = signal_web::ErrorBody),
        (status = 422, description = "A value out of range (`field` names it)", body = signal_web::ErrorBody),
    )
)]
async fn resume_rule(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RuleView>, ApiError> {
    Ok(Json(
        state.assets.resume_rule(&user, RuleId(id)).await?.into(),
    ))
}

/// How long to snooze: for `seconds` from now, or `until` an instant.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Snooze, example = json!({"seconds": 900}))]
struct SnoozeRequest {
    /// 1 s to 30 days.
    seconds: Option<u32>,
    until: Option<DateTime<Utc>>,
}

/// A snooze request that does not say how long.
#[derive(Debug, thiserror::Error)]
enum SnoozeRequestError {
    #[error("give either `seconds` or `until`, not both")]
    Both,
    #[error("say how long: `seconds` (1 to {max}) or `until`", max = MAX_SNOOZE_SECONDS)]
    Neither,
    #[error("`seconds` must be between 1 and {MAX_SNOOZE_SECONDS}, got {0}")]
    Seconds(u32),
}

const MAX_SNOOZE_SECONDS: u32 = 86_400 * signal_domain::MAX_SNOOZE_DAYS as u32;

impl Failure for SnoozeRequestError {
    fn kind(&self) -> FailureKind {
        FailureKind::Invalid
    }

    fn field(&self) -> Option<&str> {
        Some("seconds")
    }
}

/// Snoozes a rule: it cannot fire before the end.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/snooze",
    tag = "rules",
    params(("id" = i64, Path, description = "The rule's id", example = 1)),
    request_body = SnoozeRequest,
    responses(
        (status = 200, body = RuleView),
        (status = 404, description = "The caller has no such rule", body = signal_web::ErrorBody),
        (status = 422, description = "A value out of range (`field` names it)", body = signal_web::ErrorBody),
    )
)]
async fn snooze_rule(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<SnoozeRequest>,
) -> Result<Json<RuleView>, ApiError> {
    let until = match (request.seconds, request.until) {
        (Some(_), Some(_)) => return Err(SnoozeRequestError::Both.into()),
        (None, None) => return Err(SnoozeRequestError::Neither.into()),
        (Some(seconds), None) => {
            if seconds == 0 || seconds > MAX_SNOOZE_SECONDS {
                return Err(SnoozeRequestError::Seconds(seconds).into());
            }
            chrono::Utc::now() + chrono::Duration::seconds(i64::from(seconds))
        }
        (None, Some(until)) => until,
    };
    Ok(Json(
        state
            .assets
            .snooze_rule(&user, RuleId(id), Some(until))
            .await?
            .into(),
    ))
}

/// Ends a rule's snooze.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/{id}/snooze",
    tag = "rules",
    params(("id" = i64, Path, description = "The rule's id", example = 1)),
    responses(
        (status = 200, body = RuleView),
        (status = 404, description = "The caller has no such rule", body = signal_web::ErrorBody),
        (status = 422, description = "A value out of range (`field` names it)", body = signal_web::ErrorBody),
    )
)]
async fn unsnooze_rule(
    AuthUser(user): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RuleView>, ApiError> {
    Ok(Json(
        state
            .assets
            .snooze_rule(&user, RuleId(id), None)
            .await?
            .into(),
    ))
}
