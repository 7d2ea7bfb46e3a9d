//! Against the Redis server at DONTOUCH_TEST_REDIS_URL (default redis://127.0.0.1:6379), each test
//! under its own key prefix so tests can run in parallel.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use futures::StreamExt;
use signal_domain::{Price, Quote, QuoteSource, Tick};
use signal_ports::{Broadcast, QuoteCache, SharedCache};
use signal_redis::RedisState;
use std::time::Duration;

fn url() -> String {
    std::env::var("DONTOUCH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4())
}

fn quote(instrument: &str, price: &str) -> Quote {
    let now = chrono::Utc::now();
    Quote::after(
        &Tick {
            instrument: instrument.parse().unwrap(),
            price: price.parse::<Price>().unwrap(),
            trade_volume: None,
            cumulative_volume: None,
            prev_close: Some("100".parse().unwrap()),
            exchange_time: now,
            received_at: now,
            source: QuoteSource::Upbit,
        },
        None,
    )
}

#[tokio::test]
async fn instances_sharing_a_prefix_see_the_same_latest_quotes() {
    let prefix = prefix();
    let a = RedisState::connect(&url(), &prefix).await.unwrap();
    let b = RedisState::connect(&url(), &prefix).await.unwrap();
    let btc = quote("UPBIT:KRW-BTC", "162876000.5");
    a.put(&quote("UPBIT:KRW-BTC", "1")).await.unwrap();
    a.put(&btc).await.unwrap();
    a.put(&quote("KRX:005930", "71900")).await.unwrap();
    assert_eq!(
        QuoteCache::get(&b, &btc.instrument).await.unwrap(),
        Some(btc.clone())
    );
    assert_eq!(b.all().await.unwrap().len(), 2);
    let other = RedisState::connect(&url(), &self::prefix()).await.unwrap();
    assert!(other.all().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_claim_has_one_holder_until_it_expires() {
    let prefix = prefix();
    let a = RedisState::connect(&url(), &prefix).await.unwrap();
    let b = RedisState::connect(&url(), &prefix).await.unwrap();
    assert!(a.claim("issue", Duration::from_millis(300)).await.unwrap());
    assert!(!b.claim("issue", Duration::from_millis(300)).await.unwrap());
    a.set("token", "secret-value", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        SharedCache::get(&b, "token").await.unwrap().as_deref(),
        Some("secret-value")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(SharedCache::get(&b, "token").await.unwrap(), None);
    assert!(b.claim("issue", Duration::from_millis(300)).await.unwrap());
}

#[tokio::test]
async fn a_lease_has_one_holder_until_released_or_expired() {
    let prefix = prefix();
    let a = RedisState::connect(&url(), &prefix).await.unwrap();
    let b = RedisState::connect(&url(), &prefix).await.unwrap();
    let ttl = Duration::from_millis(400);
    assert!(a.lease("shard:7", "instance-a", ttl).await.unwrap());
    assert!(!b.lease("shard:7", "instance-b", ttl).await.unwrap());
    assert!(
        a.lease("shard:7", "instance-a", ttl).await.unwrap(),
        "renewed"
    );
    b.release("shard:7", "instance-b").await.unwrap();
    assert!(
        !b.lease("shard:7", "instance-b", ttl).await.unwrap(),
        "only the holder releases"
    );
    a.release("shard:7", "instance-a").await.unwrap();
    assert!(b.lease("shard:7", "instance-b", ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        a.lease("shard:7", "instance-a", ttl).await.unwrap(),
        "b's lease expired"
    );
}

#[tokio::test]
async fn every_instance_hears_a_broadcast() {
    let prefix = prefix();
    let a = RedisState::connect(&url(), &prefix).await.unwrap();
    let b = RedisState::connect(&url(), &prefix).await.unwrap();
    let mut heard_by_a = a.channel("alerts").subscribe().await.unwrap();
    let mut heard_by_b = b.channel("alerts").subscribe().await.unwrap();
    let mut other_channel = b.channel("rules").subscribe().await.unwrap();
    a.channel("alerts").publish(b"alert 1").await.unwrap();
    for stream in [&mut heard_by_a, &mut heard_by_b] {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message, b"alert 1");
    }
    let nothing = tokio::time::timeout(Duration::from_millis(200), other_channel.next()).await;
    assert!(nothing.is_err(), "a message crossed channels");
}
