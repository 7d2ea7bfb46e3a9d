//! The HTTP and quote-socket surface as a client sees it: identity, clear errors for bad input,
//! search, watchlists and live quotes.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{error_of, settings, spawn, spawn_with, token};
use serde_json::{json, Value};

#[tokio::test]
async fn every_user_route_and_socket_needs_a_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let routes = [
        format!("{}/asset/search?keyword=samsung", app.asset),
        format!("{}/asset/favorite", app.asset),
        format!("{}/api/v1/rules", app.asset),
        format!("{}/alert", app.alert),
        format!("{}/api/v1/alerts", app.alert),
    ];
    for url in &routes {
        let missing = app.http.get(url).send().await.unwrap();
        error_of(missing, 401).await;
        let forged = app
            .http
            .get(url)
            .bearer_auth("not.a.jwt")
            .send()
            .await
            .unwrap();
        error_of(forged, 401).await;
        // Gateway mode is off: the original gateway's header names nobody, and a token without
        // `Bearer` is no token.
        let as_the_original_gateway = app
            .http
            .get(url)
            .header("authorization", token("alice@example.com"))
            .header("x-auth-user", "alice@example.com")
            .send()
            .await
            .unwrap();
        error_of(as_the_original_gateway, 401).await;
    }
    let other_secret = {
        let config = signal_web::JwtConfig {
            secret: "some-other-secret-entirely-0123456789".into(),
            user_claim: "sub".into(),
            ..Default::default()
        };
        signal_web::JwtSigner::new(&config)
            .sign(
                &signal_domain::UserId::new("mallory").unwrap(),
                chrono::Duration::hours(1),
            )
            .unwrap()
    };
    let response = app
        .http
        .get(&routes[2])
        .bearer_auth(other_secret)
        .send()
        .await
        .unwrap();
    error_of(response, 401).await;

    for path in [
        format!(
            "ws://{}/ws/socket/alert?email=alice@example.com",
            app.app.alert_addr
        ),
        format!("ws://{}/ws/stocks", app.app.asset_addr),
    ] {
        let refused = tokio_tungstenite::connect_async(path).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401)
            }
            other => panic!("socket without a token was not refused: {other:?}"),
        }
    }
    // Health and metrics are for operators, not users.
    let live = app
        .http
        .get(format!("{}/health/live", app.asset))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready = app
        .http
        .get(format!("{}/health/ready", app.alert))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    app.app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_json_body_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut limited = settings(dir.path());
    limited.asset.max_active_rules_per_user = 2;
    let app = spawn_with(limited).await;
    let rules = format!("{}/api/v1/rules", app.asset);

    let unknown = app
        .post(
            format!(
                "{}/asset/target-price?symbol=NOPE&targetPrice=1&condition=ABOVE",
                app.asset
            ),
            "alice",
        )
        .send()
        .await
        .unwrap();
    let body = error_of(unknown, 404).await;
    assert!(body["message"].as_str().unwrap().contains("NOPE"), "{body}");

    let negative = app
        .post(
            format!(
                "{}/asset/target-price?symbol=005930&targetPrice=-5&condition=ABOVE",
                app.asset
            ),
            "alice",
        )
        .send()
        .await
        .unwrap();
    let body = error_of(negative, 422).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("greater than zero"),
        "{body}"
    );

    let non_numeric = app
        .post(&rules, "alice")
        .json(&json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "lots"}))
        .send()
        .await
        .unwrap();
    let body = error_of(non_numeric, 422).await;
    assert!(
        body["message"].as_str().unwrap().contains("not a number"),
        "{body}"
    );

    let malformed = app
        .post(&rules, "alice")
        .header("content-type", "application/json")
        .body("{\"instrument\": ")
        .send()
        .await
        .unwrap();
    error_of(malformed, 400).await;

    let wrong_field = app
        .post(&rules, "alice")
        .json(&json!({"instrument": "KRX:005930", "condition": "CHANGE_UP", "level": "1"}))
        .send()
        .await
        .unwrap();
    let body = error_of(wrong_field, 422).await;
    assert!(
        body["message"].as_str().unwrap().contains("percent"),
        "{body}"
    );

    let past = app
        .post(&rules, "alice")
        .json(&json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "1", "expiresAt": "2020-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    error_of(past, 422).await;

    for level in ["80000", "90000"] {
        let ok = app
            .post(&rules, "alice")
            .json(&json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": level}))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 201);
    }
    let one_too_many = app
        .post(&rules, "alice")
        .json(&json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "95000"}))
        .send()
        .await
        .unwrap();
    let body = error_of(one_too_many, 422).await;
    assert_eq!(body["error"], "limit_reached");
    assert!(body["message"].as_str().unwrap().contains('2'), "{body}");
    // The limit is per user.
    let bobs = app
        .post(&rules, "bob")
        .json(&json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "95000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bobs.status(), 201);

    let not_yours: Vec<Value> = app.get_json(rules.clone(), "alice").await;
    let alice_rule = not_yours[0]["id"].as_i64().unwrap();
    let stolen = app
        .delete(format!("{rules}/{alice_rule}"), "bob")
        .send()
        .await
        .unwrap();
    error_of(stolen, 404).await;
    let gone = app
        .delete(format!("{}/alert/999", app.alert), "alice")
        .send()
        .await
        .unwrap();
    error_of(gone, 404).await;
    app.app.stop().await;
}

