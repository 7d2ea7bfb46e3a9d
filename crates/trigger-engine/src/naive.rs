//! The executable specification: every rule is looked at on every trade, as the original system
//! did, and every source is computed from scratch from the trades and bars it has seen (a window's
//! low by scanning the window, an average by summing its bars). It is short enough to check by
//! reading, so the indexed engine is tested against it and benchmarked beside it.

use crate::compile::SourceKey;
use crate::keys::price_key;
use crate::lifecycle::{is_expired, RuleCore, View};
use crate::series::{div_round, merged_history, volume_key, Linear, Map, Point};
use crate::{
    EngineRule, InstrumentKey, Instruments, RuleEngine, Trade, Transition, TransitionKind,
};
use chrono::{DateTime, Utc};
use signal_domain::{
    Average, AverageKind, Bar, Direction, InstrumentId, Interval, Market, Price, Repeat, RuleId,
    Timestamp,
};
use std::collections::BTreeMap;

/// Rules in id order, scanned whole on every trade.
#[derive(Debug, Default)]
pub struct NaiveEngine {
    instruments: Instruments,
    streams: BTreeMap<Stream, History>,
    rules: BTreeMap<RuleId, (Stream, RuleCore)>,
}

/// Which prices a rule is evaluated on: an instrument's trades, or its closes of an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stream {
    Trades(InstrumentKey),
    Closes(InstrumentKey, Interval),
}

impl Stream {
    fn of(instrument: InstrumentKey, repeat: Repeat) -> Self {
        match repeat {
            Repeat::OncePerBarClose(interval) => Stream::Closes(instrument, interval),
            _ => Stream::Trades(instrument),
        }
    }

    fn instrument(self) -> InstrumentKey {
        match self {
            Stream::Trades(instrument) | Stream::Closes(instrument, _) => instrument,
        }
    }
}

/// Everything a stream has seen.
#[derive(Debug)]
struct History {
    market: Market,
    reference: Option<Price>,
    trades: Vec<Recorded>,
    /// For each interval, how many trades there were when its last bar closed.
    closed_after: [usize; 5],
    sources: Vec<SourceHistory>,
}

#[derive(Debug, Clone, Copy)]
struct Recorded {
    at: Timestamp,
    price: Price,
    key: i128,
    volume: i128,
}

/// What a source of the stream has seen since it appeared.
#[derive(Debug)]
struct SourceHistory {
    key: SourceKey,
    /// How many trades the stream had when the source appeared: it sees the later ones.
    since: usize,
    /// The bars it computes from; while not warmed up, only the latest `cap` it received.
    bars: Vec<Bar>,
    cold: Option<usize>,
}

impl History {
    fn new(market: Market) -> Self {
        Self {
            market,
            reference: None,
            trades: Vec::new(),
            closed_after: [0; 5],
            sources: Vec::new(),
        }
    }

    fn last(&self) -> Option<i128> {
        self.trades.last().map(|trade| trade.key)
    }

    fn ensure_source(&mut self, key: SourceKey) {
        if !self.sources.iter().any(|source| source.key == key) {
            self.sources.push(SourceHistory {
                key,
                since: self.trades.len(),
                bars: Vec::new(),
                cold: key.history(),
            });
        }
    }

    /// What a leg watching `key` sees at a trade at `price` (the last one recorded).
    fn view(&self, key: SourceKey, price: Option<i128>) -> Option<View> {
        let price = price?;
        let source = self.sources.iter().find(|source| source.key == key)?;
        let later = &self.trades[source.since.min(self.trades.len())..];
        let closes: Vec<i128> = source.bars.iter().map(|bar| price_key(bar.close)).collect();
        let mut forming = 0;
        let map = match key {
            SourceKey::Price => Map::Price,
            SourceKey::Move {
                direction,
                percent,
                window,
            } => {
                let now = self.trades.last()?.at;
                let start = now
                    .checked_sub_signed(window)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                let inside = later
                    .iter()
                    .filter(|trade| trade.at >= start)
                    .map(|t| t.key);
                let extreme = match direction {
                    Direction::Up => inside.min(),
                    Direction::Down => inside.max(),
                };
                extreme.map_or(Map::Unready, |extreme| Map::Move {
                    direction,
                    percent,
                    extreme,
                })
            }
            SourceKey::Volume { interval } | SourceKey::VolumeSpike { interval, .. } => {
                let from = source.since.max(self.closed_after[interval.index()]);
                forming = self.trades[from.min(self.trades.len())..]
                    .iter()
                    .map(|trade| trade.volume)
                    .fold(0i128, |sum, volume| sum.saturating_add(volume));
                match key {
                    SourceKey::VolumeSpike { bars, .. } => {
                        let bars = usize::from(bars);
                        if bars > 0 && source.bars.len() >= bars {
                            let recent = &source.bars[source.bars.len() - bars..];
                            Map::VolumeRatio {
                                sum: recent
                                    .iter()
                                    .map(|bar| volume_key(bar.volume))
                                    .fold(0i128, |sum, v| sum.saturating_add(v)),
                                bars: bars as i128,
                            }
                        } else {
                            Map::Unready
                        }
                    }
                    _ => Map::Volume,
                }
            }
            SourceKey::PriceOverAverage { average, .. } => {
                average_of(average, &closes).map_or(Map::Unready, Map::PriceOverAverage)
            }
            SourceKey::Rsi { bars, .. } => rsi_of(bars, &closes),
            SourceKey::AverageGap { fast, slow, .. } => {
                match (average_of(fast, &closes), average_of(slow, &closes)) {
                    (Some(fast), Some(slow)) => Map::AverageGap { fast, slow },
                    _ => Map::Unready,
                }
            }
        };
        map.is_ready().then_some(View {
            map,
            point: Point { price, forming },
        })
    }

