//! While the history store fails, the consumer keeps retrying the event it holds: it neither
//! acknowledges it nor reads past it, so a bus that commits positions (Kafka) can never skip an
//! event that was not stored.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use signal_domain::{ConditionKind, RuleId, TriggeredAlert, UserId};
use signal_ports::{AlertInbox, BusError, Delivery, DeliveryAck};
use signal_store_sql::{connect, Schema, SqlAlertStore};
use signal_web::{JwtConfig, JwtVerifier};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// What the consumer did with the bus: how many deliveries it asked for, and which events it
/// acknowledged, in order (a Kafka consumer commits its position on each).
#[derive(Default)]
struct BusLog {
    reads: usize,
    acknowledged: Vec<Uuid>,
}

struct ScriptedInbox {
    events: mpsc::UnboundedReceiver<TriggeredAlert>,
    log: Arc<Mutex<BusLog>>,
}

struct RecordAck {
    event: Uuid,
    log: Arc<Mutex<BusLog>>,
}

#[async_trait]
impl DeliveryAck for RecordAck {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.log.lock().unwrap().acknowledged.push(self.event);
        Ok(())
    }
}

#[async_trait]
impl AlertInbox for ScriptedInbox {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        let event = self.events.recv().await.ok_or(BusError::Closed)?;
        self.log.lock().unwrap().reads += 1;
        Ok(Delivery {
            ack: Box::new(RecordAck {
                event: event.event_id,
                log: self.log.clone(),
            }),
            event,
        })
    }
}

fn event(rule: i64) -> TriggeredAlert {
    TriggeredAlert {
        event_id: Uuid::now_v7(),
        schema_version: 1,
        user_id: UserId::new("alice").unwrap(),
        rule_id: RuleId(rule),
        instrument: "UPBIT:KRW-BTC".parse().unwrap(),
        symbol: "KRW-BTC".into(),
        condition: ConditionKind::Above,
        level: "161000000".parse().unwrap(),
        percent: None,
        price: "161000000".parse().unwrap(),
        exchange_time: chrono::Utc::now(),
        triggered_at: chrono::Utc::now(),
        note: None,
        simulated: false,
        params: None,
        also: None,
        channels: None,
        message: None,
        change_percent: None,
    }
}

#[tokio::test]
async fn an_event_that_cannot_be_stored_is_retried_in_place_and_never_acknowledged_unstored() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/alert.db?mode=rwc", dir.path().display());
    let pool = connect(&url, Schema::Alert).await.unwrap();
    let store = Arc::new(SqlAlertStore::new(pool.clone()));
    let (events, scripted) = mpsc::unbounded_channel();
    let log = Arc::new(Mutex::new(BusLog::default()));
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
            history: store.clone(),
            inbox: Box::new(ScriptedInbox {
                events: scripted,
                log: log.clone(),
            }),
            broadcast: Arc::new(signal_memory::MemoryBroadcast::default()),
            accounts: None,
            trusted_proxies: Default::default(),
            gateway: Default::default(),
            channels,
            leases: Arc::new(signal_memory::MemorySharedCache::default()),
            instance: "test".into(),
        },
        Arc::new(JwtVerifier::new(&JwtConfig {
            secret: "store-outage-test-secret-0123456789abcdef".into(),
            user_claim: "sub".into(),
            ..Default::default()
        })),
        signal_web::SocketLimits::default(),
        &prometheus::Registry::new(),
        shutdown.clone(),
    )
    .await
    .unwrap();

    // The history table is out of reach: every insert fails.
    sqlx::query("ALTER TABLE alert_history RENAME TO alert_history_away")
        .execute(&pool)
        .await
        .unwrap();
    let burst: Vec<TriggeredAlert> = (1..=3).map(event).collect();
    for event in &burst {
        events.send(event.clone()).unwrap();
    }
    // Give the consumer time to fail on the first event several times.
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let log = log.lock().unwrap();
        assert_eq!(
            log.acknowledged,
            Vec::<Uuid>::new(),
            "acknowledged unstored"
        );
        assert_eq!(log.reads, 1, "read past an event it could not store");
    }

    sqlx::query("ALTER TABLE alert_history_away RENAME TO alert_history")
        .execute(&pool)
        .await
        .unwrap();
    let expected: Vec<Uuid> = burst.iter().map(|e| e.event_id).collect();
    for _ in 0..200 {
        if log.lock().unwrap().acknowledged.len() == expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log.lock().unwrap().acknowledged, expected);
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(DISTINCT event_id) FROM alert_history")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 3);
    shutdown.cancel();
    for task in service.tasks {
        task.await.unwrap();
    }
}
