//! Identity from a JWT (HS256). The original trusted an `X-Auth-User` header or `?email=` from
//! anyone; here every user route and socket verifies a signed token, and the user is the claim
//! named in configuration (`sub` by default, `email` for the original gateway's tokens).
//!
//! A token comes in `Authorization: Bearer`, or, from a browser signed in with a built-in
//! account, in the `signal_session` cookie (see [`crate::session`]); sockets also take
//! `?token=`. A sign-in session's token names its session (`sid`), which must not have ended,
//! and carries the CSRF token the page echoes.

use crate::error::ApiError;
use crate::session::{self, SessionClaims};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};
use signal_accounts::{EndedSessions, SessionId};
use signal_domain::{ErrorChain, Failure, FailureKind, Timestamp, UserId, UserIdError};
use std::sync::Arc;

/// Why a request carries no verified identity.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("sign in, or send `Authorization: Bearer <token>`")]
    MissingHeader,
    #[error("sign in, or send `Authorization: Bearer <token>` or `?token=<token>`")]
    MissingToken,
    /// The reason (expired, bad signature, not a JWT) is the client's to know.
    #[error("invalid token: {0}")]
    InvalidToken(jsonwebtoken::errors::Error),
    #[error("the token has no `{0}` claim naming the user")]
    NoUserClaim(String),
    #[error("the token's user claim is not a user id")]
    InvalidUser(#[source] UserIdError),
    #[error("this session has ended (signed out, or its password was changed): sign in again")]
    SessionEnded,
    #[error("the session cookie does not hold a sign-in session")]
    NotASession,
}

impl Failure for AuthError {
    fn kind(&self) -> FailureKind {
        FailureKind::Unauthenticated
    }
}

/// How tokens are verified. The secret is never printed.
#[derive(Clone, serde::Deserialize)]
pub struct JwtConfig {
    pub secret: String,
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
}

fn default_user_claim() -> String {
    "sub".into()
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &"<redacted>")
            .field("user_claim", &self.user_claim)
            .finish()
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub user: UserId,
    /// Set for the tokens of built-in accounts' sessions.
    pub session: Option<SessionClaims>,
}

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    user_claim: String,
    ended_sessions: Option<EndedSessions>,
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        Self {
            key: DecodingKey::from_secret(config.secret.as_bytes()),
            validation,
            user_claim: config.user_claim.clone(),
            ended_sessions: None,
        }
    }

    /// Refuses the tokens of sessions that ended before their tokens expired.
    pub fn with_ended_sessions(mut self, ended_sessions: EndedSessions) -> Self {
        self.ended_sessions = Some(ended_sessions);
        self
    }

    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(AuthError::InvalidToken)?;
        let claim = data
            .claims
            .get(&self.user_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::NoUserClaim(self.user_claim.clone()))?;
        let user = UserId::new(claim).map_err(AuthError::InvalidUser)?;
        let session = SessionClaims::from_claims(&data.claims);
        if let (Some(session), Some(ended)) = (&session, &self.ended_sessions) {
            refuse_if_ended(ended, session.id).await?;
        }
        Ok(Verified { user, session })
    }
}

async fn refuse_if_ended(ended: &EndedSessions, id: SessionId) -> Result<(), AuthError> {
    match ended.has_ended(id).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(AuthError::SessionEnded),
        // Availability over a narrow risk: while the shared cache cannot be read, a session that
        // was ended early keeps working until it is readable again (its token is still signed and
        // unexpired; ending sessions guards against stolen cookies).
        Err(e) => {
            tracing::warn!(
                error = %ErrorChain(&e),
                "could not check whether a session has ended; accepting it"
            );
            Ok(())
        }
    }
}

/// Issues tokens with the same secret and claim: the `token` command, built-in accounts' sessions
/// and tests.
pub struct JwtSigner {
    key: EncodingKey,
    user_claim: String,
}

impl JwtSigner {
    pub fn new(config: &JwtConfig) -> Self {
        Self {
            key: EncodingKey::from_secret(config.secret.as_bytes()),
            user_claim: config.user_claim.clone(),
        }
    }

    pub fn sign(
        &self,
        user: &UserId,
        valid_for: chrono::Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now();
        self.encode(self.claims(user, now, now + valid_for))
    }

    /// The token of a sign-in session, valid until the session expires.
    pub fn sign_session(
        &self,
        user: &UserId,
        session: &SessionClaims,
        expires_at: Timestamp,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut claims = self.claims(user, chrono::Utc::now(), expires_at);
        session.add_to(&mut claims);
        self.encode(claims)
    }

    fn claims(&self, user: &UserId, now: Timestamp, expires_at: Timestamp) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert(self.user_claim.clone(), Value::from(user.as_str()));
        claims.insert("sub".into(), Value::from(user.as_str()));
        claims.insert("iat".into(), Value::from(now.timestamp()));
        claims.insert("exp".into(), Value::from(expires_at.timestamp()));
        claims
    }

    fn encode(&self, claims: Map<String, Value>) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn query_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find_map(|(key, value)| (key == "token").then(|| value.into_owned()))
}