    fn views(&self, rule: &RuleCore, price: Option<i128>) -> [Option<View>; 2] {
        let mut legs = rule.legs().map(|leg| self.view(leg.source, price));
        [legs.next().flatten(), legs.next().flatten()]
    }
}

/// A moving average of `closes` with a forming bar, as `(a p + b) / d`.
fn average_of(average: Average, closes: &[i128]) -> Option<Linear> {
    let n = usize::from(average.bars);
    match average.kind {
        AverageKind::Sma => {
            let earlier = n.saturating_sub(1);
            if n == 0 || closes.len() < earlier {
                return None;
            }
            let sum = closes[closes.len() - earlier..]
                .iter()
                .fold(0i128, |sum, &close| sum.saturating_add(close));
            Some(Linear {
                a: 1,
                b: sum,
                d: n as i128,
            })
        }
        AverageKind::Ema => {
            if n == 0 || closes.len() < n {
                return None;
            }
            let n = n as i128;
            let seed = closes[..n as usize]
                .iter()
                .fold(0i128, |sum, &close| sum.saturating_add(close));
            let value = closes[n as usize..]
                .iter()
                .fold(div_round(seed, n), |ema, &close| {
                    div_round(
                        close
                            .saturating_mul(2)
                            .saturating_add((n - 1).saturating_mul(ema)),
                        n + 1,
                    )
                });
            Some(Linear {
                a: 2,
                b: (n - 1).saturating_mul(value),
                d: n + 1,
            })
        }
    }
}

/// Wilder's RSI of `closes`: the first `bars` changes averaged, later ones smoothed in.
fn rsi_of(bars: u16, closes: &[i128]) -> Map {
    let n = usize::from(bars);
    if n == 0 || closes.len() < n + 1 {
        return Map::Unready;
    }
    let changes: Vec<(i128, i128)> = closes
        .windows(2)
        .map(|pair| ((pair[1] - pair[0]).max(0), (pair[0] - pair[1]).max(0)))
        .collect();
    let n = n as i128;
    let (gains, losses) = changes[..n as usize]
        .iter()
        .fold((0i128, 0i128), |(g, l), &(up, down)| {
            (g.saturating_add(up), l.saturating_add(down))
        });
    let (gain, loss) = changes[n as usize..].iter().fold(
        (div_round(gains, n), div_round(losses, n)),
        |(gain, loss), &(up, down)| {
            (
                div_round((n - 1).saturating_mul(gain).saturating_add(up), n),
                div_round((n - 1).saturating_mul(loss).saturating_add(down), n),
            )
        },
    );
    Map::Rsi {
        close: *closes.last().unwrap_or(&0),
        gain,
        loss,
        bars: n,
    }
}

impl NaiveEngine {
    /// Applies a trade to the rules of one stream.
    fn trade(&mut self, stream: Stream, trade: Trade, out: &mut Vec<Transition>) {
        let Some(history) = self.streams.get_mut(&stream) else {
            return;
        };
        let key = price_key(trade.price);
        history.trades.push(Recorded {
            at: trade.at,
            price: trade.price,
            key,
            volume: volume_key(trade.volume),
        });
        let Some(history) = self.streams.get(&stream) else {
            return;
        };
        let held = self.rules.len();
        self.rules.retain(|&id, (home, rule)| {
            if *home != stream {
                return true;
            }
            if is_expired(rule.expires_at, trade.at) {
                out.push(Transition {
                    rule: id,
                    kind: TransitionKind::Expired,
                });
                return false;
            }
            let views = history.views(rule, Some(key));
            if let Some(kind) = rule.step(&views, trade.price, trade.at) {
                out.push(Transition { rule: id, kind });
            }
            rule.state.is_active()
        });
        if self.rules.len() != held {
            self.drop_unused_sources();
        }
    }

    /// Forgets the sources no rule watches any more.
    fn drop_unused_sources(&mut self) {
        for (stream, history) in &mut self.streams {
            let rules = &self.rules;
            history.sources.retain(|source| {
                source.key == SourceKey::Price
                    || rules.values().any(|(home, rule)| {
                        home == stream && rule.legs().any(|leg| leg.source == source.key)
                    })
            });
        }
    }

