//! The store against real databases, SQLite and PostgreSQL (SIGNAL_TEST_POSTGRES_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres): the guarantees the services build on. Each
//! scenario runs on both backends, each run on a fresh database.

use chrono::Utc;
use rust_decimal_macros::dec;
use signal_domain::{
    Condition, ConditionKind, Price, Repeat, RuleSpec, RuleState, TriggeredAlert, UserId,
    TRIGGERED_ALERT_SCHEMA_VERSION,
};
use signal_ports::{
    AlertHistoryStore, HistoryQuery, RuleChange, RuleStore, StoreError, WatchlistStore,
};
use signal_store_sql::{connect, Schema, SqlAlertStore, SqlAssetStore};

/// A fresh, empty database of each backend.
async fn fresh_databases(dir: &tempfile::TempDir, schema: Schema) -> Vec<String> {
    let sqlite = format!("sqlite://{}/{:?}.db?mode=rwc", dir.path().display(), schema);
    let admin = std::env::var("SIGNAL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("signal_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&admin)
        .await
        .expect("PostgreSQL is reachable");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap();
    vec![sqlite, format!("{base}/{name}")]
}

async fn asset_stores(dir: &tempfile::TempDir) -> Vec<(String, SqlAssetStore)> {
    let mut stores = Vec::new();
    for url in fresh_databases(dir, Schema::Asset).await {
        stores.push((
            url.clone(),
            SqlAssetStore::new(connect(&url, Schema::Asset).await.unwrap()),
        ));
    }
    stores
}

async fn alert_stores(dir: &tempfile::TempDir) -> Vec<SqlAlertStore> {
    let mut stores = Vec::new();
    for url in fresh_databases(dir, Schema::Alert).await {
        stores.push(SqlAlertStore::new(
            connect(&url, Schema::Alert).await.unwrap(),
        ));
    }
    stores
}

fn above(level: rust_decimal::Decimal) -> RuleSpec {
    RuleSpec::new(
        "KRX:005930".parse().unwrap(),
        Condition::from_parts(ConditionKind::Above, level).unwrap(),
        Repeat::Once,
        None,
        Some("take profit".into()),
        Utc::now(),
    )
    .unwrap()
}

fn event(user: &UserId, rule: signal_domain::RuleId, price: &str) -> TriggeredAlert {
    TriggeredAlert {
        event_id: uuid::Uuid::now_v7(),
        schema_version: TRIGGERED_ALERT_SCHEMA_VERSION,
        user_id: user.clone(),
        rule_id: rule,
        instrument: "KRX:005930".parse().unwrap(),
        symbol: "005930".into(),
        condition: ConditionKind::Above,
        level: "71900".parse().unwrap(),
        percent: None,
        price: price.parse::<Price>().unwrap(),
        exchange_time: Utc::now(),
        triggered_at: Utc::now(),
        note: None,
        simulated: true,
    }
}

#[tokio::test]
async fn rules_survive_a_reopen_and_respect_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    for (url, store) in asset_stores(&dir).await {
        rules_survive_a_reopen(&url, store).await;
    }
}

