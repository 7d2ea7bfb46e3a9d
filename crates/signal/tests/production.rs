//! The production topology: the two services as separate processes over a Kafka-protocol
//! broker, PostgreSQL and Redis, with market data from a local stand-in for Upbit.

mod support;

use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use support::{free_port, token, topology_env, with, Broker, FakeUpbit, ServiceProcess};
use tokio_tungstenite::tungstenite::Message;

const ARRIVES_WITHIN: Duration = Duration::from_secs(30);

async fn next_alert(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let message = tokio::time::timeout(ARRIVES_WITHIN, socket.next())
            .await
            .expect("an alert arrives")
            .expect("socket open")
            .expect("socket healthy");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] == "alert" {
                return value;
            }
        }
    }
}

#[tokio::test]
async fn an_upbit_trade_fires_a_rule_across_both_services_over_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let upbit = FakeUpbit::start().await;
    upbit.set_price("KRW-BTC", "160000000");
    let env = topology_env(&broker, &upbit, dir.path()).await;
    let (alert_port, asset_port) = (free_port(), free_port());
    let alert = ServiceProcess::start(
        env!("CARGO_BIN_EXE_alert-service"),
        alert_port,
        &with(
            &env,
            "SIGNAL_ALERT__BIND",
            format!("127.0.0.1:{alert_port}"),
        ),
        dir.path(),
    )
    .await;
    let asset = ServiceProcess::start(
        env!("CARGO_BIN_EXE_asset-service"),
        asset_port,
        &with(
            &env,
            "SIGNAL_ASSET__BIND",
            format!("127.0.0.1:{asset_port}"),
        ),
        dir.path(),
    )
    .await;

    let alice = token("alice");
    let (mut socket, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{alert_port}/ws/socket/alert?token={alice}"
    ))
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let created = http
        .post(format!("http://127.0.0.1:{asset_port}/api/v1/rules"))
        .bearer_auth(&alice)
        .json(&json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": "161000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // The rule makes BTC wanted live: the connector subscribes and takes a snapshot.
    let quote_url = format!("http://127.0.0.1:{asset_port}/api/v1/instruments/UPBIT:KRW-BTC");
    let mut live = false;
    for _ in 0..300 {
        let view: Value = http
            .get(&quote_url)
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["quote"]["price"] == "160000000" {
            live = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        live,
        "no Upbit quote arrived; asset-service log:\n{}",
        asset.log_text()
    );

    upbit.set_price("KRW-BTC", "161000000");
    let alert_message = next_alert(&mut socket).await;
    assert_eq!(alert_message["instrument"], "UPBIT:KRW-BTC");
    assert_eq!(alert_message["price"], "161000000");
    assert_eq!(alert_message["simulated"], false);

    let history: Value = http
        .get(format!("http://127.0.0.1:{alert_port}/api/v1/alerts"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["items"].as_array().unwrap().len(), 1, "{history}");
    drop(alert);
}

/// Creates `count` ABOVE rules at `level` on KRW-BTC for `user`.
async fn create_rules(asset_port: u16, user: &str, level: &str, count: usize) {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{asset_port}/api/v1/rules");
    let token = token(user);
    let created = futures::stream::iter(0..count)
        .map(|_| {
            http.post(&url)
                .bearer_auth(&token)
                .json(&json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": level}))
                .send()
        })
        .buffer_unordered(16)
        .filter(|r| futures::future::ready(matches!(r, Ok(r) if r.status() == 201)))
        .count()
        .await;
    assert_eq!(created, count);
}

/// Every alert of `user` in history, by paging through it.
async fn history(alert_port: u16, user: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut items = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut url = format!("http://127.0.0.1:{alert_port}/api/v1/alerts?limit=500");
        if let Some(before) = before {
            url.push_str(&format!("&before={before}"));
        }
        let page: Value = http
            .get(&url)
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

async fn stored_so_far(alert_port: u16) -> u64 {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{alert_port}/metrics")).await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("signal_alerts_stored_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

#[tokio::test]
async fn a_killed_alert_service_loses_and_duplicates_nothing_of_a_burst() {
    const USERS: usize = 5;
    const RULES_PER_USER: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let upbit = FakeUpbit::start().await;
    upbit.set_price("KRW-BTC", "160000000");
    let env = topology_env(&broker, &upbit, dir.path()).await;
    let (alert_port, asset_port) = (free_port(), free_port());
    let alert_env = with(
        &env,
        "SIGNAL_ALERT__BIND",
        format!("127.0.0.1:{alert_port}"),
    );
    let alert = ServiceProcess::start(
        env!("CARGO_BIN_EXE_alert-service"),
        alert_port,
        &alert_env,
        dir.path(),
    )
    .await;
    let _asset = ServiceProcess::start(
        env!("CARGO_BIN_EXE_asset-service"),
        asset_port,
        &with(
            &env,
            "SIGNAL_ASSET__BIND",
            format!("127.0.0.1:{asset_port}"),
        ),
        dir.path(),
    )
    .await;
    let users: Vec<String> = (0..USERS).map(|i| format!("user{i}")).collect();
    for user in &users {
        create_rules(asset_port, user, "161000000", RULES_PER_USER).await;
    }

    // One trade fires all 1,000 rules; the Alert Service is killed while storing them.
    upbit.set_price("KRW-BTC", "161000000");
    for _ in 0..600 {
        if stored_so_far(alert_port).await >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    alert.kill().await;
    let stored_before_kill = history_len_direct(&env).await;
    let alert = ServiceProcess::start(
        env!("CARGO_BIN_EXE_alert-service"),
        alert_port,
        &alert_env,
        dir.path(),
    )
    .await;

    let mut total = 0;
    for user in &users {
        let mut items = Vec::new();
        for _ in 0..1200 {
            items = history(alert_port, user).await;
            if items.len() >= RULES_PER_USER {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rules: std::collections::HashSet<i64> = items
            .iter()
            .map(|a| a["ruleId"].as_i64().unwrap())
            .collect();
        assert_eq!(
            items.len(),
            RULES_PER_USER,
            "{user}: log:\n{}",
            alert.log_text()
        );
        assert_eq!(rules.len(), RULES_PER_USER, "{user} has a duplicate alert");
        total += items.len();
    }
    assert_eq!(total, USERS * RULES_PER_USER);
    assert!(
        stored_before_kill < total,
        "the kill came after the burst was stored"
    );

    // Nothing was acknowledged: a socket that connects now receives all of its user's alerts.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{alert_port}/ws/socket/alert?token={}",
        token(&users[0])
    ))
    .await
    .unwrap();
    let mut replayed = std::collections::HashSet::new();
    while replayed.len() < RULES_PER_USER {
        let alert = next_alert(&mut socket).await;
        assert_eq!(alert["replayed"], true);
        replayed.insert(alert["id"].as_i64().unwrap());
    }
}

/// Rows in the Alert Service's history table, read straight from its database.
async fn history_len_direct(env: &[(String, String)]) -> usize {
    let url = env
        .iter()
        .find(|(k, _)| k == "SIGNAL_ALERT__DATABASE_URL")
        .map(|(_, v)| v.clone())
        .unwrap();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM alert_history")
        .fetch_one(&pool)
        .await
        .unwrap();
    usize::try_from(count).unwrap()
}
