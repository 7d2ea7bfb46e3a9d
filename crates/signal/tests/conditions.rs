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
async fn a_rule_created_past_its_level_fires_without_a_new_trade_and_a_crossing_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut socket = app.alert_socket("olga").await;
    // A first rule fires on the first trade: its alert shows the engine has taken the trade.
    create(
        &app,
        "olga",
        json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": "1"}),
    )
    .await;
    app.tick("UPBIT:KRW-BTC", "101000000").await;
    assert_eq!(socket.next_of("alert").await["level"], "1");

    // The price is already under 102,000,000: BELOW it fires at once, with no further trade.
    create(
        &app,
        "olga",
        json!({"instrument": "UPBIT:KRW-BTC", "condition": "BELOW", "level": "102000000"}),
    )
    .await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["condition"], "BELOW");
    assert_eq!(alert["level"], "102000000");
    assert_eq!(alert["price"], "101000000");

    // Already past a crossing's level is no crossing.
    create(
        &app,
        "olga",
        json!({"instrument": "UPBIT:KRW-BTC", "condition": "CROSS_DOWN", "level": "102000000"}),
    )
    .await;
    socket.assert_no_alert().await;
    let rules: Vec<Value> = app
        .get_json(format!("{}/api/v1/rules", app.asset), "olga")
        .await;
    let state_of = |kind: &str| {
        rules
            .iter()
            .find(|rule| rule["condition"] == kind)
            .map(|rule| rule["state"].clone())
    };
    assert_eq!(state_of("BELOW"), Some(json!("triggered")));
    assert_eq!(state_of("CROSS_DOWN"), Some(json!("armed")));
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

#[tokio::test]
async fn a_paused_rule_is_not_evaluated_and_a_snoozed_one_cannot_fire_until_its_snooze_ends() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut socket = app.alert_socket("lena").await;
    let rule = create(
        &app,
        "lena",
        json!({"instrument": "NASDAQ:AAPL", "condition": "ABOVE", "level": "100",
               "repeat": "every", "cooldownSeconds": 0}),
    )
    .await;
    assert_eq!(rule["paused"], false);
    assert_eq!(rule["snoozedUntil"], Value::Null);
    let url = format!("{}/api/v1/rules/{}", app.asset, rule["id"]);
    let call = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json::<Value>().await.unwrap()
    };

    let paused = call(app.post(format!("{url}/pause"), "lena")).await;
    assert_eq!(paused["paused"], true);
    assert!(paused["pausedAt"].is_string());
    assert_eq!(paused["state"], "armed", "a pause keeps the rule's state");
    app.tick("NASDAQ:AAPL", "101").await;
    socket.assert_no_alert().await;
    let listed: Vec<Value> = app
        .get_json(format!("{}/api/v1/rules?active=true", app.asset), "lena")
        .await;
    assert_eq!(
        listed[0]["paused"], true,
        "a paused rule is still the user's"
    );

    let resumed = call(app.post(format!("{url}/resume"), "lena")).await;
    assert_eq!(resumed["paused"], false);
    assert_eq!(resumed["pausedAt"], Value::Null);
    // Resumed, it is evaluated at once on the latest trade, which is past its level.
    assert_eq!(socket.next_of("alert").await["price"], "101");

    // Back below the level re-arms it; snoozed for an hour, it watches but does not fire.
    app.tick("NASDAQ:AAPL", "99").await;
    socket.assert_no_alert().await;
    let snoozed = call(
        app.post(format!("{url}/snooze"), "lena")
            .json(&json!({"seconds": 3600})),
    )
    .await;
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(snoozed["snoozedUntil"].clone()).unwrap();
    assert!(until > chrono::Utc::now() + chrono::Duration::minutes(59));
    app.tick("NASDAQ:AAPL", "101").await;
    socket.assert_no_alert().await;
    let woken = call(app.delete(format!("{url}/snooze"), "lena")).await;
    assert_eq!(woken["snoozedUntil"], Value::Null);
    assert_eq!(socket.next_of("alert").await["price"], "101");

    // Snoozed until an instant: the first trade past it fires.
    app.tick("NASDAQ:AAPL", "99").await;
    socket.assert_no_alert().await;
    let end = chrono::Utc::now() + chrono::Duration::seconds(2);
    call(
        app.post(format!("{url}/snooze"), "lena")
            .json(&json!({ "until": end })),
    )
    .await;
    app.tick("NASDAQ:AAPL", "101").await;
    socket.assert_no_alert().await;
    let left = (end - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(100)).await;
    app.tick("NASDAQ:AAPL", "103").await;
    assert_eq!(socket.next_of("alert").await["price"], "103");

    for (body, field) in [
        (json!({"seconds": 0}), "seconds"),
        (json!({"seconds": 31 * 86400}), "seconds"),
        (json!({}), "seconds"),
        (json!({"until": "2020-01-01T00:00:00Z"}), "until"),
    ] {
        let response = app
            .post(format!("{url}/snooze"), "lena")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(response, 422).await["field"], field, "{body}");
    }
    let theirs = app
        .post(format!("{url}/pause"), "mina")
        .send()
        .await
        .unwrap();
    error_of(theirs, 404).await;
    app.app.stop().await;
}

