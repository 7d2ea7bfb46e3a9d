//! Ticks per second of the indexed engine against the naive scan, on 1,000,000 active rules over
//! 2,000 instruments, for quiet ticks and for ticks that fire: price levels alone, and a mixed
//! workload where 30 % of the rules watch windows, volumes and indicators. The figures go to
//! docs/benchmarks.md. Each workload is built only when the filter selects one of its benchmarks.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use chrono::TimeZone;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, Bencher, Criterion, SamplingMode, Throughput};
use rust_decimal::Decimal;
use signal_domain::{
    Condition, Direction, InstrumentId, Price, Repeat, RuleId, RuleState, Timestamp,
};
use signal_trigger_engine::{
    EngineRule, InstrumentKey, NaiveEngine, RuleEngine, Trade, Transition, TransitionKind,
    TriggerEngine,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

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

/// Ticks cycled through one per iteration, all at one instant; where the cycle stands is kept
/// between criterion's calls, so each instrument keeps swinging from side to side. The trades are
/// made before measuring, and moving on to the next costs a comparison: a division to wrap
/// around would take about as long as the quiet tick being measured.
struct Cycle {
    trades: Vec<(InstrumentKey, Trade)>,
    next: usize,
    out: Vec<Transition>,
}

impl Cycle {
    fn new(engine: &mut impl RuleEngine, ticks: &[Tick]) -> Self {
        Self {
            trades: trades(engine, ticks),
            next: 0,
            out: Vec::new(),
        }
    }

    fn bench(&mut self, bencher: &mut Bencher<'_, WallTime>, engine: &mut impl RuleEngine) {
        bencher.iter(|| {
            // Read through an opaque reference, so that nothing of the trade is worked out ahead
            // of the engine.
            let &(key, trade) = black_box(&self.trades[self.next]);
            self.next += 1;
            if self.next == self.trades.len() {
                self.next = 0;
            }
            self.out.clear();
            engine.on_trade(key, trade, &mut self.out);
            black_box(self.out.len())
        })
    }
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

/// An engine built on first use, so that a filter that skips a workload skips building it.
fn lazily<E: RuleEngine>(engine: &mut Option<E>, build: impl FnOnce() -> E) -> &mut E {
    engine.get_or_insert_with(build)
}

fn price_levels(c: &mut Criterion) {
    let rules = rules();
    let quiet = quiet_ticks();
    let swing = swing_ticks();

    let mut indexed: Option<TriggerEngine> = None;
    let (mut quiet_cycle, mut swing_cycle) = (None, None);
    let mut group = c.benchmark_group("indexed");
    group.throughput(Throughput::Elements(1));
    group.bench_function("no_fire", |bencher| {
        let engine = lazily(&mut indexed, || loaded(&rules));
        let cycle = quiet_cycle.get_or_insert_with(|| Cycle::new(engine, &quiet));
        cycle.bench(bencher, engine)
    });
    group.bench_function("fire", |bencher| {
        let engine = lazily(&mut indexed, || loaded(&rules));
        let cycle = swing_cycle.get_or_insert_with(|| Cycle::new(engine, &swing));
        cycle.bench(bencher, engine)
    });
    group.finish();
    if let Some(engine) = &mut indexed {
        let (fired, rearmed) = swing_rates(engine, &swing);
        eprintln!("price levels, swing ticks: {fired} fired and {rearmed} rearmed per tick");
    }
    drop(indexed);

    // About a million rules looked at per tick: a few samples are enough to see the order.
    let mut naive: Option<NaiveEngine> = None;
    let (mut quiet_cycle, mut swing_cycle) = (None, None);
    let mut group = c.benchmark_group("naive");
    group
        .throughput(Throughput::Elements(1))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("no_fire", |bencher| {
        let engine = lazily(&mut naive, || loaded(&rules));
        let cycle = quiet_cycle.get_or_insert_with(|| Cycle::new(engine, &quiet));
        cycle.bench(bencher, engine)
    });
    group.bench_function("fire", |bencher| {
        let engine = lazily(&mut naive, || loaded(&rules));
        let cycle = swing_cycle.get_or_insert_with(|| Cycle::new(engine, &swing));
        cycle.bench(bencher, engine)
    });
    group.finish();
}

/// The mixed workload: per instrument 350 level-like rules (levels, crossings, channels, percent
/// changes) and 150 rules on 50 distinct windows, volumes and indicators (three rules each).
mod mixed {
    use super::*;
    use chrono::TimeDelta;
    use signal_domain::{
        Average, AverageKind, Bar, ChannelEdge, Crossing, Interval, MoveSize, Percent,
    };

    /// Simulated time between two trades (of any instrument): each instrument trades about
    /// every 100 ms.
    pub(super) const STEP_MICROS: i64 = 50;
    /// Finished bars offered to the indicators before the run.
    const HISTORY_BARS: i64 = 120;

    fn percent(value: i64) -> Percent {
        Percent::new(Decimal::from(value))
    }

    fn level_like(index: i64) -> Vec<(Condition, Repeat)> {
        let base = base_price(index);
        let once = Repeat::Once;
        let swing = Repeat::Every {
            cooldown: chrono::Duration::zero(),
            rearm_band: Decimal::ZERO,
        };
        let mut rules = Vec::new();
        // 100 levels as in the pure workload, the 5 nearest on each side swinging.
        for rank in 0..50 {
            let offset = GAP + SPACING * rank;
            let repeat = if rank < SWING_RULES { swing } else { once };
            rules.push((Condition::Above(price(base + offset)), repeat));
            rules.push((Condition::Below(price(base - offset)), repeat));
        }
        // 100 crossings beyond the swing.
        for rank in 0..34 {
            let level = |sign: i64| price(base + sign * (200 + SPACING * rank));
            rules.push((
                Condition::Cross {
                    crossing: Crossing::Up,
                    level: level(1),
                },
                once,
            ));
            rules.push((
                Condition::Cross {
                    crossing: Crossing::Down,
                    level: level(-1),
                },
                once,
            ));
            if rank < 32 {
                rules.push((
                    Condition::Cross {
                        crossing: Crossing::Either,
                        level: price(base + 600 + SPACING * rank),
                    },
                    once,
                ));
            }
        }
        // 75 channels: bands above to enter, wide bands around the price to leave.
        for rank in 0..75 {
            let condition = if rank % 2 == 0 {
                Condition::Channel {
                    edge: ChannelEdge::Enter,
                    low: price(base + 300 + SPACING * rank),
                    high: price(base + 350 + SPACING * rank),
                }
            } else {
                Condition::Channel {
                    edge: ChannelEdge::Exit,
                    low: price(base - 500 - rank),
                    high: price(base + 500 + rank),
                }
            };
            rules.push((condition, once));
        }
        // 75 changes of 5 % and more against the previous close (the base price).
        for rank in 0..75 {
            let condition = if rank % 2 == 0 {
                Condition::ChangeUp(percent(5 + rank / 2))
            } else {
                Condition::ChangeDown(percent(5 + rank / 2))
            };
            rules.push((condition, once));
        }
        rules
    }

    /// 50 sources, three rules on each: 20 windows, 10 volume spikes, the day's volume, 8 RSIs,
    /// 6 price-over-average crossings and 5 pairs of averages. None is near firing.
    fn grouped() -> Vec<(Condition, Repeat)> {
        let once = Repeat::Once;
        let mut rules = Vec::new();
        let windows = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 14400];
        for direction in [Direction::Up, Direction::Down] {
            for seconds in windows {
                for size in [5, 7, 9] {
                    rules.push((
                        Condition::Move {
                            direction,
                            size: MoveSize::Percent(percent(size)),
                            window: chrono::Duration::seconds(seconds),
                        },
                        once,
                    ));
                }
            }
        }
        for interval in [Interval::M1, Interval::M5] {
            for bars in [5, 10, 20, 30, 50] {
                for factor in [50, 100, 200] {
                    rules.push((
                        Condition::VolumeSpike {
                            interval,
                            bars,
                            factor: Decimal::from(factor),
                        },
                        once,
                    ));
                }
            }
        }
        for volume in [1i64, 2, 3] {
            rules.push((
                Condition::DayVolume {
                    volume: Decimal::from(volume * 1_000_000_000),
                },
                once,
            ));
        }
        for interval in [Interval::M1, Interval::M5, Interval::M15, Interval::H1] {
            for bars in [7, 14] {
                for (direction, level) in [
                    (Direction::Up, 95),
                    (Direction::Up, 97),
                    (Direction::Down, 5),
                ] {
                    rules.push((
                        Condition::Rsi {
                            direction,
                            bars,
                            level: Decimal::from(level),
                            interval,
                        },
                        once,
                    ));
                }
            }
        }
        for kind in [AverageKind::Sma, AverageKind::Ema] {
            for bars in [20, 50, 100] {
                for _ in 0..3 {
                    rules.push((
                        Condition::PriceCrossesAverage {
                            direction: Direction::Down,
                            average: Average { kind, bars },
                            interval: Interval::M5,
                        },
                        once,
                    ));
                }
            }
        }
        let pairs = [
            (AverageKind::Sma, 5, 20),
            (AverageKind::Sma, 10, 50),
            (AverageKind::Sma, 20, 100),
            (AverageKind::Ema, 12, 26),
            (AverageKind::Ema, 9, 21),
        ];
        for (kind, fast, slow) in pairs {
            for _ in 0..3 {
                rules.push((
                    Condition::AveragesCross {
                        direction: Direction::Down,
                        fast: Average { kind, bars: fast },
                        slow: Average { kind, bars: slow },
                        interval: Interval::M1,
                    },
                    once,
                ));
            }
        }
        rules
    }

    pub(super) fn rules() -> Vec<EngineRule> {
        let grouped = grouped();
        assert_eq!(grouped.len(), 150);
        let mut rules = Vec::new();
        for index in 0..INSTRUMENTS {
            let level_like = level_like(index);
            assert_eq!(level_like.len(), 350);
            for (condition, repeat) in level_like.into_iter().chain(grouped.iter().copied()) {
                rules.push(EngineRule {
                    id: RuleId(rules.len() as i64),
                    instrument: instrument(index),
                    condition,
                    repeat,
                    expires_at: None,
                    state: RuleState::Armed,
                    and: None,
                    snoozed_until: None,
                });
            }
        }
        rules
    }

    /// Bars of `interval` before the run, rising by 5 a bar from 1,600 below the base price to
    /// 1,000 below it, swinging 20 either way: the averages stand far under the price, the fast
    /// above the slow, and the RSI moderate. Each bar trades 1,000.
    fn history(index: i64, interval: Interval) -> Vec<Bar> {
        let base = base_price(index);
        (0..HISTORY_BARS)
            .map(|bar| {
                let swing = if bar % 2 == 0 { 20 } else { -20 };
                let close = price(base - 1_600 + 5 * bar + swing);
                Bar {
                    start: start() - interval.length() * (HISTORY_BARS - bar) as i32,
                    open: close,
                    high: close,
                    low: close,
                    close,
                    volume: Decimal::from(1_000),
                }
            })
            .collect()
    }

    pub(super) fn start() -> Timestamp {
        at()
    }

    /// The rules, with every instrument's previous close at its base price and its indicators
    /// warmed up.
    pub(super) fn loaded(rules: &[EngineRule]) -> TriggerEngine {
        let mut engine: TriggerEngine = super::loaded(rules);
        for index in 0..INSTRUMENTS {
            let key = engine.key(&instrument(index));
            engine.set_reference(key, price(base_price(index)));
            for interval in [Interval::M1, Interval::M5, Interval::M15, Interval::H1] {
                engine.warm_up(key, interval, &history(index, interval));
            }
        }
        engine
    }

    /// The `ticks` cycled through as trades of 0.01, one every `STEP_MICROS` of a clock that
    /// the workload's benchmarks share, so that time only moves forward.
    pub(super) struct Feed {
        trades: Vec<(InstrumentKey, Price)>,
        next: usize,
        buffer: Vec<(InstrumentKey, Trade)>,
    }

    impl Feed {
        pub(super) fn new(engine: &mut TriggerEngine, ticks: &[Tick]) -> Self {
            let trades = ticks
                .iter()
                .map(|tick| (engine.key(&instrument(tick.instrument)), tick.price))
                .collect();
            Self {
                trades,
                next: 0,
                buffer: Vec::new(),
            }
        }

        /// The next `count` trades.
        pub(super) fn next_chunk(
            &mut self,
            clock: &mut Timestamp,
            count: usize,
        ) -> &[(InstrumentKey, Trade)] {
            self.buffer.clear();
            for _ in 0..count {
                let (key, price) = self.trades[self.next];
                self.next = (self.next + 1) % self.trades.len();
                *clock += TimeDelta::microseconds(STEP_MICROS);
                self.buffer.push((
                    key,
                    Trade {
                        price,
                        volume: Decimal::new(1, 2),
                        at: *clock,
                    },
                ));
            }
            &self.buffer
        }
    }
}

/// `iters` ticks of `feed`, timing only the engine.
fn run_feed(
    engine: &mut TriggerEngine,
    feed: &mut mixed::Feed,
    clock: &mut Timestamp,
    iters: u64,
) -> Duration {
    const CHUNK: u64 = 4_096;
    let mut out: Vec<Transition> = Vec::new();
    let mut spent = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let count = left.min(CHUNK);
        left -= count;
        let trades = feed.next_chunk(clock, count as usize);
        let started = Instant::now();
        for &(key, trade) in trades {
            out.clear();
            engine.on_trade(key, trade, &mut out);
            black_box(out.len());
        }
        spent += started.elapsed();
    }
    spent
}

