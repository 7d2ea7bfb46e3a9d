//! The rules evaluated on one stream of prices (an instrument's trades, or the closes of its bars of
//! one interval), the sources they watch, and what a trade or a finished bar does to them.

use super::cut_set::Wait;
use super::source::{waiter, Source, Wake};
use crate::compile::SourceKey;
use crate::keys::price_key;
use crate::lifecycle::{is_expired, Placement, Plan, RuleCore, View};
use crate::series::{volume_key, Mark, Tape};
use crate::{Trade, Transition, TransitionKind};
use chrono::{DateTime, TimeDelta, Utc};
use signal_domain::{Bar, Interval, Market, Price, RuleId, Timestamp};
use std::collections::BTreeSet;

/// The price source is always first.
const PRICE: u16 = 0;

/// The fields every trade reads come first, in declaration order (`repr(C)`) from the start of a
/// cache line: a stream that follows windows or volumes takes every trade, and on a busy instrument
/// set those few lines are what a quiet trade costs, where the compiler's order spread them over
/// most of the struct.
#[derive(Debug)]
#[repr(C, align(64))]
pub(super) struct Stream {
    /// What a trade must reach to concern any rule of the stream.
    wake: Wake,
    /// Volume traded since the stream began, while it had volume sources.
    volume: i128,
    /// The price key of the last trade; the engine keeps it apart for trade streams.
    pub(super) last: Option<i128>,
    tape: Option<Tape>,
    /// The longest window of its window sources, and how many volume sources it has: both are
    /// read on every trade.
    longest: Option<TimeDelta>,
    volume_sources: u32,
    /// Trades seen while the stream had window sources (window sources count from it).
    seq: u64,
    /// Stamps slots woken by the current trade, so each is stepped once.
    epoch: u32,
    market: Market,
    pub(super) reference: Option<Price>,
    sources: Vec<Option<Source>>,
    /// Sources whose cut sets or values changed during the current change.
    dirty: Vec<u16>,
    slots: Slots,
    free: Vec<u32>,
    timers: BTreeSet<(Timestamp, u32)>,
    /// Rules the next trade must step whatever it is.
    soon: Vec<u32>,
}

/// A rule and where it waits. A firing trade reads nearly all of a slot, so it starts a cache
/// line: it then spans as many lines as its size needs, not one more.
#[derive(Debug)]
#[repr(align(64))]
struct Slot {
    rule: RuleCore,
    /// The source of each leg, and where the leg waits in it.
    sources: [u16; 2],
    placed: Placed,
    due: Option<Timestamp>,
    woken_in: u32,
    /// False once the rule is gone and the slot is free.
    live: bool,
}

/// Where a slot's rule waits, as a [`Plan`] says, packed: each leg's cut to rise to and cut to
/// fall from, or `NO_CUT`. An `Option<i128>` takes 32 bytes, half of them padding for its tag,
/// and a firing trade reads every slot it wakes from memory: packed, a slot takes a cache line
/// fewer. No cut is `i128::MAX`: cuts are clamped to a few times `keys::LIMIT`, and "at the next
/// trade" is `i128::MIN`.
#[derive(Debug, Clone, Copy)]
struct Placed {
    /// By leg, the rise cut then the fall cut.
    cuts: [[i128; 2]; 2],
    next_trade: bool,
}

const NO_CUT: i128 = i128::MAX;

impl Placed {
    const NOWHERE: Placed = Placed {
        cuts: [[NO_CUT; 2]; 2],
        next_trade: false,
    };

    fn from(plan: Plan) -> Self {
        let pack = |cut: Option<i128>| {
            debug_assert_ne!(cut, Some(NO_CUT), "a cut at i128::MAX cannot be packed");
            cut.unwrap_or(NO_CUT)
        };
        Placed {
            cuts: plan.legs.map(|leg| [pack(leg.rise), pack(leg.fall)]),
            next_trade: plan.next_trade,
        }
    }

    fn plan(&self) -> Plan {
        let unpack = |cut: i128| (cut != NO_CUT).then_some(cut);
        Plan {
            legs: self.cuts.map(|[rise, fall]| Placement {
                rise: unpack(rise),
                fall: unpack(fall),
            }),
            next_trade: self.next_trade,
        }
    }

    /// Notes that the leg left the set it waited in.
    fn forget(&mut self, leg: u8, wait: Wait) {
        let side = match wait {
            Wait::Rise => 0,
            Wait::Fall => 1,
        };
        if let Some(cuts) = self.cuts.get_mut(usize::from(leg)) {
            cuts[side] = NO_CUT;
        }
    }
}