#[tokio::test]
async fn search_watchlist_and_live_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let found: Vec<Value> = app
        .get_json(format!("{}/asset/search?keyword=삼성", app.asset), "alice")
        .await;
    assert_eq!(found[0]["symbol"], "005930");
    assert_eq!(found[0]["koreanName"], "삼성전자");
    let found: Vec<Value> = app
        .get_json(format!("{}/api/v1/instruments?q=apple", app.asset), "alice")
        .await;
    assert_eq!(found[0]["id"], "NASDAQ:AAPL");
    assert!(found[0]["quote"].is_null());
    // Without KIS credentials a US stock says so, and what to set, rather than "no price".
    assert_eq!(found[0]["quoteUnavailableReason"], "not_configured");
    let why = found[0]["quoteUnavailable"].as_str().unwrap();
    assert!(why.starts_with("KIS is not configured"), "{why}");
    assert!(why.contains("SIGNAL_KIS__APP_KEY"), "{why}");
    // This test turns Upbit off: its markets say that instead.
    let bitcoin: Value = app
        .get_json(
            format!("{}/api/v1/instruments/UPBIT:KRW-BTC", app.asset),
            "alice",
        )
        .await;
    assert_eq!(bitcoin["quoteUnavailableReason"], "switched_off");
    assert!(bitcoin["quoteUnavailable"]
        .as_str()
        .unwrap()
        .starts_with("Upbit is switched off"));

    let add = format!("{}/asset/favorite?symbol=KRW-BTC", app.asset);
    assert_eq!(
        app.post(add.clone(), "alice")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    error_of(app.post(add, "alice").send().await.unwrap(), 409).await;
    let put = app
        .put(
            format!("{}/api/v1/watchlist/KRX:005930", app.asset),
            "alice",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let added: Value = put.json().await.unwrap();
    assert_eq!(added["id"], "KRX:005930");
    assert_eq!(added["koreanName"], "삼성전자");
    let favorites: Vec<String> = app
        .get_json(format!("{}/asset/favorite", app.asset), "alice")
        .await;
    assert_eq!(favorites, ["KRW-BTC", "005930"]);
    let bobs: Vec<String> = app
        .get_json(format!("{}/asset/favorite", app.asset), "bob")
        .await;
    assert!(bobs.is_empty());

    let mut quotes = app.quote_socket("alice").await;
    quotes
        .send(json!({"type": "subscribe", "symbol": "005930"}))
        .await;
    let ack = quotes.next().await;
    assert_eq!(ack["status"], "success");
    quotes
        .send(json!({"type": "subscribe", "symbol": "NOT-A-THING"}))
        .await;
    assert_eq!(quotes.next().await["status"], "error");
    // A command far larger than a socket's first read buffer still arrives whole.
    let padding = " ".repeat(64 * 1024 - 100);
    quotes
        .send_text(format!(
            r#"{{"type": "subscribe",{padding}"symbol": "005930"}}"#
        ))
        .await;
    assert_eq!(quotes.next().await["status"], "success");
    app.tick("KRX:005930", "71500").await;
    let update = quotes.next_of("price_update").await;
    assert_eq!(update["symbol"], "005930");
    assert_eq!(update["price"], 71500.0);
    assert_eq!(update["priceExact"], "71500");
    assert_eq!(update["changeRate"], 2.1429); // against the test feed's close of 70000
    assert_eq!(update["simulated"], true);

    let quote: Value = app
        .get_json(format!("{}/asset/005930", app.asset), "alice")
        .await;
    assert_eq!(quote["price"], 71500.0);
    let movers: Vec<Value> = app
        .get_json(format!("{}/asset/top-movers", app.asset), "alice")
        .await;
    assert_eq!(movers[0]["symbol"], "005930");

    let metrics = app
        .http
        .get(format!("{}/metrics", app.asset))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("signal_ticks_processed_total{source=\"simulated\"} 1"),
        "{metrics}"
    );
    // The web app's tabs each have their own movers: a larger US move leaves KRX's first.
    app.tick("NASDAQ:AAPL", "73500").await;
    let mut movers = Value::Null;
    for _ in 0..100 {
        movers = app
            .get_json(format!("{}/api/v1/movers?limit=3", app.asset), "alice")
            .await;
        if movers["us"].as_array().is_some_and(|us| !us.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let ids = |tab: &str| -> Vec<String> {
        movers[tab]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("krx"), ["KRX:005930"], "{movers}");
    assert_eq!(ids("us"), ["NASDAQ:AAPL"]);
    assert!(ids("crypto").is_empty());
    assert_eq!(ids("stocks"), ["NASDAQ:AAPL", "KRX:005930"]);
    let _ = token("unused");
    app.app.stop().await;
}

/// A trade of one share at `price`, made at `at` on the exchange.
async fn trade_at(
    app: &common::TestApp,
    instrument: &str,
    price: &str,
    at: chrono::DateTime<chrono::Utc>,
) {
    let tick = signal_domain::Tick {
        instrument: instrument.parse().unwrap(),
        price: price.parse().unwrap(),
        trade_volume: Some(1.into()),
        cumulative_volume: None,
        prev_close: None,
        exchange_time: at,
        received_at: chrono::Utc::now(),
        source: signal_domain::QuoteSource::Simulated,
    };
    app.app.ticks.send(tick).await.unwrap();
}

#[tokio::test]
async fn ticks_become_minute_candles_served_by_range() {
    use chrono::{DurationRound, TimeDelta, Utc};
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let first = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() - TimeDelta::minutes(5);
    let second = first + TimeDelta::minutes(1);
    let secs = |s: i64| TimeDelta::seconds(s);
    for (price, at) in [
        ("71000", first + secs(1)),
        ("71500", first + secs(20)),
        ("70800", first + secs(40)),
        ("71200", first + secs(59)),
        ("71300", second + secs(2)),
        ("71100", second + secs(30)),
    ] {
        trade_at(&app, "KRX:005930", price, at).await;
    }

    let url = format!(
        "{}/api/v1/instruments/KRX:005930/candles?from={}&to={}",
        app.asset,
        first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        (second + TimeDelta::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    // Candles reach the store every few seconds; wait until the second one holds both trades.
    let mut candles = Vec::new();
    for _ in 0..100 {
        candles = app
            .get(&url, "alice")
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap();
        if candles.len() == 2 && candles[1]["trades"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(candles.len(), 2, "{candles:?}");
    assert_eq!(
        candles[0],
        json!({"minute": first.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
               "open": "71000", "high": "71500", "low": "70800", "close": "71200",
               "volume": "4", "trades": 4})
    );
    assert_eq!(candles[1]["open"], "71300");
    assert_eq!(candles[1]["high"], "71300");
    assert_eq!(candles[1]["low"], "71100");
    assert_eq!(candles[1]["close"], "71100");

    let limited: Vec<Value> = app.get_json(format!("{url}&limit=1"), "alice").await;
    assert_eq!(limited, candles[..1]);

    let backwards = format!(
        "{}/api/v1/instruments/KRX:005930/candles?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        app.asset
    );
    let body = error_of(app.get(backwards, "alice").send().await.unwrap(), 422).await;
    assert!(
        body["message"].as_str().unwrap().contains("before"),
        "{body}"
    );
    let too_long = format!(
        "{}/api/v1/instruments/KRX:005930/candles?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
        app.asset
    );
    error_of(app.get(too_long, "alice").send().await.unwrap(), 422).await;
    let garbled = format!(
        "{}/api/v1/instruments/KRX:005930/candles?from=yesterday",
        app.asset
    );
    error_of(app.get(garbled, "alice").send().await.unwrap(), 400).await;
    let anonymous = app.http.get(&url).send().await.unwrap();
    error_of(anonymous, 401).await;
    app.app.stop().await;
}

#[tokio::test]
async fn chart_intervals_fold_the_stored_minutes_into_bars() {
    use chrono::{DurationRound, TimeDelta, Utc};
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    // Two whole hours back: the first bar's three minutes and the next hour's one are all past.
    let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(2);
    let secs = |s: i64| TimeDelta::seconds(s);
    for (price, at) in [
        ("100", hour + secs(1)),
        ("120", hour + secs(30)),
        ("90", hour + secs(61)),
        ("110", hour + secs(62)),
        ("105", hour + secs(240)),
        ("200", hour + TimeDelta::hours(1) + secs(1)),
    ] {
        trade_at(&app, "KRX:000660", price, at).await;
    }
    let url = format!(
        "{}/api/v1/instruments/KRX:000660/candles?interval=1h&limit=100",
        app.asset
    );
    let mut series = Value::Null;
    for _ in 0..100 {
        series = app.get_json(&url, "alice").await;
        let bars = series["candles"].as_array().unwrap();
        if bars.len() == 2 && bars[0]["volume"] == "5" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let time = |at: chrono::DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    assert_eq!(
        series,
        json!({"interval": "1h", "simulated": false, "complete": true, "candles": [
            {"time": time(hour), "open": "100", "high": "120", "low": "90", "close": "105", "volume": "5"},
            {"time": time(hour + TimeDelta::hours(1)), "open": "200", "high": "200", "low": "200", "close": "200", "volume": "1"},
        ]})
    );
    // Five-minute bars before `to`: `limit` counts bar slots back from it, traded or not.
    let to = hour + TimeDelta::hours(1) + TimeDelta::minutes(5);
    let page: Value = app
        .get_json(
            format!(
                "{}/api/v1/instruments/KRX:000660/candles?interval=5m&limit=14&to={}",
                app.asset,
                to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            "alice",
        )
        .await;
    let closes: Vec<&Value> = page["candles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bar| &bar["close"])
        .collect();
    assert_eq!(closes, [&json!("105"), &json!("200")]);

    let unknown = format!(
        "{}/api/v1/instruments/KRX:000660/candles?interval=2m",
        app.asset
    );
    let body = error_of(app.get(unknown, "alice").send().await.unwrap(), 400).await;
    assert!(body["message"].as_str().unwrap().contains("2m"), "{body}");
    let too_many = format!(
        "{}/api/v1/instruments/KRX:000660/candles?interval=1h&limit=745",
        app.asset
    );
    let body = error_of(app.get(too_many, "alice").send().await.unwrap(), 422).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 744 bars of 1h"),
        "{body}"
    );
    app.app.stop().await;
}

#[tokio::test]
async fn a_batch_of_rules_is_created_whole_and_watched_or_refused_naming_each_bad_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut limited = settings(dir.path());
    limited.asset.max_active_rules_per_user = 3;
    let app = spawn_with(limited).await;
    let batch = format!("{}/api/v1/rules/batch", app.asset);
    let rules_of = |user: &'static str| {
        let app = &app;
        async move {
            app.get_json::<Vec<Value>>(format!("{}/api/v1/rules", app.asset), user)
                .await
        }
    };
    let btc_above =
        json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": "100000000"});
    let btc_below = json!({"instrument": "UPBIT:KRW-BTC", "condition": "BELOW", "level": "1000"});
    let eth_above =
        json!({"instrument": "UPBIT:KRW-ETH", "condition": "ABOVE", "level": "9000000"});

    // Bad rules among good ones: nothing is created, and each bad one is named by its place.
    let refused = app
        .post(&batch, "grace")
        .json(&json!({"rules": [
            btc_above,
            {"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": "-1"},
            {"instrument": "NOPE", "condition": "BELOW", "level": "1"},
            {"instrument": "UPBIT:KRW-BTC", "level": "1"},
        ]}))
        .send()
        .await
        .unwrap();
    let body = error_of(refused, 422).await;
    let named: Vec<(u64, Option<&str>)> = body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| (rule["index"].as_u64().unwrap(), rule["field"].as_str()))
        .collect();
    assert_eq!(
        named,
        [(1, Some("level")), (2, Some("instrument")), (3, None)],
        "{body}"
    );
    assert_eq!(body["field"], "rules[1].level", "{body}");
    assert!(
        body["rules"][2]["message"]
            .as_str()
            .unwrap()
            .contains("condition"),
        "a rule that cannot be read says why: {body}"
    );
    assert!(rules_of("grace").await.is_empty(), "all or nothing");

    // More than the user may hold: none is created.
    let over = app
        .post(&batch, "grace")
        .json(&json!({"rules": [btc_above, btc_below, eth_above, btc_above]}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(over, 422).await["error"], "limit_reached");
    let empty = app
        .post(&batch, "grace")
        .json(&json!({"rules": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(empty, 422).await["field"], "rules");
    assert!(rules_of("grace").await.is_empty());

    // Created in order, the caller's alone, and watched like any other rule.
    let mut socket = app.alert_socket("grace").await;
    let created = app
        .post(&batch, "grace")
        .json(&json!({"rules": [btc_above, btc_below, eth_above]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let created = created["rules"].as_array().unwrap();
    let shape: Vec<(&str, &str)> = created
        .iter()
        .map(|rule| {
            (
                rule["instrument"].as_str().unwrap(),
                rule["condition"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("UPBIT:KRW-BTC", "ABOVE"),
            ("UPBIT:KRW-BTC", "BELOW"),
            ("UPBIT:KRW-ETH", "ABOVE")
        ]
    );
    assert_eq!(rules_of("grace").await.len(), 3);
    assert!(rules_of("heidi").await.is_empty());
    app.tick("UPBIT:KRW-BTC", "100000000").await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["ruleId"], created[0]["id"], "{alert}");
    app.app.stop().await;
}
