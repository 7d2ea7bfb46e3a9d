//! Identity from a JWT (HS256). The original trusted an `X-Auth-User` header or `?email=` from
//! anyone; here every user route and socket verifies a signed token, and the user is the claim
//! named in configuration (`sub` by default, `email` for the original gateway's tokens).

use crate::error::ApiError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};
use signal_domain::{Failure, FailureKind, UserId, UserIdError};
use std::sync::Arc;

/// Why a request carries no verified identity.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing `Authorization: Bearer <token>` header")]
    MissingHeader,
    #[error("missing token: send `Authorization: Bearer <token>` or `?token=<token>`")]
    MissingToken,
    /// The reason (expired, bad signature, not a JWT) is the client's to know.
    #[error("invalid token: {0}")]
    InvalidToken(jsonwebtoken::errors::Error),
    #[error("the token has no `{0}` claim naming the user")]
    NoUserClaim(String),
    #[error("the token's user claim is not a user id")]
    InvalidUser(#[source] UserIdError),
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

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    user_claim: String,
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        Self {
            key: DecodingKey::from_secret(config.secret.as_bytes()),
            validation,
            user_claim: config.user_claim.clone(),
        }
    }

    pub fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(AuthError::InvalidToken)?;
        let claim = data
            .claims
            .get(&self.user_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::NoUserClaim(self.user_claim.clone()))?;
        UserId::new(claim).map_err(AuthError::InvalidUser)
    }
}

/// Issues tokens with the same secret and claim, for the `token` command and for tests.
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
        let mut claims = Map::new();
        claims.insert(self.user_claim.clone(), Value::from(user.as_str()));
        claims.insert("sub".into(), Value::from(user.as_str()));
        claims.insert("iat".into(), Value::from(now.timestamp()));
        claims.insert("exp".into(), Value::from((now + valid_for).timestamp()));
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
    Header,
    HeaderOrQuery,
}

/// Verifies the caller's token, taken from where `places` allows.
fn caller<S>(parts: &Parts, state: &S, places: TokenPlaces) -> Result<UserId, AuthError>
where
    Arc<JwtVerifier>: FromRef<S>,
{
    let token = match (bearer(parts), places) {
        (Some(token), _) => token.to_string(),
        (None, TokenPlaces::HeaderOrQuery) => query_token(parts).ok_or(AuthError::MissingToken)?,
        (None, TokenPlaces::Header) => return Err(AuthError::MissingHeader),
    };
    Arc::<JwtVerifier>::from_ref(state).verify(&token)
}

/// The verified caller of an HTTP route (`Authorization: Bearer <jwt>`).
pub struct AuthUser(pub UserId);

impl<S> FromRequestParts<S> for AuthUser
where
    Arc<JwtVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(AuthUser(caller(parts, state, TokenPlaces::Header)?))
    }
}

/// The verified caller of a WebSocket. Browsers cannot set headers on a WebSocket, so the token
/// may also come as `?token=<jwt>`.
pub struct SocketUser(pub UserId);

impl<S> FromRequestParts<S> for SocketUser
where
    Arc<JwtVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(SocketUser(caller(
            parts,
            state,
            TokenPlaces::HeaderOrQuery,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(claim: &str) -> JwtConfig {
        JwtConfig {
            secret: "test-secret-of-sufficient-length".into(),
            user_claim: claim.into(),
        }
    }

    #[test]
    fn signed_tokens_verify_and_name_the_user() {
        let user = UserId::new("alice@example.com").unwrap();
        for claim in ["sub", "email"] {
            let token = JwtSigner::new(&config(claim))
                .sign(&user, chrono::Duration::hours(1))
                .unwrap();
            assert_eq!(
                JwtVerifier::new(&config(claim)).verify(&token).unwrap(),
                user
            );
        }
    }

    #[test]
    fn rejects_expired_foreign_and_garbage_tokens() {
        let user = UserId::new("alice").unwrap();
        let expired = JwtSigner::new(&config("sub"))
            .sign(&user, chrono::Duration::hours(-2))
            .unwrap();
        let verifier = JwtVerifier::new(&config("sub"));
        assert!(verifier.verify(&expired).is_err());
        let foreign = JwtSigner::new(&JwtConfig {
            secret: "another-secret".into(),
            user_claim: "sub".into(),
        })
        .sign(&user, chrono::Duration::hours(1))
        .unwrap();
        assert!(verifier.verify(&foreign).is_err());
        assert!(verifier.verify("not-a-token").is_err());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        assert!(!format!("{:?}", config("sub")).contains("test-secret"));
    }
}