/// Slots by index, in chunks of a fixed size rather than one vector. A vector doubles as rules are
/// added: its spare capacity is up to half of it, and each doubling copies every slot (hundreds of
/// kilobytes on an instrument with a few hundred rules) to a new block and leaves the old one to
/// the allocator, which need not give it back. A chunk never moves, and a stream leaves at most
/// one chunk partly empty.
#[derive(Debug, Default)]
struct Slots {
    chunks: Vec<Vec<Slot>>,
    len: u32,
}

/// Slots per chunk: 32 slots of a few hundred bytes are some 14 KB, small beside the rules of a
/// busy instrument.
const CHUNK: u32 = 32;

impl Slots {
    fn get(&self, index: u32) -> Option<&Slot> {
        self.chunks
            .get((index / CHUNK) as usize)?
            .get((index % CHUNK) as usize)
    }

    fn get_mut(&mut self, index: u32) -> Option<&mut Slot> {
        self.chunks
            .get_mut((index / CHUNK) as usize)?
            .get_mut((index % CHUNK) as usize)
    }

    /// Adds the slot at the end; returns its index.
    fn push(&mut self, slot: Slot) -> u32 {
        let chunk = match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK as usize => chunk,
            _ => {
                self.chunks.push(Vec::with_capacity(CHUNK as usize));
                self.chunks.last_mut().expect("a chunk was just pushed")
            }
        };
        chunk.push(slot);
        let index = self.len;
        // A stream holds far fewer than four billion rules.
        self.len = self.len.saturating_add(1);
        index
    }

    fn len(&self) -> u32 {
        self.len
    }
}

impl Slot {
    /// The sources of the legs the rule has.
    fn leg_sources(&self) -> &[u16] {
        let legs = 1 + usize::from(self.rule.second.is_some());
        &self.sources[..legs]
    }
}

/// Rules that left the stream, with their expiry, to be forgotten by the engine.
pub(super) type Departed = Vec<(RuleId, Option<Timestamp>)>;

/// The rules a trade woke, by id and slot.
pub(super) type Woken = Vec<(RuleId, u32)>;

impl Stream {
    pub(super) fn new(market: Market) -> Self {
        let mut stream = Self {
            market,
            reference: None,
            last: None,
            seq: 0,
            volume: 0,
            sources: Vec::new(),
            dirty: Vec::new(),
            slots: Slots::default(),
            free: Vec::new(),
            timers: BTreeSet::new(),
            soon: Vec::new(),
            tape: None,
            longest: None,
            volume_sources: 0,
            wake: Wake::NEVER,
            epoch: 0,
        };
        stream
            .sources
            .push(Some(Source::new(SourceKey::Price, 0, 0)));
        stream
    }

    /// What a trade must reach to concern any rule; `None` when every trade does (the stream
    /// follows windows or volumes).
    pub(super) fn price_wake(&self) -> Option<Wake> {
        (!self.busy()).then_some(self.wake)
    }

    fn busy(&self) -> bool {
        self.tape.is_some() || self.volume_sources > 0
    }

    fn source(&self, index: u16) -> Option<&Source> {
        self.sources.get(usize::from(index))?.as_ref()
    }

    fn source_mut(&mut self, index: u16) -> Option<&mut Source> {
        self.sources.get_mut(usize::from(index))?.as_mut()
    }

    /// The source for `key`, made if new.
    fn use_source(&mut self, key: SourceKey) -> u16 {
        let found = self
            .sources
            .iter()
            .position(|source| source.as_ref().is_some_and(|s| s.key == key));
        let index = match found {
            Some(index) => index,
            None => {
                let source = Source::new(key, self.seq, self.volume);
                if let SourceKey::Move { .. } = key {
                    self.tape.get_or_insert_with(Tape::default);
                }
                let index = match self.sources.iter().position(Option::is_none) {
                    Some(free) => {
                        self.sources[free] = Some(source);
                        free
                    }
                    None => {
                        self.sources.push(Some(source));
                        self.sources.len() - 1
                    }
                };
                self.count_sources();
                // Its bounds are computed once it is in place.
                mark_dirty(&mut self.dirty, index as u16);
                index
            }
        };
        // Far fewer than 65,536 distinct sources watch one instrument.
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        if let Some(source) = self.source_mut(index) {
            source.users += 1;
        }
        index
    }

