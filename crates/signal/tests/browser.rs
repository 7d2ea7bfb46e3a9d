//! The web app in real Chromium. The whole system runs in this process over the local stand-ins
//! for KIS (삼성전자) and Upbit (crypto); `web/tests/browser.cjs` drives Debian's chromium with
//! playwright-core against the one origin and moves prices, stops and starts the system through
//! a small control server of this test. Needs `/usr/bin/chromium` and the web app's npm packages
//! (`bash .ci/run` installs both; by hand: `apt-get install chromium fonts-nanum` and
//! `cd web && npm ci`).
//!
//! `DONTOUCH_SCREENSHOTS=$PWD/docs/screenshots cargo test -p dontouch-signal --test browser`
//! (an absolute folder) also refreshes the screenshots of the main pages.

#![allow(clippy::unwrap_used)]

mod common;
mod stand_ins;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use dontouch_signal::{RunningApp, Settings};
use serde::Deserialize;
use signal_domain::Timestamp;
use signal_exchange_fakes::kis::{domestic_record_at, frame};
use signal_exchange_fakes::{Bar, FakeKis, FakeUpbit};
use stand_ins::StandIn;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Tuesday 10:00 in Seoul: the KIS connector streams as in a session whenever the test runs.
fn krx_session() -> Timestamp {
    "2026-11-24T01:00:00Z".parse().unwrap()
}

/// What the control server asks of the test's own task, which owns the running system.
enum Lifecycle {
    Stop(oneshot::Sender<()>),
    Start(oneshot::Sender<()>),
}

/// The control server's view: the KIS stand-in, and a line to the task owning the system.
struct Control {
    kis: FakeKis,
    lifecycle: mpsc::Sender<Lifecycle>,
}

#[derive(Deserialize)]
struct Price {
    code: String,
    price: String,
}

impl Control {
    /// Waits until the KIS connector streams `code`, so a trade sent now reaches it.
    async fn streamed(&self, code: &str) -> Result<(), String> {
        for _ in 0..400 {
            if self.kis.registered().contains(code) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("KIS never had {code} registered"))
    }

    async fn ask(&self, what: fn(oneshot::Sender<()>) -> Lifecycle) -> StatusCode {
        let (done, finished) = oneshot::channel();
        if self.lifecycle.send(what(done)).await.is_err() || finished.await.is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        StatusCode::NO_CONTENT
    }
}

async fn trade(
    State(control): State<Arc<Control>>,
    Json(trade): Json<Price>,
) -> Result<StatusCode, (StatusCode, String)> {
    control
        .streamed(&trade.code)
        .await
        .map_err(|e| (StatusCode::CONFLICT, e))?;
    control.kis.set_price(&trade.code, &trade.price);
    let record = domestic_record_at(&trade.code, &trade.price, chrono::Utc::now());
    control.kis.send(frame("H0STCNT0", &[record]));
    Ok(StatusCode::NO_CONTENT)
}

/// The price KIS answers a REST snapshot with, without a streamed trade.
async fn rest_price(State(control): State<Arc<Control>>, Json(price): Json<Price>) -> StatusCode {
    control.kis.set_price(&price.code, &price.price);
    StatusCode::NO_CONTENT
}

async fn stop(State(control): State<Arc<Control>>) -> StatusCode {
    control.ask(Lifecycle::Stop).await
}

async fn start(State(control): State<Arc<Control>>) -> StatusCode {
    control.ask(Lifecycle::Start).await
}

/// Starts the system; the ports the first start gets are kept for the next.
async fn start_system(settings: &mut Settings) -> RunningApp {
    let app = dontouch_signal::start(settings, None)
        .await
        .expect("the system starts");
    settings.asset.bind = app.asset_addr;
    settings.alert.bind = app.alert_addr;
    settings.web.bind = app.web_addr;
    app
}

/// 삼성전자's last 200 trading days as KIS reports them, swinging around 70,000, so the chart's
/// day bars come from the exchange's history on a fresh system.
fn daily_history() -> Vec<(chrono::NaiveDate, Bar)> {
    let seoul = chrono::FixedOffset::east_opt(9 * 3600).unwrap();
    let today = chrono::Utc::now().with_timezone(&seoul).date_naive();
    let price = |x: f64| ((70_000.0 + 3_000.0 * x) / 100.0).round() * 100.0;
    (1..=200)
        .map(|back: i32| {
            let x = f64::from(back);
            let (open, close) = (price((x / 15.0).sin()), price(((x - 1.0) / 15.0).sin()));
            let (high, low) = (open.max(close) + 400.0, open.min(close) - 300.0);
            let text = |p: f64| format!("{p:.0}");
            (
                today - chrono::Days::new(u64::from(back.unsigned_abs())),
                Bar::new(
                    &text(open),
                    &text(high),
                    &text(low),
                    &text(close),
                    "12000000",
                ),
            )
        })
        .collect()
}

