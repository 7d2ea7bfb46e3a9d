//! The indexed engine must do exactly what the naive scan does: random rules of every kind on a
//! few instruments, with levels on a coarse grid (so prices cross them often) and indicators of a
//! few bars (so they warm up and cross often), driven by random trades, bar closes, warm-ups and
//! rule changes, must produce identical transitions after every operation.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use signal_domain::{
    Average, AverageKind, Bar, ChannelEdge, Condition, Conjunct, Crossing, Direction, InstrumentId,
    Interval, MoveSize, Percent, Price, Repeat, RuleId, RuleState, Timestamp,
};
use signal_trigger_engine::{
    EngineRule, NaiveEngine, RuleEngine, Trade, Transition, TriggerEngine,
};

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

fn volume() -> impl Strategy<Value = Decimal> {
    prop::sample::select(vec![0i64, 5, 10, 10, 25, 40, 100])
        .prop_map(|tenths| Decimal::new(tenths, 1))
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Up), Just(Direction::Down)]
}

/// The two intervals the bar closes come in.
fn interval() -> impl Strategy<Value = Interval> {
    prop_oneof![Just(Interval::M1), Just(Interval::M5)]
}

fn average(max_bars: u16) -> impl Strategy<Value = Average> {
    (
        prop_oneof![Just(AverageKind::Sma), Just(AverageKind::Ema)],
        1..=max_bars,
    )
        .prop_map(|(kind, bars)| Average { kind, bars })
}

fn fraction() -> impl Strategy<Value = Decimal> {
    prop::sample::select(vec![
        Decimal::new(5, 1),
        Decimal::ONE,
        Decimal::new(15, 1),
        Decimal::TWO,
        Decimal::from(5),
        Decimal::from(10),
        Decimal::new(333_333, 4),
    ])
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
    let crossing = prop_oneof![
        Just(Crossing::Up),
        Just(Crossing::Down),
        Just(Crossing::Either)
    ];
    let edge = prop_oneof![Just(ChannelEdge::Enter), Just(ChannelEdge::Exit)];
    let size = prop_oneof![
        fraction().prop_map(|pct| MoveSize::Percent(Percent::new(pct))),
        fraction().prop_map(MoveSize::Amount),
    ];
    prop_oneof![
        3 => grid_price().prop_map(Condition::Above),
        3 => grid_price().prop_map(Condition::Below),
        1 => percent.clone().prop_map(Condition::ChangeUp),
        1 => percent.prop_map(Condition::ChangeDown),
        3 => (crossing, grid_price()).prop_map(|(crossing, level)| Condition::Cross { crossing, level }),
        2 => (edge, grid_price(), grid_price()).prop_map(|(edge, a, b)| Condition::Channel {
            edge,
            low: a.min(b),
            high: a.max(b),
        }),
        2 => (direction(), size, 1i64..=8).prop_map(|(direction, size, window)| Condition::Move {
            direction,
            size,
            window: Duration::seconds(window),
        }),
        1 => (interval(), 1u16..=3, fraction()).prop_map(|(interval, bars, factor)| {
            Condition::VolumeSpike { interval, bars, factor }
        }),
        1 => (1i64..=30).prop_map(|units| Condition::DayVolume { volume: Decimal::from(units) }),
        2 => (direction(), average(4), interval()).prop_map(|(direction, average, interval)| {
            Condition::PriceCrossesAverage {
                direction,
                average: Average { bars: average.bars.max(2), ..average },
                interval,
            }
        }),
        2 => (direction(), 2u16..=4, prop::sample::select(vec![30i64, 50, 70]), interval())
            .prop_map(|(direction, bars, level, interval)| Condition::Rsi {
                direction,
                bars,
                level: Decimal::from(level),
                interval,
            }),
        2 => (direction(), average(3), 1u16..=3, interval()).prop_map(
            |(direction, fast, more, interval)| Condition::AveragesCross {
                direction,
                fast,
                slow: Average { kind: fast.kind, bars: fast.bars + more },
                interval,
            }
        ),
    ]
}

