//! Which instruments need live data, and why: active rules first, then watchlists, then live
//! viewers. Feeds with a limited number of streams (KIS allows 41) plan from it, and re-plan
//! whenever it changes.

use signal_domain::InstrumentId;
use signal_ownership::ShardSet;
use signal_ports::{Interest, Need};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a one-off quote request (`GET /asset/{symbol}`) keeps an instrument live.
pub const GLANCE: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Counts {
    /// How many active rules each instrument has: per instrument, not per rule, so that a rule
    /// created or ended changes the interest (and costs a recount) only when it is the first or
    /// last of its instrument.
    rules: HashMap<InstrumentId, usize>,
    watched: Vec<InstrumentId>,
    viewers: HashMap<InstrumentId, usize>,
    /// Rules and watchlists are every instance's; each asks its feeds only for the instruments
    /// it evaluates. Live viewers are this instance's own.
    owned: ShardSet,
}

impl Counts {
    fn interest(&self) -> Interest {
        let mut interest = Interest::default();
        for id in self.rules.keys().filter(|id| self.owned.owns(id)) {
            interest.add(id.clone(), Need::ActiveRule);
        }
        for id in self.watched.iter().filter(|id| self.owned.owns(id)) {
            interest.add(id.clone(), Need::Watched);
        }
        for id in self.viewers.keys() {
            interest.add(id.clone(), Need::ViewedLive);
        }
        interest
    }
}

pub struct InterestTracker {
    counts: Mutex<Counts>,
    sender: watch::Sender<Arc<Interest>>,
    /// Until when each glanced instrument stays viewed. A glance at an instrument already
    /// glanced only moves its end: one timer per instrument, not one per request (a client
    /// polling `GET /asset/{symbol}` would otherwise leave a task for every request of the last
    /// five minutes).
    glances: Mutex<HashMap<InstrumentId, Instant>>,
}

impl Default for InterestTracker {
    fn default() -> Self {
        Self {
            counts: Mutex::default(),
            sender: watch::Sender::new(Arc::default()),
            glances: Mutex::default(),
        }
    }
}

impl InterestTracker {
    pub fn subscribe(&self) -> watch::Receiver<Arc<Interest>> {
        self.sender.subscribe()
    }

    /// A rule of `instrument` became active. The caller reports each rule once until it ends.
    pub fn rule_active(&self, instrument: &InstrumentId) {
        self.update(|c| {
            let count = c.rules.entry(instrument.clone()).or_default();
            *count += 1;
            *count == 1
        });
    }

    /// A rule of `instrument` reported active has ended.
    pub fn rule_ended(&self, instrument: &InstrumentId) {
        self.update(|c| match c.rules.get_mut(instrument) {
            Some(1) => {
                c.rules.remove(instrument);
                true
            }
            Some(count) => {
                *count -= 1;
                false
            }
            None => false,
        });
    }

    pub fn set_watched(&self, mut watched: Vec<InstrumentId>) {
        watched.sort();
        self.update(|c| {
            let changed = c.watched != watched;
            c.watched = watched;
            changed
        });
    }

    pub fn set_owned(&self, owned: ShardSet) {
        self.update(|c| {
            let changed = c.owned != owned;
            c.owned = owned;
            changed
        });
    }

    /// Marks `id` viewed live until the returned guard is dropped.
    pub fn view(self: &Arc<Self>, id: &InstrumentId) -> ViewGuard {
        self.update(|c| {
            let viewers = c.viewers.entry(id.clone()).or_default();
            *viewers += 1;
            *viewers == 1
        });
        ViewGuard {
            tracker: self.clone(),
            id: id.clone(),
        }
    }

