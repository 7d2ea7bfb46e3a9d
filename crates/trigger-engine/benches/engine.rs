//! Ticks per second of the indexed engine against the naive scan, on 1,000,000 active rules over
//! 2,000 instruments, for quiet ticks and for ticks that fire. The figures go to
//! docs/benchmarks.md.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use chrono::TimeZone;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use rust_decimal::Decimal;
use signal_domain::{
    Condition, Direction, InstrumentId, Price, Repeat, RuleId, RuleState, Timestamp,
};
use signal_trigger_engine::{
    EngineRule, InstrumentKey, NaiveEngine, RuleEngine, Trade, Transition, TransitionKind,
    TriggerEngine,
};
use std::hint::black_box;
use std::time::Duration;

const INSTRUMENTS: i64 = 2_000;
/// Per side of the price: 250 rules that fire at or above, 250 at or below.
const RULES_PER_SIDE: i64 = 250;
/// Distance from an instrument's base price to its nearest level on either side.
const GAP: i64 = 100;
const SPACING: i64 = 10;
/// Per side, the rules nearest the price repeat with no cooldown and no band; the firing ticks
/// swing across exactly these, so every tick fires this many rules and rearms as many.
const SWING_RULES: i64 = 5;
/// Each round ticks every instrument once; an even count keeps each instrument's swing in phase
/// when the tick list wraps around.
const ROUNDS: i64 = 4;

fn price(value: i64) -> Price {
    Price::new(Decimal::from(value)).expect("benchmark prices are positive")
}

fn instrument(index: i64) -> InstrumentId {
    format!("KRX:{index:06}")
        .parse()
        .expect("six digits make a KRX code")
}

fn base_price(index: i64) -> i64 {
    10_000 + 10 * index
}

fn rules() -> Vec<EngineRule> {
    let mut rules = Vec::new();
    for index in 0..INSTRUMENTS {
        let id = instrument(index);
        for rank in 0..RULES_PER_SIDE {
            for direction in [Direction::Up, Direction::Down] {
                let offset = GAP + SPACING * rank;
                let condition = match direction {
                    Direction::Up => Condition::Above(price(base_price(index) + offset)),
                    Direction::Down => Condition::Below(price(base_price(index) - offset)),
                };
                let repeat = if rank < SWING_RULES {
                    Repeat::Every {
                        cooldown: chrono::Duration::zero(),
                        rearm_band: Decimal::ZERO,
                    }
                } else if rank % 2 == 0 {
                    Repeat::Once
                } else {
                    Repeat::Every {
                        cooldown: chrono::Duration::seconds(60),
                        rearm_band: Decimal::TEN,
                    }
                };
                rules.push(EngineRule {
                    id: RuleId(rules.len() as i64),
                    instrument: id.clone(),
                    condition,
                    repeat,
                    expires_at: None,
                    state: RuleState::Armed,
                    and: None,
                    snoozed_until: None,
                });
            }
        }
    }
    rules
}

/// A trade of the instrument with this index, before the engine's key is known.
struct Tick {
    instrument: i64,
    price: Price,
}

/// Every instrument once per round, in an order that jumps around the books.
fn ticks(price_in_round: impl Fn(i64, i64, i64) -> i64) -> Vec<Tick> {
    let mut ticks = Vec::new();
    for round in 0..ROUNDS {
        for step in 0..INSTRUMENTS {
            let index = (step * 7919 + round * 611) % INSTRUMENTS;
            ticks.push(Tick {
                instrument: index,
                price: price(price_in_round(base_price(index), round, step)),
            });
        }
    }
    ticks
}

/// Inside (base - GAP, base + GAP): no rule is reached.
fn quiet_ticks() -> Vec<Tick> {
    ticks(|base, round, step| base - GAP / 2 + (step * 13 + round * 37) % GAP)
}

/// Alternately just past the swing rules below and above the base price.
fn swing_ticks() -> Vec<Tick> {
    let reach = GAP + SPACING * (SWING_RULES - 1);
    ticks(move |base, round, _| {
        if round % 2 == 0 {
            base - reach
        } else {
            base + reach
        }
    })
}

/// The ticks as trades for `engine`, named by its keys.
fn trades(engine: &mut impl RuleEngine, ticks: &[Tick]) -> Vec<(InstrumentKey, Trade)> {
    ticks
        .iter()
        .map(|tick| {
            let trade = Trade {
                price: tick.price,
                volume: Decimal::ZERO,
                at: at(),
            };
            (engine.key(&instrument(tick.instrument)), trade)
        })
        .collect()
}

fn at() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2025, 1, 2, 9, 0, 0)
        .single()
        .expect("a valid instant")
}

fn loaded<E: RuleEngine + Default>(rules: &[EngineRule]) -> E {
    let mut engine = E::default();
    for rule in rules {
        engine.hold(rule.clone());
    }
    engine
}

/// One tick per iteration, cycling through `ticks`.
fn bench_ticks(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    engine: &mut impl RuleEngine,
    ticks: &[Tick],
) {
    let trades = trades(engine, ticks);
    let mut next = 0;
    let mut out: Vec<Transition> = Vec::new();
    group.bench_function(name, |bencher| {
        bencher.iter(|| {
            let (key, trade) = trades[next];
            next = (next + 1) % trades.len();
            out.clear();
            engine.on_trade(key, trade, &mut out);
            black_box(out.len())
        })
    });
}

/// Runs the swing ticks once to reach the steady state, then once more to count what a tick does.
fn swing_rates(engine: &mut TriggerEngine, ticks: &[Tick]) -> (f64, f64) {
    let trades = trades(engine, ticks);
    let mut out = Vec::new();
    for &(key, trade) in &trades {
        engine.on_trade(key, trade, &mut out);
    }
    out.clear();
    for &(key, trade) in &trades {
        engine.on_trade(key, trade, &mut out);
    }
    let fired = out
        .iter()
        .filter(|t| matches!(t.kind, TransitionKind::Fired { .. }))
        .count();
    let per_tick = |count: usize| count as f64 / ticks.len() as f64;
    (per_tick(fired), per_tick(out.len() - fired))
}

fn engines(c: &mut Criterion) {
    let rules = rules();
    let quiet = quiet_ticks();
    let swing = swing_ticks();

    let mut indexed: TriggerEngine = loaded(&rules);
    let mut naive: NaiveEngine = loaded(&rules);
    assert_eq!(indexed.len(), 1_000_000);
    assert_eq!(naive.len(), 1_000_000);

    let mut group = c.benchmark_group("indexed");
    group.throughput(Throughput::Elements(1));
    bench_ticks(&mut group, "no_fire", &mut indexed, &quiet);
    let (fired, rearmed) = swing_rates(&mut indexed, &swing);
    eprintln!("swing ticks: {fired} fired and {rearmed} rearmed per tick");
    bench_ticks(&mut group, "fire", &mut indexed, &swing);
    group.finish();
    drop(indexed);

    // About a million rules looked at per tick: a few samples are enough to see the order.
    let mut group = c.benchmark_group("naive");
    group
        .throughput(Throughput::Elements(1))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    bench_ticks(&mut group, "no_fire", &mut naive, &quiet);
    bench_ticks(&mut group, "fire", &mut naive, &swing);
    group.finish();
}

criterion_group!(benches, engines);
criterion_main!(benches);
