//! The indexed engine. Every instrument has a stream of trades, and a stream of bar closes per
//! interval that has once-per-bar-close rules. In a stream, every rule leg waits in the cut sets of
//! its source for the source's value to cross one of its cuts, and every rule that time alone can
//! change waits in the stream's timers. Sources are shared: the rules watching the same thing (the
//! price, RSI(14) of 1h bars, the move within 15 minutes) share one source and its sets.
//!
//! A trade takes from each set only the entries it crosses, so it costs O(log n + changed rules).
//! Each source knows the price (and volume, and instant) at which its value next crosses a waiting
//! cut; each stream knows the nearest of those; each instrument's trade stream keeps its nearest
//! in a dense array apart from the streams, so a quiet trade (the common case) reads one cache
//! line and compares three values. A stream that follows a window or a volume takes every trade
//! onto its tape or count, and still compares before it looks at any rule.

mod cut_set;
mod source;
mod stream;

use crate::keys::{key_value, price_key};
use crate::lifecycle::RuleCore;
use crate::{
    EngineRule, InstrumentKey, Instruments, RuleEngine, Trade, Transition, TransitionKind,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use signal_domain::{Bar, InstrumentId, Interval, Price, Repeat, RuleId, Timestamp};
use std::collections::BTreeSet;
use stream::{Departed, Stream, Woken};

/// Rules in per-instrument, price-ordered indexes; see the module documentation.
#[derive(Debug, Default)]
pub struct TriggerEngine {
    instruments: Instruments,
    /// The quiet-trade test of each instrument's trade stream, by instrument key.
    bounds: Vec<Bounds>,
    trades: Vec<Stream>,
    closes: FxHashMap<(InstrumentKey, Interval), Stream>,
    /// Where each rule is held.
    homes: FxHashMap<RuleId, Home>,
    /// Every held expiry, for `expire_due` to sweep across instruments.
    expiring: BTreeSet<(Timestamp, RuleId)>,
    /// Rules a trade woke, and rules that left their stream; kept to avoid allocating.
    woken: Woken,
    departed: Departed,
}

/// Which of an instrument's streams evaluates a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evaluated {
    OnTrades,
    OnCloses(Interval),
}