/// Where a request may carry its token.
#[derive(Clone, Copy)]
enum TokenPlaces {
    HeaderOrCookie,
    /// Sockets: browsers cannot set headers on a WebSocket.
    HeaderQueryOrCookie,
}

/// Verifies the caller's token, taken from where `places` allows: an explicit token (header, or
/// query for sockets) before the ambient cookie. A cookie-carried token must pass the CSRF
/// checks, as a browser sends cookies on requests other sites trigger too.
async fn caller<S>(parts: &Parts, state: &S, places: TokenPlaces) -> Result<Verified, ApiError>
where
    Arc<JwtVerifier>: FromRef<S>,
{
    let verifier = Arc::<JwtVerifier>::from_ref(state);
    if let Some(token) = bearer(parts) {
        return Ok(verifier.verify(token).await?);
    }
    if let TokenPlaces::HeaderQueryOrCookie = places {
        if let Some(token) = query_token(parts) {
            return Ok(verifier.verify(&token).await?);
        }
    }
    if let Some(token) = session::session_cookie(&parts.headers) {
        let verified = verifier.verify(&token).await?;
        let claims = verified.session.as_ref().ok_or(AuthError::NotASession)?;
        session::check_cookie_request(parts, claims)?;
        return Ok(verified);
    }
    Err(match places {
        TokenPlaces::HeaderOrCookie => AuthError::MissingHeader,
        TokenPlaces::HeaderQueryOrCookie => AuthError::MissingToken,
    }
    .into())
}

/// The verified caller of an HTTP route, with their sign-in session when the token is one's.
pub struct Caller {
    pub user: UserId,
    pub session: Option<SessionId>,
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<JwtVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verified = caller(parts, state, TokenPlaces::HeaderOrCookie).await?;
        Ok(Caller {
            user: verified.user,
            session: verified.session.map(|s| s.id),
        })
    }
}

/// The verified caller of an HTTP route (`Authorization: Bearer <jwt>` or the session cookie).
pub struct AuthUser(pub UserId);

impl<S> FromRequestParts<S> for AuthUser
where
    Arc<JwtVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verified = caller(parts, state, TokenPlaces::HeaderOrCookie).await?;
        Ok(AuthUser(verified.user))
    }
}

/// The verified caller of a WebSocket. Browsers cannot set headers on a WebSocket, so the token
/// may also come as `?token=<jwt>`, or in the session cookie.
pub struct SocketUser(pub UserId);

impl<S> FromRequestParts<S> for SocketUser
where
    Arc<JwtVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verified = caller(parts, state, TokenPlaces::HeaderQueryOrCookie).await?;
        Ok(SocketUser(verified.user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_memory::MemorySharedCache;

    fn config(claim: &str) -> JwtConfig {
        JwtConfig {
            secret: "test-secret-of-sufficient-length".into(),
            user_claim: claim.into(),
        }
    }

    #[tokio::test]
    async fn signed_tokens_verify_and_name_the_user() {
        let user = UserId::new("alice@example.com").unwrap();
        for claim in ["sub", "email"] {
            let token = JwtSigner::new(&config(claim))
                .sign(&user, chrono::Duration::hours(1))
                .unwrap();
            let verified = JwtVerifier::new(&config(claim))
                .verify(&token)
                .await
                .unwrap();
            assert_eq!(verified.user, user);
            assert_eq!(verified.session, None);
        }
    }

    #[tokio::test]
    async fn rejects_expired_foreign_and_garbage_tokens() {
        let user = UserId::new("alice").unwrap();
        let expired = JwtSigner::new(&config("sub"))
            .sign(&user, chrono::Duration::hours(-2))
            .unwrap();
        let verifier = JwtVerifier::new(&config("sub"));
        assert!(verifier.verify(&expired).await.is_err());
        let foreign = JwtSigner::new(&JwtConfig {
            secret: "another-secret".into(),
            user_claim: "sub".into(),
        })
        .sign(&user, chrono::Duration::hours(1))
        .unwrap();
        assert!(verifier.verify(&foreign).await.is_err());
        assert!(verifier.verify("not-a-token").await.is_err());
    }

    #[tokio::test]
    async fn a_session_token_is_refused_once_its_session_ended() {
        let ended = EndedSessions::new(Arc::new(MemorySharedCache::default()));
        let verifier = JwtVerifier::new(&config("sub")).with_ended_sessions(ended.clone());
        let user = UserId::new("alice@example.com").unwrap();
        let session = SessionClaims::new(SessionId::random());
        let expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
        let token = JwtSigner::new(&config("sub"))
            .sign_session(&user, &session, expires_at)
            .unwrap();
        let verified = verifier.verify(&token).await.unwrap();
        assert_eq!(verified.session.as_ref(), Some(&session));
        ended
            .record(session.id, expires_at, chrono::Utc::now())
            .await
            .unwrap();
        assert!(matches!(
            verifier.verify(&token).await,
            Err(AuthError::SessionEnded)
        ));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        assert!(!format!("{:?}", config("sub")).contains("test-secret"));
    }
}
