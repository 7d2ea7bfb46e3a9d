//! The browser side of a sign-in session: its two cookies and the CSRF defence around them.
//!
//! - `signal_session`: the session's JWT. HttpOnly (no script can read it), SameSite=Strict
//!   (no other site's page makes the browser send it), Path=/, Secure when the request came over
//!   HTTPS.
//! - `signal_csrf`: a random token the page can read and must echo in `X-CSRF-Token` on every
//!   request that changes something. The same token is a claim of the session's JWT, so the
//!   check needs no server state, and a cookie planted by a sibling subdomain cannot match it
//!   (the signed double-submit pattern).
//!
//! Requests authenticated by the cookie are also refused when the browser says another site
//! started them (`Sec-Fetch-Site`), which covers socket handshakes, where no header can be set.
//! Requests with `Authorization: Bearer` carry no ambient credential and need none of this.

use axum::http::header::{InvalidHeaderValue, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use base64::Engine;
use cookie::{Cookie, SameSite};
use serde_json::{Map, Value};
use signal_accounts::SessionId;
use signal_domain::{Failure, FailureKind};
use std::time::Duration;

pub const SESSION_COOKIE: &str = "signal_session";
pub const CSRF_COOKIE: &str = "signal_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Why a request authenticated by the session cookie may not do what it asks.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CookieRefusal {
    #[error("requests from other sites cannot use this site's sign-in")]
    CrossSite,
    #[error(
        "missing X-CSRF-Token header: a request signed in by cookie that changes something must \
         send the value of the signal_csrf cookie in it"
    )]
    MissingCsrfToken,
    #[error("the X-CSRF-Token header does not match this session's signal_csrf cookie")]
    WrongCsrfToken,
}

impl Failure for CookieRefusal {
    fn kind(&self) -> FailureKind {
        FailureKind::Forbidden
    }
}

/// The claims a sign-in session adds to its JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClaims {
    pub id: SessionId,
    /// The CSRF token, also sent to the page in the `signal_csrf` cookie.
    pub csrf: String,
}

