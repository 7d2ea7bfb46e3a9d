//! Identity from a JWT. The original trusted an `X-Auth-User` header or `?email=` from anyone;
//! here every user route and socket verifies a signed token, and the user is the claim named in
//! configuration (`sub` by default, `email` for the original gateway's tokens). Tokens are HS256
//! with the shared secret, or RS256/ES256 signed by one of an identity provider's keys
//! ([`crate::jwks`]); `exp` and `nbf` are checked with a leeway, the issuer and audience when
//! configured. A user's requests are counted against their rate once they are identified. Only
//! in gateway mode, from the gateway's addresses, is the user the one the gateway names
//! ([`crate::gateway`]).
//!
//! A token comes in `Authorization: Bearer`, or, from a browser signed in with a built-in
//! account, in the `signal_session` cookie (see [`crate::session`]); sockets also take
//! `?token=`. A sign-in session's token names its session (`sid`), which must not have ended,
//! and carries the CSRF token the page echoes.

use crate::error::ApiError;
use crate::gateway::GatewayTrust;
use crate::jwks::{Jwks, KeyMiss};
use crate::session::{self, SessionClaims};
use crate::socket::SocketIdentity;
use crate::user_rate::{UserRateLimit, UserRateLimited};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};
use signal_accounts::{EndedSessions, SessionId};
use signal_domain::{ErrorChain, Failure, FailureKind, Timestamp, UserId, UserIdError};
use std::sync::Arc;
use std::time::Duration;

/// Why a request carries no verified identity.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("sign in, or send `Authorization: Bearer <token>`")]
    MissingHeader,
    #[error("sign in, or send `Authorization: Bearer <token>` or `?token=<token>`")]
    MissingToken,
    /// The reason (expired, not yet valid, bad signature, wrong issuer or audience, not a JWT)
    /// is the client's to know.
    #[error("invalid token: {0}")]
    InvalidToken(jsonwebtoken::errors::Error),
    #[error("tokens signed with {0:?} are not accepted here")]
    UnacceptedAlgorithm(Algorithm),
    #[error("the token's signing key is not one of the identity provider's keys{}", kid_suffix(.0))]
    UnknownKey(Option<String>),
    /// The identity provider's keys cannot be fetched: the token may well be good.
    #[error("the identity provider's signing keys cannot be read now; retry shortly")]
    KeysUnavailable,
    #[error("the token has no `{0}` claim naming the user")]
    NoUserClaim(String),
    #[error("the token's user claim is not a user id")]
    InvalidUser(#[source] UserIdError),
    #[error("this session has ended (signed out, or its password was changed): sign in again")]
    SessionEnded,
    #[error("the session cookie does not hold a sign-in session")]
    NotASession,
}

fn kid_suffix(kid: &Option<String>) -> String {
    match kid {
        Some(kid) => format!(" (kid `{}`)", signal_domain::abbreviate(kid)),
        None => " (the token names none, with `kid`, and the provider has several)".to_string(),
    }
}

impl Failure for AuthError {
    fn kind(&self) -> FailureKind {
        match self {
            Self::KeysUnavailable => FailureKind::Unavailable,
            _ => FailureKind::Unauthenticated,
        }
    }
}

/// How tokens are signed and verified. The secret is never printed.
#[derive(Clone)]
pub struct JwtConfig {
    /// The HS256 secret: this system's own tokens (the `token` command, built-in accounts'
    /// sessions) and those of a gateway that shares it.
    pub secret: String,
    /// The claim that names the user.
    pub user_claim: String,
    /// When set, every token must name this issuer (`iss`); this system's tokens name it.
    pub issuer: Option<String>,
    /// When set, every token must name one of these audiences (`aud`); this system's tokens name
    /// the first.
    pub audience: Vec<String>,
    /// How late after `exp`, and how early before `nbf`, a token is still taken: the clocks of
    /// the issuer and this service differ a little.
    pub leeway: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            secret: String::new(),
            user_claim: "sub".into(),
            issuer: None,
            audience: Vec::new(),
            leeway: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &"<redacted>")
            .field("user_claim", &self.user_claim)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub user: UserId,
    /// Set for the tokens of built-in accounts' sessions.
    pub session: Option<SessionClaims>,
    /// The token's `exp`: a socket opened with it is closed then (plus the leeway).
    pub expires_at: Option<Timestamp>,
}

