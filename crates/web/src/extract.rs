//! Axum's stock extractors answer bad input in plain text; these wrap them so every rejection is
//! an [`ApiError`] with a JSON body saying what was wrong.

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use signal_domain::{Failure, FailureKind};
use std::fmt;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(InputRejection))]
pub struct ApiJson<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(InputRejection))]
pub struct ApiQuery<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(InputRejection))]
pub struct ApiPath<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Why a request's body, query string or path could not be taken as what the route expects.
#[derive(Debug)]
pub enum InputRejection {
    Json(JsonRejection),
    Query(QueryRejection),
    Path(PathRejection),
}

impl From<JsonRejection> for InputRejection {
    fn from(rejection: JsonRejection) -> Self {
        InputRejection::Json(rejection)
    }
}

impl From<QueryRejection> for InputRejection {
    fn from(rejection: QueryRejection) -> Self {
        InputRejection::Query(rejection)
    }
}

impl From<PathRejection> for InputRejection {
    fn from(rejection: PathRejection) -> Self {
        InputRejection::Path(rejection)
    }
}

/// Axum's own text: it names the field and what was wrong with it, and is the whole message.
impl fmt::Display for InputRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputRejection::Json(JsonRejection::MissingJsonContentType(_)) => {
                f.write_str("expected a JSON body with Content-Type: application/json")
            }
            InputRejection::Json(rejection) => f.write_str(&rejection.body_text()),
            InputRejection::Query(rejection) => f.write_str(&rejection.body_text()),
            InputRejection::Path(rejection) => f.write_str(&rejection.body_text()),
        }
    }
}

impl std::error::Error for InputRejection {}

impl Failure for InputRejection {
    /// JSON that parses but does not fit the expected shape is refused as invalid; anything
    /// that cannot be read at all is malformed.
    fn kind(&self) -> FailureKind {
        match self {
            InputRejection::Json(JsonRejection::JsonDataError(_)) => FailureKind::Invalid,
            _ => FailureKind::Malformed,
        }
    }
}

impl IntoResponse for InputRejection {
    fn into_response(self) -> Response {
        // A body over the limit is no kind of failure a use case has; the edge answers it.
        if let InputRejection::Json(rejection) = &self {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                return crate::edge::error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is larger than the server accepts",
                );
            }
        }
        ApiError::from(self).into_response()
    }
}