/// The web app's npm packages: `DONTOUCH_WEB_NODE_MODULES` (set by .ci/run), `web/node_modules`,
/// or the cache .ci/run fills.
fn node_modules(web: &Path) -> PathBuf {
    let candidates = [
        std::env::var_os("DONTOUCH_WEB_NODE_MODULES").map(PathBuf::from),
        Some(web.join("node_modules")),
        std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/dontouch-signal/web/node_modules")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|dir| dir.join("playwright-core").is_dir())
        .expect("the web app's npm packages: run `npm ci` in web/ (or bash .ci/run)")
}

/// The exchanges' stand-ins, with 삼성전자, Bitcoin and Ether priced, and the system's settings
/// over them (KRX in session).
async fn exchanges(dir: &Path) -> (Settings, FakeKis, FakeUpbit) {
    let kis = FakeKis::start().await;
    kis.set_price("005930", "70000");
    kis.set_day_history("005930", daily_history());
    // Each start of the system issues a token; the real limit is one a minute.
    kis.set_issue_window(Duration::from_millis(50));
    let upbit = FakeUpbit::start().await;
    upbit.set_price("KRW-BTC", "160000000");
    upbit.set_price("KRW-ETH", "5200000");

    let mut settings = common::settings(dir);
    settings.feeds.upbit = true;
    settings.upbit.rest_url = upbit.rest_url();
    settings.upbit.ws_url = upbit.ws_url();
    let mut kis_config = signal_kis::KisConfig::new("PSfakeAppKey0123456789", "fake-app-secret");
    kis_config.rest_url = kis.rest_url();
    kis_config.ws_url = kis.ws_url();
    kis_config.reconnect_min = Duration::from_millis(50);
    kis_config.reconnect_max = Duration::from_millis(200);
    kis_config.now = krx_session;
    settings.kis = Some(kis_config);
    (settings, kis, upbit)
}

/// Starts the system and runs `web/tests/<script>` in node against it, with the control server
/// and `env`; asserts that the script passes.
async fn run_in_chromium(
    script: &str,
    mut settings: Settings,
    kis: FakeKis,
    env: &[(&str, String)],
) {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed: apt-get install chromium fonts-nanum (bash .ci/run does)"
    );
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let modules = node_modules(&web);

    let mut system = Some(start_system(&mut settings).await);
    let app_url = format!("http://{}", settings.web.bind);
    let (lifecycle, mut requests) = mpsc::channel(1);
    let control = Arc::new(Control { kis, lifecycle });
    let router = Router::new()
        .route("/kis/trade", post(trade))
        .route("/kis/price", post(rest_price))
        .route("/system/stop", post(stop))
        .route("/system/start", post(start))
        .with_state(control);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut node = tokio::process::Command::new("node");
    node.arg(web.join("tests").join(script))
        .env("NODE_PATH", &modules)
        .env("DONTOUCH_APP_URL", &app_url)
        .env("DONTOUCH_CONTROL_URL", &control_url)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .kill_on_drop(true);
    if let Some(folder) = std::env::var_os("DONTOUCH_SCREENSHOTS") {
        node.env("DONTOUCH_SCREENSHOTS", folder);
    }
    let mut browser = node.spawn().expect("node runs (Node.js 20 or later)");
    let status = loop {
        tokio::select! {
            status = browser.wait() => break status.unwrap(),
            Some(request) = requests.recv() => match request {
                Lifecycle::Stop(done) => {
                    if let Some(app) = system.take() {
                        app.stop().await;
                    }
                    let _ = done.send(());
                }
                Lifecycle::Start(done) => {
                    if system.is_none() {
                        system = Some(start_system(&mut settings).await);
                    }
                    let _ = done.send(());
                }
            },
        }
    };
    if let Some(app) = system {
        app.stop().await;
    }
    assert!(
        status.success(),
        "the browser scenarios of {script} failed: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_use_the_web_app_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, kis, _upbit) = exchanges(dir.path()).await;
    run_in_chromium("browser.cjs", settings, kis, &[]).await;
}

/// Channels from the settings page, in chromium: this browser's push subscription (the push
/// service is the local stand-in, which decrypts what it is sent) and a webhook with its test
/// and recent deliveries; then a rule that uses them fires with every tab of the app closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_add_channels_and_get_alerts_with_the_tab_closed_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, kis, _upbit) = exchanges(dir.path()).await;
    // The app's address is in the notifications' links, so it is chosen before the start.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    settings.web.bind = ([127, 0, 0, 1], port).into();
    settings.channels.app_url = format!("http://127.0.0.1:{port}");
    settings.channels.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
    settings.channels.poll_ms = 100;
    let push = StandIn::start("push", &[]).await;
    let webhook = StandIn::start("webhook", &[]).await;
    let subscription = push.control("subscribe", serde_json::json!({})).await;
    run_in_chromium(
        "channels.cjs",
        settings,
        kis,
        &[
            ("DONTOUCH_PUSH_URL", push.url("")),
            ("DONTOUCH_PUSH_SUBSCRIPTION", subscription.to_string()),
            ("DONTOUCH_WEBHOOK_URL", webhook.url("")),
        ],
    )
    .await;
}