fn repeat() -> impl Strategy<Value = Repeat> {
    // A negative band cannot come from a validated rule, but must not break the engine either.
    let band = prop::sample::select(vec![-1i64, 0, 0, 5, 10, 20, 30])
        .prop_map(|tenths| Decimal::new(tenths, 1));
    prop_oneof![
        3 => Just(Repeat::Once),
        4 => (0i64..=5, band).prop_map(|(cooldown, rearm_band)| Repeat::Every {
            cooldown: Duration::seconds(cooldown),
            rearm_band,
        }),
        1 => interval().prop_map(Repeat::OncePerBar),
        2 => interval().prop_map(Repeat::OncePerBarClose),
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
    let and = prop::option::weighted(
        0.2,
        (condition(), 0i64..=6).prop_map(|(condition, within)| Conjunct {
            condition,
            within: Duration::seconds(within),
        }),
    );
    (
        (0i64..16, instrument(), condition(), and),
        (
            repeat(),
            prop::option::of((0i64..40).prop_map(secs)),
            prop::option::weighted(0.2, (0i64..20).prop_map(secs)),
            state(),
        ),
    )
        .prop_map(
            |((id, instrument, condition, and), (repeat, expires_at, snoozed_until, state))| {
                EngineRule {
                    id: RuleId(id),
                    instrument,
                    condition,
                    and,
                    repeat,
                    expires_at,
                    snoozed_until,
                    state,
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    /// The clock moves on by `after` seconds (often not at all), then a trade.
    Tick {
        instrument: InstrumentId,
        price: Price,
        volume: Decimal,
        after: i64,
    },
    /// The clock moves on, then the bar of `interval` that holds the present closes.
    BarClose {
        instrument: InstrumentId,
        interval: Interval,
        close: Price,
        volume: Decimal,
        after: i64,
    },
    /// Stored bars from before the present are offered.
    WarmUp {
        instrument: InstrumentId,
        interval: Interval,
        closes: Vec<(Price, Decimal)>,
    },
    SetReference {
        instrument: InstrumentId,
        prev_close: Price,
    },
    /// A rule is added and evaluated on its instrument's last trade.
    Upsert(EngineRule),
    /// A rule is added without being evaluated.
    Hold(EngineRule),
    Remove(RuleId),
    ExpireDue {
        after: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let after = || prop_oneof![2 => Just(0i64), 1 => 1i64..=3];
    prop_oneof![
        12 => (instrument(), grid_price(), volume(), after()).prop_map(
            |(instrument, price, volume, after)| Op::Tick { instrument, price, volume, after }
        ),
        4 => (instrument(), interval(), grid_price(), volume(), after()).prop_map(
            |(instrument, interval, close, volume, after)| Op::BarClose {
                instrument,
                interval,
                close,
                volume,
                after,
            }
        ),
        1 => (
            instrument(),
            interval(),
            prop::collection::vec((grid_price(), volume()), 0..8),
        )
            .prop_map(|(instrument, interval, closes)| Op::WarmUp { instrument, interval, closes }),
        1 => (instrument(), (10i64..=60).prop_map(|halves| {
            Price::new(Decimal::new(halves * 5, 1)).unwrap()
        }))
            .prop_map(|(instrument, prev_close)| Op::SetReference { instrument, prev_close }),
        3 => rule().prop_map(Op::Upsert),
        1 => rule().prop_map(Op::Hold),
        1 => (0i64..16).prop_map(|id| Op::Remove(RuleId(id))),
        1 => (0i64..=5).prop_map(|after| Op::ExpireDue { after }),
    ]
}

fn bar(start: Timestamp, close: Price, volume: Decimal) -> Bar {
    Bar {
        start,
        open: close,
        high: close,
        low: close,
        close,
        volume,
    }
}

/// Applies one operation to an engine at `now`, returning what it emitted, and for a removal
/// whether the rule was there.
fn apply(engine: &mut dyn RuleEngine, op: &Op, now: Timestamp) -> (Vec<Transition>, Option<bool>) {
    let mut out = Vec::new();
    let mut removed = None;
    match op {
        Op::Tick {
            instrument,
            price,
            volume,
            ..
        } => {
            let key = engine.key(instrument);
            let trade = Trade {
                price: *price,
                volume: *volume,
                at: now,
            };
            engine.on_trade(key, trade, &mut out);
        }
        Op::BarClose {
            instrument,
            interval,
            close,
            volume,
            ..
        } => {
            let key = engine.key(instrument);
            let start = interval.bar_start(instrument.market(), now);
            engine.on_bar_close(key, *interval, &bar(start, *close, *volume), &mut out);
        }
        Op::WarmUp {
            instrument,
            interval,
            closes,
        } => {
            let key = engine.key(instrument);
            let first = interval.bar_start(instrument.market(), now)
                - interval.length() * (closes.len() as i32 + 1);
            let bars: Vec<Bar> = closes
                .iter()
                .enumerate()
                .map(|(i, &(close, volume))| {
                    bar(first + interval.length() * i as i32, close, volume)
                })
                .collect();
            engine.warm_up(key, *interval, &bars);
        }
        Op::SetReference {
            instrument,
            prev_close,
        } => {
            let key = engine.key(instrument);
            engine.set_reference(key, *prev_close);
        }
        Op::Upsert(rule) => engine.upsert(rule.clone(), now, &mut out),
        Op::Hold(rule) => engine.hold(rule.clone()),
        Op::Remove(id) => removed = Some(engine.remove(*id)),
        Op::ExpireDue { .. } => engine.expire_due(now, &mut out),
    }
    (out, removed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn indexed_engine_matches_the_naive_scan(
        rules in prop::collection::vec(rule(), 1..12),
        ops in prop::collection::vec(op(), 1..100),
    ) {
        let mut indexed = TriggerEngine::default();
        let mut naive = NaiveEngine::default();
        for rule in rules {
            indexed.hold(rule.clone());
            naive.hold(rule);
        }
        prop_assert_eq!(indexed.len(), naive.len());

        let mut now = t0();
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Tick { after, .. } | Op::BarClose { after, .. } | Op::ExpireDue { after } => {
                    now += Duration::seconds(*after);
                }
                _ => {}
            }
            let got = apply(&mut indexed, op, now);
            let want = apply(&mut naive, op, now);
            prop_assert_eq!(&got, &want, "step {}", step);
            prop_assert_eq!(indexed.len(), naive.len(), "step {}", step);
        }
    }
}
