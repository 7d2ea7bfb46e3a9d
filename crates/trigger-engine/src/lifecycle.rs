//! One rule's life: what a trade does to it, and what it must be woken for. Both engines hold
//! their rules as [`RuleCore`]s and call [`RuleCore::step`], so they can only disagree on which
//! rules a trade concerns and on what the sources show, never on what a trade does to a rule.
//!
//! The indexed engine leaves a rule alone until a source value crosses one of the cuts
//! [`RuleCore::placements`] names or the clock reaches [`RuleCore::due`]; the naive engine steps
//! every rule on every trade. They agree because a step between those wake-ups changes nothing.

use crate::compile::{compile, source_of, Cuts, LegSpec, SourceKey};
use crate::series::{Map, Point};
use crate::{EngineRule, TransitionKind};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use signal_domain::{Condition, Market, Price, Repeat, RuleId, RuleState, Timestamp};

/// What a trade shows one leg: its source's map and the trade's point on it. `None` while the
/// source has no value (not enough bars yet), or before the instrument's first trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    pub(crate) map: Map,
    pub(crate) point: Point,
}

impl View {
    fn above(&self, cut: i128) -> bool {
        self.map.above(cut, self.point)
    }
}

/// Where a source's value stands against a leg's cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reading {
    zone: u8,
    rearm_zone: u8,
}

impl Reading {
    fn of(spec: &LegSpec, view: &View) -> Self {
        let above = |cut| view.above(cut);
        Self {
            zone: spec.cuts.zone(&above),
            rearm_zone: spec.rearm.zone(&above),
        }
    }
}

/// One condition of a rule, compiled against its source, with what it remembers of past trades.
#[derive(Debug, Clone)]
pub(crate) struct Leg {
    pub(crate) source: SourceKey,
    pub(crate) condition: Condition,
    /// `None` while the condition has no level (a percent rule without a reference).
    pub(crate) spec: Option<LegSpec>,
    /// The zone at the last trade it saw, for crossings and for the legs of a pair.
    zone: Option<u8>,
    /// For the legs of a pair: whether it has seen a trade since the rule was added, whether it
    /// was met at the last one, and when it last was (for a holding condition, the first trade
    /// at which it no longer was).
    observed: bool,
    met: bool,
    last_met: Option<Timestamp>,
}

impl Leg {
    fn new(condition: Condition, repeat: Repeat, reference: Option<Price>) -> Self {
        Self {
            source: source_of(condition),
            condition,
            spec: compile(condition, repeat, reference),
            zone: None,
            observed: false,
            met: false,
            last_met: None,
        }
    }

    fn is_crossing(&self) -> bool {
        self.spec.as_ref().is_some_and(LegSpec::is_crossing)
    }

    /// For a leg of a pair: whether it was met at some moment of the `within` before `at`.
    fn recent(&self, within: TimeDelta, at: Timestamp) -> bool {
        let crossing = self.is_crossing();
        (self.met && !crossing)
            || self.last_met.is_some_and(|last| {
                if crossing {
                    last >= later(at, -within)
                } else {
                    last > later(at, -within)
                }
            })
    }

