//! One error type for every handler: a kind of failure (which decides the status and the code in
//! the JSON body) and its cause. A client is told what it can act on: the whole cause of a
//! refusal (4xx), and for a failure of the service only that it happened; the cause of a failure
//! is logged with every source under it.
//!
//! Any error that knows its [`FailureKind`] converts with `?` (a use case's refusal, a store that
//! cannot be reached), so a handler maps nothing by hand.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use signal_domain::{ErrorChain, Failure, FailureKind};
use std::fmt;
use std::time::Duration;

/// What caused an [`ApiError`]: a typed error, or a message for the client.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug)]
pub struct ApiError {
    kind: FailureKind,
    cause: Cause,
    /// The input field a refusal is about.
    field: Option<String>,
    /// Sent as `Retry-After`.
    retry_after: Option<Duration>,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`, `validation`, `unauthorized`.
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The input field the error is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(kind: FailureKind, cause: impl Into<Cause>) -> Self {
        Self {
            kind,
            cause: cause.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 400: the request cannot be read.
    pub fn malformed(cause: impl Into<Cause>) -> Self {
        Self::new(FailureKind::Malformed, cause)
    }

    /// 401: no verified identity.
    pub fn unauthenticated(cause: impl Into<Cause>) -> Self {
        Self::new(FailureKind::Unauthenticated, cause)
    }

    /// 403: a known caller who may not do this.
    pub fn forbidden(cause: impl Into<Cause>) -> Self {
        Self::new(FailureKind::Forbidden, cause)
    }

    /// 404: nothing the caller may see goes by that name.
    pub fn not_found(cause: impl Into<Cause>) -> Self {
        Self::new(FailureKind::NotFound, cause)
    }

    /// 422: readable, but not acceptable.
    pub fn invalid(cause: impl Into<Cause>) -> Self {
        Self::new(FailureKind::Invalid, cause)
    }

    /// 422 naming the input field at fault.
    pub fn invalid_field(field: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::invalid(cause).with_field(field)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(cause: impl Into<Cause>, retry_after: Duration) -> Self {
        Self::new(FailureKind::RateLimited, cause).with_retry_after(retry_after)
    }

    /// 500: a failure of the service; logged, and not shown.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self::new(FailureKind::Internal, cause)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The input field a refusal is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self.kind {
            FailureKind::Malformed => (StatusCode::BAD_REQUEST, "bad_request"),
            FailureKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthorized"),
            FailureKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            FailureKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            FailureKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            FailureKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            FailureKind::LimitReached => (StatusCode::UNPROCESSABLE_ENTITY, "limit_reached"),
            FailureKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            FailureKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            FailureKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// What the client is told. A refusal's whole cause is the client's to read; of a failure of
    /// the service only what failed (a dependency that cannot serve now) or nothing at all.
    pub fn message(&self) -> String {
        match self.kind {
            FailureKind::Internal => "internal error; it has been logged".to_string(),
            FailureKind::Unavailable => self.cause.to_string(),
            _ => ErrorChain(self.cause.as_ref()).to_string(),
        }
    }
}

/// Any error that knows its kind of failure answers as that kind, its cause kept whole.
impl<E: Failure> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self {
            kind: error.kind(),
            field: error.field().map(str::to_string),
            retry_after: error.retry_after(),
            cause: Box::new(error),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request failed with {}", self.status())
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.cause.as_ref())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match self.kind {
            FailureKind::Internal => {
                tracing::error!(error = %ErrorChain(self.cause.as_ref()), "request failed")
            }
            FailureKind::Unavailable => {
                tracing::warn!(error = %ErrorChain(self.cause.as_ref()), "request refused for now")
            }
            _ => {}
        }
        let body = ErrorBody {
            error: code.to_string(),
            message: crate::limit_message(&self.message()),
            field: self.field,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: a client waiting less would be refused again.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the store cannot be reached")]
    struct Unreachable(#[source] std::io::Error);

    impl Failure for Unreachable {
        fn kind(&self) -> FailureKind {
            FailureKind::Unavailable
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("you have no rule 7")]
    struct NoRule;

    impl Failure for NoRule {
        fn kind(&self) -> FailureKind {
            FailureKind::NotFound
        }
    }

    #[test]
    fn a_refusal_tells_its_cause_and_a_failure_hides_its_detail() {
        let refused = ApiError::from(NoRule);
        assert_eq!(
            refused.status_and_code(),
            (StatusCode::NOT_FOUND, "not_found")
        );
        assert_eq!(refused.message(), "you have no rule 7");

        let down = ApiError::from(Unreachable(std::io::Error::other("10.0.0.5 refused")));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.message(), "the store cannot be reached");

        let broken = ApiError::internal(Unreachable(std::io::Error::other("10.0.0.5")));
        assert!(!broken.message().contains("10.0.0.5"));
        assert!(
            ErrorChain(&broken).to_string().contains("10.0.0.5"),
            "the log keeps the cause"
        );
    }

    #[test]
    fn a_rate_limit_says_when_to_come_back() {
        let response = ApiError::rate_limited("too many sign-ins", Duration::from_millis(1500))
            .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
