//! Identity as real deployments use it: an identity provider's RS256 and ES256 tokens checked
//! against its key set (served here by a local JWKS server whose keys rotate), `nbf`, issuer and
//! audience, sockets that close when their token expires unless renewed over the socket, and a
//! request rate per user.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{error_of, settings, spawn_with, token, TestApp, ARRIVES_WITHIN, SECRET};
use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::Message;

const ISSUER: &str = "https://id.example";
const AUDIENCE: &str = "signal";

/// A signing key of the identity provider: the private half signs tokens, the public half is
/// served in the key set.
struct ProviderKey {
    kid: String,
    algorithm: Algorithm,
    private: EncodingKey,
    public: Value,
}

/// Runs openssl (keys are made fresh for each run; none is kept in the repository).
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl {args:?} failed");
    output.stdout
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

impl ProviderKey {
    fn rsa(kid: &str) -> Self {
        let pem = openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            b"",
        );
        let modulus = String::from_utf8(openssl(&["rsa", "-noout", "-modulus"], &pem)).unwrap();
        let modulus = modulus.trim().trim_start_matches("Modulus=");
        Self {
            kid: kid.into(),
            algorithm: Algorithm::RS256,
            private: EncodingKey::from_rsa_pem(&pem).unwrap(),
            public: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(unhex(modulus)),
                "e": "AQAB",
            }),
        }
    }

    fn ec(kid: &str) -> Self {
        let pem = openssl(
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            b"",
        );
        // The public key's DER ends with the uncompressed point: 0x04, x, y.
        let der = openssl(&["pkey", "-pubout", "-outform", "DER"], &pem);
        let point = &der[der.len() - 65..];
        assert_eq!(point[0], 4);
        Self {
            kid: kid.into(),
            algorithm: Algorithm::ES256,
            private: EncodingKey::from_ec_pem(&pem).unwrap(),
            // No `alg`: the key's type and curve say what it signs.
            public: json!({
                "kty": "EC", "crv": "P-256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
        }
    }

    fn sign_claims(&self, claims: Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.private).unwrap()
    }

    /// A token for `user` as the provider issues them: its issuer, this service's audience.
    fn sign(&self, user: &str) -> String {
        self.sign_claims(json!({
            "sub": user, "iss": ISSUER, "aud": AUDIENCE,
            "exp": chrono::Utc::now().timestamp() + 600,
        }))
    }
}

/// What the local JWKS server serves, and how often it was asked.
#[derive(Default)]
struct Provider {
    keys: Vec<Value>,
    down: bool,
    fetches: usize,
}

type SharedProvider = Arc<Mutex<Provider>>;

async fn key_set(State(provider): State<SharedProvider>) -> Response {
    let mut provider = provider.lock().unwrap();
    provider.fetches += 1;
    if provider.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    // Keys this service does not take (encryption, other curves) are passed over.
    let mut keys = provider.keys.clone();
    keys.push(json!({"kty": "RSA", "use": "enc", "kid": "encryption", "n": "AQAB", "e": "AQAB"}));
    keys.push(json!({"kty": "OKP", "crv": "X25519", "kid": "exchange", "x": "AQAB"}));
    Json(json!({ "keys": keys })).into_response()
}

/// A JWKS server on a free port; its URL.
async fn jwks_server(provider: SharedProvider) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/.well-known/jwks.json", get(key_set))
        .with_state(provider);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/.well-known/jwks.json")
}

/// The system trusting the provider at `jwks_url`, with issuer and audience checked.
async fn spawn_trusting(
    dir: &std::path::Path,
    jwks_url: &str,
    max_age_seconds: u64,
    min_refresh_seconds: u64,
) -> TestApp {
    let mut settings = settings(dir);
    settings.auth.jwks_url = Some(jwks_url.into());
    settings.auth.jwks_max_age_seconds = max_age_seconds;
    settings.auth.jwks_min_refresh_seconds = min_refresh_seconds;
    settings.auth.issuer = Some(ISSUER.into());
    settings.auth.audience = vec![AUDIENCE.into()];
    spawn_with(settings).await
}

