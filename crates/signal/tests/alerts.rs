//! The path a user cares about: a price reaches their level and the alert arrives on every one of
//! their devices, once, and stays in their history, across restarts.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{settings, spawn, spawn_with};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn an_above_rule_fires_once_on_every_socket_of_its_user_and_never_on_anothers() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut phone = app.alert_socket("alice").await;
    let mut laptop = app.alert_socket("alice").await;
    let mut bob = app.alert_socket("bob").await;

    let created = app
        .post(
            format!(
                "{}/asset/target-price?symbol=005930&targetPrice=71900&condition=ABOVE",
                app.asset
            ),
            "alice",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);

    app.tick("KRX:005930", "71800").await;
    app.tick("KRX:005930", "71900").await; // exactly the level: fires
    for socket in [&mut phone, &mut laptop] {
        let alert = socket.next_of("alert").await;
        assert_eq!(alert["symbol"], "005930");
        assert_eq!(alert["instrument"], "KRX:005930");
        assert_eq!(alert["condition"], "ABOVE");
        assert_eq!(alert["price"], "71900");
        assert_eq!(alert["currentPrice"], 71900.0);
        assert_eq!(alert["targetPrice"], 71900.0);
        assert_eq!(alert["replayed"], false);
    }

    // A once rule is spent: higher prices fire nothing more.
    app.tick("KRX:005930", "72500").await;
    app.tick("KRX:005930", "71000").await;
    app.tick("KRX:005930", "73000").await;
    phone.assert_no_alert().await;
    laptop.assert_no_alert().await;
    bob.assert_no_alert().await;

    let history = app.history_len_eventually("alice", 1).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["symbol"], "005930");
    assert_eq!(history[0]["triggeredPrice"], 71900.0);
    assert_eq!(history[0]["targetPrice"], 71900.0);
    let bobs: Vec<serde_json::Value> = app.get_json(format!("{}/alert", app.alert), "bob").await;
    assert!(bobs.is_empty());
    let targets: Vec<serde_json::Value> = app
        .get_json(format!("{}/asset/target-prices", app.asset), "alice")
        .await;
    assert!(
        targets.is_empty(),
        "a fired target is no longer active: {targets:?}"
    );
    app.app.stop().await;
}

#[tokio::test]
async fn an_every_rule_waits_for_the_rearm_band_and_the_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut socket = app.alert_socket("carol").await;
    let cooldown = 3;
    let response = app
        .post(format!("{}/api/v1/rules", app.asset), "carol")
        .json(&json!({
            "instrument": "UPBIT:KRW-BTC",
            "condition": "ABOVE",
            "level": "150000000",
            "repeat": "every",
            "cooldownSeconds": cooldown,
            "rearmBand": "1000000",
            "note": "BTC breakout"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    app.tick("UPBIT:KRW-BTC", "150000000").await;
    let first = socket.next_of("alert").await;
    assert_eq!(first["note"], "BTC breakout");

    // Hovering at the level, and dipping less than the band: no storm.
    for price in [
        "150100000",
        "149500000",
        "150000000",
        "149000000",
        "150200000",
    ] {
        app.tick("UPBIT:KRW-BTC", price).await;
    }
    socket.assert_no_alert().await;

    // Back past the band re-arms it, but the cooldown has not passed yet.
    app.tick("UPBIT:KRW-BTC", "148900000").await;
    app.tick("UPBIT:KRW-BTC", "150500000").await;
    socket.assert_no_alert().await;

    // Once the cooldown has passed, the next tick at or above the level fires again.
    tokio::time::sleep(Duration::from_secs(cooldown) + Duration::from_millis(300)).await;
    app.tick("UPBIT:KRW-BTC", "150300000").await;
    let second = socket.next_of("alert").await;
    assert_eq!(second["price"], "150300000");
    assert_ne!(second["id"], first["id"]);

    let rule: Vec<serde_json::Value> = app
        .get_json(format!("{}/api/v1/rules", app.asset), "carol")
        .await;
    assert_eq!(rule[0]["triggerCount"], 2);
    assert_eq!(rule[0]["state"], "cooling");
    app.app.stop().await;
}

#[tokio::test]
async fn percent_and_below_rules_fire_against_the_previous_close() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut socket = app.alert_socket("dave").await;
    for body in [
        json!({"instrument": "NASDAQ:AAPL", "condition": "CHANGE_DOWN", "percent": "5"}),
        json!({"instrument": "NASDAQ:AAPL", "condition": "BELOW", "level": 60000}),
    ] {
        let response = app
            .post(format!("{}/api/v1/rules", app.asset), "dave")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    // The test feed's previous close is 70000: -5 % is 66500.
    app.tick("NASDAQ:AAPL", "66600").await;
    socket.assert_no_alert().await;
    app.tick("NASDAQ:AAPL", "66500").await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["condition"], "CHANGE_DOWN");
    assert_eq!(alert["level"], "66500");
    assert_eq!(alert["percent"], "5");
    app.tick("NASDAQ:AAPL", "59999.99").await;
    let alert = socket.next_of("alert").await;
    assert_eq!(alert["condition"], "BELOW");
    assert_eq!(alert["price"], "59999.99");
    app.app.stop().await;
}

#[tokio::test]
async fn rules_history_and_unacknowledged_alerts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    for (level, note) in [("100", "first"), ("200", "second")] {
        let response = app
            .post(format!("{}/api/v1/rules", app.asset), "erin")
            .json(&json!({"instrument": "UPBIT:KRW-XRP", "condition": "ABOVE", "level": level, "note": note}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    app.post(
        format!("{}/asset/favorite?symbol=KRW-XRP", app.asset),
        "erin",
    )
    .send()
    .await
    .unwrap();
    // Erin is offline when the first rule fires.
    app.tick("UPBIT:KRW-XRP", "150").await;
    app.history_len_eventually("erin", 1).await;
    app.app.stop().await;

    let app = spawn_with(settings(dir.path())).await;
    let rules: Vec<serde_json::Value> = app
        .get_json(format!("{}/api/v1/rules", app.asset), "erin")
        .await;
    let states: Vec<(&str, &str)> = rules
        .iter()
        .map(|r| (r["note"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("second", "armed"), ("first", "triggered")]);
    let favorites: Vec<String> = app
        .get_json(format!("{}/asset/favorite", app.asset), "erin")
        .await;
    assert_eq!(favorites, ["KRW-XRP"]);

    // The alert raised while she was offline is delivered when she connects ...
    let mut socket = app.alert_socket("erin").await;
    let replayed = socket.next_of("alert").await;
    assert_eq!(replayed["note"], "first");
    assert_eq!(replayed["replayed"], true);
    // ... and the surviving rule still watches after the restart.
    app.tick("UPBIT:KRW-XRP", "200").await;
    let live = socket.next_of("alert").await;
    assert_eq!(live["note"], "second");
    assert_eq!(live["replayed"], false);

    // Acknowledged alerts are not sent again; unacknowledged ones are.
    socket
        .send(json!({"type": "ack", "id": replayed["id"]}))
        .await;
    let acked = socket.next_of("acked").await;
    assert_eq!(acked["ids"], json!([replayed["id"]]));
    drop(socket);
    let mut again = app.alert_socket("erin").await;
    let redelivered = again.next_of("alert").await;
    assert_eq!(redelivered["id"], live["id"]);
    again.assert_no_alert().await;
    app.app.stop().await;
}
