//! The HTTP edge every service shares: one error type that maps to JSON responses, extractors
//! whose rejections are JSON too, identity from a JWT, and the health and metrics endpoints.

pub mod auth;
pub mod error;
pub mod extract;
pub mod ops;

pub use auth::{AuthError, AuthUser, JwtConfig, JwtSigner, JwtVerifier, SocketUser};
pub use error::{ApiError, Cause, ErrorBody};
pub use extract::{ApiJson, ApiPath, ApiQuery, InputRejection};
pub use ops::{ops_router, NotReady, Readiness};
