//! Gateway mode, for services on a private network that only a gateway verifying tokens can
//! reach (the original system's Spring Cloud Gateway): the gateway checks the caller's token and
//! names the user in a header (`X-Auth-User: <email>`), and the services take that name, as the
//! original services did. That lets the original frontend work unchanged behind its gateway: it
//! sends `Authorization: <jwt>` without `Bearer` (for the gateway, not for the services), opens
//! the quote socket with no credentials and the alert socket with `?email=<email>`.
//!
//! Off by default. When on, the header and `?email=` are believed only on requests whose peer is
//! one of the configured gateway addresses; a request from anywhere else that names a user that
//! way is refused, so nobody who reaches a service directly can speak for another user. Tokens
//! (header, cookie, `?token=`) keep working from everywhere.
//!
//! `?email=` carries no proof: a gateway that passes the alert socket through without checking
//! it lets anyone who can reach the gateway read anyone's alerts, as the original did.

use crate::auth::{carries_token, JwtVerifier, SocketUser};
use crate::client::TrustedProxies;
use crate::error::ApiError;
use crate::socket::SocketIdentity;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::header::{HeaderName, InvalidHeaderName};
use axum::http::request::Parts;
use ipnet::IpNet;
use signal_domain::{Failure, FailureKind, UserId, UserIdError};
use std::net::SocketAddr;
use std::sync::Arc;

/// The `[auth.gateway]` settings.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Only for services that nothing but the gateway can reach.
    pub enabled: bool,
    /// Where the gateway names the user it verified.
    pub user_header: String,
    /// The gateway's addresses, as networks (`10.0.0.5/32`).
    pub proxies: Vec<IpNet>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            user_header: "X-Auth-User".into(),
            proxies: Vec::new(),
        }
    }
}

/// Gateway settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum GatewayConfigError {
    #[error("auth.gateway.user_header `{0}` is not a header name")]
    Header(String, #[source] InvalidHeaderName),
    #[error(
        "auth.gateway.proxies is empty: name the gateway's addresses, or nothing could use \
         gateway mode"
    )]
    NoProxies,
}

/// Whether, and from whom, the services believe a user named by a gateway. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct GatewayTrust(Option<Arc<Gateway>>);

#[derive(Debug)]
struct Gateway {
    header: HeaderName,
    proxies: TrustedProxies,
}

/// A request that names a user the way only the gateway may, from where the gateway is not,
/// or names one that cannot be.
#[derive(Debug, thiserror::Error)]
pub enum GatewayRefusal {
    #[error("`{0}` names the user only on requests from the gateway; send a token instead")]
    NotFromGateway(HeaderName),
    #[error(
        "`?email=` names the user only on sockets opened through the gateway; send a token instead"
    )]
    EmailNotFromGateway,
    #[error("`{0}` does not hold a user id")]
    InvalidUser(HeaderName, #[source] UserIdError),
    #[error("`?email=` does not hold a user id")]
    InvalidEmail(#[source] UserIdError),
    #[error("`?email=` names another user than the gateway did")]
    EmailOfAnother,
}

impl Failure for GatewayRefusal {
    fn kind(&self) -> FailureKind {
        match self {
            GatewayRefusal::InvalidUser(..) | GatewayRefusal::InvalidEmail(_) => {
                FailureKind::Unauthenticated
            }
            GatewayRefusal::NotFromGateway(_)
            | GatewayRefusal::EmailNotFromGateway
            | GatewayRefusal::EmailOfAnother => FailureKind::Forbidden,
        }
    }
}

impl GatewayTrust {
    /// Gateway mode as configured; off unless `enabled`.
    pub fn new(config: &GatewayConfig) -> Result<Self, GatewayConfigError> {
        if !config.enabled {
            return Ok(Self::default());
        }
        let header = HeaderName::try_from(config.user_header.as_str())
            .map_err(|e| GatewayConfigError::Header(config.user_header.clone(), e))?;
        if config.proxies.is_empty() {
            return Err(GatewayConfigError::NoProxies);
        }
        Ok(Self(Some(Arc::new(Gateway {
            header,
            proxies: TrustedProxies::new(config.proxies.iter().copied()),
        }))))
    }

    /// True when gateway mode is on and the request's peer is the gateway.
    pub fn from_gateway(&self, parts: &Parts) -> bool {
        let Some(gateway) = &self.0 else {
            return false;
        };
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|info| gateway.proxies.trusts(info.0.ip()))
    }

    /// The user the gateway names for this request: its header, and on a socket (`socket`)
    /// `?email=`. `None` when gateway mode is off or the request names nobody that way (its
    /// own token then decides).
    pub fn user(&self, parts: &Parts, socket: bool) -> Result<Option<UserId>, GatewayRefusal> {
        let Some(gateway) = &self.0 else {
            return Ok(None);
        };
        let named = parts.headers.get(&gateway.header);
        let email = if socket { query_email(parts) } else { None };
        if named.is_none() && email.is_none() {
            return Ok(None);
        }
        if !self.from_gateway(parts) {
            return Err(match named {
                Some(_) => GatewayRefusal::NotFromGateway(gateway.header.clone()),
                None => GatewayRefusal::EmailNotFromGateway,
            });
        }
        let Some(named) = named else {
            let email = email.unwrap_or_default();
            return UserId::new(email)
                .map(Some)
                .map_err(GatewayRefusal::InvalidEmail);
        };
        let invalid = |e| GatewayRefusal::InvalidUser(gateway.header.clone(), e);
        let user = named
            .to_str()
            .map_err(|_| invalid(UserIdError))
            .and_then(|text| UserId::new(text.trim()).map_err(invalid))?;
        match email {
            Some(email) if email != user.as_str() => Err(GatewayRefusal::EmailOfAnother),
            _ => Ok(Some(user)),
        }
    }
}

