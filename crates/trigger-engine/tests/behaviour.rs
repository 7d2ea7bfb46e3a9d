//! What a user would notice, checked on both engines: exact levels, one-shot and repeating alerts,
//! cooldowns and re-arm bands, percent rules, expiry, edits and deletions.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use chrono::{Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use signal_domain::{
    Condition, InstrumentId, Percent, Price, Repeat, RuleId, RuleState, Timestamp,
};
use signal_trigger_engine::{
    EngineRule, NaiveEngine, RuleEngine, Trade, Transition, TransitionKind, TriggerEngine,
};

fn on_both_engines(scenario: impl Fn(&mut dyn RuleEngine)) {
    scenario(&mut TriggerEngine::default());
    scenario(&mut NaiveEngine::default());
}

fn samsung() -> InstrumentId {
    "KRX:005930".parse().unwrap()
}

fn apple() -> InstrumentId {
    "NASDAQ:AAPL".parse().unwrap()
}

fn price(text: &str) -> Price {
    text.parse().unwrap()
}

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap()
}

fn secs(seconds: i64) -> Timestamp {
    t0() + Duration::seconds(seconds)
}

fn rule(id: i64, instrument: InstrumentId, condition: Condition, repeat: Repeat) -> EngineRule {
    EngineRule {
        id: RuleId(id),
        instrument,
        condition,
        repeat,
        expires_at: None,
        state: RuleState::Armed,
        and: None,
        snoozed_until: None,
    }
}

fn above(level: &str) -> Condition {
    Condition::Above(price(level))
}

fn every(cooldown_secs: i64, band: Decimal) -> Repeat {
    Repeat::Every {
        cooldown: Duration::seconds(cooldown_secs),
        rearm_band: band,
    }
}

fn tick(
    engine: &mut dyn RuleEngine,
    instrument: &InstrumentId,
    traded: &str,
    at: Timestamp,
) -> Vec<Transition> {
    let mut out = Vec::new();
    let key = engine.key(instrument);
    let trade = Trade {
        price: price(traded),
        volume: Decimal::ZERO,
        at,
    };
    engine.on_trade(key, trade, &mut out);
    out
}

/// Adds the rule at t0.
fn add(engine: &mut dyn RuleEngine, rule: EngineRule) -> Vec<Transition> {
    add_at(engine, rule, secs(0))
}

/// Adds the rule at `now`; returns what it did at once.
fn add_at(engine: &mut dyn RuleEngine, rule: EngineRule, now: Timestamp) -> Vec<Transition> {
    let mut out = Vec::new();
    engine.upsert(rule, now, &mut out);
    out
}

fn fired(id: i64, level: Decimal, traded: &str, next: RuleState) -> Transition {
    Transition {
        rule: RuleId(id),
        kind: TransitionKind::Fired {
            level,
            price: price(traded),
            measured: None,
            next,
        },
    }
}

fn rearmed(id: i64, next: RuleState) -> Transition {
    Transition {
        rule: RuleId(id),
        kind: TransitionKind::Rearmed { next },
    }
}

fn expired(id: i64) -> Transition {
    Transition {
        rule: RuleId(id),
        kind: TransitionKind::Expired,
    }
}

fn cooling(rearmed: bool, until: Timestamp) -> RuleState {
    RuleState::Cooling { rearmed, until }
}

#[test]
fn a_target_of_71900_fires_on_a_trade_at_exactly_71900() {
    on_both_engines(|engine| {
        add(engine, rule(1, samsung(), above("71900"), Repeat::Once));
        assert_eq!(tick(engine, &samsung(), "71899", secs(0)), []);
        assert_eq!(tick(engine, &samsung(), "71899.999999999999", secs(1)), []);
        assert_eq!(
            tick(engine, &samsung(), "71900.00", secs(2)),
            [fired(1, dec!(71900), "71900", RuleState::Triggered)]
        );
    });
}

#[test]
fn a_below_target_fires_at_or_under_its_level() {
    on_both_engines(|engine| {
        add(
            engine,
            rule(
                1,
                samsung(),
                Condition::Below(price("71900.50")),
                Repeat::Once,
            ),
        );
        assert_eq!(tick(engine, &samsung(), "71900.51", secs(0)), []);
        assert_eq!(
            tick(engine, &samsung(), "71900.5", secs(1)),
            [fired(1, dec!(71900.5), "71900.5", RuleState::Triggered)]
        );
    });
}