    /// Where the value `view` shows stands against the leg's cuts, if both are known. The spec
    /// stays where it is (the leg is read on every firing, and a spec is large).
    fn reading<'v>(&self, view: Option<&'v View>) -> Option<(Reading, &'v View)> {
        let spec = self.spec.as_ref()?;
        let view = view?;
        Some((Reading::of(spec, view), view))
    }

    /// Whether a value with this reading re-arms the leg.
    fn rearms(&self, reading: Reading) -> bool {
        self.spec
            .as_ref()
            .is_some_and(|spec| spec.rearms(reading.rearm_zone))
    }

    /// Follows a trade, given its reading; returns whether the condition is met at it, and the
    /// cut it was met at.
    fn observe(
        &mut self,
        seen: Option<(Reading, &View)>,
        tracks_zone: bool,
    ) -> Option<(bool, Fired)> {
        let previous = self.zone;
        if tracks_zone {
            self.zone = seen.map(|(reading, _)| reading.zone);
        }
        let (reading, view) = seen?;
        let spec = self.spec.as_ref()?;
        let met = spec.met(previous, reading.zone);
        let from = if spec.is_crossing() { previous } else { None };
        let index = spec.crossed_cut(from, reading.zone);
        let cut = spec.cuts.as_slice().get(index).copied();
        let level = match self.source {
            SourceKey::Price => spec.levels.get(index).copied(),
            _ => cut.and_then(|cut| view.map.level(cut)),
        };
        Some((
            met,
            Fired {
                level: level.unwrap_or_default(),
                measured: view.map.measured(view.point),
            },
        ))
    }

    /// Where the leg waits for a value whose position `view` gives (`None`: unknown), watching
    /// `cuts`. Unknown, it waits for the next trade.
    fn cell(cuts: &[i128], view: Option<&View>) -> Placement {
        let Some(view) = view else {
            return Placement::NEXT_TRADE;
        };
        let passed = cuts.iter().take_while(|&&cut| view.above(cut)).count();
        Placement {
            rise: cuts.get(passed).copied(),
            fall: passed.checked_sub(1).map(|last| cuts[last]),
        }
    }

    /// Where to wait for the value to be in the zones of `zones`: on their side of the cut, so a
    /// value already there wakes the rule at the next trade. A snoozed rule whose value is there
    /// waits for it to leave instead (and for the snooze to end).
    fn region(cuts: Cuts, zones: u8, view: Option<&View>, snoozed: bool) -> Placement {
        match cuts.as_slice() {
            &[cut] => {
                let region_above = zones == 1 << 1;
                let inside = snoozed && view.is_some_and(|view| view.above(cut) == region_above);
                if region_above != inside {
                    Placement {
                        rise: Some(cut),
                        fall: None,
                    }
                } else {
                    Placement {
                        rise: None,
                        fall: Some(cut),
                    }
                }
            }
            cuts => Self::cell(cuts, view),
        }
    }
}

/// The second condition of a rule, and how close in time the two must be met.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub(crate) leg: Leg,
    within: TimeDelta,
}

impl Pair {
    /// Whether the pair is met at `at`: both conditions met within `within` of it.
    fn met(&self, first: &Leg, at: Timestamp) -> bool {
        first.recent(self.within, at) && self.leg.recent(self.within, at)
    }
}

/// What a firing reports besides the price: the level it fired at (a price, or for volume
/// conditions a volume) and the value the condition measures (an RSI, a move, an average).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fired {
    level: Decimal,
    measured: Option<Decimal>,
}

/// Where a leg waits for its source's value: the cut it waits to get above, and the cut it waits
/// to fall below (to be not above any more).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Placement {
    pub(crate) rise: Option<i128>,
    pub(crate) fall: Option<i128>,
}

impl Placement {
    /// Once its source has a value, any value is above the lowest cut: the next trade wakes the
    /// rule.
    const NEXT_TRADE: Placement = Placement {
        rise: Some(i128::MIN),
        fall: None,
    };
}

/// Where a rule waits: each leg in its source, or, whatever its sources show, for the next trade.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) legs: [Placement; 2],
    pub(crate) next_trade: bool,
}

/// A rule as both engines hold it.
#[derive(Debug, Clone)]
pub(crate) struct RuleCore {
    pub(crate) id: RuleId,
    pub(crate) repeat: Repeat,
    pub(crate) expires_at: Option<Timestamp>,
    snoozed_until: Option<Timestamp>,
    pub(crate) state: RuleState,
    market: Market,
    pub(crate) first: Leg,
    pub(crate) second: Option<Box<Pair>>,
}

pub(crate) fn is_expired(expires_at: Option<Timestamp>, at: Timestamp) -> bool {
    expires_at.is_some_and(|expiry| expiry <= at)
}

