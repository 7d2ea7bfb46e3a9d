//! The notification API: channels (add, change, test, remove; a webhook's secret, a Telegram
//! link, an email confirmation), their deliveries, the user's notification settings, and the
//! key browsers subscribe to web push with.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use signal_channels::{ChannelUpdate, NewTarget};
use signal_ports::{
    ChannelKind, ChannelRecord, ChannelState, ChannelTarget, DeliveryAttempt, DeliveryQuery,
    DeliveryRecord, DeliveryStatus, Language, QuietHours, UserSettings,
};
use signal_web::{ApiError, ApiJson, ApiPath, ApiQuery, AuthUser};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AlertState;

pub fn routes() -> OpenApiRouter<AlertState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(one, update, delete))
        .routes(routes!(test))
        .routes(routes!(rotate_secret))
        .routes(routes!(renew_link))
        .routes(routes!(channel_deliveries))
        .routes(routes!(confirm_page, confirm_email))
        .routes(routes!(deliveries))
        .routes(routes!(delivery))
        .routes(routes!(settings, put_settings))
        .routes(routes!(vapid_public_key))
}

/// A channel as the API shows it: never its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Channel)]
struct ChannelView {
    id: i64,
    kind: ChannelKind,
    name: String,
    state: ChannelState,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_at: Option<DateTime<Utc>>,
    /// Webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<String>,
    /// Webhook: until when the previous secret still signs, after a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_valid_until: Option<DateTime<Utc>>,
    /// Web push.
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    /// Telegram: whether a chat is linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    linked: Option<bool>,
    /// Email.
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&ChannelRecord> for ChannelView {
    fn from(channel: &ChannelRecord) -> Self {
        let mut view = ChannelView {
            id: channel.id,
            kind: channel.kind(),
            name: channel.name.clone(),
            state: channel.state,
            disabled_reason: channel.disabled_reason.clone(),
            disabled_at: channel.disabled_at,
            url: None,
            template: None,
            previous_secret_valid_until: None,
            endpoint: None,
            linked: None,
            address: None,
            created_at: channel.created_at,
            updated_at: channel.updated_at,
        };
        match &channel.target {
            ChannelTarget::Webhook {
                url,
                template,
                previous_secret_expires_at,
                ..
            } => {
                view.url = Some(url.clone());
                view.template = template.clone();
                view.previous_secret_valid_until =
                    previous_secret_expires_at.filter(|until| *until > chrono::Utc::now());
            }
            ChannelTarget::WebPush { endpoint, .. } => view.endpoint = Some(endpoint.clone()),
            ChannelTarget::Telegram { chat_id } => view.linked = Some(chat_id.is_some()),
            ChannelTarget::Email { address } => view.address = Some(address.clone()),
        }
        view
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ChannelList {
    items: Vec<ChannelView>,
    /// The kinds this server can send.
    available: Vec<ChannelKind>,
}

/// The caller's channels, and the kinds this server can send.
#[utoipa::path(
    get,
    path = "/api/v1/channels",
    tag = "channels",
    responses((status = 200, body = ChannelList))
)]
async fn list(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
) -> Result<Json<ChannelList>, ApiError> {
    let channels = state.channels.list(&user).await?;
    Ok(Json(ChannelList {
        items: channels.iter().map(ChannelView::from).collect(),
        available: state.channels.available(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PushKeys {
    p256dh: String,
    auth: String,
}

/// A browser's `PushSubscription`, as `JSON.stringify` gives it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PushSubscription {
    endpoint: String,
    keys: PushKeys,
    #[serde(default)]
    #[allow(dead_code)] // sent by browsers; push endpoints carry no expiry in practice
    expiration_time: Option<serde_json::Value>,
}

/// A new channel: `kind` decides the rest; `name` is at most 100 characters.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = NewChannel)]
enum NewChannelRequest {
    WebPush {
        name: Option<String>,
        subscription: PushSubscription,
    },
    Webhook {
        name: Option<String>,
        url: String,
        template: Option<String>,
    },
    Telegram {
        name: Option<String>,
    },
    Email {
        name: Option<String>,
        address: String,
    },
}

/// A channel just made: its secret (webhook) or link (Telegram) is shown here only.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreatedChannel)]
struct CreatedView {
    #[serde(flatten)]
    channel: ChannelView,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_expires_at: Option<DateTime<Utc>>,
}

/// Adds a channel.
#[utoipa::path(
    post,
    path = "/api/v1/channels",
    tag = "channels",
    request_body = NewChannelRequest,
    responses(
        (status = 201, description = "Added", body = CreatedView),
        (status = 409, description = "The email address is already a channel of the caller's", body = signal_web::ErrorBody),
        (status = 422, description = "A field that cannot be used (`field` names it), or too many channels", body = signal_web::ErrorBody),
    )
)]
async fn create(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiJson(request): ApiJson<NewChannelRequest>,
) -> Result<(StatusCode, Json<CreatedView>), ApiError> {
    let (name, target) = match request {
        NewChannelRequest::WebPush { name, subscription } => (
            name,
            NewTarget::WebPush {
                endpoint: subscription.endpoint,
                p256dh: subscription.keys.p256dh,
                auth: subscription.keys.auth,
            },
        ),
        NewChannelRequest::Webhook {
            name,
            url,
            template,
        } => (name, NewTarget::Webhook { url, template }),
        NewChannelRequest::Telegram { name } => (name, NewTarget::Telegram),
        NewChannelRequest::Email { name, address } => (name, NewTarget::Email { address }),
    };
    let created = state.channels.create(&user, name, target).await?;
    let (link, link_expires_at) = created.link.unzip();
    Ok((
        StatusCode::CREATED,
        Json(CreatedView {
            channel: ChannelView::from(&created.channel),
            secret: created.secret,
            link,
            link_expires_at,
        }),
    ))
}

/// One of the caller's channels.
#[utoipa::path(
    get,
    path = "/api/v1/channels/{id}",
    tag = "channels",
    params(("id" = i64, Path, description = "The channel's id", example = 1)),
    responses(
        (status = 200, body = ChannelView),
        (status = 404, description = "The caller has no such channel", body = signal_web::ErrorBody),
    )
)]
async fn one(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ChannelView>, ApiError> {
    let channel = state.channels.get(&user, id).await?;
    Ok(Json(ChannelView::from(&channel)))
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn explicit<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// What to change; absent fields stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChannelPatch {
    name: Option<String>,
    /// Webhook.
    url: Option<String>,
    /// Webhook; `null` removes it.
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<String>)]
    template: Option<Option<String>>,
    /// `false` turns the channel off (what waited for it is skipped), `true` back on.
    enabled: Option<bool>,
}

