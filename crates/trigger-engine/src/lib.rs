//! Decides, trade by trade, which alert rules fire.
//!
//! The original system scanned every target of every user on every tick. [`TriggerEngine`] keeps
//! each instrument's rules in price-ordered indexes instead, so a trade costs O(log n + changed
//! rules), and a quiet trade (the common case) is an array lookup and a few comparisons.
//! [`NaiveEngine`] is the scan, kept as the executable specification: both implement
//! [`RuleEngine`] and must produce identical transitions, which the property tests and the
//! benchmarks rely on.
//!
//! The crate is pure computation: callers persist the states it hands back and publish the alerts.

mod compile;
mod indexed;
mod keys;
mod lifecycle;
mod naive;
mod series;

pub use indexed::TriggerEngine;
pub use naive::NaiveEngine;

use rust_decimal::Decimal;
use signal_domain::{
    Bar, Condition, Conjunct, InstrumentId, Interval, Price, Repeat, RuleId, RuleState, Timestamp,
};

/// What the engine needs to know about a rule: the stored rule without the user-facing parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRule {
    pub id: RuleId,
    pub instrument: InstrumentId,
    pub condition: Condition,
    /// A second condition that must be met within a time of the first.
    pub and: Option<Conjunct>,
    pub repeat: Repeat,
    pub expires_at: Option<Timestamp>,
    /// The rule cannot fire before this instant.
    pub snoozed_until: Option<Timestamp>,
    pub state: RuleState,
}

/// An engine's name for an instrument: a dense index handed out by [`RuleEngine::key`], so that a
/// trade finds its instrument's rules without hashing the instrument's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstrumentKey(u32);

impl InstrumentKey {
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// One trade of an instrument, as the engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    pub price: Price,
    /// The traded quantity; zero when the feed does not say.
    pub volume: Decimal,
    pub at: Timestamp,
}

/// A change to one rule's state, for the caller to store (and, when it fired, to announce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub rule: RuleId,
    pub kind: TransitionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    /// The rule fired on a trade at `price` (for a once-per-bar-close rule, a bar closing at it).
    /// `level` is where its (first) condition is met: the absolute price level it compiled to, or
    /// for volume conditions the volume. `measured` is what the condition measures at that trade,
    /// when it measures something other than the price: the RSI, the move, the moving average
    /// (the fast one), the volume or its ratio to the average. `next` is the state to store:
    /// Triggered for Repeat::Once, Cooling { rearmed: false, until: at + cooldown } for
    /// Repeat::Every, Cooling { rearmed: true, until: the end of the bar } for once per bar.
    Fired {
        level: Decimal,
        price: Price,
        measured: Option<Decimal>,
        next: RuleState,
    },
    /// A cooling rule moved on without firing (rearmed by price, or released to Armed); `next` is
    /// the state to store.
    Rearmed { next: RuleState },
    /// The rule's expiry passed; it is gone from the engine.
    Expired,
}

impl TransitionKind {
    /// The state the caller should record for the rule.
    pub fn next_state(self) -> RuleState {
        match self {
            TransitionKind::Fired { next, .. } | TransitionKind::Rearmed { next } => next,
            TransitionKind::Expired => RuleState::Expired,
        }
    }
}