/// The caller of a socket whose data is everyone's (live quotes). In gateway mode, a socket the
/// gateway forwards without any credentials opens for nobody in particular (`None`), as the
/// original frontend's quote sockets do; any other needs a verified user, as [`SocketUser`].
pub struct SocketViewer(pub Option<SocketIdentity>);

impl<S> FromRequestParts<S> for SocketViewer
where
    Arc<JwtVerifier>: FromRef<S>,
    GatewayTrust: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let gateway = GatewayTrust::from_ref(state);
        if gateway.from_gateway(parts)
            && !carries_token(parts)
            && gateway.user(parts, true)?.is_none()
        {
            return Ok(Self(None));
        }
        let SocketUser(identity) = SocketUser::from_request_parts(parts, state).await?;
        Ok(Self(Some(identity)))
    }
}

/// `email` of the query string, percent-decoded but with `+` kept: the original frontend puts
/// the address in the URL as it is, and the original service read it the same way.
fn query_email(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("email="))
        .map(|raw| {
            percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn gateway() -> GatewayTrust {
        GatewayTrust::new(&GatewayConfig {
            enabled: true,
            proxies: vec!["10.0.0.5/32".parse().unwrap()],
            ..GatewayConfig::default()
        })
        .unwrap()
    }

    fn request(peer: &str, uri: &str, user: Option<&str>) -> Parts {
        let mut builder = Request::builder().uri(uri);
        if let Some(user) = user {
            builder = builder.header("x-auth-user", user);
        }
        let mut parts = builder.body(()).unwrap().into_parts().0;
        parts.extensions.insert(ConnectInfo(
            format!("{peer}:40000").parse::<SocketAddr>().unwrap(),
        ));
        parts
    }

    fn user(name: &str) -> Option<UserId> {
        Some(UserId::new(name).unwrap())
    }

    #[test]
    fn the_gateway_names_the_user_in_its_header() {
        let from_gateway = request("10.0.0.5", "/asset/favorite", Some("a@example.com"));
        assert_eq!(
            gateway().user(&from_gateway, false).unwrap(),
            user("a@example.com")
        );
        let unnamed = request("10.0.0.5", "/asset/favorite", None);
        assert_eq!(gateway().user(&unnamed, false).unwrap(), None);
    }

    #[test]
    fn a_user_named_from_elsewhere_is_refused() {
        let direct = request("192.0.2.7", "/asset/favorite", Some("a@example.com"));
        assert!(matches!(
            gateway().user(&direct, false),
            Err(GatewayRefusal::NotFromGateway(_))
        ));
        let socket = request("192.0.2.7", "/ws/socket/alert?email=a@example.com", None);
        assert!(matches!(
            gateway().user(&socket, true),
            Err(GatewayRefusal::EmailNotFromGateway)
        ));
        // Off, the header means nothing: the token decides.
        assert_eq!(GatewayTrust::default().user(&direct, true).unwrap(), None);
    }

    #[test]
    fn sockets_take_the_raw_email_and_only_the_gateways_user() {
        let raw = request("10.0.0.5", "/ws/socket/alert?email=a+b@example.com", None);
        assert_eq!(gateway().user(&raw, true).unwrap(), user("a+b@example.com"));
        let encoded = request("10.0.0.5", "/ws/socket/alert?email=a%40example.com", None);
        assert_eq!(
            gateway().user(&encoded, true).unwrap(),
            user("a@example.com")
        );
        // An HTTP route does not read `?email=`.
        assert_eq!(gateway().user(&raw, false).unwrap(), None);
        let other = request(
            "10.0.0.5",
            "/ws/socket/alert?email=b@example.com",
            Some("a@example.com"),
        );
        assert!(matches!(
            gateway().user(&other, true),
            Err(GatewayRefusal::EmailOfAnother)
        ));
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let no_proxies = GatewayConfig {
            enabled: true,
            ..GatewayConfig::default()
        };
        assert!(matches!(
            GatewayTrust::new(&no_proxies),
            Err(GatewayConfigError::NoProxies)
        ));
        let bad_header = GatewayConfig {
            enabled: true,
            user_header: "X Auth".into(),
            proxies: vec!["10.0.0.5/32".parse().unwrap()],
        };
        assert!(matches!(
            GatewayTrust::new(&bad_header),
            Err(GatewayConfigError::Header(..))
        ));
    }
}
