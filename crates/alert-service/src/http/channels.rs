//! The notification API: channels (add, change, test, remove; a webhook's secret, a Telegram
//! link, an email confirmation), their deliveries, the user's notification settings, and the
//! key browsers subscribe to web push with.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};
use signal_channels::{ChannelUpdate, NewTarget};
use signal_domain::Timestamp;
use signal_ports::{
    ChannelKind, ChannelRecord, ChannelState, ChannelTarget, DeliveryAttempt, DeliveryQuery,
    DeliveryRecord, DeliveryStatus, Language, QuietHours, UserSettings,
};
use signal_web::{ApiError, ApiJson, ApiPath, ApiQuery, AuthUser};
use uuid::Uuid;

use super::AlertState;

pub fn routes() -> Router<AlertState> {
    Router::new()
        .route("/api/v1/channels", get(list).post(create))
        .route(
            "/api/v1/channels/{id}",
            get(one).patch(update).delete(delete),
        )
        .route("/api/v1/channels/{id}/test", post(test))
        .route("/api/v1/channels/{id}/rotate-secret", post(rotate_secret))
        .route("/api/v1/channels/{id}/link", post(renew_link))
        .route("/api/v1/channels/{id}/deliveries", get(channel_deliveries))
        .route(
            "/api/v1/channels/email/confirm",
            get(confirm_page).post(confirm_email),
        )
        .route("/api/v1/deliveries", get(deliveries))
        .route("/api/v1/deliveries/{id}", get(delivery))
        .route("/api/v1/settings", get(settings).put(put_settings))
        .route("/api/v1/push/vapid-public-key", get(vapid_public_key))
}

/// A channel as the API shows it: never its secret.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelView {
    id: i64,
    kind: ChannelKind,
    name: String,
    state: ChannelState,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_at: Option<Timestamp>,
    /// Webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<String>,
    /// Webhook: until when the previous secret still signs, after a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_valid_until: Option<Timestamp>,
    /// Web push.
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    /// Telegram: whether a chat is linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    linked: Option<bool>,
    /// Email.
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelList {
    items: Vec<ChannelView>,
    /// The kinds this server can send.
    available: Vec<ChannelKind>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushKeys {
    p256dh: String,
    auth: String,
}

/// A browser's `PushSubscription`, as `JSON.stringify` gives it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushSubscription {
    endpoint: String,
    keys: PushKeys,
    #[serde(default)]
    #[allow(dead_code)] // sent by browsers; push endpoints carry no expiry in practice
    expiration_time: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
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
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedView {
    #[serde(flatten)]
    channel: ChannelView,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_expires_at: Option<Timestamp>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelPatch {
    name: Option<String>,
    url: Option<String>,
    #[serde(default, deserialize_with = "explicit")]
    template: Option<Option<String>>,
    enabled: Option<bool>,
}

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

async fn delete(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.channels.delete(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<DeliveryView>, ApiError> {
    let delivery = state.channels.test(&user, id).await?;
    Ok(Json(DeliveryView::of(&delivery, None)))
}

#[derive(Serialize)]
struct Secret {
    secret: String,
}

async fn rotate_secret(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Secret>, ApiError> {
    let secret = state.channels.rotate_secret(&user, id).await?;
    Ok(Json(Secret { secret }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Link {
    link: String,
    link_expires_at: Timestamp,
}

/// A new Telegram link (200 with it), or a new confirmation mail (204).
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

#[derive(Deserialize)]
struct ConfirmQuery {
    token: String,
}

/// The page an email confirmation link opens: a button, so that a mail scanner following the
/// link confirms nothing.
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptView {
    at: Timestamp,
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
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
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
    next_attempt_at: Option<Timestamp>,
    /// The message that carried it: a digest's id when gathered with other alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<Uuid>,
    digest: bool,
    test: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_status: Option<u16>,
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered_at: Option<Timestamp>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    channel: Option<i64>,
    alert: Option<i64>,
    before: Option<i64>,
    limit: Option<usize>,
}

#[derive(Serialize)]
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

async fn deliveries(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    page(&state, &user, query).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelDeliveriesQuery {
    before: Option<i64>,
    limit: Option<usize>,
}

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

/// `HH:MM` in the user's time zone.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsView {
    language: Language,
    time_zone: String,
    quiet_hours: Option<QuietHoursView>,
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
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsRequest {
    language: Option<Language>,
    time_zone: Option<String>,
    #[serde(default, deserialize_with = "explicit")]
    quiet_hours: Option<Option<QuietHoursView>>,
    max_per_channel_per_minute: Option<u32>,
}

async fn settings(
    AuthUser(user): AuthUser,
    State(state): State<AlertState>,
) -> Result<Json<SettingsView>, ApiError> {
    let settings = state.channels.settings(&user).await?;
    Ok(Json(SettingsView::from(&settings)))
}

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VapidKey {
    public_key: String,
}

/// The key browsers pass as `applicationServerKey` when they subscribe.
async fn vapid_public_key(
    AuthUser(_user): AuthUser,
    State(state): State<AlertState>,
) -> Result<Json<VapidKey>, ApiError> {
    let public_key = state
        .channels
        .vapid_public_key()
        .ok_or_else(|| ApiError::invalid("web push is not set up on this server"))?
        .to_string();
    Ok(Json(VapidKey { public_key }))
}