/// Shared by the indexed engine and the naive reference so tests and benchmarks drive both the
/// same way.
///
/// `on_trade` emits at most one transition per rule, in ascending [`RuleId`] order, for the rules
/// of the traded instrument that are evaluated on trades (all but the once-per-bar-close ones):
/// 1. a rule whose expiry is at or before the trade is removed and reported `Expired`;
/// 2. a cooling rule becomes rearmed once its condition has gone strictly back past its threshold
///    by the re-arm band (a pair of conditions: once it is no longer met), and returns to `Armed`
///    once it is rearmed and its cooldown has passed;
/// 3. an armed, not snoozed rule whose condition is met fires (a rule released in step 2 can fire
///    on the same trade);
/// 4. otherwise a rule whose state changed in step 2 is reported `Rearmed`.
///
/// A holding condition (ABOVE, BELOW, the percent changes, the moves, the volumes, RSI) is met
/// whenever its value is past its threshold; a crossing (the crossings, channels, averages) is met
/// when the value moved past it since the previous trade, so it needs a previous trade, seen by
/// the engine or before the rule was added. A pair is met while both conditions were met within
/// its time of each other. Percent rules have no level until their instrument has a reference
/// price; indicators have no value until they have enough bars: until then such conditions are
/// never met.
///
/// Trades of an instrument must come in time order.
pub trait RuleEngine {
    /// The engine's key for `instrument`, the same for the engine's whole life.
    fn key(&mut self, instrument: &InstrumentId) -> InstrumentKey;
    /// Adds the rule, replacing any rule with the same id (it may move instrument), and evaluates
    /// it at once: if its instrument has had a trade, the rule takes that trade's price at `now`
    /// (the present, not before that trade) exactly as a trade would, appending its transition
    /// to `out`. So a holding condition already met (ABOVE under the price, a percent change
    /// already made, an RSI already past its level) fires without waiting for the next trade,
    /// while a crossing, which needs a move since the previous trade, does not. Once-per-bar-close
    /// rules wait for the next close. A rule whose state is Triggered or Expired is simply
    /// removed.
    fn upsert(&mut self, rule: EngineRule, now: Timestamp, out: &mut Vec<Transition>);
    /// Adds the rule like [`RuleEngine::upsert`] without evaluating it: for a caller that does
    /// not evaluate the instrument's trades (it holds a copy of a rule evaluated elsewhere), or
    /// adds rules before any trade.
    fn hold(&mut self, rule: EngineRule);
    /// Whether a rule with this id was held.
    fn remove(&mut self, id: RuleId) -> bool;
    /// Sets the previous close that the instrument's percent rules are measured against.
    fn set_reference(&mut self, instrument: InstrumentKey, prev_close: Price);
    /// Applies a trade; appends the resulting transitions to `out`.
    fn on_trade(&mut self, instrument: InstrumentKey, trade: Trade, out: &mut Vec<Transition>);
    /// Takes a finished bar of the instrument: the once-per-bar-close rules of its interval are
    /// evaluated on its close (their transitions appended to `out`), and the indicators and
    /// volume averages of its interval move on. A bar must come after every trade in it and
    /// before any trade after it.
    fn on_bar_close(
        &mut self,
        instrument: InstrumentKey,
        interval: Interval,
        bar: &Bar,
        out: &mut Vec<Transition>,
    );
    /// Offers stored history (finished bars of `interval`, before the bars the engine received)
    /// to the instrument's indicators and volume averages of that interval that have not been
    /// warmed up since they appeared. Call it after adding a rule that needs bars.
    fn warm_up(&mut self, instrument: InstrumentKey, interval: Interval, bars: &[Bar]);
    /// Expires every held rule, on any instrument, whose expiry is at or before `now`, in ascending
    /// id order. Trades expire the rules of their own instrument; this catches quiet instruments.
    fn expire_due(&mut self, now: Timestamp, out: &mut Vec<Transition>);
    /// Active rules held.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Instrument names and their dense keys, for both engines.
#[derive(Debug, Default)]
struct Instruments {
    keys: rustc_hash::FxHashMap<InstrumentId, InstrumentKey>,
}

impl Instruments {
    /// The key of `instrument`, and whether it is new.
    fn intern(&mut self, instrument: &InstrumentId) -> (InstrumentKey, bool) {
        if let Some(&key) = self.keys.get(instrument) {
            return (key, false);
        }
        // Four billion instruments is far beyond any market's listing.
        let key = InstrumentKey(u32::try_from(self.keys.len()).unwrap_or(u32::MAX));
        self.keys.insert(instrument.clone(), key);
        (key, true)
    }
}
