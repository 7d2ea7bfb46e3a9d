//! The original React frontend behind its gateway, in gateway mode: its calls replayed as the
//! record of the original system (section "The original frontend") describes them, with the headers the
//! gateway forwards (`Authorization: <jwt>` without `Bearer`, `X-Auth-User: <email>`), its
//! quote sockets without credentials and its alert socket with `?email=`; every field it reads
//! is checked to be there with the JSON type it expects.

#![allow(clippy::unwrap_used)]

mod common;

use common::{error_of, settings, spawn_with, Socket, TestApp};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The gateway's address: the tests' own connections come from it.
const GATEWAY: &str = "127.0.0.1/32";
/// Another loopback address, for a client that reaches the services without the gateway.
const ELSEWHERE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Whose browser it is: `+` and `@` go into the socket's URL as they are, as the frontend puts
/// them there.
const EMAIL: &str = "trader+1@example.com";

async fn gateway_app(dir: &std::path::Path) -> TestApp {
    let mut settings = settings(dir);
    settings.auth.gateway = signal_web::GatewayConfig {
        enabled: true,
        proxies: vec![GATEWAY.parse().unwrap()],
        ..Default::default()
    };
    spawn_with(settings).await
}

/// The JSON type the frontend expects of a field.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Num,
    /// A number, or null where the frontend checks for null first.
    NumOrNull,
}

/// Checks that `value` has each field with its kind; `what` names the message in failures.
fn reads(value: &Value, fields: &[(&str, Kind)], what: &str) {
    for &(field, kind) in fields {
        let got = &value[field];
        let fits = match kind {
            Kind::Str => got.is_string(),
            Kind::Num => got.is_number(),
            Kind::NumOrNull => got.is_number() || got.is_null(),
        };
        assert!(
            fits && value.get(field).is_some(),
            "{what}: `{field}` should be {kind:?}, is {got} in {value}"
        );
    }
}

/// The frontend's requests as the gateway forwards them.
struct Frontend {
    http: reqwest::Client,
    /// The gateway's one address for both services and both sockets.
    base: String,
    /// The token the user service issued (claim `email`), sent without `Bearer`.
    token: String,
}

impl Frontend {
    fn new(app: &TestApp, http: reqwest::Client) -> Self {
        let config = signal_web::JwtConfig {
            secret: common::SECRET.into(),
            user_claim: "email".into(),
            ..Default::default()
        };
        let token = signal_web::JwtSigner::new(&config)
            .sign(
                &signal_domain::UserId::new(EMAIL).unwrap(),
                chrono::Duration::hours(1),
            )
            .unwrap();
        Self {
            http,
            base: app.web.clone(),
            token,
        }
    }

    /// axios with the frontend's interceptor: JSON content type, the raw token, the user.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("authorization", &self.token)
            .header("x-auth-user", EMAIL)
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// POST or DELETE with the parameters in the query and no body; the frontend ignores the
    /// answer, but a failure would show as an error.
    async fn call(&self, method: reqwest::Method, path: &str) {
        let response = self.request(method.clone(), path).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
    }

    /// `new WebSocket(url)`: no header, no token.
    async fn socket(&self, path: &str) -> Socket {
        let url = format!("{}{path}", self.base.replacen("http", "ws", 1));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Socket::from(ws)
    }

    /// One socket per symbol, subscribed on open; the reply whose message contains `구독 성공`
    /// is the acknowledgement.
    async fn quote_socket(&self, symbol: &str) -> Socket {
        let mut socket = self.socket("/ws/stocks").await;
        socket
            .send(json!({"type": "subscribe", "symbol": symbol}))
            .await;
        let ack = socket.next().await;
        assert_eq!(ack["status"], "success", "{ack}");
        assert!(
            ack["message"].as_str().unwrap().contains("구독 성공"),
            "{ack}"
        );
        socket
    }

