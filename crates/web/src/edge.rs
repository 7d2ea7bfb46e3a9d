//! Every error the services answer is JSON, whoever produced it: a handler ([`ApiError`]), a
//! route that does not exist (404), a method a route does not have (405), a layer (the body
//! limit's 413, the rate limiter's 429), an extractor that answers in plain text. The server
//! answers the few errors hyper writes by itself in the same shape (see `signal-runtime`).

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::error::ErrorBody;

/// The machine-readable `error` code of a status: stable, documented in the OpenAPI document.
pub fn error_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "validation",
        StatusCode::UPGRADE_REQUIRED => "upgrade_required",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::NOT_IMPLEMENTED => "not_implemented",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::HTTP_VERSION_NOT_SUPPORTED => "http_version_not_supported",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// The JSON error body of `status`, serialized.
pub fn error_json(status: StatusCode, message: &str) -> String {
    let body = ErrorBody {
        error: error_code(status).to_string(),
        message: crate::limit_message(message),
        field: None,
    };
    serde_json::to_string(&body)
        .unwrap_or_else(|_| format!(r#"{{"error":"{}","message":"error"}}"#, error_code(status)))
}

/// A JSON error response.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(error_json(status, message)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Adds JSON answers for unknown routes and unsupported methods to `router`. Call it before
/// layering, so the layers see these answers too.
pub fn with_json_fallbacks(router: Router) -> Router {
    router
        .fallback(no_such_route)
        .method_not_allowed_fallback(no_such_method)
}

async fn no_such_route(method: Method, uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        &format!(
            "no route for {method} {}; see /openapi.json for the API",
            signal_domain::abbreviate(uri.path())
        ),
    )
}

async fn no_such_method(method: Method, uri: Uri) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "{} does not accept {method}; the Allow header lists what it accepts",
            signal_domain::abbreviate(uri.path())
        ),
    )
}

/// The largest plain-text error body that is kept as the JSON message (prefix only).
const PLAIN_ERROR_BODY_LIMIT: usize = 4096;

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"))
}

/// An error status with a body that is not JSON (an extractor's plain text, a layer's empty
/// body) becomes the JSON error of that status; headers such as `Allow` and `Retry-After` stay.
/// Use it with `axum::middleware::map_response`, outside every layer that can answer by itself.
pub async fn into_json_error(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, PLAIN_ERROR_BODY_LIMIT)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty());
    let message = text.unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string()
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(error_json(status, &message)))
}

impl IntoResponse for ErrorBody {
    fn into_response(self) -> Response {
        axum::Json(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn call(router: Router, method: Method, uri: &str) -> (StatusCode, serde_json::Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        assert!(is_json(&response), "{status} is not JSON");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn app() -> Router {
        with_json_fallbacks(Router::new().route("/thing", get(|| async { "ok" })).route(
            "/plain",
            get(|| async { (StatusCode::BAD_REQUEST, "plain words") }),
        ))
        .layer(axum::middleware::map_response(into_json_error))
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_json() {
        let (status, body) = call(app(), Method::GET, "/nowhere").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
        let (status, body) = call(app(), Method::DELETE, "/thing").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"], "method_not_allowed");
    }

    #[tokio::test]
    async fn plain_text_errors_become_json_with_their_words() {
        let (status, body) = call(app(), Method::GET, "/plain").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "plain words");
    }
}