/// Changes one of the caller's channels.
#[utoipa::path(
    patch,
    path = "/api/v1/channels/{id}",
    tag = "channels",
    params(("id" = i64, Path, description = "The channel's id", example = 1)),
    request_body = ChannelPatch,
    responses(
        (status = 200, body = ChannelView),
        (status = 404, description = "The caller has no such channel", body = signal_web::ErrorBody),
        (status = 422, description = "A field that cannot be used (`field` names it)", body = signal_web::ErrorBody),
    )
)]
async fn update(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<ChannelPatch>,
) -> Result<Json<ChannelView>, ApiError> {
    let update = ChannelUpdate {
        name: patch.name,
        url: patch.url,
        template: patch.template,
        enabled: patch.enabled,
    };
    let channel = state.channels.update(&user, id, update).await?;
    Ok(Json(ChannelView::from(&channel)))
}

/// Deletes one of the caller's channels; its deliveries go with it.
#[utoipa::path(
    delete,
    path = "/api/v1/channels/{id}",
    tag = "channels",
    params(("id" = i64, Path, description = "The channel's id", example = 1)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "The caller has no such channel", body = signal_web::ErrorBody),
    )
)]
async fn delete(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.channels.delete(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test message now.
#[utoipa::path(
    post,
    path = "/api/v1/channels/{id}/test",
    tag = "channels",
    params(("id" = i64, Path, description = "The channel's id", example = 1)),
    responses(
        (status = 200, description = "The test message's delivery", body = DeliveryView),
        (status = 404, description = "The caller has no such channel", body = signal_web::ErrorBody),
        (status = 422, description = "The channel cannot send now (pending, or off)", body = signal_web::ErrorBody),
    )
)]
async fn test(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<DeliveryView>, ApiError> {
    let delivery = state.channels.test(&user, id).await?;
    Ok(Json(DeliveryView::of(&delivery, None)))
}

#[derive(Serialize, ToSchema)]
struct Secret {
    /// The `whsec_` secret; never shown again.
    secret: String,
}

/// A webhook's new secret; the previous one keeps signing for 24 hours.
#[utoipa::path(
    post,
    path = "/api/v1/channels/{id}/rotate-secret",
    tag = "channels",
    params(("id" = i64, Path, description = "The channel's id", example = 1)),
    responses(
        (status = 200, body = Secret),
        (status = 404, description = "The caller has no such channel", body = signal_web::ErrorBody),
        (status = 422, description = "Not a webhook", body = signal_web::ErrorBody),
    )
)]
async fn rotate_secret(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Secret>, ApiError> {
    let secret = state.channels.rotate_secret(&user, id).await?;
    Ok(Json(Secret { secret }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Link {
    link: String,
    link_expires_at: DateTime<Utc>,
}

/// A new Telegram link (200 with it), or a new confirmation mail (204).
#[utoipa::path(
    post,
    path = "/api/v1/channels/{id}/link",
    tag = "channels",
    params(("id" = i64, Path, description = "The channel's id", example = 1)),
    responses(
        (status = 200, description = "A Telegram channel's new link", body = Link),
        (status = 204, description = "A new confirmation mail is on its way"),
        (status = 404, description = "The caller has no such channel", body = signal_web::ErrorBody),
        (status = 422, description = "Not a pending Telegram or email channel", body = signal_web::ErrorBody),
    )
)]
async fn renew_link(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    Ok(match state.channels.renew_proof(&user, id).await? {
        Some((link, link_expires_at)) => Json(Link {
            link,
            link_expires_at,
        })
        .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[derive(Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
struct ConfirmQuery {
    /// The token of the mailed link.
    token: String,
}

/// The page an email confirmation link opens: a button, so that a mail scanner following the
/// link confirms nothing.
#[utoipa::path(
    get,
    path = "/api/v1/channels/email/confirm",
    tag = "channels",
    security(()),
    params(ConfirmQuery),
    responses((status = 200, description = "The confirmation page", body = String, content_type = "text/html"))
)]
async fn confirm_page(ApiQuery(query): ApiQuery<ConfirmQuery>) -> Html<String> {
    let token: String = query
        .token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Confirm email · DonTouch Signal</title></head>\
         <body style=\"font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem\">\
         <h1>DonTouch Signal</h1><p>Receive price alerts at this address? \
         이 주소로 가격 알림을 받으시겠습니까?</p>\
         <form method=\"post\" action=\"/api/v1/channels/email/confirm\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <button type=\"submit\">Confirm · 확인</button></form></body></html>"
    ))
}

/// Confirms an email channel: from the page's form (answered with a page) or as JSON (answered
/// with the channel).
#[utoipa::path(
    post,
    path = "/api/v1/channels/email/confirm",
    tag = "channels",
    security(()),
    request_body(content(
        (ConfirmQuery = "application/json"),
        (ConfirmQuery = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Confirmed", content(
            (ChannelView = "application/json"),
            (String = "text/html"),
        )),
        (status = 404, description = "An unknown or used token", body = signal_web::ErrorBody),
    )
)]
async fn confirm_email(
    State(state): State<AlertState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let token = if is_json {
        serde_json::from_slice::<ConfirmQuery>(&body)
            .map_err(|e| ApiError::malformed(format!("expected {{\"token\": \"...\"}}: {e}")))?
            .token
    } else {
        form_urlencoded::parse(&body)
            .find_map(|(key, value)| (key == "token").then(|| value.into_owned()))
            .ok_or_else(|| ApiError::malformed("expected a form with a token"))?
    };
    let channel = state.channels.confirm_email(&token).await?;
    Ok(if is_json {
        Json(ChannelView::from(&channel)).into_response()
    } else {
        Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Email confirmed · DonTouch Signal</title></head>\
             <body style=\"font-family:sans-serif;max-width:32rem;margin:3rem auto\">\
             <h1>Email confirmed · 확인되었습니다</h1>\
             <p>Price alerts will arrive at this address. 가격 알림이 이 주소로 전달됩니다.</p>\
             </body></html>"
                .to_string(),
        )
        .into_response()
    })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeliveryAttempt)]
