//! Built-in accounts over HTTP: sign-up, sign-in, sign-out, password change, the caller's session
//! and their list of sessions. A started session becomes a JWT in the `signal_session` cookie
//! (with its CSRF token in `signal_csrf`); see `signal_web::session`.
//!
//! When accounts are switched off (tokens come from another identity provider), the routes that
//! need them answer 404 with a JSON reason, and `GET /api/v1/auth/session` still tells the app
//! who the caller is and that there are no accounts here.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signal_accounts::{AccountError, Accounts, Client, Session, SessionId};
use signal_domain::{Failure, FailureKind};
use signal_web::session::{
    clear_session_cookies, refuse_cross_site, request_is_https, set_session_cookies,
};
use signal_web::{ApiError, ApiJson, ApiPath, Caller, ClientAddress, JwtSigner, SessionClaims};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AlertState;

/// What the accounts routes need when accounts are on.
pub struct AccountsEdge {
    pub accounts: Arc<Accounts>,
    /// Signs the sessions' tokens, with the secret both services verify.
    pub signer: JwtSigner,
}

pub fn routes() -> OpenApiRouter<AlertState> {
    OpenApiRouter::new()
        .routes(routes!(config))
        .routes(routes!(sign_up))
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(change_password))
        .routes(routes!(current_session))
        .routes(routes!(sessions))
        .routes(routes!(end_session))
}

/// The answer of the account routes when accounts are switched off.
#[derive(Debug, thiserror::Error)]
#[error("accounts are switched off in this deployment: sign in through its identity provider")]
struct AccountsSwitchedOff;

impl Failure for AccountsSwitchedOff {
    fn kind(&self) -> FailureKind {
        FailureKind::NotFound
    }
}

fn edge(state: &AlertState) -> Result<&AccountsEdge, AccountsSwitchedOff> {
    state.accounts.as_deref().ok_or(AccountsSwitchedOff)
}

/// Whether this deployment has built-in accounts, and its password lengths.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AccountsConfig)]
struct AccountsConfigView {
    accounts: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_password_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_password_length: Option<usize>,
}

/// What the sign-up form needs to know before anyone is signed in.
#[utoipa::path(
    get,
    path = "/api/v1/auth/config",
    tag = "accounts",
    security(()),
    responses((status = 200, body = AccountsConfigView))
)]
async fn config(State(state): State<AlertState>) -> Json<AccountsConfigView> {
    let policy = state.accounts.as_deref().map(|edge| edge.accounts.policy());
    Json(AccountsConfigView {
        accounts: policy.is_some(),
        min_password_length: policy.map(|p| p.min_length),
        max_password_length: policy.map(|p| p.max_length),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "new@example.com", "password": "correct horse battery staple"}))]
struct Credentials {
    /// The account's user id (trimmed and lower-cased).
    email: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
struct SignedIn {
    email: String,
}

fn client(parts: &Parts, address: ClientAddress) -> Client {
    Client {
        address: address.0,
        user_agent: parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// The response that starts `session` in the browser: its cookies and `body`.
fn with_session_cookies(
    edge: &AccountsEdge,
    parts: &Parts,
    session: &Session,
    status: StatusCode,
    body: Option<SignedIn>,
) -> Result<Response, ApiError> {
    let claims = SessionClaims::new(session.id);
    let token = edge
        .signer
        .sign_session(&session.user, &claims, session.expires_at)
        .map_err(ApiError::internal)?;
    // The session started with this request: its cookies live as long as it.
    let lifetime = (session.expires_at - session.created_at)
        .to_std()
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    set_session_cookies(
        &mut headers,
        &token,
        &claims,
        lifetime,
        request_is_https(parts),
    )
    .map_err(ApiError::internal)?;
    Ok(match body {
        Some(body) => (status, headers, Json(body)).into_response(),
        None => (status, headers).into_response(),
    })
}

/// Creates an account and signs it in.
#[utoipa::path(
    post,
    path = "/api/v1/auth/signup",
    tag = "accounts",
    security(()),
    request_body = Credentials,
    responses(
        (status = 201, description = "Signed up and in", body = SignedIn,
            headers(("Set-Cookie" = String, description = "`signal_session` (the session's JWT, HttpOnly, SameSite=Strict) and `signal_csrf` (the token to echo in `X-CSRF-Token`); Secure over HTTPS"))),
        (status = 404, description = "Accounts are switched off", body = signal_web::ErrorBody),
        (status = 409, description = "The email has an account", body = signal_web::ErrorBody),
        (status = 422, description = "`field` names `email` or `password` (too short, too weak)", body = signal_web::ErrorBody),
    )
)]
async fn sign_up(
    State(state): State<AlertState>,
    address: ClientAddress,
    parts: Parts,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let edge = edge(&state)?;
    refuse_cross_site(&parts.headers)?;
    let session = edge
        .accounts
        .sign_up(
            &credentials.email,
            &credentials.password,
            &client(&parts, address),
            chrono::Utc::now(),
        )
        .await?;
    let body = SignedIn {
        email: session.user.to_string(),
    };
    with_session_cookies(edge, &parts, &session, StatusCode::CREATED, Some(body))
}

/// Signs in.
#[utoipa::path(
    post,
    path = "/api/v1/auth/signin",
    tag = "accounts",
    security(()),
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in", body = SignedIn,
            headers(("Set-Cookie" = String, description = "`signal_session` (the session's JWT, HttpOnly, SameSite=Strict) and `signal_csrf` (the token to echo in `X-CSRF-Token`); Secure over HTTPS"))),
        (status = 401, description = "Wrong email or password (the same answer for both)", body = signal_web::ErrorBody),
        (status = 404, description = "Accounts are switched off", body = signal_web::ErrorBody),
        (status = 429, description = "The account or the address is out of attempts", body = signal_web::ErrorBody),
    )
)]
async fn sign_in(
    State(state): State<AlertState>,
    address: ClientAddress,
    parts: Parts,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let edge = edge(&state)?;
    refuse_cross_site(&parts.headers)?;
    let now = chrono::Utc::now();
    let session = edge
        .accounts
        .sign_in(
            &credentials.email,
            &credentials.password,
            &client(&parts, address),
            now,
        )
        .await?;
    let body = SignedIn {
        email: session.user.to_string(),
    };
    with_session_cookies(edge, &parts, &session, StatusCode::OK, Some(body))
}

