//! The HTTP edge every service shares: one error type that maps to JSON responses, extractors
//! whose rejections are JSON too, identity from a JWT, and the health and metrics endpoints.

pub mod auth;
pub mod error;
pub mod extract;
pub mod ops;

pub use auth::{AuthUser, JwtConfig, JwtSigner, JwtVerifier, SocketUser};
pub use error::{ApiError, ErrorBody};
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use ops::{ops_router, Readiness};
