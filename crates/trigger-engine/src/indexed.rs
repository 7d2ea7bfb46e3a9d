//! The indexed engine. Each instrument has a book that holds its rules, and in which every rule waits
//! in exactly one place for the tick that can change it:
//!
//! - armed rules, by level, in the set of their direction (fire when the price reaches the level);
//! - cooling rules that still need the price to go back, by their retreat threshold, in the set of
//!   the opposite direction (an Up rule rearms when the price falls below level - band);
//! - rearmed rules still cooling, by the end of their cooldown;
//! - percent rules whose instrument has no reference yet, nowhere: no price can change them.
//!
//! A tick takes from each set only the entries it reaches, so it costs O(log n + transitions). The
//! nearest key of each set and the earliest release or expiry are cached, so a quiet tick (the
//! common case) is a hash lookup and three comparisons.
//!
//! Rules live in their book rather than in one global map: a tick then touches one instrument's
//! memory only, which matters once a million rules no longer fit in the CPU caches.

use crate::lifecycle::{compiled_level, rearm_band, retreat_threshold, step};
use crate::price_key::{key_reached, level_key, opposite, price_key, retreat_key};
use crate::{EngineRule, RuleEngine, Transition, TransitionKind};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHashSet};
use signal_domain::{Direction, InstrumentId, Price, RuleId, RuleState, Timestamp};
use std::collections::BTreeSet;

/// Rules in per-instrument, price-ordered indexes; see the module documentation.
#[derive(Debug, Default)]
pub struct TriggerEngine {
    books: FxHashMap<InstrumentId, Book>,
    /// The instrument whose book holds each rule.
    homes: FxHashMap<RuleId, InstrumentId>,
    /// Every held expiry, for `expire_due` to sweep across instruments.
    expiring: BTreeSet<(Timestamp, RuleId)>,
    /// Rules a tick or a sweep is working through; kept to avoid allocating.
    touched: Vec<RuleId>,
    /// Rules a tick removed from their book, with their expiry, to forget globally as well.
    departed: Vec<(RuleId, Option<Timestamp>)>,
}

/// One instrument's rules and what wakes them.
#[derive(Debug)]
struct Book {
    index: WakeIndex,
    held: FxHashMap<RuleId, Held>,
    /// Percent rules, recompiled when the reference changes.
    relative: FxHashSet<RuleId>,
    reference: Option<Price>,
}

#[derive(Debug)]
struct Held {
    rule: EngineRule,
    slot: Slot,
}

/// Where in its book's index a rule waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// In the level set for `side`, woken when the price key reaches `key` that way.
    Level { side: Direction, key: i128 },
    /// Rearmed but cooling: woken by the first tick at or after the end of the cooldown.
    Release(Timestamp),
    /// A percent rule without a level: only its expiry or a new reference changes it.
    Dormant,
}

fn slot_for(rule: &EngineRule, level: Option<Decimal>) -> Slot {
    let direction = rule.condition.direction();
    match (rule.state, level) {
        (
            RuleState::Cooling {
                rearmed: true,
                until,
            },
            _,
        ) => Slot::Release(until),
        (RuleState::Armed, Some(level)) => Slot::Level {
            side: direction,
            key: level_key(direction, level),
        },
        (RuleState::Cooling { rearmed: false, .. }, Some(level)) => {
            let threshold = retreat_threshold(direction, level, rearm_band(rule.repeat));
            Slot::Level {
                side: opposite(direction),
                key: retreat_key(direction, threshold),
            }
        }
        _ => Slot::Dormant,
    }
}

/// A book's rules ordered by what wakes them: price keys from either side, and instants.
#[derive(Debug)]
struct WakeIndex {
    rising: LevelSet,
    falling: LevelSet,
    releasing: BTreeSet<(Timestamp, RuleId)>,
    expiring: BTreeSet<(Timestamp, RuleId)>,
    /// The earliest release or expiry, cached because every tick reads it.
    next_due: Timestamp,
}

/// Entries woken when the price reaches their key in direction `side`.
#[derive(Debug)]
struct LevelSet {
    side: Direction,
    /// The key nearest to being reached, cached because every tick reads it.
    nearest: i128,
    entries: BTreeSet<(i128, RuleId)>,
}

impl LevelSet {
    fn new(side: Direction) -> Self {
        Self {
            side,
            nearest: Self::unreachable(side),
            entries: BTreeSet::new(),
        }
    }

    /// Beyond every price key (they are clamped far inside `i128`), so an empty set never wakes.
    fn unreachable(side: Direction) -> i128 {
        match side {
            Direction::Up => i128::MAX,
            Direction::Down => i128::MIN,
        }
    }

    fn wakes(&self, price_key: i128) -> bool {
        key_reached(self.side, price_key, self.nearest)
    }

