//! The store against real databases, SQLite and PostgreSQL (DONTOUCH_TEST_POSTGRES_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres): the guarantees the services build on. Each
//! scenario runs on both backends, each run on a fresh database.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use rust_decimal_macros::dec;
use signal_accounts::{AccountStore, Email, NewSession, SessionId};
use signal_domain::{
    AlertRule, Condition, ConditionKind, Price, Repeat, RuleId, RuleSpec, RuleState,
    TriggeredAlert, UserId, TRIGGERED_ALERT_SCHEMA_VERSION,
};
use signal_ports::{
    AlertHistoryStore, AlertRecord, Candle, CandleStore, Capped, ChannelKind, ChannelRecord,
    ChannelState, ChannelStore, ChannelTarget, DeliveryAttempt, DeliveryOutcome, DeliveryQuery,
    DeliveryStatus, DeliveryStore, HistoryQuery, NewChannel, OutboxStore, RuleChange, RuleHold,
    RuleStore, WatchlistStore,
};
use signal_store_sql::{
    connect, Schema, SqlAccountStore, SqlAlertStore, SqlAssetStore, SqlCandleStore,
};
use std::collections::BTreeSet;

/// A fresh, empty database of each backend.
async fn fresh_databases(dir: &tempfile::TempDir, schema: Schema) -> Vec<String> {
    let sqlite = format!("sqlite://{}/{:?}.db?mode=rwc", dir.path().display(), schema);
    let admin = std::env::var("DONTOUCH_TEST_POSTGRES_URL")
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
        params: None,
        also: None,
        channels: None,
        message: None,
        change_percent: None,
    }
}

#[tokio::test]
async fn rules_survive_a_reopen_and_respect_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    for (url, store) in asset_stores(&dir).await {
        rules_survive_a_reopen(&url, store).await;
    }
}

/// A rule the store created.
fn stored(outcome: Capped<AlertRule>) -> AlertRule {
    match outcome {
        Capped::Stored(rule) => rule,
        Capped::LimitReached => panic!("the limit refused the rule"),
    }
}

async fn rules_survive_a_reopen(url: &str, store: SqlAssetStore) {
    let alice = UserId::new("alice").unwrap();
    let first = stored(
        store
            .create(&alice, &above(dec!(71900)), 2, Utc::now())
            .await
            .unwrap(),
    );
    store
        .create(&alice, &above(dec!(72000)), 2, Utc::now())
        .await
        .unwrap();
    let third = store
        .create(&alice, &above(dec!(73000)), 2, Utc::now())
        .await
        .unwrap();
    assert_eq!(third, Capped::LimitReached);

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
    stored(
        store
            .create(&alice, &above(dec!(73000)), 2, Utc::now())
            .await
            .unwrap(),
    );

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
async fn every_kind_of_condition_and_frequency_is_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    for (_, store) in asset_stores(&dir).await {
        every_kind_stored_whole(store).await;
    }
}

async fn every_kind_stored_whole(store: SqlAssetStore) {
    use serde_json::json;
    use signal_domain::{ConditionParams, Interval};
    let kinds = [
        (ConditionKind::CrossDown, json!({"level": "69000"})),
        (
            ConditionKind::ChannelEnter,
            json!({"low": "100", "high": "110.5"}),
        ),
        (
            ConditionKind::MoveDown,
            json!({"percent": "3", "windowSeconds": 900}),
        ),
        (
            ConditionKind::MoveUp,
            json!({"amount": "1500", "windowSeconds": 60}),
        ),
        (
            ConditionKind::VolumeSpike,
            json!({"interval": "5m", "bars": 20, "factor": "3.5"}),
        ),
        (ConditionKind::DayVolume, json!({"volume": "1000000"})),
        (
            ConditionKind::MaCrossUp,
            json!({"interval": "1h", "bars": 20, "average": "EMA"}),
        ),
        (
            ConditionKind::RsiAbove,
            json!({"interval": "1h", "bars": 14, "level": "70"}),
        ),
        (
            ConditionKind::DeadCross,
            json!({"interval": "1d", "fast": {"bars": 50}, "slow": {"average": "EMA", "bars": 200}}),
        ),
    ];
    let alice = UserId::new("alice").unwrap();
    let mut written = Vec::new();
    for (kind, params) in kinds {
        let condition = serde_json::from_value::<ConditionParams>(params)
            .unwrap()
            .condition(kind)
            .unwrap();
        let repeat = match condition.interval() {
            Some(interval) => Repeat::OncePerBarClose(interval),
            None => Repeat::OncePerBar(Interval::M15),
        };
        let spec = RuleSpec::new(
            "UPBIT:KRW-BTC".parse().unwrap(),
            condition,
            repeat,
            None,
            None,
            Utc::now(),
        )
        .unwrap();
        let rule = stored(store.create(&alice, &spec, 100, Utc::now()).await.unwrap());
        assert_eq!(rule.spec, spec);
        written.push(rule);
    }
    let mut read = store.active_rules().await.unwrap();
    read.sort_by_key(|rule| rule.id);
    assert_eq!(read, written);

    // An update may change the kind and its parameters altogether.
    let first = &written[0];
    let rsi = RuleSpec {
        condition: written[7].spec.condition,
        repeat: written[7].spec.repeat,
        ..first.spec.clone()
    }
    .with_channels(Some(vec![5, 2, 5]))
    .unwrap();
    assert_eq!(rsi.channels, Some(vec![2, 5]), "sorted, once each");
    let updated = store
        .update(&alice, first.id, &rsi, 100, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        updated.map(|outcome| stored(outcome).spec),
        Some(rsi.clone())
    );
    assert_eq!(
        RuleStore::get(&store, &alice, first.id)
            .await
            .unwrap()
            .map(|rule| rule.spec),
        Some(rsi)
    );
}

