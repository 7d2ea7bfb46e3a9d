//! The services' OpenAPI 3.1 documents: what every document shares (the one error body, how a
//! caller authenticates, the answer any route may give), and the routes that serve a document as
//! `/openapi.json` with interactive docs at `/docs`.
//!
//! A route documents itself with `#[utoipa::path]` on its handler and is registered with
//! `utoipa_axum::routes!`, so no route is served without being in its service's document. An
//! operation that names no `security` needs a token, or the session cookie (with the CSRF header
//! when it changes something); a public one says `security(())`; sockets list their three ways.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::{
    Components, ContentBuilder, OpenApi, Ref, RefOr, Response as ApiResponse, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ErrorBody;

/// `Authorization: Bearer <jwt>`.
pub const BEARER: &str = "bearer";
/// The `signal_session` cookie of a browser signed in with a built-in account.
pub const SESSION: &str = "session";
/// `X-CSRF-Token`: with the session cookie, on every request that changes something.
pub const CSRF: &str = "csrf";
/// `?token=<jwt>`, on socket routes only (browsers cannot set headers on a WebSocket).
pub const SOCKET_TOKEN: &str = "token";

/// The shared response every operation refers to for its errors.
const ERROR_RESPONSE: &str = "Error";

/// Completes a service's document: the security schemes and who needs which, the error body as
/// every operation's `default` answer, and a server relative to where the document is served (its
/// own port, or under `/asset-api` or `/alert-api` on the one origin), so the interactive docs
/// call the service they describe.
pub fn complete(mut api: OpenApi) -> OpenApi {
    api.servers = Some(vec![ServerBuilder::new()
        .url(".")
        .description(Some(
            "the service this document came from: its own port, or its prefix on the one origin",
        ))
        .build()]);
    let components = api.components.get_or_insert_with(Components::new);
    add_security_schemes(components);
    components
        .schemas
        .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    components
        .responses
        .insert(ERROR_RESPONSE.to_string(), RefOr::T(error_response()));
    for item in api.paths.paths.values_mut() {
        for (method, operation) in operations(item) {
            if operation.security.is_none() {
                operation.security = Some(signed_in(method));
            }
            operation
                .responses
                .responses
                .entry("default".to_string())
                .or_insert_with(|| Ref::from_response_name(ERROR_RESPONSE).into());
        }
    }
    api
}

fn add_security_schemes(components: &mut Components) {
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A JWT signed with the deployment's secret; the user is its `sub` claim (or \
                     the claim `auth.user_claim` names). `dontouch-signal token <user>` issues \
                     one.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::session::SESSION_COOKIE,
            "The session cookie set by sign-up and sign-in (built-in accounts). A request it \
             authenticates that changes something must also send `X-CSRF-Token`; one another \
             site started (`Sec-Fetch-Site: cross-site` or `same-site`) is refused.",
        ))),
    );
    components.add_security_scheme(
        CSRF,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-CSRF-Token",
            "The value of the `signal_csrf` cookie, echoed: needed with the session cookie on \
             every request but GET, HEAD and OPTIONS.",
        ))),
    );
    components.add_security_scheme(
        SOCKET_TOKEN,
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "token",
            "The JWT in the query string: socket routes only.",
        ))),
    );
}

/// Who may call an operation that says nothing: a bearer token, or the session cookie (with the
/// CSRF header when the method changes something).
fn signed_in(method: HttpMethod) -> Vec<SecurityRequirement> {
    let cookie = match method {
        HttpMethod::Get | HttpMethod::Head | HttpMethod::Options => {
            SecurityRequirement::new(SESSION, Vec::<String>::new())
        }
        _ => {
            SecurityRequirement::new(SESSION, Vec::<String>::new()).add(CSRF, Vec::<String>::new())
        }
    };
    vec![
        SecurityRequirement::new(BEARER, Vec::<String>::new()),
        cookie,
    ]
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
        (HttpMethod::Options, item.options.as_mut()),
        (HttpMethod::Head, item.head.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Trace, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation?)))
}

fn error_response() -> ApiResponse {
    ResponseBuilder::new()
        .description(
            "An error, whoever answered it (the route, an unknown path or method, a limit): its \
             `error` code follows from the status (`bad_request` 400, `unauthorized` 401, \
             `forbidden` 403, `not_found` 404, `method_not_allowed` 405, `request_timeout` 408, \
             `conflict` 409, `payload_too_large` 413, `uri_too_long` 414, `validation` or \
             `limit_reached` 422, `upgrade_required` 426, `rate_limited` 429 with \
             `Retry-After`, `headers_too_large` 431, `internal` 500, `unavailable` 503)",
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .build()
}

/// `GET /openapi.json` (the document) and `/docs` (Swagger UI over it). The UI finds the document
/// by a relative address, so it works on the service's own port and under its prefix on the one
/// origin alike.
pub fn docs_routes(api: &OpenApi) -> Router {
    let document = match serde_json::to_vec(api) {
        Ok(bytes) => axum::body::Bytes::from(bytes),
        // A document is plain data: it always serializes, but a service is not stopped for it.
        Err(error) => {
            tracing::error!(%error, "the OpenAPI document cannot be serialized");
            axum::body::Bytes::new()
        }
    };
    let config = Arc::new(
        utoipa_swagger_ui::Config::new(["../openapi.json"])
            .persist_authorization(true)
            .try_it_out_enabled(true),
    );
    let ui = config.clone();
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    document,
                )
            }),
        )
        // Relative, so `/asset-api/docs` on the one origin stays under its prefix.
        .route("/docs", get(|| async { Redirect::to("docs/") }))
        .route(
            "/docs/",
            get(move || {
                let config = ui.clone();
                async move { ui_file("", config) }
            }),
        )
        .route(
            "/docs/{*file}",
            get(move |Path(file): Path<String>| {
                let config = config.clone();
                async move { ui_file(&file, config) }
            }),
        )
}

fn ui_file(file: &str, config: Arc<utoipa_swagger_ui::Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(file)) => (
            [(header::CONTENT_TYPE, file.content_type)],
            file.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => crate::edge::error_response(
            StatusCode::NOT_FOUND,
            "no such file of the interactive docs",
        ),
        Err(error) => crate::ApiError::internal(error.to_string()).into_response(),
    }
}
