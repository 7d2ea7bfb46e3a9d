//! Between users: for each resource a user owns (rules and the original's targets, watchlist
//! entries, alerts, notification channels and their deliveries, settings), another user can
//! neither read it, change it nor learn that it exists. Someone else's resource is answered
//! exactly as one that never existed: 404 with the same message, as the original answered. (Sign-in
//! sessions are covered in accounts.rs, the alert socket in alerts.rs.)
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{error_of, settings, spawn_with, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
/// An id no resource has.
const NEVER: i64 = 987_654_321;

/// What Alice owns, by id.
struct Owned {
    rule: i64,
    alert: i64,
    channel: i64,
    delivery: i64,
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "{}", response.url());
    response.json().await.unwrap()
}

/// Alice's rule, target, watchlist entry, webhook channel, alert (through the channel, a
/// delivery) and settings.
async fn alices(app: &TestApp) -> Owned {
    let channel = json_of(
        app.post(format!("{}/api/v1/channels", app.alert), ALICE)
            .json(&json!({"kind": "webhook", "url": "http://127.0.0.1:9/hook"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let rule = json_of(
        app.post(format!("{}/api/v1/rules", app.asset), ALICE)
            .json(&json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "71900"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let target = app
        .post(
            format!(
                "{}/asset/target-price?symbol=NASDAQ:AAPL&targetPrice=500&condition=ABOVE",
                app.asset
            ),
            ALICE,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(target.status(), 200);
    let watched = app
        .put(
            format!("{}/api/v1/watchlist/UPBIT:KRW-BTC", app.asset),
            ALICE,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(watched.status(), 201);
    let saved = app
        .http
        .put(format!("{}/api/v1/settings", app.alert))
        .bearer_auth(common::token(ALICE))
        .json(&json!({"language": "en", "timeZone": "Europe/Paris"}))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    app.tick("KRX:005930", "72000").await;
    let alert = app.history_len_eventually(ALICE, 1).await[0]["id"]
        .as_i64()
        .unwrap();
    let deliveries = json_of(
        app.get(
            format!("{}/api/v1/deliveries?alert={alert}", app.alert),
            ALICE,
        )
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    Owned {
        rule: rule["id"].as_i64().unwrap(),
        alert,
        channel: channel["id"].as_i64().unwrap(),
        delivery: deliveries["items"][0]["id"].as_i64().unwrap(),
    }
}

/// Bob's request for Alice's resource `id` is answered as his request for one that never existed.
async fn as_if_never_there(app: &TestApp, method: Method, url: &str, id: i64, body: Option<Value>) {
    let ask = |id: i64| {
        let mut request = app
            .http
            .request(method.clone(), url.replace("{id}", &id.to_string()))
            .bearer_auth(common::token(BOB));
        if let Some(body) = &body {
            request = request.json(body);
        }
        request.send()
    };
    let theirs = error_of(ask(id).await.unwrap(), 404).await;
    let nobodys = error_of(ask(NEVER).await.unwrap(), 404).await;
    // The messages name the id asked for; apart from it they are the same.
    let anonymous = |body: &Value| {
        let text = body.to_string();
        text.chars()
            .filter(|c| !c.is_ascii_digit())
            .collect::<String>()
    };
    assert_eq!(anonymous(&theirs), anonymous(&nobodys), "{method} {url}");
}

#[tokio::test]
async fn another_user_can_neither_read_change_nor_learn_of_what_a_user_owns() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.channels.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
    let app = spawn_with(settings).await;
    let owned = alices(&app).await;
    let (asset, alert) = (&app.asset, &app.alert);
    let rule_body = json!({"instrument": "KRX:005930", "condition": "BELOW", "level": "1"});

    // Read, change or delete by id: each as if it never existed.
    for (method, url, id, body) in [
        (
            Method::GET,
            format!("{asset}/api/v1/rules/{{id}}"),
            owned.rule,
            None,
        ),
        (
            Method::PUT,
            format!("{asset}/api/v1/rules/{{id}}"),
            owned.rule,
            Some(rule_body.clone()),
        ),
        (
            Method::DELETE,
            format!("{asset}/api/v1/rules/{{id}}"),
            owned.rule,
            None,
        ),
        (
            Method::GET,
            format!("{alert}/api/v1/alerts/{{id}}"),
            owned.alert,
            None,
        ),
        (
            Method::POST,
            format!("{alert}/api/v1/alerts/{{id}}/read"),
            owned.alert,
            None,
        ),
        (
            Method::DELETE,
            format!("{alert}/api/v1/alerts/{{id}}"),
            owned.alert,
            None,
        ),
        (
            Method::DELETE,
            format!("{alert}/alert/{{id}}"),
            owned.alert,
            None,
        ),
        (
            Method::GET,
            format!("{alert}/api/v1/channels/{{id}}"),
            owned.channel,
            None,
        ),
        (
            Method::PATCH,
            format!("{alert}/api/v1/channels/{{id}}"),
            owned.channel,
            Some(json!({"enabled": false})),
        ),
        (
            Method::DELETE,
            format!("{alert}/api/v1/channels/{{id}}"),
            owned.channel,
            None,
        ),
        (
            Method::POST,
            format!("{alert}/api/v1/channels/{{id}}/test"),
            owned.channel,
            None,
        ),
        (
            Method::POST,
            format!("{alert}/api/v1/channels/{{id}}/rotate-secret"),
            owned.channel,
            None,
        ),
        (
            Method::POST,
            format!("{alert}/api/v1/channels/{{id}}/link"),
            owned.channel,
            None,
        ),
        (
            Method::GET,
            format!("{alert}/api/v1/channels/{{id}}/deliveries"),
            owned.channel,
            None,
        ),
        (
            Method::GET,
            format!("{alert}/api/v1/deliveries/{{id}}"),
            owned.delivery,
            None,
        ),
    ] {
        as_if_never_there(&app, method, &url, id, body).await;
    }

    // Lists, filters and the "all of mine" routes show and touch only Bob's own.
    let empty_lists = [
        format!("{asset}/api/v1/rules"),
        format!("{asset}/api/v1/watchlist"),
        format!("{asset}/asset/favorite"),
        format!("{asset}/asset/target-prices"),
        format!("{alert}/alert"),
    ];
    for url in empty_lists {
        let list = json_of(app.get(&url, BOB).send().await.unwrap(), 200).await;
        assert_eq!(list, json!([]), "{url}");
    }
    for url in [
        format!("{alert}/api/v1/alerts"),
        format!("{alert}/api/v1/channels"),
        format!("{alert}/api/v1/deliveries"),
        format!("{alert}/api/v1/deliveries?channel={}", owned.channel),
        format!("{alert}/api/v1/deliveries?alert={}", owned.alert),
    ] {
        let page = json_of(app.get(&url, BOB).send().await.unwrap(), 200).await;
        assert_eq!(page["items"], json!([]), "{url}");
    }
    let changed = json_of(
        app.post(format!("{alert}/api/v1/alerts/read"), BOB)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(changed["changed"], 0);
    let deleted = json_of(
        app.delete(format!("{alert}/api/v1/alerts"), BOB)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(deleted["deleted"], 0);
    let legacy_deleted = app
        .delete(format!("{alert}/alert"), BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(legacy_deleted.status(), 200);
    let settings = json_of(
        app.get(format!("{alert}/api/v1/settings"), BOB)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(settings["timeZone"], "Asia/Seoul", "Bob has the defaults");

    // By instrument: Bob's watchlist and targets are his own, whatever Alice's hold.
    let unwatch = app
        .delete(format!("{asset}/api/v1/watchlist/UPBIT:KRW-BTC"), BOB)
        .send()
        .await
        .unwrap();
    error_of(unwatch, 404).await;
    let unwatch_legacy = app
        .delete(format!("{asset}/asset/favorite?symbol=KRW-BTC"), BOB)
        .send()
        .await
        .unwrap();
    error_of(unwatch_legacy, 404).await;
    let untarget = app
        .delete(format!("{asset}/asset/target-price?symbol=AAPL"), BOB)
        .send()
        .await
        .unwrap();
    error_of(untarget, 404).await;
    let watch = app
        .put(format!("{asset}/api/v1/watchlist/UPBIT:KRW-BTC"), BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 201, "Alice's entry is not Bob's conflict");

    // Alice's are all there, untouched.
    let rule = json_of(
        app.get(format!("{asset}/api/v1/rules/{}", owned.rule), ALICE)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(rule["condition"], "ABOVE");
    let alert_now = json_of(
        app.get(format!("{alert}/api/v1/alerts/{}", owned.alert), ALICE)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(alert_now["read"], false);
    let channel = json_of(
        app.get(format!("{alert}/api/v1/channels/{}", owned.channel), ALICE)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(channel["state"], "active");
    let watchlist = json_of(
        app.get(format!("{asset}/api/v1/watchlist"), ALICE)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(watchlist[0]["id"], "UPBIT:KRW-BTC");
    let targets = json_of(
        app.get(format!("{asset}/asset/target-prices"), ALICE)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(targets[0]["symbol"], "AAPL");
    let settings = json_of(
        app.get(format!("{alert}/api/v1/settings"), ALICE)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(settings["timeZone"], "Europe/Paris");
    app.app.stop().await;
}
