//! Built-in accounts as a browser uses them: sign-up, sign-in, sign-out and password change, the
//! session cookie that both services and both sockets accept, the CSRF defence around it,
//! sign-in limits, sessions that stay private, and a deployment with accounts switched off.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{error_of, settings, spawn, spawn_with, token, TestApp};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const PASSWORD: &str = "correct horse battery staple";

/// What a browser holds after signing in: the two cookies.
#[derive(Clone, Debug)]
struct Browser {
    session: String,
    csrf: String,
}

impl Browser {
    /// The cookies a response set, as the browser would keep them.
    fn from_response(response: &Response) -> Browser {
        let value_of = |name: &str| {
            response
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap())
                .find_map(|c| c.strip_prefix(&format!("{name}=")))
                .and_then(|rest| rest.split(';').next())
                .unwrap_or_else(|| panic!("no {name} cookie set"))
                .to_string()
        };
        Browser {
            session: value_of("signal_session"),
            csrf: value_of("signal_csrf"),
        }
    }

    fn cookie_header(&self) -> String {
        format!("signal_session={}; signal_csrf={}", self.session, self.csrf)
    }

    /// A request with the cookies, from this site's page.
    fn send(&self, request: RequestBuilder) -> RequestBuilder {
        request
            .header(COOKIE, self.cookie_header())
            .header("sec-fetch-site", "same-origin")
    }

    /// A state-changing request as the page makes it: cookies and the echoed CSRF token.
    fn change(&self, request: RequestBuilder) -> RequestBuilder {
        self.send(request).header("x-csrf-token", &self.csrf)
    }
}