/// `at + delta`, or the end of time (the start, for a negative delta) past the calendar.
fn later(at: Timestamp, delta: TimeDelta) -> Timestamp {
    // No cooldown is common (a rule that fires on every crossing) and the calendar is slow.
    if delta.is_zero() {
        return at;
    }
    at.checked_add_signed(delta)
        .unwrap_or(if delta < TimeDelta::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// What firing at `at` leaves the rule in.
fn after_firing(repeat: Repeat, market: Market, at: Timestamp) -> RuleState {
    match repeat {
        Repeat::Once => RuleState::Triggered,
        Repeat::Every { cooldown, .. } => RuleState::Cooling {
            rearmed: false,
            until: later(at, cooldown),
        },
        // Free again when the bar it fired in is over, whatever the price does.
        Repeat::OncePerBar(interval) => RuleState::Cooling {
            rearmed: true,
            until: interval.bar_end(market, at),
        },
        // Evaluated on the next close only.
        Repeat::OncePerBarClose(_) => RuleState::Armed,
    }
}

impl RuleCore {
    pub(crate) fn new(rule: &EngineRule, reference: Option<Price>) -> Self {
        let second = rule.and.map(|and| {
            Box::new(Pair {
                // The legs of a pair have no band: the pair re-arms when it is no longer met.
                leg: Leg::new(and.condition, Repeat::Once, reference),
                within: and.within,
            })
        });
        let leg_repeat = if second.is_some() {
            Repeat::Once
        } else {
            rule.repeat
        };
        Self {
            id: rule.id,
            repeat: rule.repeat,
            expires_at: rule.expires_at,
            snoozed_until: rule.snoozed_until,
            state: rule.state,
            market: rule.instrument.market(),
            first: Leg::new(rule.condition, leg_repeat, reference),
            second,
        }
    }

    /// The legs, first then second.
    pub(crate) fn legs(&self) -> impl Iterator<Item = &Leg> {
        std::iter::once(&self.first).chain(self.second.as_ref().map(|pair| &pair.leg))
    }

    /// Whether a leg compiles against the reference price (a percent change).
    pub(crate) fn is_relative(&self) -> bool {
        self.legs().any(|leg| leg.condition.is_relative())
    }

    /// Compiles the legs again against a new reference price.
    pub(crate) fn recompile(&mut self, reference: Option<Price>) {
        let repeat = if self.second.is_some() {
            Repeat::Once
        } else {
            self.repeat
        };
        self.first.spec = compile(self.first.condition, repeat, reference);
        if let Some(pair) = &mut self.second {
            pair.leg.spec = compile(pair.leg.condition, Repeat::Once, reference);
        }
    }

    /// Takes in where the instrument's last trade stood, for a rule that was just added: a
    /// crossing needs to know which side of its level the price was on.
    pub(crate) fn settle(&mut self, views: &[Option<View>; 2]) {
        let pair = self.second.is_some();
        for (leg, view) in [
            Some(&mut self.first),
            self.second.as_mut().map(|p| &mut p.leg),
        ]
        .into_iter()
        .zip(views)
        {
            if let Some(leg) = leg {
                if pair || leg.is_crossing() {
                    leg.zone = leg.reading(view.as_ref()).map(|(reading, _)| reading.zone);
                }
            }
        }
    }

    fn snoozed(&self, at: Timestamp) -> bool {
        self.snoozed_until.is_some_and(|until| at < until)
    }

    /// Applies a trade at `price` to a rule that has not expired; `views` show each leg its
    /// source. Returns the transition, if the rule's stored state changes.
    pub(crate) fn step(
        &mut self,
        views: &[Option<View>; 2],
        price: Price,
        at: Timestamp,
    ) -> Option<TransitionKind> {
        let (met, fired, rearm) = match &mut self.second {
            None => {
                let tracks = self.first.is_crossing();
                let reading = self.first.reading(views[0].as_ref());
                let rearm = reading.is_some_and(|(reading, _)| self.first.rearms(reading));
                let seen = self.first.observe(reading, tracks);
                let met = seen.is_some_and(|(met, _)| met);
                (met, seen.map(|(_, fired)| fired), rearm)
            }
            Some(pair) => {
                let first = follow(&mut self.first, views[0].as_ref(), at);
                let second = follow(&mut pair.leg, views[1].as_ref(), at);
                let met = pair.met(&self.first, at);
                (met, first.or(second), !met)
            }
        };
        let mut next = self.state;
        if let RuleState::Cooling { rearmed, until } = self.state {
            let rearmed = rearmed || rearm;
            next = if rearmed && until <= at {
                RuleState::Armed
            } else {
                RuleState::Cooling { rearmed, until }
            };
        }
        let kind = match fired {
            Some(fired) if met && next == RuleState::Armed && !self.snoozed(at) => {
                TransitionKind::Fired {
                    level: fired.level,
                    price,
                    measured: fired.measured,
                    next: after_firing(self.repeat, self.market, at),
                }
            }
            _ if next != self.state => TransitionKind::Rearmed { next },
            _ => return None,
        };
        self.state = kind.next_state();
        Some(kind)
    }

    /// Where the rule waits in its current state, given where its source's value is
    /// (`None`: unknown) at the trade at `at` (`None`: when added): at the cuts whose crossing can
    /// change what a trade does to the rule.
    pub(crate) fn placements(&self, views: &[Option<View>; 2], at: Option<Timestamp>) -> Plan {
        let Some(pair) = &self.second else {
            let snoozed = at.is_some_and(|at| self.snoozed(at));
            return Plan {
                legs: [
                    self.single_placement(views[0].as_ref(), snoozed),
                    Placement::default(),
                ],
                next_trade: false,
            };
        };
        // A trade at the present prices would change the rule: a leg has not seen one yet, or the
        // pair is met and free to fire, or not met and waiting to re-arm.
        let changes_now = match at {
            Some(at) if self.first.observed && pair.leg.observed => {
                let met = pair.met(&self.first, at);
                match self.state {
                    RuleState::Armed => met && !self.snoozed(at),
                    RuleState::Cooling { rearmed: false, .. } => !met,
                    _ => false,
                }
            }
            _ => true,
        };
        if changes_now {
            return Plan {
                legs: [Placement::default(); 2],
                next_trade: true,
            };
        }
        // Each leg of a pair is followed all the time: when it stops being met counts too.
        let follow = |leg: &Leg, view: &Option<View>| match &leg.spec {
            Some(spec) => Leg::cell(spec.cuts.as_slice(), view.as_ref()),
            None => Placement::default(),
        };
        Plan {
            legs: [follow(&self.first, &views[0]), follow(&pair.leg, &views[1])],
            next_trade: false,
        }
    }

    fn single_placement(&self, view: Option<&View>, snoozed: bool) -> Placement {
        let Some(spec) = &self.first.spec else {
            return Placement::default();
        };
        let unrearmed = matches!(self.state, RuleState::Cooling { rearmed: false, .. });
        match spec.met_zones() {
            // A crossing follows its zone all the time, and while it waits to re-arm, the re-arm
            // cuts as well.
            None => {
                // A value in a re-arm zone re-arms the rule at the next trade.
                let rearms_now =
                    view.is_some_and(|view| spec.rearms(Reading::of(spec, view).rearm_zone));
                if unrearmed && rearms_now {
                    return Placement::NEXT_TRADE;
                }
                let mut cuts = [0; 4];
                let mut len = 0;
                let mut add = |more: &[i128]| {
                    for &cut in more {
                        cuts[len] = cut;
                        len += 1;
                    }
                };
                add(spec.cuts.as_slice());
                if unrearmed {
                    add(spec.rearm.as_slice());
                }
                let cuts = &mut cuts[..len];
                cuts.sort_unstable();
                Leg::cell(cuts, view)
            }
            Some(zones) => match self.state {
                RuleState::Armed => Leg::region(spec.cuts, zones, view, snoozed),
                RuleState::Cooling { rearmed: false, .. } => {
                    Leg::region(spec.rearm, spec.rearm_zones, view, false)
                }
                _ => Placement::default(),
            },
        }
    }

    /// The first instant after `at` at which the passing of time alone can change the rule: its
    /// expiry, the end of a cooldown it only waits for, the end of a snooze, or the moment a leg
    /// of a pair stops counting as recent.
    pub(crate) fn due(&self, at: Option<Timestamp>) -> Option<Timestamp> {
        let future = |instant: Timestamp| at.is_none_or(|at| instant > at);
        let release = match self.state {
            RuleState::Cooling {
                rearmed: true,
                until,
            } => Some(until),
            _ => None,
        };
        let snooze = self.snoozed_until.filter(|&until| future(until));
        let recency = self.second.as_ref().and_then(|pair| {
            [&self.first, &pair.leg]
                .into_iter()
                .filter_map(|leg| {
                    let last = leg.last_met?;
                    let crossing = leg.is_crossing();
                    let end = if crossing {
                        later(later(last, pair.within), TimeDelta::nanoseconds(1))
                    } else if leg.met {
                        return None;
                    } else {
                        later(last, pair.within)
                    };
                    Some(end).filter(|&end| future(end))
                })
                .min()
        });
        earliest(
            earliest(self.expires_at, release),
            earliest(snooze, recency),
        )
    }
}

/// The earlier of two instants, or the one there is.
fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Follows a trade on one leg of a pair: updates whether it is met and when it last was. Returns
/// what the leg reports if it is met now.
fn follow(leg: &mut Leg, view: Option<&View>, at: Timestamp) -> Option<Fired> {
    let was_met = leg.met;
    let seen = leg.observe(leg.reading(view), true);
    let met = seen.is_some_and(|(met, _)| met);
    let crossing = leg.is_crossing();
    if crossing && met || !crossing && was_met && !met {
        leg.last_met = Some(at);
    }
    leg.met = met;
    leg.observed = true;
    seen.map(|(_, fired)| fired)
}
