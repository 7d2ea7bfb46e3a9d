//! The production topology: the two services as separate processes over a Kafka-protocol
//! broker, PostgreSQL and Redis, with market data from a local stand-in for Upbit.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod support;

use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use support::{
    create_rules, free_port, metric, start_alert, start_asset, token, topology_env, with, Broker,
    FakeUpbit, ServiceProcess,
};
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
    upbit.trade("KRW-BTC", "160000000");
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
        "ws://127.0.0.1:{alert_port}/api/v1/alerts/stream?token={alice}"
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

    upbit.trade("KRW-BTC", "161000000");
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

/// The restarted instance resumes from the offsets its killed predecessor committed, which fall
/// anywhere in the burst; on tansu 0.6 that needs one message per record batch (see
/// `topology_env`), or the tail of the batch holding a committed offset is skipped.
#[tokio::test]
async fn a_killed_alert_service_loses_and_duplicates_nothing_of_a_burst() {
    const USERS: usize = 5;
    const RULES_PER_USER: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let upbit = FakeUpbit::start().await;
    upbit.trade("KRW-BTC", "160000000");
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
    upbit.trade("KRW-BTC", "161000000");
    for _ in 0..600 {
        if metric(alert_port, "signal_alerts_stored_total").await >= 50.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    alert.kill().await;
    let stored_before_kill = history_len_direct(&env).await;
    // The restart comes after the dead member's 10 s session has run out. On tansu 0.6 a member
    // that joins while a killed leader's session is still open can be left with no partitions
    // for good (seen once under load); Apache Kafka rebalances it. What is tested is that the
    // restarted instance stores the rest of the burst from the committed offsets, once each.
    tokio::time::sleep(Duration::from_secs(11)).await;
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
            "{user}: published {}, stored {}; log:\n{}",
            metric(asset_port, "signal_outbox_published_total").await,
            metric(alert_port, "signal_alerts_stored_total").await,
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
        "ws://127.0.0.1:{alert_port}/api/v1/alerts/stream?token={}",
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

/// Waits until `user` has `count` alerts in history and returns them.
async fn history_of(alert_port: u16, user: &str, count: usize) -> Vec<Value> {
    let mut items = Vec::new();
    for _ in 0..1200 {
        items = history(alert_port, user).await;
        if items.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    items
}

fn distinct_rules(items: &[Value]) -> usize {
    items
        .iter()
        .map(|a| a["ruleId"].as_i64().unwrap())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[tokio::test]
async fn with_two_alert_service_instances_each_alert_reaches_each_socket_once() {
    const RULES: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let upbit = FakeUpbit::start().await;
    upbit.trade("KRW-BTC", "160000000");
    let env = topology_env(&broker, &upbit, dir.path()).await;
    let alert_a = start_alert(&env, dir.path()).await;
    let alert_b = start_alert(&env, dir.path()).await;
    let asset = start_asset(&env, dir.path()).await;

    let mut sockets = Vec::new();
    for port in [alert_a.port, alert_b.port] {
        let (socket, _) = tokio_tungstenite::connect_async(format!(
            "ws://127.0.0.1:{port}/api/v1/alerts/stream?token={}",
            token("dana")
        ))
        .await
        .unwrap();
        sockets.push(socket);
    }
    create_rules(asset.port, "dana", "161000000", RULES).await;
    upbit.trade("KRW-BTC", "161000000");

    for socket in &mut sockets {
        let mut seen = std::collections::HashSet::new();
        while seen.len() < RULES {
            let alert = next_alert(socket).await;
            assert!(
                seen.insert(alert["id"].as_i64().unwrap()),
                "pushed twice: {alert}"
            );
        }
        let extra = tokio::time::timeout(Duration::from_millis(700), socket.next()).await;
        assert!(extra.is_err(), "more alerts than rules fired: {extra:?}");
    }
    let items = history_of(alert_a.port, "dana", RULES).await;
    assert_eq!(items.len(), RULES);
    assert_eq!(distinct_rules(&items), RULES);
}

#[tokio::test]
async fn with_two_asset_service_instances_each_rule_fires_once() {
    const RULES_PER_INSTANCE: usize = 15;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let upbit = FakeUpbit::start().await;
    upbit.trade("KRW-BTC", "160000000");
    let env = topology_env(&broker, &upbit, dir.path()).await;
    let alert = start_alert(&env, dir.path()).await;
    let asset_a = start_asset(&env, dir.path()).await;
    let asset_b = start_asset(&env, dir.path()).await;

    create_rules(asset_a.port, "erik", "161000000", RULES_PER_INSTANCE).await;
    create_rules(asset_b.port, "erik", "161000000", RULES_PER_INSTANCE).await;
    let all = (2 * RULES_PER_INSTANCE) as f64;
    for port in [asset_a.port, asset_b.port] {
        let mut held = 0.0;
        for _ in 0..200 {
            held = metric(port, "signal_active_rules").await;
            if held == all {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(held, all, "every instance's engine holds every rule");
    }
    // Both instances see the same trade.
    upbit.trade("KRW-BTC", "161000000");
    let items = history_of(alert.port, "erik", 2 * RULES_PER_INSTANCE).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let items_later = history(alert.port, "erik").await;
    assert_eq!(items.len(), 2 * RULES_PER_INSTANCE);
    assert_eq!(
        items_later.len(),
        2 * RULES_PER_INSTANCE,
        "an alert came twice"
    );
    assert_eq!(distinct_rules(&items_later), 2 * RULES_PER_INSTANCE);
    let rules: Vec<Value> = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/v1/rules", asset_b.port))
        .bearer_auth(token("erik"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(rules
        .iter()
        .all(|r| r["triggerCount"] == 1 && r["state"] == "triggered"));
}

/// Polls `name` on `port` until `accept` holds; returns the last reading.
async fn metric_until(port: u16, name: &str, accept: impl Fn(f64) -> bool) -> f64 {
    let mut value = 0.0;
    for _ in 0..600 {
        value = metric(port, name).await;
        if accept(value) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    value
}

#[tokio::test]
async fn when_an_asset_service_instance_dies_the_other_takes_its_instruments_over() {
    const MARKETS: [&str; 12] = [
        "KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-USDT", "KRW-SOL", "KRW-DOGE", "KRW-ADA", "KRW-TRX",
        "KRW-LINK", "KRW-AVAX", "KRW-SUI", "KRW-XLM",
    ];
    const SHARDS: f64 = 64.0;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let upbit = FakeUpbit::start().await;
    for market in MARKETS {
        upbit.trade(market, "1000");
    }
    let env = topology_env(&broker, &upbit, dir.path()).await;
    let alert = start_alert(&env, dir.path()).await;
    let asset_a = start_asset(&env, dir.path()).await;
    let asset_b = start_asset(&env, dir.path()).await;

    // The instances divide the instruments between them, each evaluating its own share.
    let mut shares = (0.0, 0.0);
    for _ in 0..200 {
        shares = (
            metric(asset_a.port, "signal_owned_shards").await,
            metric(asset_b.port, "signal_owned_shards").await,
        );
        if shares.0 + shares.1 == SHARDS && shares.0 > 0.0 && shares.1 > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        shares.0 + shares.1 == SHARDS && shares.0 > 0.0 && shares.1 > 0.0,
        "shards not divided: {shares:?}"
    );
    let http = reqwest::Client::new();
    for market in MARKETS {
        let response = http
            .post(format!("http://127.0.0.1:{}/api/v1/rules", asset_b.port))
            .bearer_auth(token("ines"))
            .json(&json!({"instrument": format!("UPBIT:{market}"), "condition": "ABOVE", "level": "2000"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let rules = MARKETS.len() as f64;
    for port in [asset_a.port, asset_b.port] {
        let held = metric_until(port, "signal_active_rules", |held| held == rules).await;
        assert_eq!(held, rules, "every instance's engine holds every rule");
    }

    // A crash: no goodbye, its leases are left to run out, then the survivor takes everything.
    asset_a.kill().await;
    let survivor = metric_until(asset_b.port, "signal_owned_shards", |owned| owned == SHARDS).await;
    assert_eq!(
        survivor, SHARDS,
        "the survivor never took the dead instance's shards"
    );
    for market in MARKETS {
        upbit.trade(market, "2000");
    }
    let items = history_of(alert.port, "ines", MARKETS.len()).await;
    assert_eq!(
        items.len(),
        MARKETS.len(),
        "rules of the dead instance's instruments did not fire; asset log:\n{}",
        asset_b.log_text()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = history(alert.port, "ines").await;
    assert_eq!(later.len(), MARKETS.len(), "an alert came twice");
    assert_eq!(distinct_rules(&later), MARKETS.len());
}

#[tokio::test]
async fn while_the_broker_is_down_alerts_wait_in_the_outbox_and_none_is_lost() {
    const RULES: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let upbit = FakeUpbit::start().await;
    upbit.trade("KRW-BTC", "160000000");
    let env = with(
        &topology_env(&broker, &upbit, dir.path()).await,
        "SIGNAL_BUS__DELIVERY_TIMEOUT_MS",
        "2000".into(),
    );
    let alert = start_alert(&env, dir.path()).await;
    let asset = start_asset(&env, dir.path()).await;
    create_rules(asset.port, "fern", "161000000", RULES).await;

    broker.pause();
    upbit.trade("KRW-BTC", "161000000");
    // The rules fire while the bus is unreachable: the events stay in the outbox.
    for _ in 0..100 {
        if metric(asset.port, "signal_alerts_fired_total").await >= RULES as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(asset.port, "signal_alerts_fired_total").await,
        RULES as f64
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        metric(asset.port, "signal_outbox_published_total").await,
        0.0
    );

    broker.resume();
    let items = history_of(alert.port, "fern", RULES).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = history(alert.port, "fern").await;
    assert_eq!(items.len(), RULES, "asset log:\n{}", asset.log_text());
    assert_eq!(later.len(), RULES);
    assert_eq!(distinct_rules(&later), RULES);
}

#[tokio::test]
async fn a_kafka_client_that_is_not_ours_reads_valid_alerts_and_market_data_from_the_topics() {
    external_client_reads_the_topics(None, "triggered-alert.v2").await;
}

/// Producers told to write the first version (while consumers of it remain) write exactly it,
/// and the Alert Service still reads it.
#[tokio::test]
async fn producers_told_to_write_version_1_serve_a_version_1_consumer() {
    external_client_reads_the_topics(Some("1"), "triggered-alert.v1").await;
}

async fn external_client_reads_the_topics(version: Option<&str>, alert_schema: &str) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let upbit = FakeUpbit::start().await;
    upbit.trade("KRW-BTC", "162000000");
    let mut env = topology_env(&broker, &upbit, dir.path()).await;
    if let Some(version) = version {
        env.push(("SIGNAL_BUS__ALERT_SCHEMA_VERSION".into(), version.into()));
    }
    let alert = start_alert(&env, dir.path()).await;
    let asset = start_asset(&env, dir.path()).await;
    let http = reqwest::Client::new();
    let rules = format!("http://127.0.0.1:{}/api/v1/rules", asset.port);
    for (user, body) in [
        (
            "gale",
            json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": "162500000.5", "note": "익절 목표", "channels": [3, 1]}),
        ),
        (
            "gale",
            json!({"instrument": "UPBIT:KRW-BTC", "condition": "CHANGE_UP", "percent": "0.5"}),
        ),
        (
            "hana@example.com",
            json!({"instrument": "UPBIT:KRW-BTC", "condition": "BELOW", "level": 162100000}),
        ),
        (
            "hana@example.com",
            json!({"instrument": "UPBIT:KRW-BTC", "condition": "ABOVE", "level": "162600000", "repeat": "every", "cooldownSeconds": 0}),
        ),
    ] {
        let response = http
            .post(&rules)
            .bearer_auth(token(user))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    // Once the feed streams the market the rules asked for (a trade sent before reaches nobody)
    // and has taken its snapshot of it (at 162,000,000, so the every-time ABOVE cannot fire on
    // it), a trade at 162,000,000 fires the BELOW and the CHANGE_UP (a streamed trade's previous
    // close is 31,883,000), then one at 163,000,000 fires both ABOVE rules. The snapshot may fire
    // the BELOW first; a once rule fires once either way.
    for _ in 0..400 {
        let streamed = upbit.subscribed_codes();
        let snapshot_taken = upbit
            .rest_requests()
            .iter()
            .any(|(_, request)| request.starts_with("/v1/ticker"));
        if snapshot_taken
            && streamed
                .last()
                .is_some_and(|codes| codes.iter().any(|c| c == "KRW-BTC"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    upbit.trade("KRW-BTC", "162000000");
    upbit.trade("KRW-BTC", "163000000");
    let fired = 4.0;
    for _ in 0..200 {
        if metric(asset.port, "signal_outbox_published_total").await >= fired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(asset.port, "signal_outbox_published_total").await,
        fired
    );

    let setting = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    validate_topic(
        &broker,
        &setting("SIGNAL_BUS__ALERTS_TOPIC"),
        alert_schema,
        "userId",
        4,
    )
    .await;
    assert_eq!(history_of(alert.port, "gale", 2).await.len(), 2);
    assert_eq!(history_of(alert.port, "hana@example.com", 2).await.len(), 2);
    // Two trades of one instrument, at least one market-data event each interval they fell in.
    validate_topic(
        &broker,
        &setting("SIGNAL_BUS__MARKET_DATA_TOPIC"),
        "quote-changed.v1",
        "instrument",
        1,
    )
    .await;
}

/// Runs the Python client on `topic`: `count` messages, each valid against the named schema in
/// docs/schemas and keyed by its `key_field`.
async fn validate_topic(broker: &Broker, topic: &str, schema: &str, key_field: &str, count: usize) {
    let python = std::env::var("DONTOUCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let schema = format!(
        "{}/../../docs/schemas/{schema}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = tokio::process::Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/external/validate_topic.py"
        ))
        .args(["--brokers", &format!("127.0.0.1:{}", broker.port)])
        .args(["--topic", topic])
        .args(["--schema", &schema])
        .args(["--key-field", key_field])
        .args(["--count", &count.to_string()])
        .output()
        .await
        .expect("python runs");
    assert!(
        output.status.success(),
        "the external client rejected {topic} ({python}; needs tests/external/requirements.txt):\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