    fn close_bar(&mut self, stream: Stream, interval: Interval, bar: &Bar) {
        let Some(history) = self.streams.get_mut(&stream) else {
            return;
        };
        history.closed_after[interval.index()] = history.trades.len();
        for source in &mut history.sources {
            if source.key.interval() == Some(interval) {
                source.bars.push(*bar);
                if let Some(cap) = source.cold {
                    if source.bars.len() > cap {
                        source.bars.remove(0);
                    }
                }
            }
        }
    }
}

impl RuleEngine for NaiveEngine {
    fn key(&mut self, instrument: &InstrumentId) -> InstrumentKey {
        let (key, new) = self.instruments.intern(instrument);
        if new {
            self.streams
                .insert(Stream::Trades(key), History::new(instrument.market()));
        }
        key
    }

    fn upsert(&mut self, rule: EngineRule, now: Timestamp, out: &mut Vec<Transition>) {
        let id = rule.id;
        self.hold(rule);
        let Some((stream, rule)) = self.rules.get_mut(&id) else {
            return;
        };
        // Once-per-bar-close rules are evaluated on closes only.
        if !matches!(stream, Stream::Trades(_)) {
            return;
        }
        let Some(history) = self.streams.get(&*stream) else {
            return;
        };
        let Some(last) = history.trades.last() else {
            return;
        };
        if is_expired(rule.expires_at, now) {
            out.push(Transition {
                rule: id,
                kind: TransitionKind::Expired,
            });
            self.remove(id);
            return;
        }
        let views = history.views(rule, Some(last.key));
        if let Some(kind) = rule.step(&views, last.price, now) {
            out.push(Transition { rule: id, kind });
        }
        if !rule.state.is_active() {
            self.remove(id);
        }
    }

    fn hold(&mut self, rule: EngineRule) {
        self.remove(rule.id);
        if !rule.state.is_active() {
            return;
        }
        let instrument = self.key(&rule.instrument);
        let stream = Stream::of(instrument, rule.repeat);
        let reference = self
            .streams
            .get(&Stream::Trades(instrument))
            .and_then(|history| history.reference);
        let history = self.streams.entry(stream).or_insert_with(|| {
            let mut history = History::new(rule.instrument.market());
            history.reference = reference;
            history
        });
        let mut core = RuleCore::new(&rule, history.reference);
        for leg in core.legs() {
            history.ensure_source(leg.source);
        }
        core.settle(&history.views(&core, history.last()));
        self.rules.insert(rule.id, (stream, core));
    }

    fn remove(&mut self, id: RuleId) -> bool {
        let removed = self.rules.remove(&id).is_some();
        self.drop_unused_sources();
        removed
    }

    fn set_reference(&mut self, instrument: InstrumentKey, prev_close: Price) {
        for (stream, history) in &mut self.streams {
            if stream.instrument() == instrument {
                history.reference = Some(prev_close);
            }
        }
        for (stream, rule) in self.rules.values_mut() {
            if stream.instrument() == instrument && rule.is_relative() {
                rule.recompile(Some(prev_close));
            }
        }
    }

    fn on_trade(&mut self, instrument: InstrumentKey, trade: Trade, out: &mut Vec<Transition>) {
        self.trade(Stream::Trades(instrument), trade, out);
    }

    fn on_bar_close(
        &mut self,
        instrument: InstrumentKey,
        interval: Interval,
        bar: &Bar,
        out: &mut Vec<Transition>,
    ) {
        let closes = Stream::Closes(instrument, interval);
        if let Some(history) = self.streams.get(&closes) {
            let trade = Trade {
                price: bar.close,
                volume: bar.volume,
                at: interval.bar_end(history.market, bar.start),
            };
            self.trade(closes, trade, out);
            self.close_bar(closes, interval, bar);
        }
        self.close_bar(Stream::Trades(instrument), interval, bar);
    }

    fn warm_up(&mut self, instrument: InstrumentKey, interval: Interval, bars: &[Bar]) {
        for stream in [
            Stream::Trades(instrument),
            Stream::Closes(instrument, interval),
        ] {
            let Some(history) = self.streams.get_mut(&stream) else {
                continue;
            };
            for source in &mut history.sources {
                if source.key.interval() == Some(interval) && source.cold.is_some() {
                    source.bars = merged_history(bars, &source.bars);
                    source.cold = None;
                }
            }
        }
    }

    fn expire_due(&mut self, now: Timestamp, out: &mut Vec<Transition>) {
        self.rules.retain(|&id, (_, rule)| {
            let expired = is_expired(rule.expires_at, now);
            if expired {
                out.push(Transition {
                    rule: id,
                    kind: TransitionKind::Expired,
                });
            }
            !expired
        });
        self.drop_unused_sources();
    }

    fn len(&self) -> usize {
        self.rules.len()
    }
}