async fn rules_survive_a_reopen(url: &str, store: SqlAssetStore) {
    let alice = UserId::new("alice").unwrap();
    let first = store
        .create(&alice, &above(dec!(71900)), 2, Utc::now())
        .await
        .unwrap();
    store
        .create(&alice, &above(dec!(72000)), 2, Utc::now())
        .await
        .unwrap();
    let third = store
        .create(&alice, &above(dec!(73000)), 2, Utc::now())
        .await;
    assert!(matches!(third, Err(StoreError::RuleLimit { limit: 2 })));

    // A triggered rule no longer counts against the limit.
    store
        .apply_changes(
            &[RuleChange {
                rule: first.id,
                state: RuleState::Triggered,
                fired_at: Some(Utc::now()),
                trigger_count: 1,
            }],
            &[event(&alice, first.id, "71900")],
        )
        .await
        .unwrap();
    store
        .create(&alice, &above(dec!(73000)), 2, Utc::now())
        .await
        .unwrap();

    drop(store);
    let reopened = SqlAssetStore::new(connect(url, Schema::Asset).await.unwrap());
    let all = RuleStore::list(&reopened, &alice, false).await.unwrap();
    assert_eq!(all.len(), 3);
    let fired = all.iter().find(|r| r.id == first.id).unwrap();
    assert_eq!(fired.state, RuleState::Triggered);
    assert_eq!(fired.trigger_count, 1);
    assert_eq!(fired.spec.condition.value(), dec!(71900));
    assert_eq!(fired.spec.note.as_deref(), Some("take profit"));
    assert_eq!(reopened.active_rules().await.unwrap().len(), 2);
    assert_eq!(reopened.pending_outbox(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn outbox_entries_leave_the_pending_set_once_sent() {
    let dir = tempfile::tempdir().unwrap();
    for (_, store) in asset_stores(&dir).await {
        outbox_round_trip(store).await;
    }
}

async fn outbox_round_trip(store: SqlAssetStore) {
    let bob = UserId::new("bob").unwrap();
    let rule = store
        .create(&bob, &above(dec!(10)), 10, Utc::now())
        .await
        .unwrap();
    let events = [event(&bob, rule.id, "10"), event(&bob, rule.id, "11")];
    store.apply_changes(&[], &events).await.unwrap();
    let pending = store.pending_outbox(10).await.unwrap();
    assert_eq!(
        pending.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        events.to_vec()
    );
    store
        .mark_outbox_sent(&[pending[0].id], Utc::now())
        .await
        .unwrap();
    let rest = store.pending_outbox(10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event.event_id, events[1].event_id);
}

#[tokio::test]
async fn watchlist_rejects_duplicates_and_is_per_user() {
    let dir = tempfile::tempdir().unwrap();
    for (_, store) in asset_stores(&dir).await {
        watchlist_per_user(store).await;
    }
}

async fn watchlist_per_user(store: SqlAssetStore) {
    let alice = UserId::new("alice").unwrap();
    let bob = UserId::new("bob").unwrap();
    let btc = "UPBIT:KRW-BTC".parse().unwrap();
    store.add(&alice, &btc, Utc::now()).await.unwrap();
    assert!(matches!(
        store.add(&alice, &btc, Utc::now()).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(WatchlistStore::list(&store, &alice).await.unwrap().len(), 1);
    assert!(WatchlistStore::list(&store, &bob).await.unwrap().is_empty());
    assert!(!store.remove(&bob, &btc).await.unwrap());
    assert!(store.remove(&alice, &btc).await.unwrap());
}

#[tokio::test]
async fn history_is_idempotent_paginated_and_private() {
    let dir = tempfile::tempdir().unwrap();
    for store in alert_stores(&dir).await {
        history_guarantees(store).await;
    }
}

async fn history_guarantees(store: SqlAlertStore) {
    let alice = UserId::new("alice").unwrap();
    let bob = UserId::new("bob").unwrap();
    let first = event(&alice, signal_domain::RuleId(1), "71900");
    assert!(store
        .insert_if_absent(&first, Utc::now())
        .await
        .unwrap()
        .is_some());
    assert!(store
        .insert_if_absent(&first, Utc::now())
        .await
        .unwrap()
        .is_none());
    for price in ["72000", "72100", "72200"] {
        store
            .insert_if_absent(&event(&alice, signal_domain::RuleId(1), price), Utc::now())
            .await
            .unwrap();
    }
    store
        .insert_if_absent(&event(&bob, signal_domain::RuleId(2), "1"), Utc::now())
        .await
        .unwrap();

    let page = store
        .list(
            &alice,
            &HistoryQuery {
                limit: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let prices: Vec<String> = page.items.iter().map(|r| r.price.to_string()).collect();
    assert_eq!(prices, ["72200", "72100", "72000"]);
    let rest = store
        .list(
            &alice,
            &HistoryQuery {
                limit: 3,
                before_id: page.next_before_id,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next_before_id, None);

    let oldest = rest.items[0].id;
    assert!(!store.mark_read(&bob, oldest, Utc::now()).await.unwrap());
    assert!(store.mark_read(&alice, oldest, Utc::now()).await.unwrap());
    let unread = store
        .list(
            &alice,
            &HistoryQuery {
                read: Some(false),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(unread.items.len(), 3);
    assert_eq!(store.unacknowledged(&alice, 10).await.unwrap().len(), 3);
    assert!(!store.delete(&bob, oldest).await.unwrap());
    assert_eq!(store.delete_all(&alice).await.unwrap(), 4);
    assert_eq!(store.unacknowledged(&bob, 10).await.unwrap().len(), 1);
}