#[test]
fn a_once_rule_fires_only_once() {
    on_both_engines(|engine| {
        add(engine, rule(1, samsung(), above("71900"), Repeat::Once));
        assert_eq!(tick(engine, &samsung(), "72000", secs(0)).len(), 1);
        assert_eq!(engine.len(), 0);
        assert_eq!(tick(engine, &samsung(), "71000", secs(1)), []);
        assert_eq!(tick(engine, &samsung(), "72000", secs(2)), []);
    });
}

#[test]
fn a_repeating_rule_does_not_storm_while_the_price_hovers_at_its_level() {
    on_both_engines(|engine| {
        add(
            engine,
            rule(1, samsung(), above("71900"), every(60, dec!(100))),
        );
        let fired_at_start = fired(1, dec!(71900), "71900", cooling(false, secs(60)));
        assert_eq!(tick(engine, &samsung(), "71900", secs(0)), [fired_at_start]);
        // Hovering, and long past the cooldown: the price never went back below 71800.
        for (at, traded) in [(10, "71950"), (70, "71900"), (80, "71800"), (90, "71901")] {
            assert_eq!(tick(engine, &samsung(), traded, secs(at)), [], "at {at}s");
        }
        assert_eq!(
            tick(engine, &samsung(), "71799", secs(100)),
            [rearmed(1, RuleState::Armed)]
        );
        assert_eq!(
            tick(engine, &samsung(), "71900", secs(101)),
            [fired(1, dec!(71900), "71900", cooling(false, secs(161)))]
        );
    });
}

#[test]
fn a_repeating_rule_waits_out_its_cooldown_after_the_price_went_back() {
    on_both_engines(|engine| {
        add(
            engine,
            rule(1, samsung(), above("71900"), every(60, dec!(100))),
        );
        assert_eq!(tick(engine, &samsung(), "72000", secs(0)).len(), 1);
        assert_eq!(
            tick(engine, &samsung(), "71500", secs(10)),
            [rearmed(1, cooling(true, secs(60)))]
        );
        assert_eq!(tick(engine, &samsung(), "72000", secs(59)), []);
        assert_eq!(
            tick(engine, &samsung(), "72000", secs(60)),
            [fired(1, dec!(71900), "72000", cooling(false, secs(120)))]
        );
    });
}

#[test]
fn a_rule_released_by_its_cooldown_above_the_level_fires_on_the_next_tick() {
    on_both_engines(|engine| {
        add(
            engine,
            EngineRule {
                state: cooling(true, secs(60)),
                ..rule(1, samsung(), above("71900"), every(60, Decimal::ZERO))
            },
        );
        assert_eq!(tick(engine, &samsung(), "72000", secs(30)), []);
        assert_eq!(
            tick(engine, &samsung(), "72100", secs(61)),
            [fired(1, dec!(71900), "72100", cooling(false, secs(121)))]
        );
    });
}

#[test]
fn without_cooldown_or_band_a_rule_fires_again_only_after_the_price_went_below() {
    on_both_engines(|engine| {
        add(
            engine,
            rule(1, samsung(), above("71900"), every(0, Decimal::ZERO)),
        );
        assert_eq!(tick(engine, &samsung(), "71900", secs(0)).len(), 1);
        assert_eq!(tick(engine, &samsung(), "71900", secs(0)), []);
        assert_eq!(tick(engine, &samsung(), "72000", secs(1)), []);
        assert_eq!(
            tick(engine, &samsung(), "71899", secs(2)),
            [rearmed(1, RuleState::Armed)]
        );
        assert_eq!(
            tick(engine, &samsung(), "71900", secs(2)),
            [fired(1, dec!(71900), "71900", cooling(false, secs(2)))]
        );
    });
}

