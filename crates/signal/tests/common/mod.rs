//! A running system per test: fresh data directory, ports chosen by the OS, no feed, and ticks
//! pushed by the test itself.

#![allow(dead_code)] // each test file uses its own subset of these helpers

use dontouch_signal::{RunningApp, Settings};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use signal_domain::{Price, QuoteSource, Tick};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

pub struct TestApp {
    pub app: RunningApp,
    pub http: reqwest::Client,
    pub asset: String,
    pub alert: String,
    /// The one origin: the web app and both services' routes.
    pub web: String,
}

pub fn settings(dir: &std::path::Path) -> Settings {
    let mut settings = Settings {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    settings.asset.bind = "127.0.0.1:0".parse().unwrap();
    settings.alert.bind = "127.0.0.1:0".parse().unwrap();
    settings.web.bind = "127.0.0.1:0".parse().unwrap();
    settings.auth.jwt_secret = Some(SECRET.into());
    // Tests push their own ticks; no test reaches an exchange.
    settings.feeds.upbit = false;
    settings
}

pub async fn spawn(dir: &std::path::Path) -> TestApp {
    spawn_with(settings(dir)).await
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    let app = dontouch_signal::start(&settings, None)
        .await
        .expect("app starts");
    TestApp {
        asset: format!("http://{}", app.asset_addr),
        alert: format!("http://{}", app.alert_addr),
        web: format!("http://{}", app.web_addr),
        http: reqwest::Client::new(),
        app,
    }
}

/// Checks that `response` is an error with `status` and the JSON body every error has; returns
/// the body.
pub async fn error_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
    body
}

pub fn token(user: &str) -> String {
    let config = signal_web::JwtConfig {
        secret: SECRET.into(),
        user_claim: "sub".into(),
        ..Default::default()
    };
    signal_web::JwtSigner::new(&config)
        .sign(
            &signal_domain::UserId::new(user).unwrap(),
            chrono::Duration::hours(1),
        )
        .unwrap()
}

impl TestApp {
    pub async fn tick(&self, instrument: &str, price: &str) {
        let now = chrono::Utc::now();
        let tick = Tick {
            instrument: instrument.parse().unwrap(),
            price: price.parse::<Price>().unwrap(),
            trade_volume: Some(1.into()),
            cumulative_volume: None,
            prev_close: Some("70000".parse().unwrap()),
            exchange_time: now,
            received_at: now,
            source: QuoteSource::Simulated,
        };
        self.app.ticks.send(tick).await.unwrap();
    }

    pub fn get(&self, url: impl reqwest::IntoUrl, user: &str) -> reqwest::RequestBuilder {
        self.http.get(url).bearer_auth(token(user))
    }

    /// GETs `url` as `user` and reads the JSON answer.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: impl reqwest::IntoUrl,
        user: &str,
    ) -> T {
        self.get(url, user)
            .send()
            .await
            .expect("the request is answered")
            .json()
            .await
            .expect("a JSON answer")
    }

    pub fn post(&self, url: impl reqwest::IntoUrl, user: &str) -> reqwest::RequestBuilder {
        self.http.post(url).bearer_auth(token(user))
    }

    pub fn put(&self, url: impl reqwest::IntoUrl, user: &str) -> reqwest::RequestBuilder {
        self.http.put(url).bearer_auth(token(user))
    }

    pub fn delete(&self, url: impl reqwest::IntoUrl, user: &str) -> reqwest::RequestBuilder {
        self.http.delete(url).bearer_auth(token(user))
    }

    pub async fn alert_socket(&self, user: &str) -> Socket {
        let url = format!(
            "ws://{}/api/v1/alerts/stream?token={}",
            self.app.alert_addr,
            token(user)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("alert socket");
        Socket { ws }
    }

    pub async fn quote_socket(&self, user: &str) -> Socket {
        let url = format!(
            "ws://{}/api/v1/quotes/stream?token={}",
            self.app.asset_addr,
            token(user)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("quote socket");
        Socket { ws }
    }

    /// Waits until the outbox has been handed over and the alert consumer is idle, by polling
    /// the user's history until it holds `count` alerts.
    pub async fn history_len_eventually(&self, user: &str, count: usize) -> Vec<Value> {
        for _ in 0..100 {
            let history: Vec<Value> = self.get_json(format!("{}/alert", self.alert), user).await;
            if history.len() >= count {
                return history;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("history of {user} never reached {count} alerts");
    }
}

pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl From<WebSocketStream<MaybeTlsStream<TcpStream>>> for Socket {
    fn from(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Socket { ws }
    }
}

/// Long enough that a message that is coming arrives on any machine; not a speed requirement.
pub const ARRIVES_WITHIN: Duration = Duration::from_secs(10);
/// How long to watch for a message that must not come.
pub const QUIET_FOR: Duration = Duration::from_millis(700);

impl Socket {
    pub async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next JSON message, or None if nothing comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(wait, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => return serde_json::from_str(&text).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    pub async fn next(&mut self) -> Value {
        self.next_within(ARRIVES_WITHIN)
            .await
            .expect("a message arrives")
    }

    /// The next message of `kind` (`alert`, `acked`, `price_update`), skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    pub async fn assert_no_alert(&mut self) {
        while let Some(message) = self.next_within(QUIET_FOR).await {
            assert_ne!(message["type"], "alert", "unexpected alert: {message}");
        }
    }
}