struct AttemptView {
    at: DateTime<Utc>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    duration_ms: i64,
}

impl From<&DeliveryAttempt> for AttemptView {
    fn from(attempt: &DeliveryAttempt) -> Self {
        Self {
            at: attempt.at,
            ok: attempt.ok,
            status: attempt.status,
            error: attempt.error.clone(),
            duration_ms: attempt.duration_ms,
        }
    }
}

/// One alert (or test message) on its way to one channel.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Delivery)]
struct DeliveryView {
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert_id: Option<i64>,
    event_id: Uuid,
    channel_id: i64,
    kind: ChannelKind,
    status: DeliveryStatus,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<DateTime<Utc>>,
    /// The message that carried it: a digest's id when gathered with other alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<Uuid>,
    digest: bool,
    test: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_status: Option<u16>,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt_log: Option<Vec<AttemptView>>,
}

impl DeliveryView {
    fn of(delivery: &DeliveryRecord, attempts: Option<&[DeliveryAttempt]>) -> Self {
        Self {
            id: delivery.id,
            alert_id: delivery.alert_id,
            event_id: delivery.event_id,
            channel_id: delivery.channel_id,
            kind: delivery.kind,
            status: delivery.status,
            attempts: delivery.attempts,
            next_attempt_at: (delivery.status == DeliveryStatus::Pending)
                .then_some(delivery.next_attempt_at),
            message_id: delivery.message_id,
            digest: delivery.alert_id.is_some()
                && delivery.message_id.is_some_and(|m| m != delivery.event_id),
            test: delivery.alert_id.is_none(),
            last_error: delivery.last_error.clone(),
            last_status: delivery.last_status,
            created_at: delivery.created_at,
            delivered_at: delivery.delivered_at,
            latency_ms: delivery.latency_ms,
            attempt_log: attempts.map(|all| all.iter().map(AttemptView::from).collect()),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    /// Only this channel's.
    channel: Option<i64>,
    /// Only this alert's.
    alert: Option<i64>,
    /// Deliveries older than this id: the `nextBefore` of the previous page.
    before: Option<i64>,
    /// 1 to 200 (default 50); larger values are taken as 200.
    limit: Option<usize>,
}

/// A page of deliveries, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DeliveryPage {
    items: Vec<DeliveryView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

async fn page(
    state: &AlertState,
    user: &signal_domain::UserId,
    query: DeliveriesQuery,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let mut items = state
        .channels
        .deliveries(
            user,
            &DeliveryQuery {
                channel_id: query.channel,
                alert_id: query.alert,
                before_id: query.before,
                limit: limit + 1,
            },
        )
        .await?;
    let next_before = (items.len() > limit).then(|| {
        items.truncate(limit);
        items.last().map(|d| d.id)
    });
    Ok(Json(DeliveryPage {
        items: items.iter().map(|d| DeliveryView::of(d, None)).collect(),
        next_before: next_before.flatten(),
    }))
}

/// The caller's deliveries, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries",
    tag = "channels",
    params(DeliveriesQuery),
    responses((status = 200, body = DeliveryPage))
)]
async fn deliveries(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    page(&state, &user, query).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ChannelDeliveriesQuery {
    /// Deliveries older than this id: the `nextBefore` of the previous page.
    before: Option<i64>,
    /// 1 to 200 (default 50); larger values are taken as 200.
    limit: Option<usize>,
}

/// One channel's deliveries, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/channels/{id}/deliveries",
    tag = "channels",
    params(("id" = i64, Path, description = "The channel's id", example = 1), ChannelDeliveriesQuery),
    responses(
        (status = 200, body = DeliveryPage),
        (status = 404, description = "The caller has no such channel", body = signal_web::ErrorBody),
    )
)]
async fn channel_deliveries(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<ChannelDeliveriesQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    state.channels.get(&user, id).await?;
    let query = DeliveriesQuery {
        channel: Some(id),
        alert: None,
        before: query.before,
        limit: query.limit,
    };
    page(&state, &user, query).await
}

