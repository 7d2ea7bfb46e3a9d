//! Exactly once through crashes: the whole system as its own process over PostgreSQL, killed
//! with SIGKILL twice while it delivers a burst of alerts to a webhook receiver that fails a share
//! of requests; and the embedded default over SQLite, killed while it stores a burst. The
//! receiver (`stand_ins`) verifies every signature with the Standard Webhooks library and keeps
//! each `webhook-id` once, as the specification asks.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod stand_ins;
mod support;

use serde_json::{json, Value};
use stand_ins::{carried, StandIn};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::{
    create_rules, free_port, fresh_database, metric, token, upbit_env, FakeUpbit, ServiceProcess,
    SECRET,
};

const ALERTS: usize = 1_000;

struct Ports {
    asset: u16,
    alert: u16,
}

async fn start(env: &[(String, String)], dir: &std::path::Path, ports: &Ports) -> ServiceProcess {
    let mut env = env.to_vec();
    env.push((
        "SIGNAL_ASSET__BIND".into(),
        format!("127.0.0.1:{}", ports.asset),
    ));
    env.push((
        "SIGNAL_ALERT__BIND".into(),
        format!("127.0.0.1:{}", ports.alert),
    ));
    env.push((
        "SIGNAL_WEB__BIND".into(),
        format!("127.0.0.1:{}", free_port()),
    ));
    ServiceProcess::start(
        env!("CARGO_BIN_EXE_dontouch-signal"),
        ports.alert,
        &env,
        dir,
    )
    .await
}

/// Every accepted message's event ids, by message id.
fn carried_by(state: &Value) -> BTreeMap<String, Vec<String>> {
    state["accepted"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, accepted)| {
            let body: Value = serde_json::from_str(accepted["body"].as_str().unwrap()).unwrap();
            (id.clone(), carried(&body))
        })
        .collect()
}

fn carried_count(state: &Value) -> usize {
    carried_by(state).values().map(Vec::len).sum()
}

/// Waits until the receiver has accepted messages carrying at least `count` alerts.
async fn until_carried(receiver: &StandIn, count: usize) {
    receiver
        .wait_until(&format!("{count} alerts delivered"), |state| {
            carried_count(state) >= count
        })
        .await;
}

/// Every item of a paged list of `user` (`{items, nextBefore?}`), newest first.
async fn all_pages(url: &str, user: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut items = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut page_url = format!("{url}?limit=200");
        if let Some(before) = before {
            page_url.push_str(&format!("&before={before}"));
        }
        let page: Value = http
            .get(&page_url)
            .bearer_auth(token(user))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextBefore"].as_i64() {
            Some(next) => before = Some(next),
            None => return items,
        }
    }
}