#[test]
fn percent_rules_fire_against_the_previous_close_and_follow_it() {
    on_both_engines(|engine| {
        let up = Condition::ChangeUp(Percent::new(dec!(5)));
        let down = Condition::ChangeDown(Percent::new(dec!(2.5)));
        add(engine, rule(1, samsung(), up, every(0, Decimal::ZERO)));
        add(engine, rule(2, samsung(), down, Repeat::Once));
        // No previous close yet: no level, so nothing can fire.
        assert_eq!(tick(engine, &samsung(), "1000000", secs(0)), []);
        assert_eq!(tick(engine, &samsung(), "1", secs(1)), []);

        let key = engine.key(&samsung());
        engine.set_reference(key, price("10000"));
        assert_eq!(tick(engine, &samsung(), "10499", secs(2)), []);
        assert_eq!(
            tick(engine, &samsung(), "10500", secs(3)),
            [fired(1, dec!(10500), "10500", cooling(false, secs(3)))]
        );
        assert_eq!(
            tick(engine, &samsung(), "9750", secs(4)),
            [
                rearmed(1, RuleState::Armed),
                fired(2, dec!(9750), "9750", RuleState::Triggered)
            ]
        );

        engine.set_reference(key, price("20000"));
        assert_eq!(tick(engine, &samsung(), "10500", secs(5)), []);
        assert_eq!(
            tick(engine, &samsung(), "21000", secs(6)),
            [fired(1, dec!(21000), "21000", cooling(false, secs(6)))]
        );
    });
}

#[test]
fn an_expired_rule_is_reported_instead_of_firing() {
    on_both_engines(|engine| {
        add(
            engine,
            EngineRule {
                expires_at: Some(secs(10)),
                ..rule(1, samsung(), above("71900"), Repeat::Once)
            },
        );
        assert_eq!(tick(engine, &samsung(), "71000", secs(5)), []);
        assert_eq!(tick(engine, &samsung(), "72000", secs(10)), [expired(1)]);
        assert_eq!(engine.len(), 0);
        assert_eq!(tick(engine, &samsung(), "72000", secs(11)), []);
    });
}

#[test]
fn the_expiry_sweep_covers_instruments_that_do_not_trade() {
    on_both_engines(|engine| {
        for (id, instrument, expiry) in [(3, apple(), 10), (1, samsung(), 20), (2, apple(), 30)] {
            add(
                engine,
                EngineRule {
                    expires_at: Some(secs(expiry)),
                    ..rule(id, instrument, above("100"), Repeat::Once)
                },
            );
        }
        let mut out = Vec::new();
        engine.expire_due(secs(9), &mut out);
        assert_eq!(out, []);
        engine.expire_due(secs(20), &mut out);
        assert_eq!(out, [expired(1), expired(3)]);
        assert_eq!(engine.len(), 1);
    });
}

#[test]
fn transitions_of_one_tick_come_in_rule_id_order() {
    on_both_engines(|engine| {
        add(
            engine,
            EngineRule {
                expires_at: Some(secs(5)),
                ..rule(4, samsung(), above("50"), Repeat::Once)
            },
        );
        add(engine, rule(3, samsung(), above("100"), Repeat::Once));
        add(
            engine,
            EngineRule {
                state: cooling(false, secs(0)),
                ..rule(
                    2,
                    samsung(),
                    Condition::Below(price("300")),
                    every(0, dec!(1)),
                )
            },
        );
        add(engine, rule(1, samsung(), above("90"), Repeat::Once));
        add(engine, rule(0, samsung(), above("1000"), Repeat::Once));
        assert_eq!(
            tick(engine, &samsung(), "301.5", secs(5)),
            [
                fired(1, dec!(90), "301.5", RuleState::Triggered),
                rearmed(2, RuleState::Armed),
                fired(3, dec!(100), "301.5", RuleState::Triggered),
                expired(4),
            ]
        );
    });
}

#[test]
fn an_edited_rule_can_move_to_another_instrument() {
    on_both_engines(|engine| {
        add(engine, rule(1, samsung(), above("100"), Repeat::Once));
        add(engine, rule(1, apple(), above("200"), Repeat::Once));
        assert_eq!(engine.len(), 1);
        assert_eq!(tick(engine, &samsung(), "500", secs(0)), []);
        assert_eq!(
            tick(engine, &apple(), "200", secs(1)),
            [fired(1, dec!(200), "200", RuleState::Triggered)]
        );
    });
}