#[tokio::test]
async fn a_pause_a_snooze_a_message_and_a_second_condition_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    for (_, store) in asset_stores(&dir).await {
        rule_controls_kept(store).await;
    }
}

async fn rule_controls_kept(store: SqlAssetStore) {
    use signal_domain::{Conjunct, Direction, Interval};
    let carol = UserId::new("carol").unwrap();
    let rsi = Condition::Rsi {
        direction: Direction::Up,
        bars: 14,
        level: dec!(70),
        interval: Interval::H1,
    };
    let spec = RuleSpec::new(
        "UPBIT:KRW-BTC".parse().unwrap(),
        rsi,
        Repeat::Once,
        None,
        None,
        Utc::now(),
    )
    .unwrap()
    .with_and(Conjunct {
        condition: Condition::from_parts(ConditionKind::CrossUp, dec!(100000000)).unwrap(),
        within: chrono::Duration::minutes(30),
    })
    .unwrap()
    .with_message("{{name}} overbought at {{price}} ({{time}})")
    .unwrap();
    let rule = stored(store.create(&carol, &spec, 10, Utc::now()).await.unwrap());
    assert_eq!(rule.spec, spec);
    assert_eq!((rule.paused_at, rule.snoozed_until), (None, None));

    // Paused: still the user's active rule, not one the engines evaluate.
    let at = Utc::now();
    let until = at + chrono::Duration::hours(1);
    let paused = store
        .hold(
            &carol,
            rule.id,
            RuleHold {
                paused_at: Some(at),
                snoozed_until: Some(until),
            },
            at,
        )
        .await
        .unwrap()
        .unwrap();
    let micros = |t: chrono::DateTime<Utc>| t.timestamp_micros();
    assert_eq!(paused.paused_at.map(micros), Some(micros(at)));
    assert_eq!(paused.snoozed_until.map(micros), Some(micros(until)));
    assert_eq!(paused.state, RuleState::Armed);
    assert_eq!(paused.spec, spec);
    assert_eq!(
        RuleStore::list(&store, &carol, true).await.unwrap().len(),
        1
    );
    assert!(store.active_rules().await.unwrap().is_empty());
    let stranger = UserId::new("mallory").unwrap();
    let refused = store
        .hold(&stranger, rule.id, RuleHold::default(), at)
        .await;
    assert_eq!(refused.unwrap(), None, "only its owner holds a rule");

    let resumed = store
        .hold(&carol, rule.id, RuleHold::default(), Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((resumed.paused_at, resumed.snoozed_until), (None, None));
    assert_eq!(store.active_rules().await.unwrap(), vec![resumed]);
}

#[tokio::test]
async fn outbox_entries_leave_the_pending_set_once_sent_or_set_aside_and_go_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    for (_, store) in asset_stores(&dir).await {
        outbox_round_trip(store).await;
    }
}