    /// The next `price_update` whose symbol is exactly `symbol`, as the frontend filters them.
    async fn price_update(socket: &mut Socket, symbol: &str) -> Value {
        loop {
            let update = socket.next_of("price_update").await;
            if update["symbol"] == symbol {
                reads(
                    &update,
                    &[
                        ("symbol", Kind::Str),
                        ("price", Kind::Num),
                        ("changeRate", Kind::NumOrNull),
                    ],
                    "price_update",
                );
                return update;
            }
        }
    }

    async fn alert_socket(&self) -> Socket {
        self.socket(&format!("/ws/socket/alert?email={EMAIL}"))
            .await
    }

    /// A pushed alert, checked for what the frontend reads (it drops frames without `symbol`).
    async fn pushed_alert(socket: &mut Socket) -> Value {
        loop {
            let frame = socket.next().await;
            if frame.get("symbol").is_none() {
                continue;
            }
            reads(&frame, ALERT_PUSH, "pushed alert");
            return frame;
        }
    }

    /// Waits until the service has recorded the alert as delivered: the push acknowledged it.
    async fn acknowledged_eventually(&self, id: i64) {
        for _ in 0..100 {
            if self.get(&format!("/api/v1/alerts/{id}")).await["acknowledged"] == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("alert {id} was pushed but never acknowledged");
    }
}

/// `id` (else the frontend uses the time), `symbol`, `targetPrice`, `triggeredPrice`,
/// `condition`, `timestamp` (epoch milliseconds, for `new Date`).
const ALERT_PUSH: &[(&str, Kind)] = &[
    ("id", Kind::Num),
    ("symbol", Kind::Str),
    ("targetPrice", Kind::Num),
    ("triggeredPrice", Kind::Num),
    ("condition", Kind::Str),
    ("timestamp", Kind::Num),
];

/// What the asset list reads of every instrument.
const LISTED: &[(&str, Kind)] = &[
    ("symbol", Kind::Str),
    ("koreanName", Kind::Str),
    ("englishName", Kind::Str),
    ("price", Kind::NumOrNull),
    ("changeRate", Kind::NumOrNull),
];

fn assert_close(got: &Value, want: f64) {
    let got = got.as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "{got} is not {want}");
}

