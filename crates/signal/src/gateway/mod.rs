//! The one origin of the all-in-one binary (port 8080 by default): the web app, and the two
//! services' routes and sockets by the routing table, handed to their routers inside the
//! process (no HTTP hop). The services keep their own ports for their existing clients. In the
//! production topology a reverse proxy does the same job from the same table.

mod app_files;
mod routes;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use signal_web::ApiError;
use std::sync::Arc;
use tower::ServiceExt;

pub use app_files::AppFiles;
pub use routes::{Route, RouteTable, RouteTableError, Upstream};

/// The routers of the two services, as they serve their own ports.
pub struct Upstreams {
    pub asset: Router,
    pub alert: Router,
}

struct Gateway {
    table: RouteTable,
    upstreams: Upstreams,
    app: AppFiles,
}

/// The gateway's router: every request goes to a service or to the app.
pub fn router(table: RouteTable, upstreams: Upstreams, app: AppFiles) -> Router {
    Router::new()
        .fallback(dispatch)
        .with_state(Arc::new(Gateway {
            table,
            upstreams,
            app,
        }))
}

async fn dispatch(State(gateway): State<Arc<Gateway>>, request: Request<Body>) -> Response {
    let Some(route) = gateway.table.route(request.uri().path()) else {
        return gateway.app.serve(request).await;
    };
    let upstream = match route.upstream {
        Upstream::Asset => gateway.upstreams.asset.clone(),
        Upstream::Alert => gateway.upstreams.alert.clone(),
        Upstream::Nowhere => {
            return ApiError::not_found(format!("no API route {}", request.uri().path()))
                .into_response()
        }
    };
    let request = if route.strip {
        match strip(route, request) {
            Ok(request) => request,
            Err(e) => return e.into_response(),
        }
    } else {
        request
    };
    // A router answers every request (its error type is `Infallible`).
    match upstream.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The request as the service sees it under a stripped route: `/asset-api/docs?x` -> `/docs?x`.
fn strip(route: &Route, request: Request<Body>) -> Result<Request<Body>, ApiError> {
    let (mut parts, body) = request.into_parts();
    let path = route.forwarded_path(parts.uri.path());
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    parts.uri = Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| ApiError::malformed(format!("invalid path: {e}")))?;
    Ok(Request::from_parts(parts, body))
}