    fn insert(&mut self, key: i128, id: RuleId) {
        self.entries.insert((key, id));
        if key_reached(self.side, self.nearest, key) {
            self.nearest = key;
        }
    }

    fn remove(&mut self, key: i128, id: RuleId) {
        if self.entries.remove(&(key, id)) && key == self.nearest {
            self.refresh_nearest();
        }
    }

    /// Moves the ids of every entry the price reaches into `woken`, nearest first.
    fn take_reached(&mut self, price_key: i128, woken: &mut Vec<RuleId>) {
        while self.wakes(price_key) {
            let nearest = match self.side {
                Direction::Up => self.entries.pop_first(),
                Direction::Down => self.entries.pop_last(),
            };
            let Some((_, id)) = nearest else { break };
            woken.push(id);
            self.refresh_nearest();
        }
    }

    fn refresh_nearest(&mut self) {
        let nearest = match self.side {
            Direction::Up => self.entries.first(),
            Direction::Down => self.entries.last(),
        };
        self.nearest = nearest.map_or(Self::unreachable(self.side), |&(key, _)| key);
    }
}

impl WakeIndex {
    fn new() -> Self {
        Self {
            rising: LevelSet::new(Direction::Up),
            falling: LevelSet::new(Direction::Down),
            releasing: BTreeSet::new(),
            expiring: BTreeSet::new(),
            next_due: DateTime::<Utc>::MAX_UTC,
        }
    }

    /// Whether a tick at this price and time can change any rule of the book.
    #[inline]
    fn wakes(&self, price_key: i128, at: Timestamp) -> bool {
        self.rising.wakes(price_key) || self.falling.wakes(price_key) || at >= self.next_due
    }

    fn level_set(&mut self, side: Direction) -> &mut LevelSet {
        match side {
            Direction::Up => &mut self.rising,
            Direction::Down => &mut self.falling,
        }
    }

    fn place(&mut self, id: RuleId, slot: Slot) {
        match slot {
            Slot::Level { side, key } => self.level_set(side).insert(key, id),
            Slot::Release(until) => {
                self.releasing.insert((until, id));
                self.refresh_due();
            }
            Slot::Dormant => {}
        }
    }

    fn unplace(&mut self, id: RuleId, slot: Slot) {
        match slot {
            Slot::Level { side, key } => self.level_set(side).remove(key, id),
            Slot::Release(until) => {
                self.releasing.remove(&(until, id));
                self.refresh_due();
            }
            Slot::Dormant => {}
        }
    }

    fn expire_at(&mut self, expiry: Timestamp, id: RuleId) {
        self.expiring.insert((expiry, id));
        self.refresh_due();
    }

    fn cancel_expiry(&mut self, expiry: Timestamp, id: RuleId) {
        self.expiring.remove(&(expiry, id));
        self.refresh_due();
    }

    fn take_expired(&mut self, at: Timestamp, expired: &mut Vec<RuleId>) {
        take_due(&mut self.expiring, at, expired);
        self.refresh_due();
    }

    /// Takes every rule the tick may change out of its slot; the caller places them again.
    fn take_woken(&mut self, price_key: i128, at: Timestamp, woken: &mut Vec<RuleId>) {
        self.rising.take_reached(price_key, woken);
        self.falling.take_reached(price_key, woken);
        take_due(&mut self.releasing, at, woken);
        self.refresh_due();
    }

    fn refresh_due(&mut self) {
        let first = |index: &BTreeSet<(Timestamp, RuleId)>| {
            index
                .first()
                .map_or(DateTime::<Utc>::MAX_UTC, |&(due, _)| due)
        };
        self.next_due = first(&self.releasing).min(first(&self.expiring));
    }
}

/// Moves the ids of every entry due at or before `at` into `due`.
fn take_due(index: &mut BTreeSet<(Timestamp, RuleId)>, at: Timestamp, due: &mut Vec<RuleId>) {
    while index.first().is_some_and(|&(when, _)| when <= at) {
        if let Some((_, id)) = index.pop_first() {
            due.push(id);
        }
    }
}

impl Book {
    fn new() -> Self {
        Self {
            index: WakeIndex::new(),
            held: FxHashMap::default(),
            relative: FxHashSet::default(),
            reference: None,
        }
    }

    fn hold(&mut self, rule: EngineRule) {
        let slot = slot_for(&rule, compiled_level(rule.condition, self.reference));
        self.index.place(rule.id, slot);
        if let Some(expiry) = rule.expires_at {
            self.index.expire_at(expiry, rule.id);
        }
        if rule.condition.is_relative() {
            self.relative.insert(rule.id);
        }
        self.held.insert(rule.id, Held { rule, slot });
    }

    fn release(&mut self, id: RuleId) -> Option<EngineRule> {
        let Held { rule, slot } = self.held.remove(&id)?;
        self.index.unplace(id, slot);
        if let Some(expiry) = rule.expires_at {
            self.index.cancel_expiry(expiry, id);
        }
        self.relative.remove(&id);
        Some(rule)
    }

