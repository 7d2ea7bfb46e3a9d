//! The relay over SQLite and the in-process bus: no bad row stops it.

use async_trait::async_trait;
use signal_domain::{ConditionKind, ErrorChain, RuleId, TriggeredAlert, UserId};
use signal_memory::in_process_bus;
use signal_ports::{AlertInbox, AlertPublisher, BusError, OutboxStore, RuleStore};
use signal_store_sql::{connect, Schema, SqlAssetStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Relay;
use crate::metrics::AssetMetrics;

const PATIENCE: Duration = Duration::from_secs(10);
const RESEND_WINDOW: Duration = Duration::from_secs(15 * 60);

fn event(note: &str) -> TriggeredAlert {
    let now = chrono::Utc::now();
    TriggeredAlert {
        event_id: uuid::Uuid::now_v7(),
        schema_version: signal_domain::TRIGGERED_ALERT_SCHEMA_VERSION,
        user_id: UserId::new("alice").unwrap(),
        rule_id: RuleId(1),
        instrument: "UPBIT:KRW-BTC".parse().unwrap(),
        symbol: "KRW-BTC".into(),
        condition: ConditionKind::Above,
        level: "100".parse().unwrap(),
        percent: None,
        price: "101".parse().unwrap(),
        exchange_time: now,
        triggered_at: now,
        note: Some(note.into()),
        simulated: false,
        params: None,
        also: None,
        channels: None,
        message: None,
        change_percent: None,
    }
}

async fn sqlite(dir: &tempfile::TempDir) -> (Arc<SqlAssetStore>, sqlx::AnyPool) {
    let url = format!("sqlite://{}/asset.db?mode=rwc", dir.path().display());
    let pool = connect(&url, Schema::Asset).await.unwrap();
    (Arc::new(SqlAssetStore::new(pool.clone())), pool)
}

fn metrics() -> AssetMetrics {
    AssetMetrics::register(&prometheus::Registry::new()).unwrap()
}

async fn until_dead_letters(store: &SqlAssetStore, count: usize) -> Vec<signal_ports::DeadLetter> {
    for _ in 0..200 {
        let letters = store.dead_letters(10).await.unwrap();
        if letters.len() >= count {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {count} dead letters in time");
}

#[tokio::test]
async fn a_corrupt_row_between_two_good_ones_is_set_aside_and_both_good_events_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pool) = sqlite(&dir).await;
    let (first, last) = (event("first"), event("last"));
    store
        .apply_changes(&[], std::slice::from_ref(&first))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO outbox (event_id, payload, created_at) VALUES ('corrupt', '{\"not\":1', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    store
        .apply_changes(&[], std::slice::from_ref(&last))
        .await
        .unwrap();

    let (publisher, mut inbox) = in_process_bus(8);
    let metrics = metrics();
    let relay = Relay {
        outbox: store.clone(),
        publisher: Arc::new(publisher),
        metrics: metrics.clone(),
        resend_window: RESEND_WINDOW,
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(relay.run(Arc::new(Notify::new()), shutdown.clone()));

    let mut arrived = Vec::new();
    for _ in 0..2 {
        let delivery = tokio::time::timeout(PATIENCE, inbox.next())
            .await
            .expect("an event in time")
            .unwrap();
        arrived.push(delivery.event.clone());
        delivery.ack.ack().await.unwrap();
    }
    assert_eq!(arrived, vec![first, last], "both good events, in order");

    let letters = until_dead_letters(&store, 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, "corrupt");
    assert!(
        letters[0].reason.contains("cannot be read"),
        "{}",
        letters[0].reason
    );
    assert_eq!(metrics.outbox_dead_lettered.get(), 1);
    for _ in 0..200 {
        if store.pending_outbox(10).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        store.pending_outbox(10).await.unwrap().is_empty(),
        "both sent once the bus took them"
    );
    shutdown.cancel();
    task.await.unwrap();
}

/// A bus that refuses, for good, the events whose note says so.
#[derive(Default)]
struct Picky {
    taken: Mutex<Vec<TriggeredAlert>>,
}

#[derive(Debug, thiserror::Error)]
#[error("message too large for the topic")]
struct TooLarge;

#[async_trait]
impl AlertPublisher for Picky {
    async fn publish(&self, events: &[TriggeredAlert]) -> Result<(), BusError> {
        for (index, event) in events.iter().enumerate() {
            if event.note.as_deref() == Some("refused") {
                return Err(BusError::Refused {
                    index,
                    source: Box::new(TooLarge),
                });
            }
            self.taken.lock().unwrap().push(event.clone());
        }
        Ok(())
    }
}

#[tokio::test]
async fn an_event_the_bus_refuses_for_good_is_set_aside_and_the_rest_go_out() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite(&dir).await;
    let events = [event("before"), event("refused"), event("after")];
    store.apply_changes(&[], &events).await.unwrap();
    let bus = Arc::new(Picky::default());
    let relay = Relay {
        outbox: store.clone(),
        publisher: bus.clone(),
        metrics: metrics(),
        resend_window: RESEND_WINDOW,
    };
    assert_eq!(
        relay.relay_batch().await.unwrap(),
        2,
        "one sent, one set aside"
    );
    assert_eq!(relay.relay_batch().await.unwrap(), 1);
    assert_eq!(relay.relay_batch().await.unwrap(), 0);

    let taken: Vec<_> = bus
        .taken
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(taken, vec![events[0].event_id, events[2].event_id]);
    let letters = store.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, events[1].event_id.to_string());
    assert_eq!(
        letters[0].reason,
        ErrorChain(&TooLarge).to_string(),
        "the bus's own reason"
    );
}

/// A bus that takes everything, and can be made to have lost it.
#[derive(Default)]
struct Forgetful {
    taken: Mutex<Vec<uuid::Uuid>>,
    lost: AtomicBool,
}

#[async_trait]
impl AlertPublisher for Forgetful {
    async fn publish(&self, events: &[TriggeredAlert]) -> Result<(), BusError> {
        let mut taken = self.taken.lock().unwrap();
        taken.extend(events.iter().map(|e| e.event_id));
        Ok(())
    }

    fn take_lost_acknowledged(&self) -> bool {
        self.lost.swap(false, Ordering::Relaxed)
    }
}

#[tokio::test]
async fn when_the_bus_lost_what_it_acknowledged_the_events_sent_within_the_window_go_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pool) = sqlite(&dir).await;
    let (long_ago, recent) = (event("long ago"), event("recent"));
    store
        .apply_changes(&[], &[long_ago.clone(), recent.clone()])
        .await
        .unwrap();
    let bus = Arc::new(Forgetful::default());
    let metrics = metrics();
    let relay = Relay {
        outbox: store.clone(),
        publisher: bus.clone(),
        metrics: metrics.clone(),
        resend_window: RESEND_WINDOW,
    };
    assert_eq!(relay.relay_batch().await.unwrap(), 2);
    // The first went out before the window: consumed long since, and not sent again.
    sqlx::query("UPDATE outbox SET sent_at = 0 WHERE event_id = $1")
        .bind(long_ago.event_id.to_string())
        .execute(&pool)
        .await
        .unwrap();

    bus.lost.store(true, Ordering::Relaxed);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(relay.run(Arc::new(Notify::new()), shutdown.clone()));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while bus.taken.lock().unwrap().len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(
        *bus.taken.lock().unwrap(),
        vec![long_ago.event_id, recent.event_id, recent.event_id]
    );
    assert_eq!(metrics.outbox_resent.get(), 1);
    assert!(store.pending_outbox(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_lag_counts_pending_events_and_dates_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite(&dir).await;
    assert_eq!(
        store.outbox_lag().await.unwrap(),
        signal_ports::OutboxLag::default()
    );
    let events = [event("first"), event("second")];
    store.apply_changes(&[], &events).await.unwrap();
    let lag = store.outbox_lag().await.unwrap();
    assert_eq!(lag.pending, 2);
    let oldest = lag.oldest.expect("a pending event has a date");
    assert!(oldest <= chrono::Utc::now());
    let pending = store.pending_outbox(10).await.unwrap();
    store
        .mark_outbox_sent(&[pending[0].id], chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(store.outbox_lag().await.unwrap().pending, 1);
}