    /// Marks `id` viewed live for [`GLANCE`].
    pub fn glance(self: &Arc<Self>, id: &InstrumentId) {
        let mut until = Instant::now() + GLANCE;
        // Already glanced: its timer finds the new end when it wakes.
        if self.lock_glances().insert(id.clone(), until).is_some() {
            return;
        }
        let guard = self.view(id);
        let tracker = self.clone();
        let id = id.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep_until(until).await;
                let mut glances = tracker.lock_glances();
                match glances.get(&id) {
                    Some(&later) if later > until => until = later,
                    _ => {
                        glances.remove(&id);
                        break;
                    }
                }
            }
            drop(guard);
        });
    }

    fn lock_glances(&self) -> std::sync::MutexGuard<'_, HashMap<InstrumentId, Instant>> {
        // Nothing panics while holding the lock; a poisoned map still holds valid ends.
        self.glances.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Counts) -> bool) {
        // Nothing panics while holding the lock; poisoned counts are still consistent.
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if change(&mut counts) {
            self.sender.send_replace(Arc::new(counts.interest()));
        }
    }
}

pub struct ViewGuard {
    tracker: Arc<InterestTracker>,
    id: InstrumentId,
}

impl Drop for ViewGuard {
    fn drop(&mut self) {
        self.tracker.update(|c| match c.viewers.get_mut(&self.id) {
            Some(1) => {
                c.viewers.remove(&self.id);
                true
            }
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn interest_follows_rules_watchlists_and_viewers() {
        let tracker = Arc::new(InterestTracker::default());
        tracker.set_owned(ShardSet::ALL);
        let receiver = tracker.subscribe();
        let btc: InstrumentId = "UPBIT:KRW-BTC".parse().unwrap();
        let aapl: InstrumentId = "NASDAQ:AAPL".parse().unwrap();
        let view = tracker.view(&btc);
        assert_eq!(receiver.borrow().needs.get(&btc), Some(&Need::ViewedLive));
        tracker.set_watched(vec![btc.clone(), aapl.clone()]);
        tracker.rule_active(&btc);
        tracker.rule_active(&btc);
        assert_eq!(receiver.borrow().needs.get(&btc), Some(&Need::ActiveRule));
        assert_eq!(receiver.borrow().needs.get(&aapl), Some(&Need::Watched));
        tracker.rule_ended(&btc);
        assert_eq!(
            receiver.borrow().needs.get(&btc),
            Some(&Need::ActiveRule),
            "one of its two rules is still active"
        );
        tracker.rule_ended(&btc);
        tracker.set_watched(vec![]);
        assert_eq!(receiver.borrow().needs.get(&btc), Some(&Need::ViewedLive));
        drop(view);
        assert!(receiver.borrow().needs.is_empty());

        // Another instance evaluates every instrument: only this instance's viewers remain.
        let _view = tracker.view(&btc);
        tracker.rule_active(&aapl);
        assert_eq!(receiver.borrow().needs.get(&aapl), Some(&Need::ActiveRule));
        tracker.set_owned(ShardSet::default());
        assert_eq!(receiver.borrow().needs.get(&aapl), None);
        assert_eq!(receiver.borrow().needs.get(&btc), Some(&Need::ViewedLive));
    }

    #[tokio::test(start_paused = true)]
    async fn a_glance_keeps_an_instrument_live_for_five_minutes_after_the_last_one() {
        let tracker = Arc::new(InterestTracker::default());
        let receiver = tracker.subscribe();
        let btc: InstrumentId = "UPBIT:KRW-BTC".parse().unwrap();
        tracker.glance(&btc);
        tokio::time::sleep(Duration::from_secs(200)).await;
        tracker.glance(&btc);
        tokio::time::sleep(Duration::from_secs(200)).await;
        assert_eq!(
            receiver.borrow().needs.get(&btc),
            Some(&Need::ViewedLive),
            "glanced again 200 s ago"
        );
        tokio::time::sleep(Duration::from_secs(101)).await;
        assert!(receiver.borrow().needs.is_empty());
        tracker.glance(&btc);
        assert_eq!(receiver.borrow().needs.get(&btc), Some(&Need::ViewedLive));
    }
}