async fn watchlist_status(app: &TestApp, token: &str) -> u16 {
    app.http
        .get(format!("{}/api/v1/watchlist", app.asset))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_providers_keys_are_followed_through_a_rotation() {
    let (rsa_1, ec_1, rsa_2) = (
        ProviderKey::rsa("rsa-1"),
        ProviderKey::ec("ec-1"),
        ProviderKey::rsa("rsa-2"),
    );
    let provider = SharedProvider::default();
    provider.lock().unwrap().down = true;
    let url = jwks_server(provider.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    // Every use fetches the set again: each step below sees the provider as it is now.
    let app = spawn_trusting(dir.path(), &url, 0, 0).await;

    // The provider cannot be reached and no key was ever read: the token may be good, so the
    // answer is "not now", not "not you".
    let unavailable = app
        .http
        .get(format!("{}/api/v1/watchlist", app.asset))
        .bearer_auth(rsa_1.sign("alice"))
        .send()
        .await
        .unwrap();
    error_of(unavailable, 503).await;

    {
        let mut provider = provider.lock().unwrap();
        provider.down = false;
        provider.keys = vec![rsa_1.public.clone(), ec_1.public.clone()];
    }
    assert_eq!(watchlist_status(&app, &rsa_1.sign("alice")).await, 200);
    assert_eq!(watchlist_status(&app, &ec_1.sign("alice")).await, 200);
    // This system's own HS256 tokens name the configured issuer and audience, and still work;
    // one that names neither is refused.
    let own = signal_web::JwtSigner::new(&signal_web::JwtConfig {
        secret: SECRET.into(),
        issuer: Some(ISSUER.into()),
        audience: vec![AUDIENCE.into()],
        ..Default::default()
    })
    .sign(
        &signal_domain::UserId::new("alice").unwrap(),
        chrono::Duration::hours(1),
    )
    .unwrap();
    assert_eq!(watchlist_status(&app, &own).await, 200);
    assert_eq!(watchlist_status(&app, &token("alice")).await, 401);
    let not_yet_published = app
        .http
        .get(format!("{}/api/v1/watchlist", app.asset))
        .bearer_auth(rsa_2.sign("alice"))
        .send()
        .await
        .unwrap();
    let body = error_of(not_yet_published, 401).await;
    assert!(
        body["message"].as_str().unwrap().contains("rsa-2"),
        "{body}"
    );

    // The issuer and audience are the provider's and ours; nbf and exp hold.
    let now = chrono::Utc::now().timestamp();
    for claims in [
        json!({"sub": "alice", "iss": "https://other.example", "aud": AUDIENCE, "exp": now + 600}),
        json!({"sub": "alice", "iss": ISSUER, "aud": "another-app", "exp": now + 600}),
        json!({"sub": "alice", "aud": AUDIENCE, "exp": now + 600}),
        json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 7200, "nbf": now + 3600}),
        json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now - 3600}),
    ] {
        assert_eq!(
            watchlist_status(&app, &rsa_1.sign_claims(claims.clone())).await,
            401,
            "{claims}"
        );
    }

    // A socket takes the provider's token too.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/api/v1/alerts/stream?token={}",
        app.app.alert_addr,
        ec_1.sign("alice")
    ))
    .await
    .unwrap();
    socket
        .send(Message::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    let pong = next_json(&mut socket).await;
    assert_eq!(pong["type"], "pong");

    // Rotation: the provider adds rsa-2 and drops rsa-1.
    provider.lock().unwrap().keys = vec![ec_1.public.clone(), rsa_2.public.clone()];
    assert_eq!(watchlist_status(&app, &rsa_2.sign("alice")).await, 200);
    assert_eq!(watchlist_status(&app, &ec_1.sign("alice")).await, 200);
    assert_eq!(watchlist_status(&app, &rsa_1.sign("alice")).await, 401);

    // While the provider is down, the keys last read keep working; a key not among them cannot
    // be checked (it may be one the provider just added): not taken, and "retry", not "not you".
    provider.lock().unwrap().down = true;
    assert_eq!(watchlist_status(&app, &rsa_2.sign("alice")).await, 200);
    assert_eq!(watchlist_status(&app, &rsa_1.sign("alice")).await, 503);
    app.app.stop().await;
}