    fn drop_source_use(&mut self, index: u16) {
        let Some(source) = self.source_mut(index) else {
            return;
        };
        source.users = source.users.saturating_sub(1);
        if source.users == 0 && index != PRICE {
            self.sources[usize::from(index)] = None;
            self.count_sources();
            if self.longest.is_none() {
                self.tape = None;
            }
        }
    }

    /// Notes the longest window and the volume sources after sources came or went.
    fn count_sources(&mut self) {
        let sources = self.sources.iter().flatten();
        self.longest = sources
            .clone()
            .filter_map(|source| match source.key {
                SourceKey::Move { window, .. } => Some(window),
                _ => None,
            })
            .max();
        self.volume_sources = sources.filter(|source| source.key.is_volume()).count() as u32;
    }

    /// What each leg of the slot's rule sees at a trade at price key `price` (`None`: no trade
    /// yet).
    fn views(&self, slot: &Slot, price: Option<i128>) -> [Option<View>; 2] {
        self.views_of(slot.leg_sources(), price)
    }

    /// The views of the legs watching `sources` (one or two); none for a leg the rule lacks.
    fn views_of(&self, sources: &[u16], price: Option<i128>) -> [Option<View>; 2] {
        let view = |leg: usize| {
            let price = price?;
            let source = self.source(*sources.get(leg)?)?;
            let map = source.map();
            map.is_ready().then(|| View {
                map,
                point: source.point(price, self.volume),
            })
        };
        [view(0), view(1)]
    }

    /// Holds the rule; `last` is the price key of the instrument's last trade, if any.
    pub(super) fn hold(&mut self, mut rule: RuleCore, last: Option<i128>) -> u32 {
        let first = self.use_source(rule.first.source);
        let second = match &rule.second {
            Some(pair) => self.use_source(pair.leg.source),
            None => PRICE,
        };
        let legs = 1 + usize::from(rule.second.is_some());
        rule.settle(&self.views_of(&[first, second][..legs], last));
        let slot = Slot {
            sources: [first, second],
            placed: Placed::NOWHERE,
            due: None,
            woken_in: self.epoch,
            live: true,
            rule,
        };
        let index = match self.free.pop() {
            Some(index) => {
                if let Some(free) = self.slots.get_mut(index) {
                    *free = slot;
                }
                index
            }
            None => self.slots.push(slot),
        };
        self.place(index, last, None);
        self.settle_wake();
        index
    }

    /// Takes the rule out of every index and frees its slot; returns the rule's expiry.
    pub(super) fn release(&mut self, index: u32) -> Option<Timestamp> {
        self.unplace(index);
        let slot = self.slots.get_mut(index)?;
        slot.live = false;
        let (sources, legs, expiry) =
            (slot.sources, slot.leg_sources().len(), slot.rule.expires_at);
        self.free.push(index);
        for &source in &sources[..legs] {
            self.drop_source_use(source);
        }
        self.settle_wake();
        expiry
    }

