//! The indexed engine must do exactly what the naive scan does: random rules on a few instruments
//! with levels on a coarse grid (so prices cross them often), driven by random operations, must
//! produce identical transitions after every operation.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use signal_domain::{
    Condition, InstrumentId, Percent, Price, Repeat, RuleId, RuleState, Timestamp,
};
use signal_trigger_engine::{EngineRule, NaiveEngine, RuleEngine, TriggerEngine};

const INSTRUMENTS: [&str; 3] = ["KRX:005930", "NASDAQ:AAPL", "UPBIT:KRW-BTC"];

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap()
}

fn secs(seconds: i64) -> Timestamp {
    t0() + Duration::seconds(seconds)
}

fn instrument() -> impl Strategy<Value = InstrumentId> {
    (0..INSTRUMENTS.len()).prop_map(|index| INSTRUMENTS[index].parse().unwrap())
}

/// 1 to 30 in steps of 0.5, sometimes off the grid by the smallest step a price can take.
fn grid_price() -> impl Strategy<Value = Price> {
    let nudge = prop_oneof![6 => Just(0i64), 1 => Just(1), 1 => Just(-1)];
    (2i64..=60, nudge).prop_map(|(halves, nudge)| {
        Price::new(Decimal::new(halves * 5, 1) + Decimal::new(nudge, 12)).unwrap()
    })
}

fn condition() -> impl Strategy<Value = Condition> {
    // A third of a hundred compiles to levels with far more decimal places than any price.
    let percent = prop::sample::select(vec![
        Decimal::from(5),
        Decimal::from(10),
        Decimal::from(50),
        Decimal::new(125, 1),
        Decimal::ONE_HUNDRED / Decimal::from(3),
    ])
    .prop_map(Percent::new);
    prop_oneof![
        grid_price().prop_map(Condition::Above),
        grid_price().prop_map(Condition::Below),
        percent.clone().prop_map(Condition::ChangeUp),
        percent.prop_map(Condition::ChangeDown),
    ]
}

fn repeat() -> impl Strategy<Value = Repeat> {
    // A negative band cannot come from a validated rule, but must not break the engine either.
    let band = prop::sample::select(vec![-1i64, 0, 0, 5, 10, 20, 30])
        .prop_map(|tenths| Decimal::new(tenths, 1));
    prop_oneof![
        Just(Repeat::Once),
        (0i64..=5, band).prop_map(|(cooldown, rearm_band)| Repeat::Every {
            cooldown: Duration::seconds(cooldown),
            rearm_band,
        }),
    ]
}

fn state() -> impl Strategy<Value = RuleState> {
    prop_oneof![
        4 => Just(RuleState::Armed),
        3 => (any::<bool>(), 0i64..20).prop_map(|(rearmed, until)| RuleState::Cooling {
            rearmed,
            until: secs(until),
        }),
        1 => Just(RuleState::Triggered),
        1 => Just(RuleState::Expired),
    ]
}

fn rule() -> impl Strategy<Value = EngineRule> {
    (
        0i64..16,
        instrument(),
        condition(),
        repeat(),
        prop::option::of((0i64..40).prop_map(secs)),
        state(),
    )
        .prop_map(
            |(id, instrument, condition, repeat, expires_at, state)| EngineRule {
                id: RuleId(id),
                instrument,
                condition,
                repeat,
                expires_at,
                state,
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    /// The clock moves on by `after` seconds (often not at all), then a trade.
    Tick {
        instrument: InstrumentId,
        price: Price,
        after: i64,
    },
    SetReference {
        instrument: InstrumentId,
        prev_close: Price,
    },
    Upsert(EngineRule),
    Remove(RuleId),
    ExpireDue {
        after: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let after = prop_oneof![2 => Just(0i64), 1 => 1i64..=3];
    prop_oneof![
        12 => (instrument(), grid_price(), after).prop_map(|(instrument, price, after)| Op::Tick {
            instrument,
            price,
            after,
        }),
        1 => (instrument(), (10i64..=60).prop_map(|halves| {
            Price::new(Decimal::new(halves * 5, 1)).unwrap()
        }))
            .prop_map(|(instrument, prev_close)| Op::SetReference { instrument, prev_close }),
        3 => rule().prop_map(Op::Upsert),
        1 => (0i64..16).prop_map(|id| Op::Remove(RuleId(id))),
        1 => (0i64..=5).prop_map(|after| Op::ExpireDue { after }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn indexed_engine_matches_the_naive_scan(
        rules in prop::collection::vec(rule(), 1..12),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut indexed = TriggerEngine::default();
        let mut naive = NaiveEngine::default();
        for rule in rules {
            indexed.upsert(rule.clone());
            naive.upsert(rule);
        }
        prop_assert_eq!(indexed.len(), naive.len());

        let mut now = t0();
        for (step, op) in ops.into_iter().enumerate() {
            let (mut got, mut want) = (Vec::new(), Vec::new());
            match op {
                Op::Tick { instrument, price, after } => {
                    now += Duration::seconds(after);
                    indexed.on_tick(&instrument, price, now, &mut got);
                    naive.on_tick(&instrument, price, now, &mut want);
                }
                Op::SetReference { instrument, prev_close } => {
                    indexed.set_reference(&instrument, prev_close);
                    naive.set_reference(&instrument, prev_close);
                }
                Op::Upsert(rule) => {
                    indexed.upsert(rule.clone());
                    naive.upsert(rule);
                }
                Op::Remove(id) => {
                    prop_assert_eq!(indexed.remove(id), naive.remove(id), "step {}", step);
                }
                Op::ExpireDue { after } => {
                    now += Duration::seconds(after);
                    indexed.expire_due(now, &mut got);
                    naive.expire_due(now, &mut want);
                }
            }
            prop_assert_eq!(&got, &want, "step {}", step);
            prop_assert_eq!(indexed.len(), naive.len(), "step {}", step);
        }
    }
}
