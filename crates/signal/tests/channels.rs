//! Alerts that reach people beyond the socket: webhooks, web push, Telegram and email, against
//! local stand-ins that speak each protocol (see `stand_ins`), through the running system.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;
mod stand_ins;

use common::{settings, spawn_with, TestApp, QUIET_FOR};
use serde_json::{json, Value};
use stand_ins::{carried, StandIn};
use std::collections::BTreeSet;
use std::time::Duration;

/// Settings for these tests: local receivers allowed, retries and the cap's window short.
fn channel_settings(dir: &std::path::Path) -> dontouch_signal::Settings {
    let mut settings = settings(dir);
    settings.channels.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
    settings.channels.retry_delays_ms = Some(vec![300; 8]);
    settings.channels.poll_ms = 100;
    settings.channels.claim_lease_ms = 10_000;
    settings.channels.cap_window_ms = 3_000;
    settings.channels.app_url = "http://app.example".into();
    settings
}

/// Creates `count` rules that fire on the next Samsung Electronics trade and makes that trade;
/// returns the new alerts from the user's history, oldest first.
async fn fire(app: &TestApp, user: &str, count: usize) -> Vec<Value> {
    let before = history(app, user).await.len();
    for i in 0..count {
        let response = app
            .post(format!("{}/api/v1/rules", app.asset), user)
            .json(&json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "71900", "note": format!("rule {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    app.tick("KRX:005930", "72000").await;
    for _ in 0..1200 {
        let all = history(app, user).await;
        if all.len() >= before + count {
            return all[before..].to_vec();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{count} alerts never reached the history of {user}");
}

async fn history(app: &TestApp, user: &str) -> Vec<Value> {
    let page: Value = app
        .get_json(format!("{}/api/v1/alerts?limit=500", app.alert), user)
        .await;
    let mut items = page["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

async fn create_channel(app: &TestApp, user: &str, body: Value) -> Value {
    let response = app
        .post(format!("{}/api/v1/channels", app.alert), user)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    created
}

/// A webhook channel at `path` of the receiver, which is told its secret.
async fn webhook(
    app: &TestApp,
    user: &str,
    receiver: &StandIn,
    path: &str,
    template: Option<&str>,
) -> Value {
    let created = create_channel(
        app,
        user,
        json!({"kind": "webhook", "name": "bot", "url": receiver.url(path), "template": template}),
    )
    .await;
    receiver
        .control("secret", json!({"path": path, "secret": created["secret"]}))
        .await;
    created
}

/// The channel's "send test" action; its delivery.
async fn send_test(app: &TestApp, user: &str, channel: &Value) -> Value {
    app.post(
        format!("{}/api/v1/channels/{}/test", app.alert, channel["id"]),
        user,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

async fn deliveries(app: &TestApp, user: &str, channel: &Value) -> Vec<Value> {
    let page: Value = app
        .get_json(
            format!(
                "{}/api/v1/channels/{}/deliveries?limit=200",
                app.alert, channel["id"]
            ),
            user,
        )
        .await;
    page["items"].as_array().unwrap().clone()
}

/// Polls the channel's deliveries until `done` holds.
async fn deliveries_until(
    app: &TestApp,
    user: &str,
    channel: &Value,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..600 {
        let items = deliveries(app, user, channel).await;
        if done(&items) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {:#?}", deliveries(app, user, channel).await);
}

async fn channel(app: &TestApp, user: &str, id: &Value) -> Value {
    app.get_json(format!("{}/api/v1/channels/{id}", app.alert), user)
        .await
}

async fn put_settings(app: &TestApp, user: &str, body: Value) -> reqwest::Response {
    app.put(format!("{}/api/v1/settings", app.alert), user)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_webhook_gets_each_alert_once_signed_with_its_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(channel_settings(dir.path())).await;
    let receiver = StandIn::start("webhook", &[]).await;
    let mut socket = app.alert_socket("alice").await;
    let created = webhook(&app, "alice", &receiver, "/alice", None).await;
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["state"], "active");

    // The secret is shown once: never again.
    let shown = channel(&app, "alice", &created["id"]).await;
    assert!(shown.get("secret").is_none(), "{shown}");
    assert_eq!(shown["url"], receiver.url("/alice"));
    let bobs = app
        .get(
            format!("{}/api/v1/channels/{}", app.alert, created["id"]),
            "bob",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bobs.status(), 404);

    let alert = fire(&app, "alice", 1).await.remove(0);
    assert_eq!(socket.next_of("alert").await["id"], alert["id"]);
    let event_id = alert["eventId"].as_str().unwrap().to_string();
    let state = receiver
        .wait_until("the webhook", |s| {
            s["accepted"].as_object().unwrap().contains_key(&event_id)
        })
        .await;
    let accepted = &state["accepted"][&event_id];
    assert_eq!(accepted["contentType"], "application/json");
    let body: Value = serde_json::from_str(accepted["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "alert.triggered");
    assert_eq!(body["data"]["eventId"], event_id);
    assert_eq!(body["data"]["instrument"], "KRX:005930");
    assert_eq!(body["data"]["price"], "72000");
    assert_eq!(body["data"]["name"], "삼성전자");
    assert!(state["invalid"].as_array().unwrap().is_empty());

    let delivered = deliveries_until(&app, "alice", &created, "delivered", |items| {
        items.iter().any(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(delivered[0]["alertId"], alert["id"]);
    assert_eq!(delivered[0]["attempts"], 1);
    assert_eq!(delivered[0]["digest"], false);
    assert!(delivered[0]["latencyMs"].as_i64().unwrap() >= 0);

    // The send-test action goes through the same path, and is recorded as a test.
    let test = send_test(&app, "alice", &created).await;
    assert_eq!(test["status"], "delivered", "{test}");
    assert_eq!(test["test"], true);
    let state = receiver
        .wait_until("the test message", |s| {
            s["accepted"].as_object().unwrap().len() == 2
        })
        .await;
    let test_body: Value = serde_json::from_str(
        state["accepted"][test["eventId"].as_str().unwrap()]["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(test_body["type"], "channel.test");

    let metrics = reqwest::get(format!("{}/metrics", app.alert))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("signal_deliveries_delivered_total{channel=\"webhook\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("signal_delivery_latency_seconds_count{channel=\"webhook\"} 1"));
    app.app.stop().await;
}

/// Each rule chooses its channels: a rule that names one webhook reaches only it, a rule that
/// names none reaches only the sockets, a rule that says nothing reaches every channel.
#[tokio::test]
async fn each_rule_reaches_the_channels_it_chose() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(channel_settings(dir.path())).await;
    let receiver = StandIn::start("webhook", &[]).await;
    let mut socket = app.alert_socket("alice").await;
    let first = webhook(&app, "alice", &receiver, "/first", None).await;
    let second = webhook(&app, "alice", &receiver, "/second", None).await;

    let create = |body: Value| {
        let app = &app;
        async move {
            let response = app
                .post(format!("{}/api/v1/rules", app.asset), "alice")
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let rule = |note: &str, channels: Option<Value>| {
        let mut body = json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "71900", "note": note});
        if let Some(channels) = channels {
            body["channels"] = channels;
        }
        body
    };
    let (status, only_first) =
        create(rule("first only", Some(json!([first["id"], first["id"]])))).await;
    assert_eq!(status, 201, "{only_first}");
    assert_eq!(only_first["channels"], json!([first["id"]]));
    let (status, sockets_only) = create(rule("sockets only", Some(json!([])))).await;
    assert_eq!(status, 201, "{sockets_only}");
    assert_eq!(sockets_only["channels"], json!([]));
    let (status, everywhere) = create(rule("everywhere", None)).await;
    assert_eq!(status, 201, "{everywhere}");
    assert_eq!(everywhere["channels"], Value::Null);
    let (status, refused) = create(rule("bad", Some(json!([0])))).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["field"], "channels", "{refused}");

    app.tick("KRX:005930", "72000").await;
    let mut seen = BTreeSet::new();
    while seen.len() < 3 {
        seen.insert(socket.next_of("alert").await["ruleId"].as_i64().unwrap());
    }
    let alerts = history(&app, "alice").await;
    assert_eq!(alerts.len(), 3);
    let alert_of =
        |rule: &Value| alerts.iter().find(|a| a["ruleId"] == rule["id"]).unwrap()["id"].clone();
    // The deliveries are created with the alerts, so once every alert is stored they are all there.
    let delivered_alerts = |items: &[Value]| -> BTreeSet<String> {
        items.iter().map(|d| d["alertId"].to_string()).collect()
    };
    let to_first = deliveries_until(&app, "alice", &first, "both alerts of the first", |items| {
        items.len() == 2 && items.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(
        delivered_alerts(&to_first),
        BTreeSet::from([
            alert_of(&only_first).to_string(),
            alert_of(&everywhere).to_string()
        ])
    );
    let to_second = deliveries_until(
        &app,
        "alice",
        &second,
        "the one alert of the second",
        |items| items.len() == 1 && items[0]["status"] == "delivered",
    )
    .await;
    assert_eq!(to_second[0]["alertId"], alert_of(&everywhere));
    app.app.stop().await;
}

#[tokio::test]
async fn a_retry_waits_for_retry_after_and_a_gone_endpoint_disables_its_channel() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(channel_settings(dir.path())).await;
    let receiver = StandIn::start("webhook", &[]).await;
    let mut socket = app.alert_socket("alice").await;
    let created = webhook(&app, "alice", &receiver, "/flaky", None).await;
    receiver
        .control(
            "retry-after",
            json!({"path": "/flaky", "count": 1, "seconds": 2}),
        )
        .await;

    let alert = fire(&app, "alice", 1).await.remove(0);
    let event_id = alert["eventId"].as_str().unwrap().to_string();
    let state = receiver
        .wait_until("the retried webhook", |s| {
            s["accepted"].as_object().unwrap().contains_key(&event_id)
        })
        .await;
    let refused = &state["failed"][0];
    assert_eq!(
        refused["id"],
        event_id.as_str(),
        "the retry carries the same id"
    );
    assert_eq!(refused["status"], 429);
    let waited =
        state["accepted"][&event_id]["at"].as_f64().unwrap() - refused["at"].as_f64().unwrap();
    assert!(
        waited >= 2.0,
        "retried after {waited} s, before Retry-After's 2 s: {state:#}"
    );
    let delivery = deliveries_until(&app, "alice", &created, "delivered", |items| {
        items.iter().any(|d| d["status"] == "delivered")
    })
    .await
    .remove(0);
    assert_eq!(delivery["attempts"], 2);
    let detail: Value = app
        .get_json(
            format!("{}/api/v1/deliveries/{}", app.alert, delivery["id"]),
            "alice",
        )
        .await;
    let log = detail["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["ok"], false);
    assert_eq!(log[0]["status"], 429);
    assert_eq!(log[1]["ok"], true);
    socket.next_of("alert").await;

    // 410 Gone: the channel stops, says why, and takes no more deliveries; sockets carry on.
    receiver.control("gone", json!({"path": "/flaky"})).await;
    fire(&app, "alice", 1).await;
    socket.next_of("alert").await;
    let mut disabled = Value::Null;
    for _ in 0..1200 {
        disabled = channel(&app, "alice", &created["id"]).await;
        if disabled["state"] == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(disabled["state"], "disabled", "{disabled}");
    assert!(
        disabled["disabledReason"].as_str().unwrap().contains("410"),
        "{disabled}"
    );
    let count = deliveries(&app, "alice", &created).await.len();
    fire(&app, "alice", 1).await;
    socket.next_of("alert").await;
    assert_eq!(deliveries(&app, "alice", &created).await.len(), count);

    // Turning it back on makes it active again.
    let enabled: Value = app
        .http
        .patch(format!("{}/api/v1/channels/{}", app.alert, created["id"]))
        .bearer_auth(common::token("alice"))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(enabled["state"], "active");
    assert!(enabled.get("disabledReason").is_none());
    app.app.stop().await;
}

#[tokio::test]
async fn webhook_urls_into_the_operators_network_are_refused_even_through_a_redirect() {
    let dir = tempfile::tempdir().unwrap();
    // Default policy: only public addresses.
    let app = spawn_with(settings(dir.path())).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "ftp://example.com/hook",
    ] {
        let response = app
            .post(format!("{}/api/v1/channels", app.alert), "alice")
            .json(&json!({"kind": "webhook", "url": url}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{url}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().starts_with("url: "),
            "{url}: {body}"
        );
    }
    app.app.stop().await;

    // Allowed: 127.0.0.2 only. A receiver there redirects to 127.0.0.1 and to localhost.
    let dir = tempfile::tempdir().unwrap();
    let mut allowing = settings(dir.path());
    allowing.channels.allowed_networks = vec!["127.0.0.2/32".parse().unwrap()];
    let app = spawn_with(allowing).await;
    let redirector = StandIn::start("webhook", &["--host", "127.0.0.2"]).await;
    let target = StandIn::start("webhook", &[]).await;
    for to in [
        target.url("/hook"),
        format!("http://localhost:{}/hook", target.http),
    ] {
        let url = format!("{}?to={to}", redirector.url("/redirect"));
        let created = create_channel(&app, "alice", json!({"kind": "webhook", "url": url})).await;
        let test = send_test(&app, "alice", &created).await;
        assert_eq!(test["status"], "failed", "{test}");
        assert!(
            test["lastError"].as_str().unwrap().contains("refused"),
            "{test}"
        );
    }
    assert_eq!(redirector.state().await["requests"], 2);
    assert_eq!(
        target.state().await["requests"],
        0,
        "nothing reached the refused address"
    );
    app.app.stop().await;
}

#[tokio::test]
async fn a_template_shapes_the_webhook_body() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(channel_settings(dir.path())).await;
    let receiver = StandIn::start("webhook", &[]).await;
    let bad = app
        .post(format!("{}/api/v1/channels", app.alert), "alice")
        .json(&json!({"kind": "webhook", "url": receiver.url("/t"), "template": "{{symbol}} {{volume}}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let message = bad.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("template: unknown placeholder `{{volume}}`"),
        "{message}"
    );

    webhook(
        &app,
        "alice",
        &receiver,
        "/t",
        Some(r#"{"text": "{{name}} {{condition}} {{price}} ({{note}})", "id": "{{event_id}}"}"#),
    )
    .await;
    let alert = fire(&app, "alice", 1).await.remove(0);
    let event_id = alert["eventId"].as_str().unwrap().to_string();
    let state = receiver
        .wait_until("the templated webhook", |s| {
            s["accepted"].as_object().unwrap().contains_key(&event_id)
        })
        .await;
    let body: Value =
        serde_json::from_str(state["accepted"][&event_id]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["text"], "삼성전자 ABOVE 72000 (rule 0)");
    assert_eq!(body["id"], event_id.as_str());
    app.app.stop().await;
}

/// A rule's message, worded for its owner (the instrument's name in their language, the time in
/// their zone), is what the history, the socket and the channels say; a rule without one keeps
/// the standard wording.
#[tokio::test]
async fn a_rule_s_message_is_what_its_alert_says_everywhere_in_the_owner_s_zone() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(channel_settings(dir.path())).await;
    let receiver = StandIn::start("webhook", &[]).await;
    webhook(&app, "alice", &receiver, "/message", None).await;
    // India keeps no daylight saving: the expected time is a fixed offset from UTC.
    let saved = put_settings(
        &app,
        "alice",
        json!({"language": "en", "timeZone": "Asia/Kolkata"}),
    )
    .await;
    assert_eq!(saved.status(), 200);
    let mut socket = app.alert_socket("alice").await;
    let rule: Value = app
        .post(format!("{}/api/v1/rules", app.asset), "alice")
        .json(&json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "71900",
                      "message": "{{name}} hit {{price}} at {{time}} (rule {{rule_id}}, alert {{alert_id}})"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    app.tick("KRX:005930", "72000").await;

    // Pushed once stored: the history holds it by then.
    let pushed = socket.next_of("alert").await;
    let alert = history(&app, "alice").await.remove(0);
    let traded: chrono::DateTime<chrono::FixedOffset> =
        alert["exchangeTime"].as_str().unwrap().parse().unwrap();
    let india = chrono::FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap();
    let expected = format!(
        "Samsung Electronics hit 72000 at {} IST (rule {}, alert {})",
        traded.with_timezone(&india).format("%Y-%m-%d %H:%M:%S"),
        rule["id"],
        alert["id"]
    );
    assert_eq!(alert["message"], expected.as_str());
    assert_eq!(pushed["message"], expected.as_str());

    let event_id = alert["eventId"].as_str().unwrap().to_string();
    let state = receiver
        .wait_until("the webhook", |s| {
            s["accepted"].as_object().unwrap().contains_key(&event_id)
        })
        .await;
    let body: Value =
        serde_json::from_str(state["accepted"][&event_id]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["message"], expected.as_str());

    // Without a message, the alert is worded as before: no message of its own anywhere.
    let plain = fire(&app, "alice", 1).await.remove(0);
    assert!(plain.get("message").is_none(), "{plain}");
    assert!(socket.next_of("alert").await.get("message").is_none());
    app.app.stop().await;
}

#[tokio::test]
async fn settings_are_kept_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(channel_settings(dir.path())).await;
    let defaults: Value = app
        .get_json(format!("{}/api/v1/settings", app.alert), "alice")
        .await;
    assert_eq!(
        defaults,
        json!({"language": "ko", "timeZone": "Asia/Seoul", "quietHours": null, "maxPerChannelPerMinute": 10})
    );
    let saved: Value = put_settings(
        &app,
        "alice",
        json!({"language": "en", "timeZone": "America/New_York", "quietHours": {"start": "22:00", "end": "07:30"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        saved,
        json!({"language": "en", "timeZone": "America/New_York", "quietHours": {"start": "22:00", "end": "07:30"}, "maxPerChannelPerMinute": 10})
    );
    // Absent fields stay; null turns quiet hours off.
    let saved: Value = put_settings(
        &app,
        "alice",
        json!({"quietHours": null, "maxPerChannelPerMinute": 3}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(saved["language"], "en");
    assert_eq!(saved["quietHours"], Value::Null);
    assert_eq!(saved["maxPerChannelPerMinute"], 3);
    let other: Value = app
        .get_json(format!("{}/api/v1/settings", app.alert), "bob")
        .await;
    assert_eq!(other["language"], "ko");

    for (body, field) in [
        (json!({"timeZone": "Mars/Olympus"}), "timeZone"),
        (
            json!({"quietHours": {"start": "25:00", "end": "07:00"}}),
            "quietHours.start",
        ),
        (
            json!({"quietHours": {"start": "07:00", "end": "07:00"}}),
            "quietHours",
        ),
        (
            json!({"maxPerChannelPerMinute": 0}),
            "maxPerChannelPerMinute",
        ),
    ] {
        let response = put_settings(&app, "alice", body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["message"].as_str().unwrap().starts_with(field),
            "{body}: {error}"
        );
    }
    let unknown = put_settings(&app, "alice", json!({"theme": "dark"})).await;
    assert!(unknown.status().is_client_error());
    app.app.stop().await;
}

#[tokio::test]
async fn quiet_hours_hold_channels_back_but_not_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(channel_settings(dir.path())).await;
    let receiver = StandIn::start("webhook", &[]).await;
    let created = webhook(&app, "alice", &receiver, "/quiet", None).await;
    let now = chrono::Utc::now();
    let quiet = json!({
        "start": (now - chrono::Duration::hours(1)).format("%H:%M").to_string(),
        "end": (now + chrono::Duration::hours(1)).format("%H:%M").to_string(),
    });
    let response = put_settings(
        &app,
        "alice",
        json!({"timeZone": "UTC", "quietHours": quiet}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut socket = app.alert_socket("alice").await;

    let alert = fire(&app, "alice", 1).await.remove(0);
    assert_eq!(socket.next_of("alert").await["id"], alert["id"]);
    let waiting = deliveries_until(&app, "alice", &created, "a waiting delivery", |items| {
        items.iter().any(|d| {
            d["status"] == "pending"
                && d["nextAttemptAt"]
                    .as_str()
                    .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                    .is_some_and(|t| t > now + chrono::Duration::minutes(30))
        })
    })
    .await;
    assert_eq!(waiting[0]["attempts"], 0);
    tokio::time::sleep(QUIET_FOR).await;
    assert_eq!(receiver.state().await["requests"], 0);

    // Quiet hours off: what waited goes at once.
    put_settings(&app, "alice", json!({"quietHours": null})).await;
    let event_id = alert["eventId"].as_str().unwrap().to_string();
    receiver
        .wait_until("the held-back webhook", |s| {
            s["accepted"].as_object().unwrap().contains_key(&event_id)
        })
        .await;
    app.app.stop().await;
}

#[tokio::test]
async fn over_the_cap_alerts_are_gathered_into_a_digest_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(channel_settings(dir.path())).await;
    let receiver = StandIn::start("webhook", &[]).await;
    let created = webhook(&app, "alice", &receiver, "/storm", None).await;
    put_settings(&app, "alice", json!({"maxPerChannelPerMinute": 2})).await;

    let alerts = fire(&app, "alice", 6).await;
    let expected: BTreeSet<String> = alerts
        .iter()
        .map(|a| a["eventId"].as_str().unwrap().to_string())
        .collect();
    let state = receiver
        .wait_until("every alert, alone or in a digest", |s| {
            let got: BTreeSet<String> = s["accepted"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|a| carried(&serde_json::from_str(a["body"].as_str().unwrap()).unwrap()))
                .collect();
            got == expected
        })
        .await;
    let messages = state["accepted"].as_object().unwrap();
    let bodies: Vec<Value> = messages
        .values()
        .map(|a| serde_json::from_str(a["body"].as_str().unwrap()).unwrap())
        .collect();
    let carried_count: usize = bodies.iter().map(|b| carried(b).len()).sum();
    assert_eq!(carried_count, 6, "each alert once: {bodies:#?}");
    assert!(
        bodies.iter().any(|b| b["type"] == "alert.digest"),
        "six alerts under a cap of two make a digest"
    );
    // Never more than two messages within the cap's window (3 s in these tests).
    let mut times: Vec<f64> = messages
        .values()
        .map(|a| a["at"].as_f64().unwrap())
        .collect();
    times.sort_by(f64::total_cmp);
    for pair in times.windows(3) {
        assert!(
            pair[2] - pair[0] >= 3.0,
            "three messages within the window: {times:?}"
        );
    }
    let items = deliveries_until(&app, "alice", &created, "all delivered", |items| {
        items.len() == 6 && items.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert!(items.iter().any(|d| d["digest"] == true));
    app.app.stop().await;
}

/// Polls a channel until `done` holds.
async fn channel_until(
    app: &TestApp,
    user: &str,
    id: &Value,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..1200 {
        let current = channel(app, user, id).await;
        if done(&current) {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {}", channel(app, user, id).await);
}

#[tokio::test]
async fn web_push_reaches_the_push_service_signed_and_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(channel_settings(dir.path())).await;
    let push = StandIn::start("push", &[]).await;
    let key: Value = app
        .get_json(
            format!("{}/api/v1/push/vapid-public-key", app.alert),
            "alice",
        )
        .await;
    push.control("vapid", json!({"publicKey": key["publicKey"]}))
        .await;
    let subscription = push.control("subscribe", json!({})).await;
    let created = create_channel(
        &app,
        "alice",
        json!({"kind": "web_push", "name": "laptop", "subscription": subscription}),
    )
    .await;
    assert_eq!(created["state"], "active");
    assert_eq!(created["endpoint"], subscription["endpoint"]);
    // The same browser subscribing again renews its channel instead of adding one.
    let again = create_channel(
        &app,
        "alice",
        json!({"kind": "web_push", "subscription": subscription}),
    )
    .await;
    assert_eq!(again["id"], created["id"]);

    let alert = fire(&app, "alice", 1).await.remove(0);
    let state = push
        .wait_until("the push message", |s| {
            !s["messages"].as_array().unwrap().is_empty()
        })
        .await;
    assert!(
        state["rejected"].as_array().unwrap().is_empty(),
        "{state:#}"
    );
    let message = &state["messages"][0];
    assert_eq!(message["urgency"], "high");
    let payload = &message["payload"];
    // The tests' trades are simulated, and every message says so.
    assert_eq!(payload["title"], "[모의] 삼성전자 71,900 이상");
    assert!(
        payload["body"]
            .as_str()
            .unwrap()
            .starts_with("체결가 72,000"),
        "{payload}"
    );
    assert_eq!(payload["url"], "http://app.example/i/KRX:005930");
    assert_eq!(payload["tag"], alert["eventId"]);
    assert_eq!(payload["alert"]["instrument"], "KRX:005930");
    assert_eq!(payload["alert"]["id"], alert["id"]);
    // Its actions snooze the rule, each through a page of the app.
    let snooze = payload["snooze"].as_array().unwrap();
    assert_eq!(snooze.len(), 3);
    assert_eq!(snooze[0]["action"], "snooze-15m");
    assert_eq!(snooze[0]["title"], "이 규칙 잠시 끄기 15분");
    assert_eq!(
        snooze[2]["url"],
        format!("http://app.example/rules/{}/snooze?for=1d", alert["ruleId"])
    );

    // An expired subscription (410) stops the channel.
    let subscription_id = subscription["endpoint"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    push.control("expire", json!({"id": subscription_id})).await;
    fire(&app, "alice", 1).await;
    let disabled = channel_until(&app, "alice", &created["id"], "disabled", |c| {
        c["state"] == "disabled"
    })
    .await;
    assert!(disabled["disabledReason"].as_str().unwrap().contains("410"));
    app.app.stop().await;
}

/// How many alerts a Telegram message carries: one, or a digest's count.
fn alerts_in(text: &str) -> usize {
    text.strip_prefix("<b>")
        .and_then(|rest| rest.split_once(" price alerts</b>"))
        .and_then(|(count, _)| count.parse().ok())
        .unwrap_or(1)
}

#[tokio::test]
async fn telegram_links_by_deep_link_and_delivers_within_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let bot = StandIn::start("telegram", &[]).await;
    let mut settings = channel_settings(dir.path());
    settings.channels.telegram.bot_token = Some("123456:TEST-TOKEN".into());
    settings.channels.telegram.api_url = bot.url("");
    settings.channels.telegram.poll_timeout_seconds = 1;
    let app = spawn_with(settings).await;
    put_settings(&app, "alice", json!({"language": "en"})).await;

    let created = create_channel(&app, "alice", json!({"kind": "telegram"})).await;
    assert_eq!(created["state"], "pending");
    assert_eq!(created["linked"], false);
    let link = created["link"].as_str().unwrap();
    let code = link
        .strip_prefix("https://t.me/signal_test_bot?start=")
        .unwrap_or_else(|| panic!("a deep link: {link}"));
    bot.control(
        "send",
        json!({"chat_id": 99, "text": "/start not-a-code", "language_code": "ko"}),
    )
    .await;
    bot.control(
        "send",
        json!({"chat_id": 4242, "text": format!("/start {code}")}),
    )
    .await;
    let linked = channel_until(&app, "alice", &created["id"], "linked", |c| {
        c["state"] == "active"
    })
    .await;
    assert_eq!(linked["linked"], true);
    let sent_to = |state: &Value, chat: i64| -> Vec<Value> {
        state["sent"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["chat_id"] == chat)
            .cloned()
            .collect()
    };
    let state = bot
        .wait_until("both answers", |s| {
            !sent_to(s, 4242).is_empty() && !sent_to(s, 99).is_empty()
        })
        .await;
    assert!(sent_to(&state, 4242)[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("Linked."));
    assert!(sent_to(&state, 99)[0]["text"]
        .as_str()
        .unwrap()
        .contains("만료"));

    // An alert, in the user's language, as HTML.
    fire(&app, "alice", 1).await;
    let state = bot
        .wait_until("the alert message", |s| sent_to(s, 4242).len() == 2)
        .await;
    let message = &sent_to(&state, 4242)[1];
    assert_eq!(message["parse_mode"], "HTML");
    let text = message["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "<b>[simulated] Samsung Electronics: at or above 71,900</b>\nTraded at 72,000"
        ),
        "{text}"
    );
    assert!(text.contains("<a href=\"http://app.example/i/KRX:005930\">"));
    // One alert's message snoozes its rule from a link into the app.
    let rule = history(&app, "alice").await.last().unwrap()["ruleId"].clone();
    assert!(
        text.ends_with(&format!(
            "Snooze this rule: <a href=\"http://app.example/rules/{rule}/snooze?for=15m\">15 min</a> · <a href=\"http://app.example/rules/{rule}/snooze?for=1h\">1 hour</a> · <a href=\"http://app.example/rules/{rule}/snooze?for=1d\">1 day</a>"
        )),
        "{text}"
    );

    // 429: the retry waits at least the retry_after Telegram asked for.
    bot.control(
        "rate-limit",
        json!({"chat_id": 4242, "count": 1, "retry_after": 2}),
    )
    .await;
    fire(&app, "alice", 1).await;
    let state = bot
        .wait_until("the retried message", |s| sent_to(s, 4242).len() == 3)
        .await;
    let refused = &state["refused"][0];
    assert_eq!(refused["status"], 429);
    let waited = sent_to(&state, 4242)[2]["at"].as_f64().unwrap() - refused["at"].as_f64().unwrap();
    assert!(waited >= 2.0, "retried after {waited} s: {state:#}");

    // Over the cap (one a window here), the rest become a digest.
    put_settings(&app, "alice", json!({"maxPerChannelPerMinute": 1})).await;
    fire(&app, "alice", 4).await;
    let state = bot
        .wait_until("the four alerts", |s| {
            sent_to(s, 4242)[3..]
                .iter()
                .map(|m| alerts_in(m["text"].as_str().unwrap()))
                .sum::<usize>()
                == 4
        })
        .await;
    let storm = &sent_to(&state, 4242)[3..];
    assert!(storm.len() < 4, "a digest gathered some: {storm:#?}");
    assert!(storm
        .iter()
        .any(|m| m["text"].as_str().unwrap().contains(" price alerts</b>")));

    // A user who blocks the bot (403) stops the channel.
    bot.control("block", json!({"chat_id": 4242})).await;
    put_settings(&app, "alice", json!({"maxPerChannelPerMinute": 10})).await;
    fire(&app, "alice", 1).await;
    let disabled = channel_until(&app, "alice", &created["id"], "disabled", |c| {
        c["state"] == "disabled"
    })
    .await;
    assert!(disabled["disabledReason"].as_str().unwrap().contains("403"));
    app.app.stop().await;
}

/// The confirmation token in the last mail to `address`.
async fn confirmation_token(smtp: &StandIn, address: &str) -> String {
    let state = smtp
        .wait_until("the confirmation mail", |s| {
            s["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["to"][0] == address)
        })
        .await;
    let mail = state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|m| m["to"][0] == address)
        .unwrap()
        .clone();
    let text = mail["text"].as_str().unwrap();
    text.split("confirm?token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a confirmation link in {text}"))
        .to_string()
}

#[tokio::test]
async fn email_is_confirmed_by_link_then_sent_in_two_parts_at_most_once_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = StandIn::start("smtp", &[]).await;
    let mut settings = channel_settings(dir.path());
    settings.channels.email.smtp_url = Some(format!("smtp://127.0.0.1:{}", smtp.smtp.unwrap()));
    settings.channels.email.from = Some("DonTouch Signal <alerts@signal.test>".into());
    let app = spawn_with(settings).await;

    let created = create_channel(
        &app,
        "alice",
        json!({"kind": "email", "address": "alice@example.com"}),
    )
    .await;
    assert_eq!(created["state"], "pending");
    let duplicate = app
        .post(format!("{}/api/v1/channels", app.alert), "alice")
        .json(&json!({"kind": "email", "address": "ALICE@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 409);
    let token = confirmation_token(&smtp, "alice@example.com").await;

    // The link opens a page that asks first: following it confirms nothing.
    let confirm = format!("{}/api/v1/channels/email/confirm", app.alert);
    let page = reqwest::get(format!("{confirm}?token={token}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<form method=\"post\""));
    assert_eq!(
        channel(&app, "alice", &created["id"]).await["state"],
        "pending"
    );
    let confirmed = app
        .http
        .post(&confirm)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    assert!(confirmed.text().await.unwrap().contains("Email confirmed"));
    assert_eq!(
        channel(&app, "alice", &created["id"]).await["state"],
        "active"
    );
    let reused = app
        .http
        .post(&confirm)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 404);

    // Three alerts at once: one mail a window, none lost.
    let alerts = fire(&app, "alice", 3).await;
    let alert_mails = |state: &Value| -> Vec<Value> {
        state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["to"][0] == "alice@example.com"
                    && !m["subject"].as_str().unwrap().contains("DonTouch Signal")
            })
            .cloned()
            .collect()
    };
    let state = smtp
        .wait_until("the three alerts", |s| {
            alert_mails(s)
                .iter()
                .map(|m| {
                    let subject = m["subject"].as_str().unwrap();
                    subject
                        .strip_prefix("가격 알림 ")
                        .and_then(|rest| rest.strip_suffix('건'))
                        .and_then(|n| n.parse::<usize>().ok())
                        .unwrap_or(1)
                })
                .sum::<usize>()
                == 3
        })
        .await;
    let mails = alert_mails(&state);
    assert!(mails.len() < 3, "some were gathered: {mails:#?}");
    for mail in &mails {
        assert!(mail["text"].as_str().unwrap().contains("72,000"), "{mail}");
        assert!(mail["html"].as_str().unwrap().contains("<h2"), "{mail}");
    }
    // A mail of one alert snoozes its rule from a link, in both parts; a digest has none.
    for mail in &mails {
        let single = !mail["subject"].as_str().unwrap().starts_with("가격 알림");
        for part in ["text", "html"] {
            assert_eq!(
                mail[part].as_str().unwrap().contains("/snooze?for=1h"),
                single,
                "{mail}"
            );
        }
    }
    let first = &mails[0];
    if !first["subject"].as_str().unwrap().starts_with("가격 알림") {
        assert_eq!(
            first["messageId"],
            format!(
                "<{}@dontouch-signal>",
                alerts[0]["eventId"].as_str().unwrap()
            )
        );
    }
    let mut times: Vec<f64> = mails.iter().map(|m| m["at"].as_f64().unwrap()).collect();
    times.sort_by(f64::total_cmp);
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= 3.0,
            "two mails within the window: {times:?}"
        );
    }

    // A mailbox that no longer exists (550) stops its channel.
    let gone = create_channel(
        &app,
        "alice",
        json!({"kind": "email", "address": "gone@example.com"}),
    )
    .await;
    let token = confirmation_token(&smtp, "gone@example.com").await;
    app.http
        .post(&confirm)
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    smtp.control("refuse", json!({"address": "gone@example.com"}))
        .await;
    fire(&app, "alice", 1).await;
    let disabled = channel_until(&app, "alice", &gone["id"], "disabled", |c| {
        c["state"] == "disabled"
    })
    .await;
    assert!(
        disabled["disabledReason"].as_str().unwrap().contains("550"),
        "{disabled}"
    );
    app.app.stop().await;
}