/// One of the caller's deliveries, with every attempt.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries/{id}",
    tag = "channels",
    params(("id" = i64, Path, description = "The delivery's id")),
    responses(
        (status = 200, body = DeliveryView),
        (status = 404, description = "The caller has no such delivery", body = signal_web::ErrorBody),
    )
)]
async fn delivery(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<DeliveryView>, ApiError> {
    let (delivery, attempts) = state
        .channels
        .delivery(&user, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("you have no delivery {id}")))?;
    Ok(Json(DeliveryView::of(&delivery, Some(&attempts))))
}

/// `HH:MM` in the user's time zone; `start` after `end` spans midnight.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = QuietHours)]
struct QuietHoursView {
    start: String,
    end: String,
}

fn clock(field: &'static str, text: &str) -> Result<chrono::NaiveTime, ApiError> {
    chrono::NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| {
        ApiError::invalid_field(
            format!("quietHours.{field}"),
            format!("quietHours.{field}: `{text}` is not HH:MM"),
        )
    })
}

/// How the caller's notifications are shaped and paced.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Settings)]
struct SettingsView {
    language: Language,
    /// An IANA time zone name.
    time_zone: String,
    quiet_hours: Option<QuietHoursView>,
    /// 1 to 60.
    max_per_channel_per_minute: u32,
}

