//! Decides, tick by tick, which alert rules fire.
//!
//! The original system scanned every target of every user on every tick. [`TriggerEngine`] keeps
//! each instrument's rules in price-ordered indexes instead, so a tick costs O(log n + transitions)
//! and a quiet tick is a hash lookup plus three comparisons. [`NaiveEngine`] is the scan, kept as
//! the executable specification: both implement [`RuleEngine`] and must produce identical
//! transitions, which the property tests and the benchmarks rely on.
//!
//! The crate is pure computation: callers persist the states it hands back and publish the alerts.

mod indexed;
mod lifecycle;
mod naive;
mod price_key;

pub use indexed::TriggerEngine;
pub use naive::NaiveEngine;

use rust_decimal::Decimal;
use signal_domain::{Condition, InstrumentId, Price, Repeat, RuleId, RuleState, Timestamp};

/// What the engine needs to know about a rule: the stored rule without the user-facing parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRule {
    pub id: RuleId,
    pub instrument: InstrumentId,
    pub condition: Condition,
    pub repeat: Repeat,
    pub expires_at: Option<Timestamp>,
    pub state: RuleState,
}

/// A change to one rule's state, for the caller to store (and, when it fired, to announce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub rule: RuleId,
    pub kind: TransitionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    /// The rule fired at `level` (the compiled absolute level) on a trade at `price`; `next` is the
    /// state to store: Triggered for Repeat::Once, Cooling { rearmed: false, until: at + cooldown }
    /// for Repeat::Every.
    Fired {
        level: Decimal,
        price: Price,
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
/// `on_tick` emits at most one transition per rule, in ascending [`RuleId`] order, for the rules of
/// the ticked instrument only:
/// 1. a rule whose expiry is at or before the tick is removed and reported `Expired`;
/// 2. a cooling rule becomes rearmed once the price has gone strictly back past its level by the
///    re-arm band, and returns to `Armed` once it is rearmed and its cooldown has passed;
/// 3. an armed rule whose level the price reached fires (a rule released in step 2 can fire on the
///    same tick);
/// 4. otherwise a rule whose state changed in step 2 is reported `Rearmed`.
///
/// Percent rules have no level until their instrument has a reference price: until then they can
/// neither rearm nor fire, but they can expire and be released by time.
pub trait RuleEngine {
    /// Adds the rule, replacing any rule with the same id (it may move instrument). A rule whose
    /// state is Triggered or Expired is simply removed.
    fn upsert(&mut self, rule: EngineRule);
    /// Whether a rule with this id was held.
    fn remove(&mut self, id: RuleId) -> bool;
    /// Sets the previous close that the instrument's percent rules are measured against.
    fn set_reference(&mut self, instrument: &InstrumentId, prev_close: Price);
    /// Applies a trade; appends the resulting transitions to `out`.
    fn on_tick(
        &mut self,
        instrument: &InstrumentId,
        price: Price,
        at: Timestamp,
        out: &mut Vec<Transition>,
    );
    /// Expires every held rule, on any instrument, whose expiry is at or before `now`, in ascending
    /// id order. Ticks expire the rules of their own instrument; this catches quiet instruments.
    fn expire_due(&mut self, now: Timestamp, out: &mut Vec<Transition>);
    /// Active rules held.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
