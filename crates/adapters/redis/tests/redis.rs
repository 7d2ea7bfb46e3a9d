//! Against the Redis server at DONTOUCH_TEST_REDIS_URL (default redis://127.0.0.1:6379), each test
//! under its own key prefix so tests can run in parallel.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use futures::StreamExt;
use signal_domain::{Price, Quote, QuoteSource, Tick};
use signal_ports::{Broadcast, QuoteCache, SharedCache};
use signal_redis::RedisState;
use signal_test_servers::PrivateRedis;
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

/// Polls `call` until it succeeds, for at most `within`; true when it did.
async fn succeeds_within<F, Fut, T, E>(within: Duration, mut call: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), call()).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Redis holds only what may be lost, so while it is away no call may hang: each fails within
/// its deadline, and everything works again, subscriptions included, once it is back.
#[tokio::test]
async fn while_redis_is_away_calls_fail_promptly_and_everything_works_again_after() {
    // Far above the one-second deadline: a call that hangs fails this test.
    const PROMPT: Duration = Duration::from_secs(5);
    let mut server = PrivateRedis::start().await;
    let state = RedisState::connect(&server.url(), &prefix()).await.unwrap();
    let channel = state.channel("pushes");
    let mut heard = channel.subscribe().await.unwrap();
    let ttl = Duration::from_secs(30);
    let btc = quote("UPBIT:KRW-BTC", "162876000");
    state.put(&btc).await.unwrap();

    for outage in ["stopped", "frozen"] {
        match outage {
            "stopped" => server.stop().await,
            _ => server.freeze().await,
        }
        let calls = async {
            (
                state.lease("shard:1", "instance-a", ttl).await.is_err(),
                channel.publish(b"lost").await.is_err(),
                QuoteCache::get(&state, &btc.instrument).await.is_err(),
                state.put(&btc).await.is_err(),
            )
        };
        let failed = tokio::time::timeout(PROMPT, calls).await;
        assert_eq!(
            failed.ok(),
            Some((true, true, true, true)),
            "with the server {outage}, every call fails promptly"
        );
        match outage {
            "stopped" => server.start_again().await,
            _ => server.thaw().await,
        }
        assert!(
            succeeds_within(Duration::from_secs(10), || state.lease(
                "shard:1",
                "instance-a",
                ttl
            ))
            .await,
            "calls work again once the server is back from being {outage}"
        );
        // Messages published while the subscription was being restored are missed (and a
        // frozen server may still carry out a publish that timed out); one published after it
        // is heard.
        let mut restored = false;
        for _ in 0..100 {
            channel.publish(b"after").await.unwrap();
            if let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_millis(100), heard.next()).await
            {
                if message == b"after" {
                    restored = true;
                    break;
                }
            }
        }
        assert!(
            restored,
            "the subscription is restored after being {outage}"
        );
        while tokio::time::timeout(Duration::from_millis(200), heard.next())
            .await
            .is_ok()
        {}
    }
}