#[tokio::test]
async fn once_per_bar_fires_once_in_a_bar_and_once_per_bar_close_on_the_close_only() {
    use chrono::{DurationRound, TimeDelta, Utc};
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut socket = app.alert_socket("nora").await;
    // Two trades must fall in one minute: start early in one.
    let minute = |at: chrono::DateTime<Utc>| at.duration_trunc(TimeDelta::minutes(1)).unwrap();
    if Utc::now() - minute(Utc::now()) > TimeDelta::seconds(45) {
        let next = minute(Utc::now()) + TimeDelta::minutes(1);
        tokio::time::sleep((next - Utc::now()).to_std().unwrap_or_default()).await;
    }
    let per_bar = create(
        &app,
        "nora",
        json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": "100",
               "repeat": "once_per_bar", "interval": "1m"}),
    )
    .await;
    assert_eq!(per_bar["repeat"], "once_per_bar");
    assert_eq!(per_bar["interval"], "1m");
    let on_close = create(
        &app,
        "nora",
        json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": "100",
               "repeat": "once_per_bar_close", "interval": "1m"}),
    )
    .await;
    let first_bar = minute(Utc::now());
    app.tick("UPBIT:KRW-BTC", "101").await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["ruleId"], per_bar["id"]);
    assert_eq!(alert["price"], "101");
    // Still above in the same bar: once per bar is spent, and the bar has not closed.
    app.tick("UPBIT:KRW-BTC", "104").await;
    app.tick("UPBIT:KRW-BTC", "102").await;
    socket.assert_no_alert().await;
    assert_eq!(minute(Utc::now()), first_bar, "the trades shared a bar");

    // The bar closes at 102, above the level: the close fires; the next bar frees the other.
    let next = first_bar + TimeDelta::minutes(1);
    tokio::time::sleep((next - Utc::now()).to_std().unwrap_or_default()).await;
    let closed = socket.next_of("alert").await;
    assert_eq!(closed["ruleId"], on_close["id"]);
    assert_eq!(closed["price"], "102", "the bar's close");
    app.tick("UPBIT:KRW-BTC", "103").await;
    let again = socket.next_of("alert").await;
    assert_eq!(again["ruleId"], per_bar["id"]);
    assert_eq!(again["price"], "103");
    app.app.stop().await;
}

#[tokio::test]
async fn two_conditions_fire_together_only_when_both_are_met_within_their_time() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut socket = app.alert_socket("olga").await;
    // Fifteen minutes of steady rises: RSI(2) on 1m bars is 100.
    let rising: Vec<i64> = (0..15).map(|minute| 1000 + minute * 10).collect();
    minutes_before(&app, "UPBIT:KRW-XRP", &rising).await;
    let pair = |rsi: &str, level: i64| {
        json!({"instrument": "UPBIT:KRW-XRP", "condition": rsi, "interval": "1m", "bars": 2,
               "level": level, "message": "{{name}} {{condition}} at {{price}}",
               "and": {"condition": "CROSS_UP", "level": "1200", "withinSeconds": 60}})
    };
    let hot = create(&app, "olga", pair("RSI_ABOVE", 70)).await;
    assert_eq!(
        hot["and"],
        json!({"condition": "CROSS_UP", "level": "1200", "withinSeconds": 60})
    );
    assert_eq!(hot["message"], "{{name}} {{condition}} at {{price}}");
    // RSI is high, so the same crossing must not fire this one.
    create(&app, "olga", pair("RSI_BELOW", 30)).await;

    // RSI above 70 but no crossing yet; then the crossing, within the minute.
    app.tick("UPBIT:KRW-XRP", "1150").await;
    socket.assert_no_alert().await;
    app.tick("UPBIT:KRW-XRP", "1210").await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["ruleId"], hot["id"]);
    assert_eq!(alert["condition"], "RSI_ABOVE");
    assert_eq!(alert["price"], "1210");
    socket.assert_no_alert().await;

    let rules = format!("{}/api/v1/rules", app.asset);
    let cross = |and: Value| json!({"instrument": "UPBIT:KRW-XRP", "condition": "ABOVE", "level": "1", "and": and});
    for (body, field) in [
        (
            cross(json!({"condition": "CROSS_UP", "level": "-1", "withinSeconds": 60})),
            "and.level",
        ),
        (
            cross(json!({"condition": "CROSS_UP", "level": "1"})),
            "and.withinSeconds",
        ),
        (
            cross(json!({"condition": "CROSS_UP", "level": "1", "withinSeconds": 0})),
            "and.withinSeconds",
        ),
        (
            cross(
                json!({"condition": "RSI_ABOVE", "interval": "2h", "bars": 14, "level": 70,
                         "withinSeconds": 60}),
            ),
            "and.interval",
        ),
        (
            cross(json!({"condition": "CROSS_UP", "level": "1", "withinSeconds": 60, "lvl": 1})),
            "and.lvl",
        ),
        (
            json!({"instrument": "UPBIT:KRW-XRP", "condition": "ABOVE", "level": "1",
                   "repeat": "every", "rearmBand": "5",
                   "and": {"condition": "CROSS_UP", "level": "1", "withinSeconds": 60}}),
            "rearmBand",
        ),
    ] {
        let response = app.post(&rules, "olga").json(&body).send().await.unwrap();
        let error = error_of(response, 422).await;
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    app.app.stop().await;
}

#[tokio::test]
async fn a_message_with_an_unknown_placeholder_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let rules = format!("{}/api/v1/rules", app.asset);
    let response = app
        .post(&rules, "pia")
        .json(
            &json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": "1",
                      "message": "{{symbol}} traded {{volume}}"}),
        )
        .send()
        .await
        .unwrap();
    let error = error_of(response, 422).await;
    assert_eq!(error["field"], "message");
    assert!(
        error["message"].as_str().unwrap().contains("{{volume}}"),
        "{error}"
    );
    let rule = create(
        &app,
        "pia",
        json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": "1",
               "message": "[{{symbol}}] {{change_percent}}% at {{time}}"}),
    )
    .await;
    assert_eq!(
        rule["message"],
        "[{{symbol}}] {{change_percent}}% at {{time}}"
    );
    app.app.stop().await;
}
