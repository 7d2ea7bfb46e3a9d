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
