//! The request rate of one client address (tower_governor over governor's GCRA). Users have a
//! limit of their own, checked where they are identified (`signal-web`'s identity).

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use super::admission::AddressKey;
use crate::settings::HttpSettings;
use signal_web::{ClientAddress, TrustedProxies};

/// How often addresses that have been quiet long enough to be back at a full burst are
/// forgotten, so the limiter's memory follows the clients of the last minute, not of all time.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// Keys each request on its client's address: the peer's, or behind trusted proxies the one
/// they forwarded.
#[derive(Clone)]
pub(crate) struct ClientKey(pub TrustedProxies);

impl KeyExtractor for ClientKey {
    type Key = AddressKey;

    fn extract<T>(&self, request: &Request<T>) -> Result<AddressKey, GovernorError> {
        let ConnectInfo(peer) = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .ok_or(GovernorError::UnableToExtractKey)?;
        let ClientAddress(client) = ClientAddress::behind(peer.ip(), request.headers(), &self.0);
        Ok(AddressKey::of(client))
    }
}

pub(crate) type PerAddressLimit =
    GovernorLayer<ClientKey, governor::middleware::NoOpMiddleware, Body>;

/// The per-address limit the settings ask for; None when it is off.
pub(crate) fn per_address(
    http: &HttpSettings,
    trusted: TrustedProxies,
    shutdown: CancellationToken,
) -> Option<PerAddressLimit> {
    if http.requests_per_second_per_address == 0 {
        return None;
    }
    let config = GovernorConfigBuilder::default()
        .key_extractor(ClientKey(trusted))
        .period(Duration::from_secs(1) / http.requests_per_second_per_address)
        .burst_size(http.burst_per_address.max(1))
        .finish()?;
    let limiter = config.limiter().clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(FORGET_EVERY);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
                () = shutdown.cancelled() => break,
            }
        }
    });
    Some(GovernorLayer::new(config).error_handler(too_many_requests))
}

fn too_many_requests(error: GovernorError) -> Response<Body> {
    let (status, message, wait) = match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            // governor rounds the wait down; a client that waits that long may be refused again.
            let wait = wait_time + 1;
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many requests from your address; retry in {wait} s"),
                Some(wait),
            )
        }
        GovernorError::UnableToExtractKey | GovernorError::Other { .. } => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request's client address is unknown".to_string(),
            None,
        ),
    };
    let mut response = signal_web::edge::error_response(status, &message);
    if let Some(wait) = wait {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    response
}