#[tokio::test]
async fn a_burst_reaches_a_failing_webhook_once_per_alert_through_two_kill_9s() {
    let dir = tempfile::tempdir().unwrap();
    let upbit = FakeUpbit::start().await;
    upbit.trade("KRW-BTC", "160000000");
    let receiver = StandIn::start("webhook", &["--fail-rate", "0.3"]).await;
    let mut env = vec![
        (
            "SIGNAL_ASSET__DATABASE_URL".to_string(),
            fresh_database().await,
        ),
        ("SIGNAL_ALERT__DATABASE_URL".into(), fresh_database().await),
        (
            "SIGNAL_ASSET__MAX_ACTIVE_RULES_PER_USER".into(),
            ALERTS.to_string(),
        ),
        ("SIGNAL_AUTH__JWT_SECRET".into(), SECRET.into()),
        ("SIGNAL_DATA_DIR".into(), dir.path().display().to_string()),
        // The receiver is local; retries come quickly so that the test does not wait hours.
        (
            "SIGNAL_CHANNELS__ALLOWED_NETWORKS".into(),
            "[\"127.0.0.0/8\"]".into(),
        ),
        (
            "SIGNAL_CHANNELS__RETRY_DELAYS_MS".into(),
            format!("[{}]", ["200"; 12].join(",")),
        ),
        ("SIGNAL_CHANNELS__POLL_MS".into(), "100".into()),
        // A killed instance's claims lapse soon, so its restart takes the work over.
        ("SIGNAL_CHANNELS__CLAIM_LEASE_MS".into(), "2000".into()),
        // The cap (60 a window) gathers a burst into digests; a short window lets most alerts go
        // one by one, so that a kill falls between many sends.
        ("SIGNAL_CHANNELS__CAP_WINDOW_MS".into(), "100".into()),
    ];
    env.extend(upbit_env(&upbit));
    let ports = Ports {
        asset: free_port(),
        alert: free_port(),
    };
    let mut app = start(&env, dir.path(), &ports).await;

    let http = reqwest::Client::new();
    let alert_api = format!("http://127.0.0.1:{}/api/v1", ports.alert);
    let response = http
        .put(format!("{alert_api}/settings"))
        .bearer_auth(token("alice"))
        .json(&json!({"maxPerChannelPerMinute": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let created: Value = http
        .post(format!("{alert_api}/channels"))
        .bearer_auth(token("alice"))
        .json(&json!({"kind": "webhook", "url": receiver.url("/bot")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    receiver
        .control(
            "secret",
            json!({"path": "/bot", "secret": created["secret"]}),
        )
        .await;
    create_rules(ports.asset, "alice", "161000000", ALERTS).await;

    // One trade fires every rule; the process is killed twice while it delivers them.
    upbit.trade("KRW-BTC", "161000000");
    for share in [5, 2] {
        until_carried(&receiver, ALERTS / share).await;
        app.kill().await;
        let delivered = carried_count(&receiver.state().await);
        assert!(
            delivered < ALERTS,
            "the kill came after every alert went out"
        );
        app = start(&env, dir.path(), &ports).await;
    }

    let state = receiver
        .wait_until("every alert delivered", |state| {
            carried_count(state) >= ALERTS
        })
        .await;
    // Read after the receiver has them all: the history is written with each delivery record.
    let expected: BTreeSet<String> = all_pages(&format!("{alert_api}/alerts"), "alice")
        .await
        .iter()
        .map(|a| a["eventId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(expected.len(), ALERTS, "each rule fired once");
    let messages = carried_by(&state);
    let mut seen = BTreeSet::new();
    for (message, alerts) in &messages {
        for alert in alerts {
            assert!(
                seen.insert(alert.clone()),
                "alert {alert} arrived again in message {message}"
            );
        }
    }
    assert_eq!(seen, expected, "every alert arrived");
    assert!(
        state["invalid"].as_array().unwrap().is_empty(),
        "every signature verified: {}",
        state["invalid"]
    );
    let failed: BTreeSet<&str> = state["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(!failed.is_empty(), "the receiver failed requests");
    for id in &failed {
        assert!(
            messages.contains_key(*id),
            "a failed message {id} was retried under the same webhook-id until accepted"
        );
    }
    // Receivers see a message again only as a retry of the same id: what they deduplicate.
    for id in state["duplicates"].as_array().unwrap() {
        assert!(messages.contains_key(id.as_str().unwrap()));
    }
    // The system agrees: every alert's delivery to the channel ends recorded as delivered. A
    // message the receiver accepted just before a kill is sent again under the same id (which it
    // deduplicates) and may meet an injected failure first, so the record can trail the receiver.
    let deliveries_url = format!("{alert_api}/channels/{}/deliveries", created["id"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let deliveries = loop {
        let deliveries = all_pages(&deliveries_url, "alice").await;
        let settled = deliveries.iter().all(|d| d["status"] == "delivered");
        if settled || tokio::time::Instant::now() > deadline {
            break deliveries;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(deliveries.len(), ALERTS);
    assert!(
        deliveries.iter().all(|d| d["status"] == "delivered"),
        "{deliveries:#?}"
    );
    drop(app);
}

/// The id of `user`'s newest alert in history (ids rise by one per stored alert), 0 for none.
async fn newest_alert_id(alert_port: u16, user: &str) -> i64 {
    let page: Value = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{alert_port}/api/v1/alerts?limit=1"
        ))
        .bearer_auth(token(user))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"][0]["id"].as_i64().unwrap_or(0)
}

/// The embedded default keeps its SQLite commits in the write-ahead log without syncing each
/// (`synchronous = NORMAL`): what it committed survives a crash of the process, so a burst
/// interrupted by SIGKILL is stored whole after the restart, each alert once.
#[tokio::test]
async fn a_burst_interrupted_by_kill_9_on_sqlite_is_stored_whole_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let upbit = FakeUpbit::start().await;
    upbit.trade("KRW-BTC", "160000000");
    let mut env = vec![
        (
            "SIGNAL_ASSET__MAX_ACTIVE_RULES_PER_USER".to_string(),
            ALERTS.to_string(),
        ),
        ("SIGNAL_AUTH__JWT_SECRET".into(), SECRET.into()),
        ("SIGNAL_DATA_DIR".into(), dir.path().display().to_string()),
    ];
    env.extend(upbit_env(&upbit));
    let ports = Ports {
        asset: free_port(),
        alert: free_port(),
    };
    let app = start(&env, dir.path(), &ports).await;
    create_rules(ports.asset, "alice", "161000000", ALERTS).await;

    // One trade fires every rule; the process is killed once a tenth of them is in history.
    upbit.trade("KRW-BTC", "161000000");
    while newest_alert_id(ports.alert, "alice").await < (ALERTS / 10) as i64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    app.kill().await;
    let app = start(&env, dir.path(), &ports).await;

    let alerts_url = format!("http://127.0.0.1:{}/api/v1/alerts", ports.alert);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let alerts = loop {
        let alerts = all_pages(&alerts_url, "alice").await;
        if alerts.len() >= ALERTS || tokio::time::Instant::now() > deadline {
            break alerts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let events: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["eventId"].as_str().unwrap())
        .collect();
    let rules: BTreeSet<i64> = alerts
        .iter()
        .map(|a| a["ruleId"].as_i64().unwrap())
        .collect();
    assert_eq!(alerts.len(), ALERTS, "every firing stored once");
    assert_eq!(events.len(), ALERTS, "no event stored twice");
    assert_eq!(rules.len(), ALERTS, "each rule fired once");
    // The restart published what the kill left in the outbox: the kill fell within the burst.
    assert!(
        metric(ports.asset, "signal_outbox_published_total").await > 0.0,
        "the restarted process published events the killed one had stored"
    );
    drop(app);
}