/// Fired and other transitions per tick of `ticks`, over a second pass after one to reach the
/// steady state.
fn mixed_rates(engine: &mut TriggerEngine, ticks: &[Tick], clock: &mut Timestamp) -> (f64, f64) {
    let mut feed = mixed::Feed::new(engine, ticks);
    let mut out = Vec::new();
    for _ in 0..2 {
        out.clear();
        for &(key, trade) in feed.next_chunk(clock, ticks.len()) {
            engine.on_trade(key, trade, &mut out);
        }
    }
    let fired = out
        .iter()
        .filter(|t| matches!(t.kind, TransitionKind::Fired { .. }))
        .count();
    let per_tick = |count: usize| count as f64 / ticks.len() as f64;
    (per_tick(fired), per_tick(out.len() - fired))
}

fn mixed_workload(c: &mut Criterion) {
    let rules = mixed::rules();
    let quiet = quiet_ticks();
    let swing = swing_ticks();
    let mut engine: Option<TriggerEngine> = None;
    let mut clock = mixed::start();
    let (mut quiet_feed, mut swing_feed) = (None, None);
    let mut group = c.benchmark_group("mixed");
    group.throughput(Throughput::Elements(1));
    group.bench_function("no_fire", |bencher| {
        let engine = lazily(&mut engine, || mixed::loaded(&rules));
        let feed = quiet_feed.get_or_insert_with(|| mixed::Feed::new(engine, &quiet));
        bencher.iter_custom(|iters| run_feed(engine, feed, &mut clock, iters))
    });
    group.bench_function("fire", |bencher| {
        let engine = lazily(&mut engine, || mixed::loaded(&rules));
        let feed = swing_feed.get_or_insert_with(|| mixed::Feed::new(engine, &swing));
        bencher.iter_custom(|iters| run_feed(engine, feed, &mut clock, iters))
    });
    group.finish();
    if let Some(engine) = &mut engine {
        let (fired, other) = mixed_rates(engine, &swing, &mut clock);
        eprintln!("mixed, swing ticks: {fired} fired and {other} other transitions per tick");
    }
}

criterion_group!(benches, price_levels, mixed_workload);
criterion_main!(benches);