/// The algorithms a token may be signed with: HS256 with the shared secret, RS256 and ES256
/// with an identity provider's keys.
const ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256];

pub struct JwtVerifier {
    secret: DecodingKey,
    /// One per algorithm of [`ALGORITHMS`], in that order: a token is checked only against the
    /// algorithm its key is for, so a public key can never pass as an HMAC secret.
    validations: Vec<Validation>,
    leeway: Duration,
    user_claim: String,
    jwks: Option<Jwks>,
    ended_sessions: Option<EndedSessions>,
    user_rate: Option<UserRateLimit>,
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig) -> Self {
        let validations = ALGORITHMS
            .iter()
            .map(|algorithm| {
                let mut validation = Validation::new(*algorithm);
                validation.leeway = config.leeway.as_secs();
                validation.validate_nbf = true;
                let mut required = vec!["exp"];
                if let Some(issuer) = &config.issuer {
                    validation.set_issuer(&[issuer]);
                    required.push("iss");
                }
                if config.audience.is_empty() {
                    // A token made for some audience is still taken when none is configured.
                    validation.validate_aud = false;
                } else {
                    validation.set_audience(&config.audience);
                    required.push("aud");
                }
                validation.set_required_spec_claims(&required);
                validation
            })
            .collect();
        Self {
            secret: DecodingKey::from_secret(config.secret.as_bytes()),
            validations,
            leeway: config.leeway,
            user_claim: config.user_claim.clone(),
            jwks: None,
            ended_sessions: None,
            user_rate: None,
        }
    }

    /// Also takes RS256 and ES256 tokens signed by one of the identity provider's keys.
    pub fn with_jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Refuses the tokens of sessions that ended before their tokens expired.
    pub fn with_ended_sessions(mut self, ended_sessions: EndedSessions) -> Self {
        self.ended_sessions = Some(ended_sessions);
        self
    }

    /// Limits each user's request rate on the routes that identify them.
    pub fn with_user_rate_limit(mut self, limit: UserRateLimit) -> Self {
        self.user_rate = Some(limit);
        self
    }

    /// How long after `exp` a token is still taken.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(AuthError::InvalidToken)?;
        let algorithm = header.alg;
        let validation = self
            .validations
            .iter()
            .find(|v| v.algorithms == [algorithm])
            .ok_or(AuthError::UnacceptedAlgorithm(algorithm))?;
        let provider_key;
        let key = match algorithm {
            Algorithm::HS256 => &self.secret,
            _ => {
                let jwks = self
                    .jwks
                    .as_ref()
                    .ok_or(AuthError::UnacceptedAlgorithm(algorithm))?;
                provider_key = jwks.key(header.kid.as_deref(), algorithm).await.map_err(
                    |miss| match miss {
                        KeyMiss::Unknown => AuthError::UnknownKey(header.kid.clone()),
                        KeyMiss::Unavailable => AuthError::KeysUnavailable,
                    },
                )?;
                provider_key.as_ref()
            }
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
            .map_err(AuthError::InvalidToken)?;
        let claim = data
            .claims
            .get(&self.user_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::NoUserClaim(self.user_claim.clone()))?;
        let user = UserId::new(claim).map_err(AuthError::InvalidUser)?;
        // Sign-in sessions are this system's own: an identity provider's token may carry a `sid`
        // of its own, which names none of ours.
        let session = match algorithm {
            Algorithm::HS256 => SessionClaims::from_claims(&data.claims),
            _ => None,
        };
        if let (Some(session), Some(ended)) = (&session, &self.ended_sessions) {
            refuse_if_ended(ended, session.id).await?;
        }
        let expires_at = data
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .and_then(|exp| chrono::DateTime::from_timestamp(exp, 0));
        Ok(Verified {
            user,
            session,
            expires_at,
        })
    }

    fn check_rate(&self, user: &UserId) -> Result<(), UserRateLimited> {
        match &self.user_rate {
            Some(limit) => limit.check(user),
            None => Ok(()),
        }
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

/// Issues tokens with the same secret, claim, issuer and audience: the `token` command, built-in
/// accounts' sessions and tests.
pub struct JwtSigner {
    key: EncodingKey,
    user_claim: String,
    issuer: Option<String>,
    audience: Option<String>,
}

impl JwtSigner {
    pub fn new(config: &JwtConfig) -> Self {
        Self {
            key: EncodingKey::from_secret(config.secret.as_bytes()),
            user_claim: config.user_claim.clone(),
            issuer: config.issuer.clone(),
            audience: config.audience.first().cloned(),
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
        if let Some(issuer) = &self.issuer {
            claims.insert("iss".into(), Value::from(issuer.as_str()));
        }
        if let Some(audience) = &self.audience {
            claims.insert("aud".into(), Value::from(audience.as_str()));
        }
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

/// Whether the request carries a token anywhere a socket may.
pub(crate) fn carries_token(parts: &Parts) -> bool {
    bearer(parts).is_some()
        || query_token(parts).is_some()
        || session::session_cookie(&parts.headers).is_some()
}

/// Where a request may carry its token.
#[derive(Clone, Copy)]
enum TokenPlaces {
    HeaderOrCookie,
    /// Sockets: browsers cannot set headers on a WebSocket.
    HeaderQueryOrCookie,
}

/// The caller of a request, identified and within their request rate. In gateway mode, a user
/// the gateway names comes first (see [`crate::gateway`]).
async fn caller<S>(parts: &Parts, state: &S, places: TokenPlaces) -> Result<Verified, ApiError>
where
    Arc<JwtVerifier>: FromRef<S>,
    GatewayTrust: FromRef<S>,
{
    let verifier = Arc::<JwtVerifier>::from_ref(state);
    let socket = matches!(places, TokenPlaces::HeaderQueryOrCookie);
    let verified = match GatewayTrust::from_ref(state).user(parts, socket)? {
        // The gateway checked the token it was sent; the services do not see its expiry.
        Some(user) => Verified {
            user,
            session: None,
            expires_at: None,
        },
        None => identify(&verifier, parts, places).await?,
    };
    verifier.check_rate(&verified.user)?;
    Ok(verified)
}

/// Verifies the caller's token, taken from where `places` allows: an explicit token (header, or
/// query for sockets) before the ambient cookie. A cookie-carried token must pass the CSRF
/// checks, as a browser sends cookies on requests other sites trigger too.
async fn identify(
    verifier: &JwtVerifier,
    parts: &Parts,
    places: TokenPlaces,
) -> Result<Verified, ApiError> {
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
    GatewayTrust: FromRef<S>,
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
    GatewayTrust: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verified = caller(parts, state, TokenPlaces::HeaderOrCookie).await?;
        Ok(AuthUser(verified.user))
    }
}

/// The verified caller of a WebSocket. Browsers cannot set headers on a WebSocket, so the token
/// may also come as `?token=<jwt>`, or in the session cookie. The socket's identity lasts as long
/// as the token (see [`SocketIdentity`]).
pub struct SocketUser(pub SocketIdentity);

impl<S> FromRequestParts<S> for SocketUser
where
    Arc<JwtVerifier>: FromRef<S>,
    GatewayTrust: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verified = caller(parts, state, TokenPlaces::HeaderQueryOrCookie).await?;
        Ok(SocketUser(SocketIdentity::new(
            verified.user,
            verified.expires_at,
            Arc::<JwtVerifier>::from_ref(state),
        )))
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
            ..JwtConfig::default()
        }
    }

    /// A token of `claims` (plus `sub`) signed with the test secret.
    fn token_with(claims: serde_json::Value) -> String {
        let mut all = serde_json::json!({"sub": "alice"});
        all.as_object_mut()
            .unwrap()
            .extend(claims.as_object().unwrap().clone());
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &all,
            &EncodingKey::from_secret(config("sub").secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[tokio::test]
    async fn exp_and_nbf_are_checked_with_the_leeway() {
        let verifier = JwtVerifier::new(&JwtConfig {
            leeway: Duration::from_secs(30),
            ..config("sub")
        });
        let strict = JwtVerifier::new(&JwtConfig {
            leeway: Duration::ZERO,
            ..config("sub")
        });
        let just_expired = token_with(serde_json::json!({"exp": now() - 10}));
        assert!(verifier.verify(&just_expired).await.is_ok());
        assert!(strict.verify(&just_expired).await.is_err());
        let from_next_hour =
            token_with(serde_json::json!({"exp": now() + 7200, "nbf": now() + 3600}));
        let refused = verifier.verify(&from_next_hour).await.unwrap_err();
        assert!(refused.to_string().contains("Immature"), "{refused}");
        let from_a_moment = token_with(serde_json::json!({"exp": now() + 7200, "nbf": now() + 10}));
        assert!(verifier.verify(&from_a_moment).await.is_ok());
        assert!(strict.verify(&from_a_moment).await.is_err());
        let without_exp = token_with(serde_json::json!({}));
        assert!(verifier.verify(&without_exp).await.is_err());
        let verified = verifier
            .verify(&token_with(serde_json::json!({"exp": now() + 60})))
            .await
            .unwrap();
        assert_eq!(verified.expires_at.unwrap().timestamp(), now() + 60);
    }

    #[tokio::test]
    async fn issuer_and_audience_are_required_once_configured() {
        let checked = JwtConfig {
            issuer: Some("https://id.example".into()),
            audience: vec!["signal".into(), "signal-staging".into()],
            ..config("sub")
        };
        let verifier = JwtVerifier::new(&checked);
        let exp = now() + 600;
        for (claims, accepted) in [
            (
                serde_json::json!({"exp": exp, "iss": "https://id.example", "aud": "signal"}),
                true,
            ),
            (
                serde_json::json!({"exp": exp, "iss": "https://id.example", "aud": ["x", "signal-staging"]}),
                true,
            ),
            (
                serde_json::json!({"exp": exp, "iss": "https://id.example"}),
                false,
            ),
            (serde_json::json!({"exp": exp, "aud": "signal"}), false),
            (
                serde_json::json!({"exp": exp, "iss": "https://other.example", "aud": "signal"}),
                false,
            ),
            (
                serde_json::json!({"exp": exp, "iss": "https://id.example", "aud": "another-app"}),
                false,
            ),
        ] {
            let outcome = verifier.verify(&token_with(claims.clone())).await;
            assert_eq!(outcome.is_ok(), accepted, "{claims}: {outcome:?}");
        }
        // This system's own tokens name the issuer and audience.
        let own = JwtSigner::new(&checked)
            .sign(&UserId::new("alice").unwrap(), chrono::Duration::hours(1))
            .unwrap();
        assert!(verifier.verify(&own).await.is_ok());
        // Without an audience configured, a token made for one is still taken.
        let unchecked = JwtVerifier::new(&config("sub"));
        let with_audience = token_with(serde_json::json!({"exp": exp, "aud": "signal"}));
        assert!(unchecked.verify(&with_audience).await.is_ok());
    }

    #[tokio::test]
    async fn other_algorithms_are_refused() {
        let verifier = JwtVerifier::new(&config("sub"));
        let claims = serde_json::json!({"sub": "alice", "exp": now() + 600});
        let key = EncodingKey::from_secret(config("sub").secret.as_bytes());
        let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &key).unwrap();
        assert!(matches!(
            verifier.verify(&hs512).await,
            Err(AuthError::UnacceptedAlgorithm(Algorithm::HS512))
        ));
        // RS256 without an identity provider configured: not taken, and nothing is fetched.
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"RS256","typ":"JWT"}"#,
        );
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            claims.to_string(),
        );
        let rs256 = format!("{header}.{payload}.c2ln");
        assert!(matches!(
            verifier.verify(&rs256).await,
            Err(AuthError::UnacceptedAlgorithm(Algorithm::RS256))
        ));
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
            ..JwtConfig::default()
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