#[tokio::test]
async fn the_original_frontend_works_unchanged_behind_its_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let app = gateway_app(dir.path()).await;
    let front = Frontend::new(&app, reqwest::Client::new());
    // Against the test feed's previous close of 70000: +2.1429 %, +2 %, +1 %.
    app.tick("KRX:005930", "71500").await;
    app.tick("UPBIT:KRW-BTC", "71400").await;
    app.tick("NASDAQ:AAPL", "70700").await;

    // The asset list: every instrument at once, split by the shape of the symbol.
    let all = front.get("/asset/search?keyword=").await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), signal_catalog::Catalog::builtin().len());
    for asset in all {
        reads(asset, LISTED, "/asset/search");
    }
    let symbol = |asset: &Value| asset["symbol"].as_str().unwrap().to_string();
    let is_domestic = |s: &str| s.len() == 6 && s.chars().all(|c| c.is_ascii_digit());
    let domestic = all.iter().filter(|a| is_domestic(&symbol(a))).count();
    let crypto = all.iter().filter(|a| symbol(a).contains('-')).count();
    let overseas = all.len() - domestic - crypto;
    assert!(
        domestic >= 100 && overseas >= 100 && crypto >= 100,
        "{domestic} domestic, {overseas} overseas, {crypto} crypto"
    );
    let samsung = all.iter().find(|a| a["symbol"] == "005930").unwrap();
    assert_close(&samsung["changeRate"], 2.1429);
    // A search with a keyword still ranks what matches.
    let found = front.get("/asset/search?keyword=삼성전자").await;
    assert_eq!(found[0]["symbol"], "005930");

    // The detail page polls every 2 to 5 s: a stock's rate in percent, a coin's as Upbit's
    // fraction (the page multiplies it by 100).
    for (symbol, price, rate) in [
        ("005930", 71500.0, 2.1429),
        ("KRW-BTC", 71400.0, 0.02),
        ("AAPL", 70700.0, 1.0),
    ] {
        let detail = front.get(&format!("/asset/{symbol}")).await;
        reads(&detail, LISTED, "/asset/{symbol}");
        assert_eq!(detail["symbol"], symbol);
        assert_close(&detail["price"], price);
        assert_close(&detail["changeRate"], rate);
    }

    // The home page calls number methods on every mover's price and rate.
    let movers = front.get("/asset/top-movers").await;
    let movers = movers.as_array().unwrap();
    assert!(!movers.is_empty());
    for mover in movers {
        reads(
            mover,
            &[
                ("symbol", Kind::Str),
                ("koreanName", Kind::Str),
                ("englishName", Kind::Str),
                ("price", Kind::Num),
                ("changeRate", Kind::Num),
            ],
            "/asset/top-movers",
        );
    }
    let coin = movers.iter().find(|m| m["symbol"] == "KRW-BTC").unwrap();
    assert_close(&coin["changeRate"], 0.02);
    let stock = movers.iter().find(|m| m["symbol"] == "005930").unwrap();
    assert_close(&stock["changeRate"], 2.1429);

    // Watchlist and target: a plain array of symbols; parameters in the query, no body.
    assert_eq!(front.get("/asset/favorite").await, json!([]));
    front
        .call(reqwest::Method::POST, "/asset/favorite?symbol=005930")
        .await;
    front
        .call(reqwest::Method::POST, "/asset/favorite?symbol=KRW-BTC")
        .await;
    assert_eq!(
        front.get("/asset/favorite").await,
        json!(["005930", "KRW-BTC"])
    );
    front
        .call(
            reqwest::Method::POST,
            "/asset/target-price?symbol=005930&targetPrice=72000.5&condition=ABOVE",
        )
        .await;

    // Live quotes: a socket per symbol, no credentials, only its own symbol's updates read.
    let mut samsung_live = front.quote_socket("005930").await;
    let mut bitcoin_live = front.quote_socket("KRW-BTC").await;
    app.tick("UPBIT:KRW-BTC", "69300").await;
    loop {
        let update = Frontend::price_update(&mut bitcoin_live, "KRW-BTC").await;
        if update["price"] == 69300.0 {
            assert_close(&update["changeRate"], -0.01);
            break;
        }
    }

    // The notifications page: its socket with the raw email, then a target reached.
    let mut alerts = front.alert_socket().await;
    app.tick("KRX:005930", "72100").await;
    loop {
        let update = Frontend::price_update(&mut samsung_live, "005930").await;
        if update["price"] == 72100.0 {
            assert_close(&update["changeRate"], 3.0);
            break;
        }
    }
    let pushed = Frontend::pushed_alert(&mut alerts).await;
    assert_eq!(pushed["symbol"], "005930");
    assert_eq!(pushed["condition"], "ABOVE");
    assert_close(&pushed["targetPrice"], 72000.5);
    assert_close(&pushed["triggeredPrice"], 72100.0);
    let first = pushed["id"].as_i64().unwrap();

    // The frontend cannot acknowledge: the push did, so its reconnect (3 s after any close)
    // does not bring the alert again.
    front.acknowledged_eventually(first).await;
    drop(alerts);
    let mut reconnected = front.alert_socket().await;
    reconnected.assert_no_alert().await;
    drop(reconnected);

    // An alert raised while no socket is open comes once, on the next connection only.
    front
        .call(
            reqwest::Method::POST,
            "/asset/target-price?symbol=KRW-BTC&targetPrice=69000&condition=BELOW",
        )
        .await;
    app.tick("UPBIT:KRW-BTC", "68900").await;
    let history = history_eventually(&front, 2).await;
    let mut alerts = front.alert_socket().await;
    let replayed = Frontend::pushed_alert(&mut alerts).await;
    assert_eq!(replayed["symbol"], "KRW-BTC");
    assert_eq!(replayed["condition"], "BELOW");
    let second = replayed["id"].as_i64().unwrap();
    alerts.assert_no_alert().await;
    front.acknowledged_eventually(second).await;
    drop(alerts);
    front.alert_socket().await.assert_no_alert().await;

    // The history: newest first, with what the list reads; `triggeredAt` goes to `new Date`.
    for alert in &history {
        reads(
            alert,
            &[
                ("id", Kind::Num),
                ("symbol", Kind::Str),
                ("targetPrice", Kind::Num),
                ("triggeredPrice", Kind::Num),
                ("condition", Kind::Str),
                ("triggeredAt", Kind::Str),
            ],
            "/alert",
        );
        let at = alert["triggeredAt"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "triggeredAt {at}"
        );
    }
    let ids: Vec<i64> = history.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [second, first]);
    front
        .call(reqwest::Method::DELETE, &format!("/alert/{first}"))
        .await;
    let left = front.get("/alert").await;
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], second);

    front
        .call(
            reqwest::Method::DELETE,
            "/asset/target-price?symbol=KRW-BTC",
        )
        .await;
    front
        .call(reqwest::Method::DELETE, "/asset/favorite?symbol=005930")
        .await;
    assert_eq!(front.get("/asset/favorite").await, json!(["KRW-BTC"]));
    app.app.stop().await;
}