impl SessionClaims {
    /// A session's claims with a fresh CSRF token (32 random bytes).
    pub fn new(id: SessionId) -> Self {
        let bytes: [u8; 32] = rand::random();
        Self {
            id,
            csrf: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    pub(crate) fn add_to(&self, claims: &mut Map<String, Value>) {
        claims.insert("sid".into(), Value::from(self.id.to_string()));
        claims.insert("csrf".into(), Value::from(self.csrf.clone()));
    }

    /// The session claims of a token, when it is a built-in account's session token. Other
    /// identity providers' tokens may have a `sid` of their own (OpenID Connect does) without
    /// being one of ours.
    pub(crate) fn from_claims(claims: &Map<String, Value>) -> Option<Self> {
        let id = claims.get("sid")?.as_str()?.parse().ok()?;
        let csrf = claims.get("csrf")?.as_str()?;
        Some(Self {
            id,
            csrf: csrf.to_string(),
        })
    }
}

/// The session cookie's token, when the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == SESSION_COOKIE)
        .map(|cookie| cookie.value().to_string())
}

/// Refuses a request another site started: a browser says so in `Sec-Fetch-Site` (all current
/// browsers send it). Absent, as from non-browser clients and old browsers, it proves nothing
/// either way, and the CSRF token still decides.
pub fn refuse_cross_site(headers: &HeaderMap) -> Result<(), CookieRefusal> {
    let from_this_site = headers
        .get_all("sec-fetch-site")
        .iter()
        .all(|site| matches!(site.as_bytes(), b"same-origin" | b"none"));
    from_this_site.then_some(()).ok_or(CookieRefusal::CrossSite)
}

/// What a cookie-authenticated request must show: it came from this site, and if it changes
/// something, it echoes the session's CSRF token.
pub(crate) fn check_cookie_request(
    parts: &Parts,
    session: &SessionClaims,
) -> Result<(), CookieRefusal> {
    refuse_cross_site(&parts.headers)?;
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let echoed = parts
        .headers
        .get(CSRF_HEADER)
        .ok_or(CookieRefusal::MissingCsrfToken)?;
    if constant_time_eq(echoed.as_bytes(), session.csrf.as_bytes()) {
        Ok(())
    } else {
        Err(CookieRefusal::WrongCsrfToken)
    }
}

/// Compares without stopping at the first difference, so timing tells nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the browser reached this service over HTTPS: directly, or through a proxy that
/// terminated TLS and said so (`X-Forwarded-Proto`, `Forwarded: proto=https`). A forged header
/// only makes the cookies Secure, which a plain-HTTP page then cannot use: no gain to a forger.
pub fn request_is_https(parts: &Parts) -> bool {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    parts.uri.scheme_str() == Some("https")
        || header("x-forwarded-proto").is_some_and(|p| p.split(',').next() == Some("https"))
        || header("forwarded")
            .is_some_and(|f| f.split([';', ',']).any(|pair| pair.trim() == "proto=https"))
}

/// `Set-Cookie` headers that start a session in the browser.
pub fn set_session_cookies(
    headers: &mut HeaderMap,
    token: &str,
    session: &SessionClaims,
    lifetime: Duration,
    secure: bool,
) -> Result<(), InvalidHeaderValue> {
    let max_age =
        cookie::time::Duration::seconds(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    let session_cookie = Cookie::build((SESSION_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .max_age(max_age);
    let csrf_cookie = Cookie::build((CSRF_COOKIE, session.csrf.as_str()))
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .max_age(max_age);
    append(headers, &session_cookie.build())?;
    append(headers, &csrf_cookie.build())
}

/// `Set-Cookie` headers that remove a session's cookies from the browser.
pub fn clear_session_cookies(
    headers: &mut HeaderMap,
    secure: bool,
) -> Result<(), InvalidHeaderValue> {
    for (name, http_only) in [(SESSION_COOKIE, true), (CSRF_COOKIE, false)] {
        let cookie = Cookie::build((name, ""))
            .http_only(http_only)
            .same_site(SameSite::Strict)
            .path("/")
            .secure(secure)
            .max_age(cookie::time::Duration::ZERO);
        append(headers, &cookie.build())?;
    }
    Ok(())
}

fn append(headers: &mut HeaderMap, cookie: &Cookie<'_>) -> Result<(), InvalidHeaderValue> {
    headers.append(SET_COOKIE, HeaderValue::from_str(&cookie.to_string())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder().method(method).uri("/api/v1/rules");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn state_changing_cookie_requests_must_echo_the_csrf_token() {
        let session = SessionClaims::new(SessionId::random());
        let csrf = session.csrf.clone();
        assert_eq!(check_cookie_request(&parts("GET", &[]), &session), Ok(()));
        assert_eq!(
            check_cookie_request(&parts("POST", &[]), &session),
            Err(CookieRefusal::MissingCsrfToken)
        );
        assert_eq!(
            check_cookie_request(&parts("DELETE", &[(CSRF_HEADER, "forged")]), &session),
            Err(CookieRefusal::WrongCsrfToken)
        );
        assert_eq!(
            check_cookie_request(&parts("PUT", &[(CSRF_HEADER, &csrf)]), &session),
            Ok(())
        );
    }

    #[test]
    fn cookie_requests_from_other_sites_are_refused() {
        let session = SessionClaims::new(SessionId::random());
        for site in ["cross-site", "same-site"] {
            assert_eq!(
                check_cookie_request(&parts("GET", &[("sec-fetch-site", site)]), &session),
                Err(CookieRefusal::CrossSite)
            );
        }
        for site in ["same-origin", "none"] {
            assert_eq!(
                check_cookie_request(&parts("GET", &[("sec-fetch-site", site)]), &session),
                Ok(())
            );
        }
    }

    #[test]
    fn https_is_recognised_behind_a_proxy() {
        assert!(!request_is_https(&parts("GET", &[])));
        assert!(request_is_https(&parts(
            "GET",
            &[("x-forwarded-proto", "https")]
        )));
        assert!(request_is_https(&parts(
            "GET",
            &[("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43")]
        )));
        assert!(!request_is_https(&parts(
            "GET",
            &[("x-forwarded-proto", "http")]
        )));
    }

    #[test]
    fn session_cookies_carry_their_attributes() {
        let mut headers = HeaderMap::new();
        let session = SessionClaims::new(SessionId::random());
        set_session_cookies(&mut headers, "jwt", &session, Duration::from_secs(60), true).unwrap();
        let cookies: Vec<_> = headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(cookies.len(), 2);
        for attribute in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Secure",
            "Max-Age=60",
        ] {
            assert!(
                cookies[0].contains(attribute),
                "{} lacks {attribute}",
                cookies[0]
            );
        }
        assert!(cookies[0].starts_with("signal_session=jwt"));
        assert!(cookies[1].starts_with(&format!("signal_csrf={}", session.csrf)));
        assert!(!cookies[1].contains("HttpOnly"));
    }
}
