//! The HTTP edge every service shares: one error type that maps to JSON responses, extractors
//! whose rejections are JSON too, identity from a JWT (header, socket query or sign-in session
//! cookie), the client's address, and the health and metrics endpoints.

pub mod auth;
pub mod client;
pub mod error;
pub mod extract;
pub mod ops;
pub mod session;

pub use auth::{
    AuthError, AuthUser, Caller, JwtConfig, JwtSigner, JwtVerifier, SocketUser, Verified,
};
pub use client::{ClientAddress, TrustedProxies};
pub use error::{ApiError, Cause, ErrorBody};
pub use extract::{ApiJson, ApiPath, ApiQuery, InputRejection};
pub use ops::{ops_router, NotReady, Readiness};
pub use session::{CookieRefusal, SessionClaims};