/// Ends the caller's session and removes its cookies. Signing out with a session that is already
/// invalid (expired, ended) still removes the cookies; a request that fails the CSRF checks
/// changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/auth/signout",
    tag = "accounts",
    security(()),
    responses(
        (status = 204, description = "Signed out; the cookies are cleared"),
        (status = 403, description = "A cookie request without its CSRF token, or from another site", body = signal_web::ErrorBody),
    )
)]
async fn sign_out(
    State(state): State<AlertState>,
    caller: Result<Caller, ApiError>,
    parts: Parts,
) -> Result<Response, ApiError> {
    match caller {
        Ok(Caller {
            user,
            session: Some(session),
        }) => {
            if let Some(edge) = state.accounts.as_deref() {
                edge.accounts
                    .sign_out(&user, session, chrono::Utc::now())
                    .await?;
            }
        }
        Ok(_) => {}
        Err(invalid) if invalid.kind() == FailureKind::Unauthenticated => {}
        Err(refused) => return Err(refused),
    }
    let mut headers = HeaderMap::new();
    clear_session_cookies(&mut headers, request_is_https(&parts)).map_err(ApiError::internal)?;
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the password, ends every session of the account, and starts a new one for this
/// browser (204 with fresh cookies).
#[utoipa::path(
    post,
    path = "/api/v1/auth/password",
    tag = "accounts",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; a new session",
            headers(("Set-Cookie" = String, description = "`signal_session` (the session's JWT, HttpOnly, SameSite=Strict) and `signal_csrf` (the token to echo in `X-CSRF-Token`); Secure over HTTPS"))),
        (status = 404, description = "Accounts are switched off", body = signal_web::ErrorBody),
        (status = 422, description = "`field` names `currentPassword` (wrong) or `newPassword` (too weak)", body = signal_web::ErrorBody),
    )
)]
async fn change_password(
    State(state): State<AlertState>,
    caller: Caller,
    address: ClientAddress,
    parts: Parts,
    ApiJson(change): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    let edge = edge(&state)?;
    let session = edge
        .accounts
        .change_password(
            &caller.user,
            &change.current_password,
            &change.new_password,
            &client(&parts, address),
            chrono::Utc::now(),
        )
        .await?;
    with_session_cookies(edge, &parts, &session, StatusCode::NO_CONTENT, None)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CurrentSession {
    email: String,
    /// Whether this deployment has built-in accounts (sign-up, password change).
    accounts: bool,
}

/// Who the caller is.
#[utoipa::path(
    get,
    path = "/api/v1/auth/session",
    tag = "accounts",
    responses((status = 200, body = CurrentSession))
)]
async fn current_session(State(state): State<AlertState>, caller: Caller) -> Json<CurrentSession> {
    Json(CurrentSession {
        email: caller.user.to_string(),
        accounts: state.accounts.is_some(),
    })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Session)]
struct SessionView {
    id: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_agent: Option<String>,
    /// The session this request was made with.
    current: bool,
}

/// The account's active sessions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "accounts",
    responses(
        (status = 200, body = Vec<SessionView>),
        (status = 404, description = "Accounts are switched off", body = signal_web::ErrorBody),
    )
)]
async fn sessions(
    State(state): State<AlertState>,
    caller: Caller,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let edge = edge(&state)?;
    let sessions = edge
        .accounts
        .sessions(&caller.user, chrono::Utc::now())
        .await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionView {
                id: s.id.to_string(),
                created_at: s.created_at,
                expires_at: s.expires_at,
                user_agent: s.user_agent,
                current: caller.session == Some(s.id),
            })
            .collect(),
    ))
}

/// Ends one of the caller's sessions (signs another device out).
#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{id}",
    tag = "accounts",
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "Not one of the caller's sessions", body = signal_web::ErrorBody),
    )
)]
async fn end_session(
    State(state): State<AlertState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let edge = edge(&state)?;
    let session: SessionId = id.parse().map_err(|_| AccountError::NoSuchSession)?;
    edge.accounts
        .end_session(&caller.user, session, chrono::Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
