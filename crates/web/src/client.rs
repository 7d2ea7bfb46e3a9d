//! Who is on the other end of a request: the client's address (for per-address limits) and how
//! it describes itself.

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Proxies whose `X-Forwarded-For` is believed (the reverse proxy in front of the services), as
/// networks. Anyone else could write any address there.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub fn new(networks: impl IntoIterator<Item = IpNet>) -> Self {
        Self(networks.into_iter().collect())
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }
}

/// The client's address: the connection's peer, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` that is not one. Unknown (0.0.0.0) when the request did
/// not come over a socket, as when a router is called in process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    fn of(parts: &Parts, proxies: &TrustedProxies) -> Self {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Self::behind(peer, &parts.headers, proxies)
    }

    /// The client of a request from `peer` with `headers`.
    pub fn behind(peer: IpAddr, headers: &HeaderMap, proxies: &TrustedProxies) -> Self {
        let peer = peer.to_canonical();
        if !proxies.trusts(peer) {
            return Self(peer);
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let client = forwarded
            .iter()
            .rev()
            .map(|hop| hop.parse::<IpAddr>().map(|a| a.to_canonical()))
            .take_while(Result::is_ok)
            .flatten()
            .find(|hop| !proxies.trusts(*hop));
        Self(client.unwrap_or(peer))
    }
}

impl<S> FromRequestParts<S> for ClientAddress
where
    TrustedProxies: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts, &TrustedProxies::from_ref(state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, forwarded: Option<&str>) -> Parts {
        let mut request = Request::builder().uri("/");
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        let mut parts = request.body(()).unwrap().into_parts().0;
        parts.extensions.insert(ConnectInfo(
            format!("{peer}:40000").parse::<SocketAddr>().unwrap(),
        ));
        parts
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::new(["10.0.0.0/30".parse().unwrap()]);
        let forged = parts("192.0.2.9", Some("198.51.100.1"));
        assert_eq!(
            ClientAddress::of(&forged, &proxies).0.to_string(),
            "192.0.2.9"
        );
        let proxied = parts("10.0.0.2", Some("198.51.100.1, 203.0.113.5"));
        assert_eq!(
            ClientAddress::of(&proxied, &proxies).0.to_string(),
            "203.0.113.5"
        );
        let chained = parts("10.0.0.2", Some("203.0.113.5, 10.0.0.2"));
        assert_eq!(
            ClientAddress::of(&chained, &proxies).0.to_string(),
            "203.0.113.5"
        );
        let garbage = parts("10.0.0.2", Some("not-an-address"));
        assert_eq!(
            ClientAddress::of(&garbage, &proxies).0.to_string(),
            "10.0.0.2"
        );
    }
}