impl Evaluated {
    fn of(repeat: Repeat) -> Self {
        match repeat {
            Repeat::OncePerBarClose(interval) => Evaluated::OnCloses(interval),
            _ => Evaluated::OnTrades,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Home {
    instrument: InstrumentKey,
    evaluated: Evaluated,
    slot: u32,
}

/// The quiet-trade test of one instrument: a trade wakes its stream when its price key is at or
/// above `rise`, at or below `fall`, or when it comes at or after `due`; `last` is the price key of
/// its last trade, which a new rule is evaluated on, or `NO_TRADE`. One cache line.
///
/// The key, not the price: every trade writes it, a key needs no option tag to fit the line, and
/// the rare evaluation of a new rule makes the price again from it, exactly (a price is kept
/// normalized, and so is the decimal a key stands for).
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Bounds {
    rise: i128,
    fall: i128,
    last: i128,
    due: Timestamp,
}

/// The `last` of an instrument that has not traded: no price key is negative.
const NO_TRADE: i128 = i128::MIN;

impl Bounds {
    fn last_key(&self) -> Option<i128> {
        (self.last != NO_TRADE).then_some(self.last)
    }
}

impl TriggerEngine {
    fn stream_mut(
        &mut self,
        instrument: InstrumentKey,
        evaluated: Evaluated,
    ) -> Option<&mut Stream> {
        match evaluated {
            Evaluated::OnTrades => self.trades.get_mut(instrument.index()),
            Evaluated::OnCloses(interval) => self.closes.get_mut(&(instrument, interval)),
        }
    }

    /// The price key of the last trade the stream saw.
    fn last(&self, instrument: InstrumentKey, evaluated: Evaluated) -> Option<i128> {
        match evaluated {
            Evaluated::OnTrades => self.bounds.get(instrument.index())?.last_key(),
            Evaluated::OnCloses(interval) => self.closes.get(&(instrument, interval))?.last,
        }
    }

    fn refresh_bounds(&mut self, instrument: InstrumentKey) {
        let (Some(stream), Some(bounds)) = (
            self.trades.get(instrument.index()),
            self.bounds.get_mut(instrument.index()),
        ) else {
            return;
        };
        match stream.price_wake() {
            Some(wake) => {
                bounds.rise = wake.rise;
                bounds.fall = wake.fall;
                bounds.due = wake.due;
            }
            // Every trade goes to the stream, which keeps its own tests.
            None => {
                bounds.rise = i128::MIN;
                bounds.fall = i128::MIN;
                bounds.due = DateTime::<Utc>::MAX_UTC;
            }
        }
    }

    fn forget_departed(&mut self) {
        for (id, expiry) in self.departed.drain(..) {
            self.homes.remove(&id);
            if let Some(expiry) = expiry {
                self.expiring.remove(&(expiry, id));
            }
        }
    }

    /// Holds the rule in its stream without evaluating it; where it went, if it is active.
    fn place_rule(&mut self, rule: EngineRule) -> Option<Home> {
        self.remove(rule.id);
        if !rule.state.is_active() {
            return None;
        }
        let instrument = self.key(&rule.instrument);
        let evaluated = Evaluated::of(rule.repeat);
        if let Evaluated::OnCloses(interval) = evaluated {
            let reference = self
                .trades
                .get(instrument.index())
                .and_then(|stream| stream.reference);
            self.closes
                .entry((instrument, interval))
                .or_insert_with(|| {
                    let mut stream = Stream::new(rule.instrument.market());
                    stream.reference = reference;
                    stream
                });
        }
        let last = self.last(instrument, evaluated);
        let stream = self.stream_mut(instrument, evaluated)?;
        let core = RuleCore::new(&rule, stream.reference);
        let slot = stream.hold(core, last);
        if let Some(expiry) = rule.expires_at {
            self.expiring.insert((expiry, rule.id));
        }
        let home = Home {
            instrument,
            evaluated,
            slot,
        };
        self.homes.insert(rule.id, home);
        self.refresh_bounds(instrument);
        Some(home)
    }

    /// The part of a trade that concerns some rule or source.
    #[inline(never)]
    fn wake(
        &mut self,
        instrument: InstrumentKey,
        key: i128,
        trade: Trade,
        out: &mut Vec<Transition>,
    ) {
        let Some(stream) = self.trades.get_mut(instrument.index()) else {
            return;
        };
        // A stream that follows windows or volumes takes every trade, and most only go onto its
        // tape or count: those change neither its rules nor its bounds.
        if stream.trade(key, trade, &mut self.woken, &mut self.departed, out) {
            self.forget_departed();
            self.refresh_bounds(instrument);
        }
    }
}

impl RuleEngine for TriggerEngine {
    fn key(&mut self, instrument: &InstrumentId) -> InstrumentKey {
        let (key, new) = self.instruments.intern(instrument);
        if new {
            self.bounds.push(Bounds {
                rise: i128::MAX,
                fall: i128::MIN,
                last: NO_TRADE,
                due: DateTime::<Utc>::MAX_UTC,
            });
            self.trades.push(Stream::new(instrument.market()));
        }
        key
    }

    fn upsert(&mut self, rule: EngineRule, now: Timestamp, out: &mut Vec<Transition>) {
        let Some(home) = self.place_rule(rule) else {
            return;
        };
        let last = match home.evaluated {
            Evaluated::OnTrades => self
                .bounds
                .get(home.instrument.index())
                .and_then(Bounds::last_key),
            // Evaluated on closes only.
            Evaluated::OnCloses(_) => None,
        };
        let price = last.and_then(|key| Price::new(key_value(key)).ok());
        let (Some(price), Some(stream)) = (price, self.trades.get_mut(home.instrument.index()))
        else {
            return;
        };
        let trade = Trade {
            price,
            volume: Decimal::ZERO,
            at: now,
        };
        stream.evaluate_new(home.slot, price_key(price), trade, &mut self.departed, out);
        self.forget_departed();
        self.refresh_bounds(home.instrument);
    }

    fn hold(&mut self, rule: EngineRule) {
        self.place_rule(rule);
    }

    fn remove(&mut self, id: RuleId) -> bool {
        let Some(home) = self.homes.remove(&id) else {
            return false;
        };
        let expiry = self
            .stream_mut(home.instrument, home.evaluated)
            .and_then(|stream| stream.release(home.slot));
        if let Some(expiry) = expiry {
            self.expiring.remove(&(expiry, id));
        }
        self.refresh_bounds(home.instrument);
        true
    }

    fn set_reference(&mut self, instrument: InstrumentKey, prev_close: Price) {
        let last = self.last(instrument, Evaluated::OnTrades);
        if let Some(stream) = self.trades.get_mut(instrument.index()) {
            stream.set_reference(prev_close, last);
        }
        for ((key, _), stream) in &mut self.closes {
            if *key == instrument {
                let last = stream.last;
                stream.set_reference(prev_close, last);
            }
        }
        self.refresh_bounds(instrument);
    }

    #[inline]
    fn on_trade(&mut self, instrument: InstrumentKey, trade: Trade, out: &mut Vec<Transition>) {
        let Some(bounds) = self.bounds.get_mut(instrument.index()) else {
            return;
        };
        let key = price_key(trade.price);
        let quiet = key < bounds.rise && key > bounds.fall && trade.at < bounds.due;
        bounds.last = key;
        if !quiet {
            self.wake(instrument, key, trade, out);
        }
    }

    fn on_bar_close(
        &mut self,
        instrument: InstrumentKey,
        interval: Interval,
        bar: &Bar,
        out: &mut Vec<Transition>,
    ) {
        if let Some(stream) = self.closes.get_mut(&(instrument, interval)) {
            let (key, trade) = stream.bar_as_trade(interval, bar);
            stream.trade(key, trade, &mut self.woken, &mut self.departed, out);
            stream.close_bar(interval, bar);
        }
        if let Some(stream) = self.trades.get_mut(instrument.index()) {
            stream.close_bar(interval, bar);
        }
        self.forget_departed();
        self.refresh_bounds(instrument);
    }

    fn warm_up(&mut self, instrument: InstrumentKey, interval: Interval, bars: &[Bar]) {
        if let Some(stream) = self.closes.get_mut(&(instrument, interval)) {
            stream.warm_up(interval, bars);
        }
        if let Some(stream) = self.trades.get_mut(instrument.index()) {
            stream.warm_up(interval, bars);
        }
        self.refresh_bounds(instrument);
    }

    fn expire_due(&mut self, now: Timestamp, out: &mut Vec<Transition>) {
        let mut expired = Vec::new();
        while let Some(&(expiry, id)) = self.expiring.first() {
            if expiry > now {
                break;
            }
            self.expiring.pop_first();
            expired.push(id);
        }
        expired.sort_unstable();
        for id in expired {
            if self.remove(id) {
                out.push(Transition {
                    rule: id,
                    kind: TransitionKind::Expired,
                });
            }
        }
    }

    fn len(&self) -> usize {
        self.homes.len()
    }
}