#[test]
fn a_removed_or_finished_rule_is_gone() {
    on_both_engines(|engine| {
        add(engine, rule(1, samsung(), above("100"), Repeat::Once));
        add(engine, rule(2, samsung(), above("100"), Repeat::Once));
        assert!(engine.remove(RuleId(1)));
        assert!(!engine.remove(RuleId(1)));
        add(
            engine,
            EngineRule {
                state: RuleState::Triggered,
                ..rule(2, samsung(), above("100"), Repeat::Once)
            },
        );
        assert!(engine.is_empty());
        assert_eq!(tick(engine, &samsung(), "500", secs(0)), []);
    });
}

#[test]
fn a_rule_created_past_its_level_fires_at_once_on_the_last_trade() {
    on_both_engines(|engine| {
        assert_eq!(tick(engine, &samsung(), "72000", secs(0)), []);
        let below = Condition::Below(price("72500"));
        assert_eq!(
            add_at(engine, rule(1, samsung(), below, Repeat::Once), secs(5)),
            [fired(1, dec!(72500), "72000", RuleState::Triggered)]
        );
        assert_eq!(engine.len(), 0);
        // A repeating rule's cooldown runs from its creation, not from the trade.
        assert_eq!(
            add_at(
                engine,
                rule(2, samsung(), above("71900"), every(60, Decimal::ZERO)),
                secs(7)
            ),
            [fired(2, dec!(71900), "72000", cooling(false, secs(67)))]
        );
        // Not there yet: nothing until a trade reaches the level.
        assert_eq!(
            add_at(
                engine,
                rule(3, samsung(), above("72001"), Repeat::Once),
                secs(8)
            ),
            []
        );
        assert_eq!(tick(engine, &samsung(), "72000", secs(9)), []);
        assert_eq!(
            tick(engine, &samsung(), "72001", secs(10)),
            [fired(3, dec!(72001), "72001", RuleState::Triggered)]
        );
        // Other instruments' trades do not count.
        assert_eq!(
            add_at(engine, rule(4, apple(), above("1"), Repeat::Once), secs(11)),
            []
        );
    });
}

#[test]
fn a_percent_rule_created_after_the_move_fires_at_once() {
    on_both_engines(|engine| {
        let key = engine.key(&samsung());
        engine.set_reference(key, price("10000"));
        assert_eq!(tick(engine, &samsung(), "10600", secs(0)), []);
        let up = Condition::ChangeUp(Percent::new(dec!(5)));
        assert_eq!(
            add_at(engine, rule(1, samsung(), up, Repeat::Once), secs(1)),
            [fired(1, dec!(10500), "10600", RuleState::Triggered)]
        );
    });
}

#[test]
fn a_rule_created_past_its_level_but_snoozed_or_expired_does_not_fire() {
    on_both_engines(|engine| {
        assert_eq!(tick(engine, &samsung(), "72000", secs(0)), []);
        let snoozed = EngineRule {
            snoozed_until: Some(secs(30)),
            ..rule(1, samsung(), above("71900"), Repeat::Once)
        };
        assert_eq!(add_at(engine, snoozed, secs(5)), []);
        let expired_already = EngineRule {
            expires_at: Some(secs(5)),
            ..rule(2, samsung(), above("71900"), Repeat::Once)
        };
        assert_eq!(add_at(engine, expired_already, secs(5)), [expired(2)]);
        assert_eq!(engine.len(), 1);
        assert_eq!(
            tick(engine, &samsung(), "72000", secs(30)),
            [fired(1, dec!(71900), "72000", RuleState::Triggered)]
        );
    });
}

#[test]
fn a_rule_held_without_evaluation_waits_for_the_next_trade() {
    on_both_engines(|engine| {
        assert_eq!(tick(engine, &samsung(), "72000", secs(0)), []);
        engine.hold(rule(1, samsung(), above("71900"), Repeat::Once));
        assert_eq!(engine.len(), 1);
        assert_eq!(
            tick(engine, &samsung(), "72100", secs(1)),
            [fired(1, dec!(71900), "72100", RuleState::Triggered)]
        );
    });
}