#[tokio::test]
async fn forged_key_ids_cannot_make_the_service_hammer_the_provider() {
    let key = ProviderKey::ec("ec-1");
    let provider = SharedProvider::default();
    provider.lock().unwrap().keys = vec![key.public.clone()];
    let url = jwks_server(provider.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_trusting(dir.path(), &url, 3600, 3600).await;

    assert_eq!(watchlist_status(&app, &key.sign("alice")).await, 200);
    assert_eq!(provider.lock().unwrap().fetches, 1);
    for forged in 0..30 {
        let stranger = ProviderKey {
            kid: format!("forged-{forged}"),
            algorithm: key.algorithm,
            private: key.private.clone(),
            public: Value::Null,
        };
        assert_eq!(watchlist_status(&app, &stranger.sign("alice")).await, 401);
    }
    // The set was fetched at most once more, however many unknown keys were named.
    assert!(provider.lock().unwrap().fetches <= 2);
    assert_eq!(watchlist_status(&app, &key.sign("alice")).await, 200);
    app.app.stop().await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(ARRIVES_WITHIN, ws.next())
            .await
            .expect("a message arrives")
            .expect("the socket is open")
            .expect("the socket is healthy");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed by the server: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads until the server closes the socket; its close code and reason.
async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(ARRIVES_WITHIN, ws.next())
            .await
            .expect("the server closes the socket");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

/// A token of this system's secret for `user`, valid for `seconds`.
fn token_for(user: &str, seconds: i64) -> String {
    signal_web::JwtSigner::new(&signal_web::JwtConfig {
        secret: SECRET.into(),
        ..Default::default()
    })
    .sign(
        &signal_domain::UserId::new(user).unwrap(),
        chrono::Duration::seconds(seconds),
    )
    .unwrap()
}

async fn open(url: String) -> Ws {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

#[tokio::test]
async fn a_socket_closes_when_its_token_expires_unless_the_client_sends_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut strict = settings(dir.path());
    strict.auth.leeway_seconds = 0;
    let app = spawn_with(strict).await;
    let quotes = |token: String| format!("ws://{}/ws/stocks?token={token}", app.app.asset_addr);
    let alerts =
        |token: String| format!("ws://{}/ws/socket/alert?token={token}", app.app.alert_addr);

    // Both kept sockets' tokens expire before the token of the sockets left to expire.
    let mut kept_quotes = open(quotes(token_for("alice", 6))).await;
    let mut kept_alerts = open(alerts(token_for("alice", 6))).await;
    let mut expiring_quotes = open(quotes(token_for("alice", 9))).await;
    let mut expiring_alerts = open(alerts(token_for("alice", 9))).await;

    for ws in [&mut kept_quotes, &mut kept_alerts] {
        // Another user's token is refused, and the socket stays alice's.
        send(ws, json!({"type": "auth", "token": token_for("bob", 3600)})).await;
        let refused = next_json(ws).await;
        assert_eq!(refused["type"], "auth");
        assert_eq!(refused["status"], "error", "{refused}");
        send(ws, json!({"type": "auth", "token": "not-a-token"})).await;
        assert_eq!(next_json(ws).await["status"], "error");
        send(
            ws,
            json!({"type": "auth", "token": token_for("alice", 3600)}),
        )
        .await;
        let renewed = next_json(ws).await;
        assert_eq!(renewed["status"], "success", "{renewed}");
        assert!(renewed["expiresAt"].is_string(), "{renewed}");
    }

    for ws in [&mut expiring_quotes, &mut expiring_alerts] {
        let (code, reason) = closed(ws).await;
        assert_eq!(code, 4401);
        assert!(reason.contains("expired"), "{reason}");
    }
    // The kept sockets' first tokens expired before those: they are open on their fresh ones.
    send(
        &mut kept_quotes,
        json!({"type": "subscribe", "symbol": "005930"}),
    )
    .await;
    assert_eq!(next_json(&mut kept_quotes).await["status"], "success");
    send(&mut kept_alerts, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut kept_alerts).await["type"], "pong");
    app.app.stop().await;
}

#[tokio::test]
async fn each_user_has_a_request_rate_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut limited = settings(dir.path());
    limited.http.requests_per_second_per_user = 1;
    limited.http.burst_per_user = 3;
    let app = spawn_with(limited).await;
    let url = format!("{}/api/v1/watchlist", app.asset);

    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..10 {
        let response = app.get(&url, "alice").send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry_after >= 1);
            refusal = Some(error_of(response, 429).await);
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    let refusal = refusal.expect("alice's flood is limited");
    assert_eq!(refusal["error"], "rate_limited");
    assert!(
        refusal["message"].as_str().unwrap().contains("account"),
        "{refusal}"
    );

    // Bob, from the same address, is not slowed by alice's flood.
    assert_eq!(app.get(&url, "bob").send().await.unwrap().status(), 200);
    // Opening a socket counts as a request too.
    let url = format!(
        "ws://{}/ws/stocks?token={}",
        app.app.asset_addr,
        token("alice")
    );
    let mut refused = Vec::new();
    for _ in 0..10 {
        if let Err(tokio_tungstenite::tungstenite::Error::Http(response)) =
            tokio_tungstenite::connect_async(url.as_str()).await
        {
            refused.push(response.status().as_u16());
        }
    }
    assert!(
        !refused.is_empty() && refused.iter().all(|s| *s == 429),
        "{refused:?}"
    );
    app.app.stop().await;
}
