//! The new kinds of condition through the running system: created over HTTP, fed ticks, and
//! arriving on the user's socket and in their history; and refused, naming the field, when their
//! parameters make no sense.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{error_of, spawn, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

async fn create(app: &TestApp, user: &str, body: Value) -> Value {
    let response = app
        .post(format!("{}/api/v1/rules", app.asset), user)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_crossing_fires_when_the_price_goes_through_its_level_not_when_it_is_already_past() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut socket = app.alert_socket("frank").await;
    app.tick("UPBIT:KRW-BTC", "101000000").await;
    let rule = create(
        &app,
        "frank",
        json!({"instrument": "UPBIT:KRW-BTC", "condition": "CROSS_UP", "level": "100000000"}),
    )
    .await;
    assert_eq!(rule["condition"], "CROSS_UP");
    assert_eq!(rule["level"], "100000000");

    // Already above the level when the rule was made: staying above is no crossing.
    app.tick("UPBIT:KRW-BTC", "102000000").await;
    socket.assert_no_alert().await;
    // Down below, then a trade exactly at the level: that is the crossing.
    app.tick("UPBIT:KRW-BTC", "99000000").await;
    socket.assert_no_alert().await;
    app.tick("UPBIT:KRW-BTC", "100000000").await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["condition"], "CROSS_UP");
    assert_eq!(alert["level"], "100000000");
    assert_eq!(alert["price"], "100000000");

    let history = app.history_len_eventually("frank", 1).await;
    assert_eq!(history[0]["condition"], "CROSS_UP");
    let rules: Vec<Value> = app
        .get_json(format!("{}/api/v1/rules", app.asset), "frank")
        .await;
    assert_eq!(rules[0]["state"], "triggered");
    app.app.stop().await;
}

#[tokio::test]
async fn a_channel_fires_on_a_trade_inside_its_band_after_one_outside() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut socket = app.alert_socket("gina").await;
    app.tick("NASDAQ:AAPL", "95").await;
    create(
        &app,
        "gina",
        json!({"instrument": "NASDAQ:AAPL", "condition": "CHANNEL_ENTER",
               "low": "100", "high": "110", "repeat": "every", "cooldownSeconds": 0}),
    )
    .await;
    // A jump over the whole band has no trade inside it.
    app.tick("NASDAQ:AAPL", "120").await;
    socket.assert_no_alert().await;
    app.tick("NASDAQ:AAPL", "110").await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["condition"], "CHANNEL_ENTER");
    assert_eq!(alert["level"], "110", "entered through its top");
    // Moving inside the band is no new entry.
    app.tick("NASDAQ:AAPL", "104").await;
    socket.assert_no_alert().await;
    app.tick("NASDAQ:AAPL", "99.99").await;
    app.tick("NASDAQ:AAPL", "100").await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["level"], "100", "entered through its bottom");
    app.app.stop().await;
}

#[tokio::test]
async fn a_move_within_a_window_is_measured_from_the_window_s_high_and_not_beyond_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut socket = app.alert_socket("hana").await;
    let window = 3;
    let rule = create(
        &app,
        "hana",
        json!({"instrument": "UPBIT:KRW-ETH", "condition": "MOVE_DOWN", "percent": "3",
               "windowSeconds": window}),
    )
    .await;
    assert_eq!(rule["windowSeconds"], window);
    app.tick("UPBIT:KRW-ETH", "5000000").await;
    app.tick("UPBIT:KRW-ETH", "4900000").await;
    // The fall to 4,800,000 takes longer than the window: the high has left it.
    tokio::time::sleep(Duration::from_secs(window) + Duration::from_millis(500)).await;
    app.tick("UPBIT:KRW-ETH", "4800000").await;
    socket.assert_no_alert().await;
    // 3 % below the window's highest trade, not its first.
    app.tick("UPBIT:KRW-ETH", "4900000").await;
    app.tick("UPBIT:KRW-ETH", "5000000").await;
    app.tick("UPBIT:KRW-ETH", "4850000").await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["condition"], "MOVE_DOWN");
    assert_eq!(alert["price"], "4850000");
    app.app.stop().await;
}

#[tokio::test]
async fn new_kinds_with_bad_parameters_get_a_422_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let rules = format!("{}/api/v1/rules", app.asset);
    let btc = "UPBIT:KRW-BTC";
    for (body, field) in [
        (
            json!({"instrument": btc, "condition": "RSI_ABOVE", "interval": "1h", "bars": 0, "level": 70}),
            "bars",
        ),
        (
            json!({"instrument": btc, "condition": "VOLUME_SPIKE", "interval": "5m", "bars": 20, "factor": "-3"}),
            "factor",
        ),
        (
            json!({"instrument": btc, "condition": "MA_CROSS_UP", "interval": "2h", "bars": 20}),
            "interval",
        ),
        (
            json!({"instrument": btc, "condition": "MOVE_DOWN", "percent": 3, "windowSeconds": 90000}),
            "windowSeconds",
        ),
        (
            json!({"instrument": btc, "condition": "CROSS_UP", "level": "100", "percent": "3"}),
            "percent",
        ),
        (
            json!({"instrument": btc, "condition": "CHANNEL_EXIT", "low": "200", "high": "100"}),
            "low",
        ),
        (
            json!({"instrument": btc, "condition": "GOLDEN_CROSS", "interval": "1d",
                   "fast": {"bars": 200}, "slow": {"bars": 50}}),
            "fast.bars",
        ),
        (
            json!({"instrument": btc, "condition": "ABOVE", "level": "100", "repeat": "once_per_bar"}),
            "interval",
        ),
        (
            json!({"instrument": btc, "condition": "RSI_BELOW", "interval": "1h", "bars": 14,
                   "level": 30, "repeat": "once_per_bar_close", "interval_": "5m"}),
            "interval_",
        ),
    ] {
        let response = app.post(&rules, "ivan").json(&body).send().await.unwrap();
        let error = error_of(response, 422).await;
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    app.app.stop().await;
}