async fn sign_up(app: &TestApp, email: &str, password: &str) -> Response {
    app.http
        .post(format!("{}/api/v1/auth/signup", app.alert))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> Response {
    app.http
        .post(format!("{}/api/v1/auth/signin", app.alert))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn signed_up(app: &TestApp, email: &str) -> Browser {
    let response = sign_up(app, email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    Browser::from_response(&response)
}

async fn signed_in(app: &TestApp, email: &str, password: &str) -> Browser {
    let response = sign_in(app, email, password).await;
    assert_eq!(response.status(), StatusCode::OK);
    Browser::from_response(&response)
}

/// Who the services think `browser` is: the Alert Service's session route and an Asset Service
/// route must agree.
async fn status_on_both_services(app: &TestApp, browser: &Browser) -> (StatusCode, StatusCode) {
    let alert = browser
        .send(app.http.get(format!("{}/api/v1/auth/session", app.alert)))
        .send()
        .await
        .unwrap()
        .status();
    let asset = browser
        .send(app.http.get(format!("{}/api/v1/watchlist", app.asset)))
        .send()
        .await
        .unwrap()
        .status();
    (alert, asset)
}

async fn socket_status(url: &str, browser: &Browser, site: &str) -> Result<(), u16> {
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "cookie",
        HeaderValue::from_str(&browser.cookie_header()).unwrap(),
    );
    headers.insert("sec-fetch-site", HeaderValue::from_str(site).unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("socket failed otherwise: {other}"),
    }
}

#[tokio::test]
async fn a_person_signs_up_and_the_session_cookie_works_on_both_services_and_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;

    let response = sign_up(&app, "Min-jun.Kim@Example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookies: Vec<String> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("signal_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2592000"] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }
    assert!(
        !session_cookie.contains("Secure"),
        "plain HTTP: {session_cookie}"
    );
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with("signal_csrf="))
        .unwrap();
    assert!(
        !csrf_cookie.contains("HttpOnly"),
        "the page reads it: {csrf_cookie}"
    );
    let browser = Browser::from_response(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"email": "min-jun.kim@example.com"}));

    let session: Value = browser
        .send(app.http.get(format!("{}/api/v1/auth/session", app.alert)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        session,
        json!({"email": "min-jun.kim@example.com", "accounts": true})
    );

    // The Asset Service knows the same person: what they add is theirs.
    let added = browser
        .change(
            app.http
                .put(format!("{}/api/v1/watchlist/KRX:005930", app.asset)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let watchlist: Vec<Value> = app
        .get_json(
            format!("{}/api/v1/watchlist", app.asset),
            "min-jun.kim@example.com",
        )
        .await;
    assert_eq!(watchlist.len(), 1);

    // Both sockets accept the cookie, from this site only.
    let alert_socket = format!("ws://{}/ws/socket/alert", app.app.alert_addr);
    let quote_socket = format!("ws://{}/ws/stocks", app.app.asset_addr);
    for url in [&alert_socket, &quote_socket] {
        assert_eq!(socket_status(url, &browser, "same-origin").await, Ok(()));
        assert_eq!(socket_status(url, &browser, "cross-site").await, Err(403));
    }
}

#[tokio::test]
async fn over_https_the_cookies_are_secure() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let response = app
        .http
        .post(format!("{}/api/v1/auth/signup", app.alert))
        .header("x-forwarded-proto", "https")
        .json(&json!({"email": "ji-woo@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    for cookie in response.headers().get_all(SET_COOKIE) {
        assert!(cookie.to_str().unwrap().contains("Secure"), "{cookie:?}");
    }
}

#[tokio::test]
async fn a_cookie_request_that_changes_something_needs_the_csrf_token_and_this_site() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let browser = signed_up(&app, "seo-yeon@example.com").await;
    let url = format!("{}/api/v1/watchlist/UPBIT:KRW-BTC", app.asset);

    let without_token = browser.send(app.http.put(&url)).send().await.unwrap();
    let body = error_of(without_token, 403).await;
    assert!(
        body["message"].as_str().unwrap().contains("X-CSRF-Token"),
        "{body}"
    );
    let wrong_token = browser
        .send(app.http.put(&url))
        .header("x-csrf-token", "guessed")
        .send()
        .await
        .unwrap();
    error_of(wrong_token, 403).await;
    let from_another_site = app
        .http
        .put(&url)
        .header(COOKIE, browser.cookie_header())
        .header("x-csrf-token", &browser.csrf)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    error_of(from_another_site, 403).await;
    // Alert Service routes are guarded the same way.
    let mark_all = browser
        .send(app.http.post(format!("{}/api/v1/alerts/read", app.alert)))
        .send()
        .await
        .unwrap();
    error_of(mark_all, 403).await;

    let as_the_page = browser.change(app.http.put(&url)).send().await.unwrap();
    assert_eq!(as_the_page.status(), StatusCode::CREATED);
    // A bearer token is no ambient credential and needs no CSRF token.
    let scripted = app
        .delete(&url, "seo-yeon@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(scripted.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn weak_passwords_bad_emails_and_taken_emails_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;

    let config: Value = app
        .http
        .get(format!("{}/api/v1/auth/config", app.alert))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config,
        json!({"accounts": true, "minPasswordLength": 12, "maxPasswordLength": 128})
    );

    let short = error_of(sign_up(&app, "a@example.com", "tiny").await, 422).await;
    assert_eq!(short["field"], "password");
    assert_eq!(short["error"], "validation");
    assert!(
        short["message"].as_str().unwrap().contains("at least 12"),
        "{short}"
    );

    for common in ["password1234", "qwertyuiop123", "111111111111"] {
        let body = error_of(sign_up(&app, "a@example.com", common).await, 422).await;
        assert_eq!(body["field"], "password");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("too easy to guess"),
            "{common}: {body}"
        );
    }
    let own_email = error_of(
        sign_up(&app, "haneul.park@example.com", "haneul.park2024").await,
        422,
    )
    .await;
    assert_eq!(own_email["field"], "password");

    for email in ["", "not-an-email", "name@", "Name <a@example.com>"] {
        let body = error_of(sign_up(&app, email, PASSWORD).await, 422).await;
        assert_eq!(body["field"], "email", "{email}: {body}");
    }
    let missing_field = app
        .http
        .post(format!("{}/api/v1/auth/signup", app.alert))
        .json(&json!({"email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    error_of(missing_field, 422).await;

    signed_up(&app, "taken@example.com").await;
    let again = error_of(
        sign_up(&app, "Taken@Example.com", "another fine passphrase").await,
        409,
    )
    .await;
    assert_eq!(again["error"], "conflict");
}

#[tokio::test]
async fn signing_out_ends_the_session_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let browser = signed_up(&app, "do-yun@example.com").await;
    assert_eq!(
        status_on_both_services(&app, &browser).await,
        (StatusCode::OK, StatusCode::OK)
    );

    let without_token = browser
        .send(app.http.post(format!("{}/api/v1/auth/signout", app.alert)))
        .send()
        .await
        .unwrap();
    error_of(without_token, 403).await;
    assert_eq!(
        status_on_both_services(&app, &browser).await,
        (StatusCode::OK, StatusCode::OK),
        "a forged sign-out changes nothing"
    );

    let signed_out = browser
        .change(app.http.post(format!("{}/api/v1/auth/signout", app.alert)))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    let cleared: Vec<_> = signed_out
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cleared.len(), 2);
    assert!(
        cleared.iter().all(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );

    // The old cookie, replayed, is refused by both services and both sockets.
    assert_eq!(
        status_on_both_services(&app, &browser).await,
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    for url in [
        format!("ws://{}/ws/socket/alert", app.app.alert_addr),
        format!("ws://{}/ws/stocks", app.app.asset_addr),
    ] {
        assert_eq!(socket_status(&url, &browser, "same-origin").await, Err(401));
    }
    // Signing out again is harmless.
    let again = browser
        .change(app.http.post(format!("{}/api/v1/auth/signout", app.alert)))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    // And signing in starts a new session.
    let back = signed_in(&app, "do-yun@example.com", PASSWORD).await;
    assert_eq!(
        status_on_both_services(&app, &back).await,
        (StatusCode::OK, StatusCode::OK)
    );
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let laptop = signed_up(&app, "ha-eun@example.com").await;
    let phone = signed_in(&app, "ha-eun@example.com", PASSWORD).await;
    let url = format!("{}/api/v1/auth/password", app.alert);
    let change = |current: &str, new: &str| {
        laptop
            .change(app.http.post(&url))
            .json(&json!({"currentPassword": current, "newPassword": new}))
    };

    let wrong_current = error_of(
        change("not my password", "a brand new passphrase")
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(wrong_current["field"], "currentPassword");
    let weak_new = error_of(change(PASSWORD, "password1234").send().await.unwrap(), 422).await;
    assert_eq!(weak_new["field"], "newPassword");
    let same = error_of(change(PASSWORD, PASSWORD).send().await.unwrap(), 422).await;
    assert_eq!(same["field"], "newPassword");
    assert_eq!(
        status_on_both_services(&app, &phone).await,
        (StatusCode::OK, StatusCode::OK),
        "refused changes end nothing"
    );

    let changed = change(PASSWORD, "a brand new passphrase")
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let laptop_now = Browser::from_response(&changed);
    assert_eq!(
        status_on_both_services(&app, &laptop_now).await,
        (StatusCode::OK, StatusCode::OK)
    );
    for ended in [&laptop, &phone] {
        assert_eq!(
            status_on_both_services(&app, ended).await,
            (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
        );
    }
    error_of(sign_in(&app, "ha-eun@example.com", PASSWORD).await, 401).await;
    signed_in(&app, "ha-eun@example.com", "a brand new passphrase").await;
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account_and_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.accounts.signin_attempts_per_account = 3;
    settings.accounts.signin_attempts_per_address = 6;
    let app = spawn_with(settings).await;
    signed_up(&app, "ye-jin@example.com").await;

    let wrong = error_of(
        sign_in(&app, "ye-jin@example.com", "not the password").await,
        401,
    )
    .await;
    assert_eq!(wrong["message"], "wrong email or password");
    let unknown = error_of(sign_in(&app, "nobody@example.com", PASSWORD).await, 401).await;
    assert_eq!(
        unknown["message"], wrong["message"],
        "unknown emails look the same"
    );
    for _ in 0..2 {
        error_of(
            sign_in(&app, "ye-jin@example.com", "still not it").await,
            401,
        )
        .await;
    }
    // The account is out of attempts: even the right password waits.
    let limited = sign_in(&app, "ye-jin@example.com", PASSWORD).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=101).contains(&retry_after), "{retry_after}");
    let body = error_of(limited, 429).await;
    assert_eq!(body["error"], "rate_limited");
    assert!(
        body["message"].as_str().unwrap().contains("try again in"),
        "{body}"
    );

    // Five attempts from this address so far: one is left across other accounts, then it waits
    // too.
    error_of(sign_in(&app, "someone@example.com", PASSWORD).await, 401).await;
    error_of(
        sign_in(&app, "someone-else@example.com", PASSWORD).await,
        429,
    )
    .await;
}

#[tokio::test]
async fn a_person_sees_and_ends_only_their_own_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let alice_laptop = signed_up(&app, "alice@example.com").await;
    let alice_phone = signed_in(&app, "alice@example.com", PASSWORD).await;
    let bob = signed_up(&app, "bob@example.com").await;

    let list = |browser: &Browser| {
        browser.send(app.http.get(format!("{}/api/v1/auth/sessions", app.alert)))
    };
    let alices: Vec<Value> = list(&alice_laptop)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alices.len(), 2);
    assert_eq!(alices.iter().filter(|s| s["current"] == true).count(), 1);
    let bobs: Vec<Value> = list(&bob).send().await.unwrap().json().await.unwrap();
    assert_eq!(bobs.len(), 1, "bob sees his own session only: {bobs:?}");

    let phone_id = alices.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let end = |browser: &Browser, id: &str| {
        browser.change(
            app.http
                .delete(format!("{}/api/v1/auth/sessions/{id}", app.alert)),
        )
    };
    // Bob cannot end Alice's session, nor learn it exists.
    let foreign = error_of(end(&bob, &phone_id).send().await.unwrap(), 404).await;
    let unknown = error_of(
        end(&bob, &uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(foreign["error"], unknown["error"]);
    assert_eq!(
        status_on_both_services(&app, &alice_phone).await,
        (StatusCode::OK, StatusCode::OK)
    );

    let ended = end(&alice_laptop, &phone_id).send().await.unwrap();
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status_on_both_services(&app, &alice_phone).await,
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    let alices: Vec<Value> = list(&alice_laptop)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alices.len(), 1);
}

#[tokio::test]
async fn with_accounts_switched_off_tokens_from_elsewhere_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.accounts.enabled = false;
    let app = spawn_with(settings).await;

    let config: Value = app
        .http
        .get(format!("{}/api/v1/auth/config", app.alert))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config, json!({"accounts": false}));
    let body = error_of(sign_up(&app, "a@example.com", PASSWORD).await, 404).await;
    assert!(
        body["message"].as_str().unwrap().contains("switched off"),
        "{body}"
    );
    error_of(sign_in(&app, "a@example.com", PASSWORD).await, 404).await;

    let session: Value = app
        .get_json(format!("{}/api/v1/auth/session", app.alert), "carol")
        .await;
    assert_eq!(session, json!({"email": "carol", "accounts": false}));
    let watchlist = app
        .http
        .get(format!("{}/api/v1/watchlist", app.asset))
        .bearer_auth(token("carol"))
        .send()
        .await
        .unwrap();
    assert_eq!(watchlist.status(), StatusCode::OK);
    error_of(
        app.http
            .get(format!("{}/api/v1/auth/session", app.alert))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

#[tokio::test]
async fn sessions_survive_a_restart_and_ended_ones_stay_ended() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let kept = signed_up(&app, "jae@example.com").await;
    let ended = signed_in(&app, "jae@example.com", PASSWORD).await;
    ended
        .change(app.http.post(format!("{}/api/v1/auth/signout", app.alert)))
        .send()
        .await
        .unwrap();
    app.app.stop().await;

    // A fresh process starts with an empty in-memory cache; the ended session is restored to it
    // from the database before the first request is served.
    let app = spawn(dir.path()).await;
    assert_eq!(
        status_on_both_services(&app, &kept).await,
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(
        status_on_both_services(&app, &ended).await,
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
}

#[tokio::test]
async fn on_the_one_origin_the_page_signs_up_and_uses_both_services_and_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let response = app
        .http
        .post(format!("{}/api/v1/auth/signup", app.web))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"email": "one-origin@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let browser = Browser::from_response(&response);

    let added = browser
        .change(
            app.http
                .put(format!("{}/api/v1/watchlist/KRX:005930", app.web)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let alerts = browser
        .send(app.http.get(format!("{}/api/v1/alerts", app.web)))
        .send()
        .await
        .unwrap();
    assert_eq!(alerts.status(), StatusCode::OK);
    let web_host = app.web.trim_start_matches("http://");
    for path in ["ws/socket/alert", "ws/stocks"] {
        let url = format!("ws://{web_host}/{path}");
        assert_eq!(socket_status(&url, &browser, "same-origin").await, Ok(()));
    }
}