async fn history_eventually(front: &Frontend, count: usize) -> Vec<Value> {
    for _ in 0..100 {
        let history = front.get("/alert").await;
        let history = history.as_array().unwrap();
        if history.len() >= count {
            return history.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the history never reached {count} alerts");
}

/// A WebSocket handshake from `from` to `url`, answered with a refusal: its status.
async fn refused_socket(from: Ipv4Addr, addr: SocketAddr, path: &str) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    match tokio_tungstenite::client_async(format!("ws://{addr}{path}"), stream).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("{path} from {from} was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn only_the_gateway_may_name_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let app = gateway_app(dir.path()).await;
    let direct = reqwest::Client::builder()
        .local_address(IpAddr::V4(ELSEWHERE))
        .build()
        .unwrap();
    let front = Frontend::new(&app, direct.clone());

    // The frontend's own headers, sent past the gateway: refused, not taken at their word.
    let refused = front
        .request(reqwest::Method::GET, "/asset/favorite")
        .send()
        .await
        .unwrap();
    let body = error_of(refused, 403).await;
    assert!(
        body["message"].as_str().unwrap().contains("x-auth-user"),
        "{body}"
    );
    let web: SocketAddr = app.web.trim_start_matches("http://").parse().unwrap();
    let email = format!("/ws/socket/alert?email={EMAIL}");
    assert_eq!(refused_socket(ELSEWHERE, web, &email).await, 403);
    // Past the gateway, the quote socket needs a token like any other.
    assert_eq!(refused_socket(ELSEWHERE, web, "/ws/stocks").await, 401);

    // A token still works from anywhere.
    let own = direct
        .get(format!("{}/asset/favorite", app.web))
        .bearer_auth(common::token(EMAIL))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(own.json::<Value>().await.unwrap(), json!([]));

    // Through the gateway, a socket's `?email=` must be the user the gateway named, when it
    // names one.
    let gateway = reqwest::Client::new();
    let mismatch = gateway
        .get(format!(
            "{}/ws/socket/alert?email=someone@example.com",
            app.web
        ))
        .header("x-auth-user", EMAIL)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    error_of(mismatch, 403).await;
    // A header that holds no user id is no identity.
    let blank = gateway
        .get(format!("{}/alert", app.web))
        .header("x-auth-user", " ")
        .send()
        .await
        .unwrap();
    error_of(blank, 401).await;
    // Without the header, the gateway's requests need a token too.
    let anonymous = gateway
        .get(format!("{}/alert", app.web))
        .header("authorization", &front.token)
        .send()
        .await
        .unwrap();
    error_of(anonymous, 401).await;
    app.app.stop().await;
}