/// Trades of one share, one a minute, in the minutes before this one, closing at `closes`.
async fn minutes_before(app: &TestApp, instrument: &str, closes: &[i64]) {
    use chrono::{DurationRound, TimeDelta, Utc};
    let this_minute = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap();
    let count = i32::try_from(closes.len()).unwrap();
    for (minute, close) in (0..count).zip(closes) {
        let at =
            this_minute - TimeDelta::minutes(i64::from(count - minute)) + TimeDelta::seconds(30);
        let tick = signal_domain::Tick {
            instrument: instrument.parse().unwrap(),
            price: close.to_string().parse().unwrap(),
            trade_volume: Some(1.into()),
            cumulative_volume: None,
            prev_close: None,
            exchange_time: at,
            received_at: Utc::now(),
            source: signal_domain::QuoteSource::Simulated,
        };
        app.app.ticks.send(tick).await.unwrap();
    }
    // The candles reach the store every few seconds: wait until the last one is there.
    let from = this_minute - TimeDelta::minutes(i64::from(count));
    let url = format!(
        "{}/api/v1/instruments/{instrument}/candles?from={}&to={}",
        app.asset,
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        this_minute.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    for _ in 0..100 {
        let stored: Vec<Value> = app.get_json(&url, "jin").await;
        if stored.len() == closes.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the candles of {instrument} never reached the store");
}

#[tokio::test]
async fn an_rsi_rule_is_warmed_up_from_stored_candles_and_does_not_fire_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut socket = app.alert_socket("jin").await;
    // Fifteen minutes of steady falls: RSI(2) on 1m bars is 0.
    let falling: Vec<i64> = (0..15).map(|minute| 1000 - minute * 10).collect();
    minutes_before(&app, "UPBIT:KRW-XRP", &falling).await;
    let rsi = |instrument: &str| {
        json!({"instrument": instrument, "condition": "RSI_ABOVE", "interval": "1m",
               "bars": 2, "level": 80})
    };
    create(&app, "jin", rsi("UPBIT:KRW-XRP")).await;
    // No stored bars for this one: its RSI has no value, whatever the price does.
    create(&app, "jin", rsi("UPBIT:KRW-SOL")).await;
    app.tick("UPBIT:KRW-SOL", "1000").await;
    app.tick("UPBIT:KRW-SOL", "2000").await;
    socket.assert_no_alert().await;

    // A small rise does not lift RSI(2) past 80; a jump does.
    app.tick("UPBIT:KRW-XRP", "862").await;
    socket.assert_no_alert().await;
    app.tick("UPBIT:KRW-XRP", "910").await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["condition"], "RSI_ABOVE");
    assert_eq!(alert["instrument"], "UPBIT:KRW-XRP");
    assert_eq!(alert["price"], "910");
    app.app.stop().await;
}

#[tokio::test]
async fn a_preview_counts_the_firings_over_the_stored_candles_without_saving_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    minutes_before(&app, "UPBIT:KRW-ADA", &[1000, 1100, 1000, 1100, 1000, 1000]).await;
    let preview = format!("{}/api/v1/rules/preview", app.asset);
    let response = app
        .post(&preview, "kim")
        .json(&json!({"instrument": "UPBIT:KRW-ADA", "condition": "CROSS_UP", "level": "1050"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["counts"],
        json!([{"days": 1, "fired": 2}, {"days": 7, "fired": 2}, {"days": 30, "fired": 2}]),
        "{body}"
    );
    let prices: Vec<&Value> = body["firings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|firing| &firing["price"])
        .collect();
    assert_eq!(prices, [&json!("1100"), &json!("1100")]);
    assert_eq!(body["candles"], 6);
    assert!(body["approximation"]
        .as_str()
        .unwrap()
        .contains("1-minute candles"));

    // The same rule with a level the candles never reach fires never.
    let never = app
        .post(&preview, "kim")
        .json(&json!({"instrument": "UPBIT:KRW-ADA", "condition": "CROSS_UP", "level": "1200"}))
        .send()
        .await
        .unwrap();
    let body: Value = never.json().await.unwrap();
    assert_eq!(body["counts"][2]["fired"], 0, "{body}");

    let bad = app
        .post(&preview, "kim")
        .json(
            &json!({"instrument": "UPBIT:KRW-ADA", "condition": "RSI_BELOW", "interval": "1h",
                      "bars": 0, "level": 30}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(bad, 422).await["field"], "bars");
    let saved: Vec<Value> = app
        .get_json(format!("{}/api/v1/rules", app.asset), "kim")
        .await;
    assert!(saved.is_empty(), "a preview saves nothing: {saved:?}");
    app.app.stop().await;
}
