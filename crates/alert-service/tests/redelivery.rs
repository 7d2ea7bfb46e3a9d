//! At-least-once delivery meets an idempotent consumer: an event that arrives twice is stored
//! once and pushed once.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use futures::StreamExt;
use signal_domain::{ConditionKind, RuleId, TriggeredAlert, UserId};
use signal_memory::in_process_bus;
use signal_ports::AlertPublisher;
use signal_store_sql::{connect, Schema, SqlAlertStore};
use signal_web::{JwtConfig, JwtSigner, JwtVerifier};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_redelivered_event_is_stored_once_and_pushed_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/alert.db?mode=rwc", dir.path().display());
    let store = Arc::new(SqlAlertStore::new(
        connect(&url, Schema::Alert).await.unwrap(),
    ));
    let jwt = JwtConfig {
        secret: "redelivery-test-secret-0123456789abcdef".into(),
        user_claim: "sub".into(),
        ..Default::default()
    };
    let (publisher, inbox) = in_process_bus(16);
    let registry = prometheus::Registry::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let channels = signal_channels::Channels::new(
        &signal_channels::ChannelsConfig::default(),
        dir.path(),
        store.clone(),
        store.clone(),
    )
    .unwrap();
    let service = alert_service::start(
        alert_service::AlertDeps {
            history: store,
            inbox: Box::new(inbox),
            broadcast: Arc::new(signal_memory::MemoryBroadcast::default()),
            accounts: None,
            trusted_proxies: Default::default(),
            gateway: Default::default(),
            channels,
            leases: Arc::new(signal_memory::MemorySharedCache::default()),
            instance: "test".into(),
        },
        Arc::new(JwtVerifier::new(&jwt)),
        signal_web::SocketLimits::default(),
        &registry,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, service.router).await });

    let alice = UserId::new("alice").unwrap();
    let token = JwtSigner::new(&jwt)
        .sign(&alice, chrono::Duration::hours(1))
        .unwrap();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/socket/alert?token={token}"))
            .await
            .unwrap();

    let event = TriggeredAlert {
        event_id: uuid::Uuid::now_v7(),
        schema_version: 1,
        user_id: alice,
        rule_id: RuleId(1),
        instrument: "NASDAQ:AAPL".parse().unwrap(),
        symbol: "AAPL".into(),
        condition: ConditionKind::Below,
        level: "260.29".parse().unwrap(),
        percent: None,
        price: "260.29".parse().unwrap(),
        exchange_time: chrono::Utc::now(),
        triggered_at: chrono::Utc::now(),
        note: None,
        simulated: false,
        params: None,
        also: None,
        channels: None,
        message: None,
        change_percent: None,
    };
    publisher
        .publish(std::slice::from_ref(&event))
        .await
        .unwrap();
    publisher
        .publish(std::slice::from_ref(&event))
        .await
        .unwrap();

    let first = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Text(text) = first else {
        panic!("expected a text message, got {first:?}")
    };
    let alert: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(alert["eventId"], event.event_id.to_string());
    assert_eq!(alert["price"], "260.29");
    let second = tokio::time::timeout(Duration::from_millis(700), socket.next()).await;
    assert!(
        second.is_err(),
        "the redelivery was pushed again: {second:?}"
    );

    let history: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/alerts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("signal_alert_duplicates_total 1"),
        "{metrics}"
    );
    shutdown.cancel();
}