impl From<&UserSettings> for SettingsView {
    fn from(settings: &UserSettings) -> Self {
        Self {
            language: settings.language,
            time_zone: settings.time_zone.clone(),
            quiet_hours: settings.quiet_hours.map(|q| QuietHoursView {
                start: q.start.format("%H:%M").to_string(),
                end: q.end.format("%H:%M").to_string(),
            }),
            max_per_channel_per_minute: settings.max_per_channel_per_minute,
        }
    }
}

/// Absent fields keep their value; `quietHours: null` turns quiet hours off.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"language": "en", "timeZone": "Asia/Seoul", "quietHours": {"start": "23:00", "end": "07:00"}}))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsRequest {
    language: Option<Language>,
    time_zone: Option<String>,
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<QuietHoursView>)]
    quiet_hours: Option<Option<QuietHoursView>>,
    max_per_channel_per_minute: Option<u32>,
}

/// The caller's notification settings (the defaults until saved).
#[utoipa::path(
    get,
    path = "/api/v1/settings",
    tag = "channels",
    responses((status = 200, body = SettingsView))
)]
async fn settings(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
) -> Result<Json<SettingsView>, ApiError> {
    let settings = state.channels.settings(&user).await?;
    Ok(Json(SettingsView::from(&settings)))
}

/// Saves the caller's notification settings.
#[utoipa::path(
    put,
    path = "/api/v1/settings",
    tag = "channels",
    request_body = SettingsRequest,
    responses(
        (status = 200, body = SettingsView),
        (status = 422, description = "A value out of range (`field` names it)", body = signal_web::ErrorBody),
    )
)]
async fn put_settings(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiJson(request): ApiJson<SettingsRequest>,
) -> Result<Json<SettingsView>, ApiError> {
    let mut settings = state.channels.settings(&user).await?;
    if let Some(language) = request.language {
        settings.language = language;
    }
    if let Some(zone) = request.time_zone {
        settings.time_zone = zone;
    }
    if let Some(quiet) = request.quiet_hours {
        settings.quiet_hours = quiet
            .map(|q| {
                Ok::<_, ApiError>(QuietHours {
                    start: clock("start", &q.start)?,
                    end: clock("end", &q.end)?,
                })
            })
            .transpose()?;
    }
    if let Some(cap) = request.max_per_channel_per_minute {
        settings.max_per_channel_per_minute = cap;
    }
    let saved = state.channels.put_settings(&user, settings).await?;
    Ok(Json(SettingsView::from(&saved)))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VapidKey {
    public_key: String,
}

/// The key browsers pass as `applicationServerKey` when they subscribe.
#[utoipa::path(
    get,
    path = "/api/v1/push/vapid-public-key",
    tag = "channels",
    responses(
        (status = 200, body = VapidKey),
        (status = 422, description = "Web push is not set up on this server", body = signal_web::ErrorBody),
    )
)]
async fn vapid_public_key(
    AuthUser(_caller): AuthUser,
    State(state): State<AlertState>,
) -> Result<Json<VapidKey>, ApiError> {
    let public_key = state
        .channels
        .vapid_public_key()
        .ok_or_else(|| ApiError::invalid("web push is not set up on this server"))?
        .to_string();
    Ok(Json(VapidKey { public_key }))
}