    /// Puts the slot's rule where it waits now, given the price key of the last trade if known,
    /// and the time of the trade it just took, if any.
    fn place(&mut self, index: u32, price: Option<i128>, at: Option<Timestamp>) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let views = self.views(slot, price);
        self.place_seeing(index, &views, at);
    }

    /// [`Stream::place`], given what the rule's legs see: a rule just stepped has its views at
    /// hand.
    fn place_seeing(&mut self, index: u32, views: &[Option<View>; 2], at: Option<Timestamp>) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let plan = slot.rule.placements(views, at);
        let due = slot.rule.due(at);
        let (sources, placed, old_due) = (slot.sources, slot.placed.plan(), slot.due);
        if plan.next_trade && !placed.next_trade {
            self.soon.push(index);
        }
        if !plan.next_trade && placed.next_trade {
            self.soon.retain(|&soon| soon != index);
        }
        for (leg, (&source_index, (new, old))) in sources
            .iter()
            .zip(plan.legs.into_iter().zip(placed.legs))
            .enumerate()
        {
            if new == old {
                continue;
            }
            let Some(source) = self.source_mut(source_index) else {
                continue;
            };
            let waiter = waiter(index, leg);
            if new.rise != old.rise {
                if let Some(cut) = old.rise {
                    source.rising.remove(cut, waiter);
                }
                if let Some(cut) = new.rise {
                    source.rising.insert(cut, waiter);
                }
            }
            if new.fall != old.fall {
                if let Some(cut) = old.fall {
                    source.falling.remove(cut, waiter);
                }
                if let Some(cut) = new.fall {
                    source.falling.insert(cut, waiter);
                }
            }
            mark_dirty(&mut self.dirty, source_index);
        }
        if due != old_due {
            if let Some(old) = old_due {
                self.timers.remove(&(old, index));
            }
            if let Some(new) = due {
                self.timers.insert((new, index));
            }
        }
        if let Some(slot) = self.slots.get_mut(index) {
            slot.placed = Placed::from(plan);
            slot.due = due;
        }
    }

    fn unplace(&mut self, index: u32) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let (sources, placed, due) = (slot.sources, slot.placed.plan(), slot.due.take());
        slot.placed = Placed::NOWHERE;
        if let Some(due) = due {
            self.timers.remove(&(due, index));
        }
        if placed.next_trade {
            self.soon.retain(|&soon| soon != index);
        }
        let placed = placed.legs;
        for leg in 0..2 {
            let Some(source) = self.source_mut(sources[leg]) else {
                continue;
            };
            let waiter = waiter(index, leg);
            if let Some(cut) = placed[leg].rise {
                source.rising.remove(cut, waiter);
            }
            if let Some(cut) = placed[leg].fall {
                source.falling.remove(cut, waiter);
            }
            mark_dirty(&mut self.dirty, sources[leg]);
        }
    }

    /// Refreshes the bounds of the sources that changed, then the stream's.
    fn settle_wake(&mut self) {
        while let Some(index) = self.dirty.pop() {
            if let Some(source) = self.source_mut(index) {
                source.refresh_wake();
            }
        }
        let timers = self
            .timers
            .first()
            .map_or(DateTime::<Utc>::MAX_UTC, |&(due, _)| due);
        let soon = if self.soon.is_empty() {
            i128::MAX
        } else {
            i128::MIN
        };
        self.wake = self.sources.iter().flatten().fold(
            Wake {
                due: timers,
                rise: soon,
                ..Wake::NEVER
            },
            |wake, source| wake.merge(source.wake),
        );
    }

    pub(super) fn set_reference(&mut self, prev_close: Price, last: Option<i128>) {
        self.reference = Some(prev_close);
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            if slot.live && slot.rule.is_relative() {
                slot.rule.recompile(self.reference);
                self.place(index, last, None);
            }
        }
        self.settle_wake();
    }

    /// Applies a trade at price key `key`; appends transitions to `out` in rule id order, and the
    /// rules that left to `departed`. Returns whether the trade concerned any source or rule, and
    /// so may have moved the stream's bounds; a trade that was only recorded did not.
    pub(super) fn trade(
        &mut self,
        key: i128,
        trade: Trade,
        woken: &mut Woken,
        departed: &mut Departed,
        out: &mut Vec<Transition>,
    ) -> bool {
        self.last = Some(key);
        if let Some(tape) = &mut self.tape {
            self.seq += 1;
            tape.push(Mark {
                seq: self.seq,
                at: trade.at,
                key,
            });
            if let Some(longest) = self.longest {
                tape.trim(trade.at, longest);
            }
        }
        if self.volume_sources > 0 {
            self.volume = self.volume.saturating_add(volume_key(trade.volume));
        }
        if !self.wake.wakes(key, self.volume, trade.at) {
            return false;
        }
        woken.clear();
        self.take_woken(key, trade.at, woken);
        // A rule gives at most one transition, so stepping the rules in id order emits the
        // transitions in id order: sorting these small pairs is cheaper than sorting transitions.
        woken.sort_unstable_by_key(|&(id, _)| id);
        for &(_, index) in woken.iter() {
            self.step(index, key, trade, departed, out);
        }
        self.settle_wake();
        true
    }

    /// Evaluates a rule just held on the stream's last trade, at price key `key`, as if that
    /// trade came again at `trade.at`.
    pub(super) fn evaluate_new(
        &mut self,
        index: u32,
        key: i128,
        trade: Trade,
        departed: &mut Departed,
        out: &mut Vec<Transition>,
    ) {
        self.step(index, key, trade, departed, out);
        self.settle_wake();
    }

    /// Collects the slots the trade wakes: by their timers, and by the cuts their sources' values
    /// crossed.
    fn take_woken(&mut self, key: i128, at: Timestamp, woken: &mut Woken) {
        self.epoch = self.epoch.wrapping_add(1);
        let epoch = self.epoch;
        let Stream {
            sources,
            slots,
            timers,
            soon,
            tape,
            dirty,
            volume,
            ..
        } = self;
        for index in soon.drain(..) {
            wake_slot(slots, index, epoch, woken, |slot| {
                slot.placed.next_trade = false
            });
        }
        while let Some(&(due, index)) = timers.first() {
            if due > at {
                break;
            }
            timers.pop_first();
            wake_slot(slots, index, epoch, woken, |slot| slot.due = None);
        }
        for (index, source) in sources.iter_mut().enumerate() {
            let Some(source) = source else { continue };
            if !source.wake.wakes(key, *volume, at) {
                continue;
            }
            if let Some(tape) = tape {
                source.follow_tape(tape, at);
            }
            let map = source.map();
            let point = source.point(key, *volume);
            source.rising.take_crossed(
                |cut| map.above(cut, point),
                |w| {
                    wake_slot(slots, w.slot, epoch, woken, |slot| {
                        slot.placed.forget(w.leg, Wait::Rise)
                    })
                },
            );
            source.falling.take_crossed(
                |cut| !map.above(cut, point),
                |w| {
                    wake_slot(slots, w.slot, epoch, woken, |slot| {
                        slot.placed.forget(w.leg, Wait::Fall)
                    })
                },
            );
            mark_dirty(dirty, index as u16);
        }
    }

    fn step(
        &mut self,
        index: u32,
        key: i128,
        trade: Trade,
        departed: &mut Departed,
        out: &mut Vec<Transition>,
    ) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let (id, expiry) = (slot.rule.id, slot.rule.expires_at);
        if is_expired(expiry, trade.at) {
            departed.push((id, expiry));
            self.release(index);
            out.push(Transition {
                rule: id,
                kind: TransitionKind::Expired,
            });
            return;
        }
        let views = self.views(slot, Some(key));
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if let Some(kind) = slot.rule.step(&views, trade.price, trade.at) {
            out.push(Transition { rule: id, kind });
        }
        if slot.rule.state.is_active() {
            self.place_seeing(index, &views, Some(trade.at));
        } else {
            departed.push((id, expiry));
            self.release(index);
        }
    }

    /// Takes a finished bar of `interval`: the sources computed from such bars move on.
    pub(super) fn close_bar(&mut self, interval: Interval, bar: &Bar) {
        let volume = self.volume;
        for (index, source) in self.sources.iter_mut().enumerate() {
            if let Some(source) = source {
                if source.key.interval() == Some(interval) {
                    source.close_bar(bar, volume);
                    mark_dirty(&mut self.dirty, index as u16);
                }
            }
        }
        self.settle_wake();
    }

    /// A finished bar as a trade of a bar-close stream: its close, at its end.
    pub(super) fn bar_as_trade(&self, interval: Interval, bar: &Bar) -> (i128, Trade) {
        let trade = Trade {
            price: bar.close,
            volume: bar.volume,
            at: interval.bar_end(self.market, bar.start),
        };
        (price_key(bar.close), trade)
    }

    /// Warms up the sources of `interval` bars that have not been yet.
    pub(super) fn warm_up(&mut self, interval: Interval, bars: &[Bar]) {
        for (index, source) in self.sources.iter_mut().enumerate() {
            if let Some(source) = source {
                if source.key.interval() == Some(interval) {
                    source.warm_up(bars);
                    mark_dirty(&mut self.dirty, index as u16);
                }
            }
        }
        self.settle_wake();
    }
}

/// Notes that the source's bounds must be refreshed, once however many of its rules moved: a
/// firing trade moves several rules of one source.
#[inline]
fn mark_dirty(dirty: &mut Vec<u16>, index: u16) {
    // The last one marked is the likeliest to come again.
    if dirty.last() != Some(&index) && !dirty.contains(&index) {
        dirty.push(index);
    }
}

/// Notes that the slot's rule left one of its places (`left` forgets it) and must be stepped.
fn wake_slot(
    slots: &mut Slots,
    index: u32,
    epoch: u32,
    woken: &mut Woken,
    left: impl FnOnce(&mut Slot),
) {
    if let Some(slot) = slots.get_mut(index) {
        left(slot);
        if slot.woken_in != epoch {
            slot.woken_in = epoch;
            woken.push((slot.rule.id, index));
        }
    }
}