    fn set_reference(&mut self, prev_close: Price) {
        self.reference = Some(prev_close);
        for &id in &self.relative {
            let Some(held) = self.held.get_mut(&id) else {
                continue;
            };
            self.index.unplace(id, held.slot);
            held.slot = slot_for(
                &held.rule,
                compiled_level(held.rule.condition, self.reference),
            );
            self.index.place(id, held.slot);
        }
    }

    /// The part of a tick that changes something: expiries first, since an expired rule does
    /// nothing else, then every rule the price or the clock woke. Rules that leave the book are
    /// added to `departed`.
    #[inline(never)]
    fn wake(
        &mut self,
        price: Price,
        at: Timestamp,
        touched: &mut Vec<RuleId>,
        departed: &mut Vec<(RuleId, Option<Timestamp>)>,
        out: &mut Vec<Transition>,
    ) {
        let start = out.len();
        touched.clear();
        self.index.take_expired(at, touched);
        for &id in touched.iter() {
            if let Some(rule) = self.release(id) {
                departed.push((id, rule.expires_at));
                out.push(Transition {
                    rule: id,
                    kind: TransitionKind::Expired,
                });
            }
        }

        touched.clear();
        self.index.take_woken(price_key(price), at, touched);
        // The woken rules are scattered in memory that earlier ticks on other instruments pushed
        // out of the caches. Reading them all first lets those misses overlap instead of each one
        // waiting behind the index updates of the rule before (a quarter of the firing tick's time).
        for id in touched.iter() {
            if let Some(held) = self.held.get(id) {
                std::hint::black_box(held.rule.state);
            }
        }
        for &id in touched.iter() {
            let Some(held) = self.held.get_mut(&id) else {
                continue;
            };
            let level = compiled_level(held.rule.condition, self.reference);
            if let Some(kind) = step(&held.rule, level, price, at) {
                held.rule.state = kind.next_state();
                out.push(Transition { rule: id, kind });
            }
            if held.rule.state.is_active() {
                held.slot = slot_for(&held.rule, level);
                self.index.place(id, held.slot);
            } else if let Some(rule) = self.release(id) {
                departed.push((id, rule.expires_at));
            }
        }
        out[start..].sort_unstable_by_key(|transition| transition.rule);
    }
}

impl TriggerEngine {
    fn forget_departed(&mut self) {
        for (id, expiry) in self.departed.drain(..) {
            self.homes.remove(&id);
            if let Some(expiry) = expiry {
                self.expiring.remove(&(expiry, id));
            }
        }
    }
}

impl RuleEngine for TriggerEngine {
    fn upsert(&mut self, rule: EngineRule) {
        self.remove(rule.id);
        if !rule.state.is_active() {
            return;
        }
        if let Some(expiry) = rule.expires_at {
            self.expiring.insert((expiry, rule.id));
        }
        self.homes.insert(rule.id, rule.instrument.clone());
        self.books
            .entry(rule.instrument.clone())
            .or_insert_with(Book::new)
            .hold(rule);
    }

    fn remove(&mut self, id: RuleId) -> bool {
        let Some(home) = self.homes.remove(&id) else {
            return false;
        };
        let released = self.books.get_mut(&home).and_then(|book| book.release(id));
        if let Some(expiry) = released.and_then(|rule| rule.expires_at) {
            self.expiring.remove(&(expiry, id));
        }
        true
    }

    fn set_reference(&mut self, instrument: &InstrumentId, prev_close: Price) {
        match self.books.get_mut(instrument) {
            Some(book) => book.set_reference(prev_close),
            None => {
                let mut book = Book::new();
                book.reference = Some(prev_close);
                self.books.insert(instrument.clone(), book);
            }
        }
    }

    #[inline]
    fn on_tick(
        &mut self,
        instrument: &InstrumentId,
        price: Price,
        at: Timestamp,
        out: &mut Vec<Transition>,
    ) {
        let Some(book) = self.books.get_mut(instrument) else {
            return;
        };
        if book.index.wakes(price_key(price), at) {
            book.wake(price, at, &mut self.touched, &mut self.departed, out);
            self.forget_departed();
        }
    }

    fn expire_due(&mut self, now: Timestamp, out: &mut Vec<Transition>) {
        let mut expired = std::mem::take(&mut self.touched);
        expired.clear();
        take_due(&mut self.expiring, now, &mut expired);
        expired.sort_unstable();
        for &id in &expired {
            if self.remove(id) {
                out.push(Transition {
                    rule: id,
                    kind: TransitionKind::Expired,
                });
            }
        }
        self.touched = expired;
    }

    fn len(&self) -> usize {
        self.homes.len()
    }
}