async fn outbox_round_trip(store: SqlAssetStore) {
    let bob = UserId::new("bob").unwrap();
    let rule = stored(
        store
            .create(&bob, &above(dec!(10)), 10, Utc::now())
            .await
            .unwrap(),
    );
    let events = [
        event(&bob, rule.id, "10"),
        event(&bob, rule.id, "11"),
        event(&bob, rule.id, "12"),
    ];
    store.apply_changes(&[], &events).await.unwrap();
    let pending = store.pending_outbox(10).await.unwrap();
    let ids: Vec<i64> = pending.iter().map(|entry| entry.id).collect();
    let read: Vec<_> = pending
        .into_iter()
        .map(|entry| entry.event.unwrap())
        .collect();
    assert_eq!(read, events.to_vec());

    let long_ago = Utc::now() - chrono::Duration::hours(25);
    store.mark_outbox_sent(&ids[..1], long_ago).await.unwrap();
    store
        .dead_letter(ids[1], "refused: message too large", Utc::now())
        .await
        .unwrap();
    let rest = store.pending_outbox(10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event.as_ref().unwrap().event_id, events[2].event_id);

    let letters = store.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, events[1].event_id.to_string());
    assert_eq!(letters[0].reason, "refused: message too large");
    assert!(store.requeue_dead_letter(ids[1]).await.unwrap());
    assert!(
        !store.requeue_dead_letter(ids[1]).await.unwrap(),
        "pending again"
    );
    assert_eq!(store.pending_outbox(10).await.unwrap().len(), 2);

    // Sent a day ago goes; sent just now and pending stay.
    store
        .mark_outbox_sent(&ids[1..2], Utc::now())
        .await
        .unwrap();
    let cutoff = Utc::now() - chrono::Duration::hours(24);
    assert_eq!(store.delete_sent(cutoff, 100).await.unwrap(), 1);
    assert_eq!(store.delete_sent(cutoff, 100).await.unwrap(), 0);
    assert_eq!(store.pending_outbox(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn rules_are_deleted_and_replaced_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    for (_, store) in asset_stores(&dir).await {
        replace_in_one_transaction(store).await;
    }
}

async fn replace_in_one_transaction(store: SqlAssetStore) {
    let alice = UserId::new("alice").unwrap();
    let bob = UserId::new("bob").unwrap();
    let limit = 2;
    let old = stored(
        store
            .create(&alice, &above(dec!(70000)), limit, Utc::now())
            .await
            .unwrap(),
    );
    store
        .apply_changes(
            &[RuleChange {
                rule: old.id,
                state: RuleState::Triggered,
                fired_at: Some(Utc::now()),
                trigger_count: 1,
            }],
            &[],
        )
        .await
        .unwrap();
    let mut active = Vec::new();
    for level in [dec!(71000), dec!(72000)] {
        active.push(stored(
            store
                .create(&alice, &above(level), limit, Utc::now())
                .await
                .unwrap(),
        ));
    }

    // Deleting the fired rule frees nothing, so the new one is refused, and the delete with it.
    let refused = store
        .replace(&alice, &[old.id], &above(dec!(73000)), limit, Utc::now())
        .await
        .unwrap();
    assert_eq!(refused, Capped::LimitReached);
    assert!(RuleStore::get(&store, &alice, old.id)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        RuleStore::list(&store, &alice, false).await.unwrap().len(),
        3
    );

    // Replacing an active rule frees its place.
    let new = stored(
        store
            .replace(
                &alice,
                &[old.id, active[0].id],
                &above(dec!(73000)),
                limit,
                Utc::now(),
            )
            .await
            .unwrap(),
    );
    let ids: Vec<_> = RuleStore::list(&store, &alice, false)
        .await
        .unwrap()
        .iter()
        .map(|rule| rule.id)
        .collect();
    assert_eq!(ids, vec![new.id, active[1].id]);

    assert!(
        store.delete_many(&bob, &[new.id]).await.unwrap().is_empty(),
        "not bob's to delete"
    );
    let mut deleted = store
        .delete_many(&alice, &[new.id, active[1].id, RuleId(987_654)])
        .await
        .unwrap();
    deleted.sort();
    assert_eq!(deleted, vec![active[1].id, new.id]);
    assert!(RuleStore::list(&store, &alice, false)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_batch_is_created_whole_or_not_at_all_and_changes_are_read_since_a_moment() {
    let dir = tempfile::tempdir().unwrap();
    for (_, store) in asset_stores(&dir).await {
        batches_and_changes(store).await;
    }
}

async fn batches_and_changes(store: SqlAssetStore) {
    let alice = UserId::new("alice").unwrap();
    let long_ago = Utc::now() - chrono::Duration::hours(1);
    let specs = [above(dec!(1)), above(dec!(2)), above(dec!(3))];
    let Capped::Stored(batch) = store
        .create_many(&alice, &specs, 4, long_ago)
        .await
        .unwrap()
    else {
        panic!("three rules fit under a limit of four")
    };
    let levels: Vec<_> = batch.iter().map(|rule| rule.spec.condition).collect();
    assert_eq!(
        levels,
        specs.iter().map(|spec| spec.condition).collect::<Vec<_>>(),
        "created in order"
    );
    assert_eq!(
        store
            .create_many(&alice, &[above(dec!(4)), above(dec!(5))], 4, long_ago)
            .await
            .unwrap(),
        Capped::LimitReached
    );
    assert_eq!(
        RuleStore::list(&store, &alice, false).await.unwrap().len(),
        3,
        "a refused batch leaves nothing behind"
    );

    // Creates of several users in one transaction: each user's first ones, as many as fit.
    let bob = UserId::new("bob").unwrap();
    let group = [
        (alice.clone(), above(dec!(6))),
        (bob.clone(), above(dec!(7))),
        (alice.clone(), above(dec!(8))),
    ];
    let outcomes = store.create_each(&group, 4, long_ago).await.unwrap();
    let stored: Vec<bool> = outcomes
        .iter()
        .map(|outcome| matches!(outcome, Capped::Stored(_)))
        .collect();
    assert_eq!(stored, [true, true, false], "alice had room for one more");
    assert_eq!(
        RuleStore::list(&store, &alice, false).await.unwrap().len(),
        4
    );
    assert_eq!(RuleStore::list(&store, &bob, false).await.unwrap().len(), 1);

    let since = Utc::now() - chrono::Duration::minutes(1);
    assert!(
        store.changed_since(since).await.unwrap().is_empty(),
        "nothing was written or deleted since"
    );
    let updated = store
        .update(&alice, batch[0].id, &above(dec!(10)), 4, Utc::now())
        .await
        .unwrap();
    assert!(matches!(updated, Some(Capped::Stored(_))));
    store.delete_many(&alice, &[batch[1].id]).await.unwrap();
    let changed = store.changed_since(since).await.unwrap();
    assert_eq!(
        changed
            .written
            .iter()
            .map(|rule| rule.id)
            .collect::<Vec<_>>(),
        vec![batch[0].id]
    );
    assert_eq!(changed.deleted, vec![batch[1].id]);
    assert!(store
        .changed_since(Utc::now() + chrono::Duration::minutes(1))
        .await
        .unwrap()
        .is_empty());
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
    assert!(store.add(&alice, &btc, Utc::now()).await.unwrap());
    assert!(
        !store.add(&alice, &btc, Utc::now()).await.unwrap(),
        "already there"
    );
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

/// Alerts of rules without a message.
fn standard_wording(_: &AlertRecord) -> Option<String> {
    None
}

async fn history_guarantees(store: SqlAlertStore) {
    let alice = UserId::new("alice").unwrap();
    let bob = UserId::new("bob").unwrap();
    let first = event(&alice, signal_domain::RuleId(1), "71900");
    assert!(store
        .insert_if_absent(&first, &standard_wording, Utc::now())
        .await
        .unwrap()
        .is_some());
    assert!(store
        .insert_if_absent(&first, &standard_wording, Utc::now())
        .await
        .unwrap()
        .is_none());
    for price in ["72000", "72100", "72200"] {
        store
            .insert_if_absent(
                &event(&alice, signal_domain::RuleId(1), price),
                &standard_wording,
                Utc::now(),
            )
            .await
            .unwrap();
    }
    store
        .insert_if_absent(
            &event(&bob, signal_domain::RuleId(2), "1"),
            &standard_wording,
            Utc::now(),
        )
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

    // A rule's message is rendered from the stored row (it may name the alert's id) and kept.
    let worded = store
        .insert_if_absent(
            &event(&alice, signal_domain::RuleId(3), "73000"),
            &|record: &AlertRecord| Some(format!("alert {} at {}", record.id, record.price)),
            Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let expected = format!("alert {} at 73000", worded.id);
    assert_eq!(worded.message.as_deref(), Some(expected.as_str()));
    let listed = store.get(&alice, worded.id).await.unwrap().unwrap();
    assert_eq!(listed.message.as_deref(), Some(expected.as_str()));
    assert_eq!(
        store.unacknowledged(&alice, 10).await.unwrap()[0].message,
        listed.message
    );
}

async fn candle_stores(dir: &tempfile::TempDir) -> Vec<SqlCandleStore> {
    let mut stores = Vec::new();
    for url in fresh_databases(dir, Schema::Asset).await {
        stores.push(SqlCandleStore::new(
            connect(&url, Schema::Asset).await.unwrap(),
        ));
    }
    stores
}

fn candle(instrument: &str, minute: i64, ohlc: [&str; 4], volume: &str, trades: u32) -> Candle {
    let [open, high, low, close] = ohlc.map(|p| p.parse::<Price>().unwrap());
    Candle {
        instrument: instrument.parse().unwrap(),
        minute: chrono::DateTime::from_timestamp(1_767_571_200 + minute * 60, 0).unwrap(),
        open,
        high,
        low,
        close,
        volume: volume.parse().unwrap(),
        trades,
    }
}

#[tokio::test]
async fn candles_are_written_in_batches_overwritten_and_read_by_range() {
    let dir = tempfile::tempdir().unwrap();
    for store in candle_stores(&dir).await {
        candle_guarantees(store).await;
    }
}

async fn candle_guarantees(store: SqlCandleStore) {
    let samsung: signal_domain::InstrumentId = "KRX:005930".parse().unwrap();
    let minute = |m: i64| candle("KRX:005930", m, ["1", "1", "1", "1"], "0", 0).minute;

    // A thousand minutes of two instruments in one call, decimals kept to the last digit.
    let batch: Vec<Candle> = (0..500)
        .flat_map(|m| {
            [
                candle(
                    "KRX:005930",
                    m,
                    ["71900", "72000.5", "71800", "71950"],
                    "1234.5678",
                    7,
                ),
                candle(
                    "UPBIT:KRW-BTC",
                    m,
                    ["0.00012345", "0.0002", "0.0001", "0.00015"],
                    "3",
                    2,
                ),
            ]
        })
        .collect();
    store.upsert_candles(&batch).await.unwrap();
    let all = store
        .candles(&samsung, minute(0), minute(500), 5000)
        .await
        .unwrap();
    assert_eq!(all.len(), 500);
    assert_eq!(all[0], batch[0]);
    assert_eq!(all[499], batch[998]);
    assert!(all.windows(2).all(|w| w[0].minute < w[1].minute));
    let btc = store
        .candles(&"UPBIT:KRW-BTC".parse().unwrap(), minute(0), minute(1), 10)
        .await
        .unwrap();
    assert_eq!(btc, vec![batch[1].clone()]);
    assert_eq!(btc[0].open.to_string(), "0.00012345");

    // `[from, to)`, oldest first, the oldest `limit`.
    let page = store
        .candles(&samsung, minute(10), minute(20), 3)
        .await
        .unwrap();
    let minutes: Vec<_> = page.iter().map(|c| c.minute).collect();
    assert_eq!(minutes, vec![minute(10), minute(11), minute(12)]);
    let window = store
        .candles(&samsung, minute(10), minute(20), 100)
        .await
        .unwrap();
    assert_eq!(window.len(), 10);
    assert_eq!(window.last().unwrap().minute, minute(19));
    assert!(store
        .candles(&samsung, minute(600), minute(700), 100)
        .await
        .unwrap()
        .is_empty());

    // A partial candle rewritten as the minute goes on: the later write is the whole truth, even
    // where its high is lower as text ("9" > "10" as strings).
    store
        .upsert_candles(&[candle("KRX:005930", 1000, ["9", "9", "9", "9"], "1", 1)])
        .await
        .unwrap();
    let grown = candle("KRX:005930", 1000, ["9", "10.25", "8.5", "10"], "3.5", 3);
    store
        .upsert_candles(std::slice::from_ref(&grown))
        .await
        .unwrap();
    let stored = store
        .candles(&samsung, minute(1000), minute(1001), 10)
        .await
        .unwrap();
    assert_eq!(stored, vec![grown.clone()]);

    // The same minute twice in one call: the later entry wins.
    let last = candle("KRX:005930", 1000, ["9", "11", "8.5", "11"], "4.5", 4);
    store
        .upsert_candles(&[
            grown,
            candle("KRX:005930", 1001, ["11", "11", "11", "11"], "1", 1),
            last.clone(),
        ])
        .await
        .unwrap();
    let stored = store
        .candles(&samsung, minute(1000), minute(1002), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0], last);

    // More rows than one statement can bind still land, together.
    let large: Vec<Candle> = (0..9_000)
        .map(|m| candle("KRX:000660", m, ["1", "2", "1", "2"], "1", 1))
        .collect();
    store.upsert_candles(&large).await.unwrap();
    let hynix = store
        .candles(
            &"KRX:000660".parse().unwrap(),
            minute(4_000),
            minute(9_000),
            5_000,
        )
        .await
        .unwrap();
    assert_eq!(hynix.len(), 5_000);
    store.upsert_candles(&[]).await.unwrap();
}

async fn account_stores(dir: &tempfile::TempDir) -> Vec<SqlAccountStore> {
    let mut stores = Vec::new();
    for url in fresh_databases(dir, Schema::Alert).await {
        stores.push(SqlAccountStore::new(
            connect(&url, Schema::Alert).await.unwrap(),
        ));
    }
    stores
}

#[tokio::test]
async fn accounts_are_unique_by_email_and_sessions_end_together_on_a_new_password() {
    let dir = tempfile::tempdir().unwrap();
    for store in account_stores(&dir).await {
        account_guarantees(store).await;
    }
}

fn session(created_at: chrono::DateTime<Utc>, days: i64) -> NewSession {
    NewSession {
        id: SessionId::random(),
        created_at,
        expires_at: created_at + chrono::Duration::days(days),
        user_agent: Some("Mozilla/5.0 (test)".into()),
    }
}

async fn account_guarantees(store: SqlAccountStore) {
    let now = Utc::now();
    let alice = Email::parse("alice@example.com").unwrap();
    let bob = Email::parse("bob@example.com").unwrap();
    let laptop = session(now, 30);
    assert!(store
        .create_account(&alice, "hash-1", &laptop)
        .await
        .unwrap());
    assert!(
        !store
            .create_account(&alice, "hash-x", &session(now, 30))
            .await
            .unwrap(),
        "the email is taken"
    );
    assert_eq!(
        store.password_hash(&alice).await.unwrap().as_deref(),
        Some("hash-1")
    );
    assert_eq!(store.password_hash(&bob).await.unwrap(), None);
    assert!(!store.start_session(&bob, &session(now, 30)).await.unwrap());
    assert!(store
        .create_account(&bob, "hash-b", &session(now, 30))
        .await
        .unwrap());

    let phone = session(now + chrono::Duration::seconds(1), 30);
    assert!(store.start_session(&alice, &phone).await.unwrap());
    let active = store.active_sessions(&alice, now).await.unwrap();
    assert_eq!(
        active.iter().map(|s| s.id).collect::<Vec<_>>(),
        [phone.id, laptop.id],
        "newest first"
    );
    assert_eq!(active[0].user_agent.as_deref(), Some("Mozilla/5.0 (test)"));

    // Only the owner ends a session, once.
    assert_eq!(store.end_session(&bob, phone.id, now).await.unwrap(), None);
    let ended = store
        .end_session(&alice, phone.id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.id, phone.id);
    assert_eq!(
        store.end_session(&alice, phone.id, now).await.unwrap(),
        None
    );
    assert_eq!(
        store.ended_unexpired_sessions(now).await.unwrap(),
        vec![ended]
    );

    // A new password ends every active session and starts one, in one transaction.
    let fresh = session(now + chrono::Duration::seconds(2), 30);
    let ended = store
        .replace_password(&alice, "hash-2", &fresh, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.iter().map(|s| s.id).collect::<Vec<_>>(), [laptop.id]);
    assert_eq!(
        store.password_hash(&alice).await.unwrap().as_deref(),
        Some("hash-2")
    );
    assert_eq!(
        store
            .active_sessions(&alice, now)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        [fresh.id]
    );
    assert_eq!(store.active_sessions(&bob, now).await.unwrap().len(), 1);
    assert_eq!(
        store
            .replace_password(
                &Email::parse("nobody@example.com").unwrap(),
                "h",
                &fresh,
                now
            )
            .await
            .unwrap(),
        None
    );

    // Expired sessions are neither active nor kept forever.
    let later = now + chrono::Duration::days(31);
    assert!(store
        .active_sessions(&alice, later)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .ended_unexpired_sessions(later)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.delete_sessions_expired_before(later).await.unwrap(),
        4
    );
}

fn webhook_target(url: &str) -> ChannelTarget {
    ChannelTarget::Webhook {
        url: url.into(),
        template: None,
        secret: "whsec_c2VjcmV0".into(),
        previous_secret: None,
        previous_secret_expires_at: None,
    }
}

async fn add_channel(
    store: &SqlAlertStore,
    user: &UserId,
    target: ChannelTarget,
    state: ChannelState,
) -> ChannelRecord {
    store
        .create_channel(
            &NewChannel {
                user: user.clone(),
                name: "test".into(),
                target,
                state,
                pending_code: None,
            },
            Utc::now(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn an_alert_is_stored_with_one_delivery_per_active_channel_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    for store in alert_stores(&dir).await {
        deliveries_come_with_their_alert(store).await;
    }
}

async fn deliveries_come_with_their_alert(store: SqlAlertStore) {
    let alice = UserId::new("alice").unwrap();
    let bob = UserId::new("bob").unwrap();
    let active = add_channel(
        &store,
        &alice,
        webhook_target("https://a.example/"),
        ChannelState::Active,
    )
    .await;
    add_channel(
        &store,
        &alice,
        ChannelTarget::Telegram { chat_id: None },
        ChannelState::Pending,
    )
    .await;
    add_channel(
        &store,
        &alice,
        webhook_target("https://b.example/"),
        ChannelState::Disabled,
    )
    .await;
    add_channel(
        &store,
        &bob,
        webhook_target("https://c.example/"),
        ChannelState::Active,
    )
    .await;

    let fired = event(&alice, signal_domain::RuleId(1), "71900");
    let record = store
        .insert_if_absent(&fired, &standard_wording, Utc::now())
        .await
        .unwrap()
        .unwrap();
    let mine = store
        .deliveries(
            &alice,
            &DeliveryQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(mine.len(), 1, "only the active channel: {mine:?}");
    assert_eq!(mine[0].channel_id, active.id);
    assert_eq!(mine[0].alert_id, Some(record.id));
    assert_eq!(mine[0].event_id, fired.event_id);
    assert_eq!(mine[0].status, DeliveryStatus::Pending);
    // A redelivered event creates nothing.
    assert!(store
        .insert_if_absent(&fired, &standard_wording, Utc::now())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .deliveries(
                &alice,
                &DeliveryQuery {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .len(),
        1
    );
    let bobs = store
        .deliveries(
            &bob,
            &DeliveryQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(bobs.is_empty());
}

#[tokio::test]
async fn concurrent_claims_never_take_the_same_channel() {
    let dir = tempfile::tempdir().unwrap();
    for store in alert_stores(&dir).await {
        claims_are_exclusive(store).await;
    }
}

async fn claims_are_exclusive(store: SqlAlertStore) {
    let store = std::sync::Arc::new(store);
    // Forty users with a channel each, two alerts each.
    let mut expected = BTreeSet::new();
    for n in 0..40 {
        let user = UserId::new(format!("user{n}")).unwrap();
        add_channel(
            &store,
            &user,
            webhook_target("https://hooks.example/"),
            ChannelState::Active,
        )
        .await;
        for _ in 0..2 {
            let record = store
                .insert_if_absent(
                    &event(&user, signal_domain::RuleId(n), "71900"),
                    &standard_wording,
                    Utc::now(),
                )
                .await
                .unwrap()
                .unwrap();
            expected.insert(record.id);
        }
    }
    let now = Utc::now();
    let until = now + chrono::Duration::seconds(30);
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut batches = Vec::new();
                loop {
                    let batch = store
                        .claim_due(ChannelKind::Webhook, now, until, 3)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return batches;
                    }
                    batches.push(batch);
                }
            })
        })
        .collect();
    let mut batches = Vec::new();
    for claimer in claimers {
        batches.extend(claimer.await.unwrap());
    }
    // Each channel was claimed once, by one claim, with all its due deliveries.
    let mut claimed_by: std::collections::BTreeMap<i64, usize> = Default::default();
    for (n, batch) in batches.iter().enumerate() {
        for delivery in batch {
            let owner = *claimed_by.entry(delivery.channel_id).or_insert(n);
            assert_eq!(owner, n, "channel {} in two claims", delivery.channel_id);
        }
    }
    assert_eq!(claimed_by.len(), 40);
    let claimed: BTreeSet<i64> = batches
        .iter()
        .flatten()
        .filter_map(|d| d.alert_id)
        .collect();
    assert_eq!(claimed, expected, "every due delivery, once");
    assert!(store
        .claim_due(ChannelKind::Webhook, now, until, 100)
        .await
        .unwrap()
        .is_empty());

    // Given back, a channel can be claimed again; so can one whose claim lapsed (its worker died).
    let first_channel = batches[0][0].channel_id;
    store.release_claim(&[first_channel]).await.unwrap();
    let again = store
        .claim_due(ChannelKind::Webhook, now, until, 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|d| d.channel_id == first_channel));
    let later = until + chrono::Duration::seconds(1);
    let retaken = store
        .claim_due(
            ChannelKind::Webhook,
            later,
            later + chrono::Duration::seconds(30),
            100,
        )
        .await
        .unwrap();
    assert_eq!(retaken.len(), 80);
}

#[tokio::test]
async fn attempts_outcomes_and_disabling_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    for store in alert_stores(&dir).await {
        outcomes_are_recorded(store).await;
    }
}

async fn outcomes_are_recorded(store: SqlAlertStore) {
    let alice = UserId::new("alice").unwrap();
    let channel = add_channel(
        &store,
        &alice,
        webhook_target("https://a.example/"),
        ChannelState::Active,
    )
    .await;
    for _ in 0..2 {
        store
            .insert_if_absent(
                &event(&alice, signal_domain::RuleId(1), "71900"),
                &standard_wording,
                Utc::now(),
            )
            .await
            .unwrap();
    }
    let now = Utc::now();
    let claimed = store
        .claim_due(
            ChannelKind::Webhook,
            now,
            now + chrono::Duration::seconds(30),
            10,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    store.release_claim(&[channel.id]).await.unwrap();
    let (first, second) = (claimed[0].id, claimed[1].id);
    let failed = DeliveryAttempt {
        at: now,
        ok: false,
        status: Some(503),
        error: Some("the receiver answered HTTP 503".into()),
        duration_ms: 12,
    };
    let retry_at = now + chrono::Duration::seconds(5);
    store
        .record_attempt(&[first], &failed, &DeliveryOutcome::Retry { at: retry_at })
        .await
        .unwrap();
    let retrying = store.delivery(&alice, first).await.unwrap().unwrap();
    assert_eq!(retrying.status, DeliveryStatus::Pending);
    assert_eq!(retrying.attempts, 1);
    assert_eq!(retrying.last_status, Some(503));
    assert_eq!(
        retrying.next_attempt_at.timestamp_micros(),
        retry_at.timestamp_micros()
    );
    // Not due before its retry time; due after.
    assert!(store
        .claim_due(ChannelKind::Webhook, now, now, 10)
        .await
        .unwrap()
        .iter()
        .all(|d| d.id != first));
    let ok = DeliveryAttempt {
        at: retry_at,
        ok: true,
        status: Some(200),
        error: None,
        duration_ms: 8,
    };
    store
        .record_attempt(&[first], &ok, &DeliveryOutcome::Delivered { at: retry_at })
        .await
        .unwrap();
    let delivered = store.delivery(&alice, first).await.unwrap().unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.attempts, 2);
    assert!(delivered.latency_ms.unwrap() >= 0);
    let log = store.attempts(first).await.unwrap();
    assert_eq!(log.len(), 2);
    assert!(!log[0].ok && log[1].ok);
    assert_eq!(
        store
            .sent_since(channel.id, now - chrono::Duration::minutes(1))
            .await
            .unwrap()
            .len(),
        1
    );

    // Disabling the channel skips what was still waiting, and says why.
    store
        .disable_channel(channel.id, "the receiver is gone: HTTP 410", now)
        .await
        .unwrap();
    let skipped = store.delivery(&alice, second).await.unwrap().unwrap();
    assert_eq!(skipped.status, DeliveryStatus::Skipped);
    assert!(skipped.last_error.unwrap().contains("HTTP 410"));
    let disabled = store.channel(&alice, channel.id).await.unwrap().unwrap();
    assert_eq!(disabled.state, ChannelState::Disabled);
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("the receiver is gone: HTTP 410")
    );
}
