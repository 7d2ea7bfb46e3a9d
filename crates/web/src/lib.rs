//! The HTTP edge every service shares: one error type that maps to JSON responses, extractors
//! whose rejections are JSON too, identity from a JWT (header, socket query or sign-in session
//! cookie; HS256, or an identity provider's keys, or in gateway mode the gateway in front) with a
//! request rate per user, the client's address, JSON for every error status, socket limits and
//! token expiry, and the health and metrics endpoints.

pub mod auth;
pub mod client;
pub mod edge;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod jwks;
pub mod openapi;
pub mod ops;
pub mod session;
pub mod socket;
pub mod user_rate;

pub use auth::{
    AuthError, AuthUser, Caller, JwtConfig, JwtSigner, JwtVerifier, SocketUser, Verified,
};
pub use client::{ClientAddress, TrustedProxies};
pub use error::{ApiError, Cause, ErrorBody};
pub use extract::{ApiJson, ApiPath, ApiQuery, InputRejection};
pub use gateway::{GatewayConfig, GatewayConfigError, GatewayTrust, SocketViewer};
pub use jwks::{Jwks, JwksConfig, JwksError};
pub use ops::{ops_router, Check, Dependency, Readiness, Report, TaskRunning};
pub use session::{CookieRefusal, SessionClaims};
pub use socket::{ConnectionSocket, SocketIdentity, SocketLimits, SocketUpgrade};
pub use user_rate::{UserRateLimit, UserRateLimited};

/// The longest error message a response carries, in characters. Messages quote input only as
/// short prefixes; this bounds whatever else (a serde message quoting a value) could grow.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// `message`, cut to [`MAX_MESSAGE_CHARS`].
pub fn limit_message(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message.to_string(),
        Some((end, _)) => format!("{}…", &message[..end]),
    }
}
