//! The Asset Service's use cases, whatever shape a request comes in (the original routes, the
//! JSON API, the quote socket). Every write goes to the store first and then to the engine, and
//! returns only once the engine has it: a confirmed rule is watching.

use chrono::{NaiveDate, TimeZone, Utc};
use signal_catalog::{Catalog, CatalogEntry};
use signal_domain::ErrorChain;
use signal_domain::{
    AlertRule, Bar, Condition, InstrumentId, Interval, Market, Quote, Repeat, RuleId, RuleSpec,
    Timestamp, UserId,
};
use signal_ports::{
    Candle, CandleStore, Capped, DailyCandle, QuoteCache, RuleHold, RuleStore, WatchlistStore,
};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::backfill::Backfill;
use crate::creation::RuleCreator;
use crate::engine::bars::{minute_bars, warm_up_minutes};
use crate::engine::replica::RuleAnnouncer;
use crate::engine::EngineHandle;
use crate::error::CoreError;
use crate::interest::{InterestTracker, ViewGuard};
use crate::market::{latest_known, newest, LiveQuotes, QuoteBook};

/// An instrument with its latest quote.
pub struct Listing {
    pub entry: CatalogEntry,
    pub quote: Option<Quote>,
}

/// Bars of one interval for a chart, oldest first.
pub struct Chart {
    pub bars: Vec<Bar>,
    /// `false` while the exchange's history of the span is being fetched: asking again shortly
    /// gives more bars.
    pub complete: bool,
}

/// Most days of stored minute candles one chart folds; older day bars are the exchange's daily
/// candles alone.
const FOLDED_DAYS: i64 = 31;

/// Most a rule's creation waits for the exchange's candles its indicators warm up from. Past it
/// the rule is held with what the store has, and its indicators fill up as bars close.
const WARM_UP_FETCH: Duration = Duration::from_secs(10);

/// The use cases over the service's stores, engine and quotes.
pub struct Assets {
    pub(crate) catalog: Arc<RwLock<Catalog>>,
    pub(crate) book: Arc<QuoteBook>,
    /// The latest quotes every instance shares: those of instruments this one does not hear.
    pub(crate) quote_cache: Arc<dyn QuoteCache>,
    pub(crate) rules: Arc<dyn RuleStore>,
    pub(crate) watchlist: Arc<dyn WatchlistStore>,
    pub(crate) candles: Arc<dyn CandleStore>,
    pub(crate) backfill: Arc<Backfill>,
    pub(crate) engine: EngineHandle,
    pub(crate) max_active_rules: usize,
    pub(crate) interest: Arc<InterestTracker>,
    pub(crate) announcer: RuleAnnouncer,
    pub(crate) creator: RuleCreator,
}

impl Assets {
    /// Accepts `MARKET:SYMBOL` or a bare symbol as the original API did.
    pub fn resolve(&self, text: &str) -> Result<InstrumentId, CoreError> {
        Ok(self.catalog().resolve(text)?)
    }

    fn entry(&self, id: &InstrumentId) -> Result<CatalogEntry, CoreError> {
        self.catalog()
            .get(id)
            .cloned()
            .ok_or_else(|| CoreError::UnknownInstrument(id.clone()))
    }

    pub async fn listing(&self, id: &InstrumentId) -> Result<Listing, CoreError> {
        let entry = self.entry(id)?;
        Ok(self.with_quotes(vec![entry]).await.remove(0))
    }

    /// The instruments of `ids` that the catalog knows, in order.
    pub async fn listings(&self, ids: &[InstrumentId]) -> Vec<Listing> {
        let entries: Vec<CatalogEntry> = {
            let catalog = self.catalog();
            ids.iter()
                .filter_map(|id| catalog.get(id).cloned())
                .collect()
        };
        self.with_quotes(entries).await
    }

    pub async fn search(&self, query: &str, limit: usize) -> Vec<Listing> {
        let entries: Vec<CatalogEntry> = self
            .catalog()
            .search(query, limit)
            .into_iter()
            .cloned()
            .collect();
        self.with_quotes(entries).await
    }

    /// Every instrument of the catalog, in its order.
    pub async fn everything(&self) -> Vec<Listing> {
        let entries: Vec<CatalogEntry> = self.catalog().entries().cloned().collect();
        self.with_quotes(entries).await
    }

    /// The `limit` instruments of the markets `of` takes with the largest absolute change,
    /// largest first.
    pub async fn top_movers(&self, of: impl Fn(Market) -> bool, limit: usize) -> Vec<Listing> {
        let shared = self.quote_cache.all().await.unwrap_or_else(|e| {
            tracing::warn!(error = %ErrorChain(&e), "cannot read the shared quotes; movers from this instance's only");
            Vec::new()
        });
        let mut quotes = newest(self.book.all(), shared);
        quotes.retain(|_, q| of(q.instrument.market()) && q.change_percent.is_some());
        let mut quotes: Vec<Quote> = quotes.into_values().collect();
        quotes.sort_by(|a, b| {
            let magnitude = |q: &Quote| q.change_percent.map(|p| p.value().abs());
            magnitude(b)
                .cmp(&magnitude(a))
                .then_with(|| a.instrument.cmp(&b.instrument))
        });
        let catalog = self.catalog();
        quotes
            .into_iter()
            .filter_map(|quote| {
                let entry = catalog.get(&quote.instrument)?.clone();
                Some(Listing {
                    entry,
                    quote: Some(quote),
                })
            })
            .take(limit)
            .collect()
    }

    /// Each entry with its newest known quote.
    async fn with_quotes(&self, entries: Vec<CatalogEntry>) -> Vec<Listing> {
        let ids: Vec<InstrumentId> = entries.iter().map(|e| e.instrument.id.clone()).collect();
        let mut quotes = latest_known(&self.book, self.quote_cache.as_ref(), &ids).await;
        entries
            .into_iter()
            .map(|entry| Listing {
                quote: quotes.remove(&entry.instrument.id),
                entry,
            })
            .collect()
    }

    pub async fn watch(&self, user: &UserId, id: &InstrumentId) -> Result<(), CoreError> {
        self.entry(id)?;
        if !self.watchlist.add(user, id, Utc::now()).await? {
            return Err(CoreError::AlreadyWatched(id.clone()));
        }
        self.refresh_watched().await
    }

    async fn refresh_watched(&self) -> Result<(), CoreError> {
        let watched = self.watchlist.watched_instruments().await?;
        self.interest.set_watched(watched);
        Ok(())
    }

    pub async fn unwatch(&self, user: &UserId, id: &InstrumentId) -> Result<(), CoreError> {
        if self.watchlist.remove(user, id).await? {
            self.refresh_watched().await
        } else {
            Err(CoreError::NotWatched(id.clone()))
        }
    }

    pub async fn watchlist(&self, user: &UserId) -> Result<Vec<InstrumentId>, CoreError> {
        Ok(self
            .watchlist
            .list(user)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    pub fn rule_spec(
        &self,
        instrument: InstrumentId,
        condition: Condition,
        repeat: Repeat,
        expires_at: Option<Timestamp>,
        note: Option<String>,
    ) -> Result<RuleSpec, CoreError> {
        self.entry(&instrument)?;
        Ok(RuleSpec::new(
            instrument,
            condition,
            repeat,
            expires_at,
            note,
            Utc::now(),
        )?)
    }

    /// Creates an armed rule unless the user is at the limit; returns once the engine holds it.
    /// Concurrent creates are stored together (see [`crate::creation`]).
    pub async fn create_rule(
        &self,
        user: &UserId,
        spec: &RuleSpec,
    ) -> Result<AlertRule, CoreError> {
        self.fetch_warm_up_history([spec]).await;
        self.creator.create(user, spec).await
    }

    /// Creates all of `specs` or, when they would take the user past the active-rule limit, none:
    /// one store transaction, one engine command and one announcement for them all.
    pub async fn create_rules(
        &self,
        user: &UserId,
        specs: &[RuleSpec],
    ) -> Result<Vec<AlertRule>, CoreError> {
        self.fetch_warm_up_history(specs).await;
        let limit = self.max_active_rules;
        let rules = match self
            .rules
            .create_many(user, specs, limit, Utc::now())
            .await?
        {
            Capped::Stored(rules) => rules,
            Capped::LimitReached => return Err(CoreError::RuleLimit { limit }),
        };
        self.engine.upsert(rules.clone()).await?;
        self.announcer
            .announce(user, rules.iter().map(|rule| rule.id).collect())
            .await;
        Ok(rules)
    }

    pub async fn update_rule(
        &self,
        user: &UserId,
        id: RuleId,
        spec: &RuleSpec,
    ) -> Result<AlertRule, CoreError> {
        self.fetch_warm_up_history([spec]).await;
        let limit = self.max_active_rules;
        let rule = match self.rules.update(user, id, spec, limit, Utc::now()).await? {
            Some(Capped::Stored(rule)) => rule,
            Some(Capped::LimitReached) => return Err(CoreError::RuleLimit { limit }),
            None => return Err(CoreError::NoSuchRule(id)),
        };
        self.engine.upsert(vec![rule.clone()]).await?;
        self.announcer.announce(user, vec![rule.id]).await;
        Ok(rule)
    }

    /// Stores the minute candles the indicators of `specs` warm up from, fetched from the
    /// exchanges where the store lacks them (an instrument nobody followed, a system just
    /// started), so that the engine finds them in the store when it holds the rules. One fetch
    /// per instrument, as far back as its longest indicator wants; a refusal or a slow exchange
    /// leaves the store as it is.
    async fn fetch_warm_up_history<'a>(&self, specs: impl IntoIterator<Item = &'a RuleSpec>) {
        let now = Utc::now();
        let mut oldest: HashMap<&InstrumentId, Timestamp> = HashMap::new();
        for spec in specs {
            let market = spec.instrument.market();
            for (interval, bars) in spec.conditions().filter_map(Condition::history_wanted) {
                let (from, _) = warm_up_minutes(market, interval, bars, now);
                oldest
                    .entry(&spec.instrument)
                    .and_modify(|known| *known = (*known).min(from))
                    .or_insert(from);
            }
        }
        if oldest.is_empty() {
            return;
        }
        let fills = oldest.into_iter().map(|(instrument, from)| async move {
            if let Err(error) = self.backfill.fill(instrument, from, now).await {
                tracing::warn!(
                    error = %ErrorChain(&error), %instrument,
                    "indicators warm up from the stored candles alone"
                );
            }
        });
        if tokio::time::timeout(WARM_UP_FETCH, futures::future::join_all(fills))
            .await
            .is_err()
        {
            tracing::warn!(
                "the exchanges' candles were not all fetched in time: indicators warm up from \
                 what is stored"
            );
        }
    }

    /// Pauses the rule: it keeps its state and is not evaluated until resumed.
    pub async fn pause_rule(&self, user: &UserId, id: RuleId) -> Result<AlertRule, CoreError> {
        self.hold_rule(user, id, |hold, now| RuleHold {
            paused_at: hold.paused_at.or(Some(now)),
            ..hold
        })
        .await
    }

    /// Resumes a paused or snoozed rule: it is evaluated, and may fire, at once on the latest
    /// trade and from then on.
    pub async fn resume_rule(&self, user: &UserId, id: RuleId) -> Result<AlertRule, CoreError> {
        self.hold_rule(user, id, |_, _| RuleHold::default()).await
    }

    /// Snoozes the rule until `until` (`None`: ends a snooze): it is evaluated but cannot fire
    /// before then.
    pub async fn snooze_rule(
        &self,
        user: &UserId,
        id: RuleId,
        until: Option<Timestamp>,
    ) -> Result<AlertRule, CoreError> {
        let until = until
            .map(|until| signal_domain::snooze_end(until, Utc::now()))
            .transpose()?;
        self.hold_rule(user, id, |hold, _| RuleHold {
            snoozed_until: until,
            ..hold
        })
        .await
    }

    async fn hold_rule(
        &self,
        user: &UserId,
        id: RuleId,
        change: impl FnOnce(RuleHold, Timestamp) -> RuleHold,
    ) -> Result<AlertRule, CoreError> {
        let rule = self.rule(user, id).await?;
        let now = Utc::now();
        let hold = change(
            RuleHold {
                paused_at: rule.paused_at,
                snoozed_until: rule.snoozed_until,
            },
            now,
        );
        let rule = self
            .rules
            .hold(user, id, hold, now)
            .await?
            .ok_or(CoreError::NoSuchRule(id))?;
        self.engine.upsert(vec![rule.clone()]).await?;
        self.announcer.announce(user, vec![rule.id]).await;
        Ok(rule)
    }

    pub async fn rule(&self, user: &UserId, id: RuleId) -> Result<AlertRule, CoreError> {
        self.rules
            .get(user, id)
            .await?
            .ok_or(CoreError::NoSuchRule(id))
    }

    /// The user's rules, newest first; only active ones when `active_only`.
    pub async fn rules(
        &self,
        user: &UserId,
        active_only: bool,
    ) -> Result<Vec<AlertRule>, CoreError> {
        Ok(self.rules.list(user, active_only).await?)
    }

    pub async fn delete_rule(&self, user: &UserId, id: RuleId) -> Result<(), CoreError> {
        if self.rules.delete_many(user, &[id]).await?.is_empty() {
            return Err(CoreError::NoSuchRule(id));
        }
        self.engine.remove(vec![id]).await?;
        self.announcer.announce(user, vec![id]).await;
        Ok(())
    }

    /// The user's active targets, as the original API listed them.
    pub async fn targets(&self, user: &UserId) -> Result<Vec<AlertRule>, CoreError> {
        let mut rules = self.rules.list(user, true).await?;
        rules.retain(is_target);
        Ok(rules)
    }

    /// The original API's "set a target": the user's targets on the instrument are replaced by
    /// one at `condition`, in one transaction, so a refusal (the rule limit) changes nothing.
    pub async fn set_target(
        &self,
        user: &UserId,
        id: &InstrumentId,
        condition: Condition,
    ) -> Result<AlertRule, CoreError> {
        let spec = self.rule_spec(id.clone(), condition, Repeat::Once, None, None)?;
        let replaced = self.targets_on(user, id).await?;
        let limit = self.max_active_rules;
        let rule = match self
            .rules
            .replace(user, &replaced, &spec, limit, Utc::now())
            .await?
        {
            Capped::Stored(rule) => rule,
            Capped::LimitReached => return Err(CoreError::RuleLimit { limit }),
        };
        self.engine.remove(replaced.clone()).await?;
        self.engine.upsert(vec![rule.clone()]).await?;
        let mut changed = replaced;
        changed.push(rule.id);
        self.announcer.announce(user, changed).await;
        Ok(rule)
    }

    /// Deletes the user's targets on the instrument, in one transaction; how many went.
    pub async fn remove_targets(
        &self,
        user: &UserId,
        id: &InstrumentId,
    ) -> Result<usize, CoreError> {
        let doomed = self.targets_on(user, id).await?;
        let deleted = self.rules.delete_many(user, &doomed).await?;
        self.engine.remove(deleted.clone()).await?;
        let count = deleted.len();
        self.announcer.announce(user, deleted).await;
        Ok(count)
    }

    /// The ids of the user's targets on `id`, active or not: setting a target replaces them all.
    async fn targets_on(&self, user: &UserId, id: &InstrumentId) -> Result<Vec<RuleId>, CoreError> {
        Ok(self
            .rules
            .list(user, false)
            .await?
            .into_iter()
            .filter(|rule| &rule.spec.instrument == id && is_target(rule))
            .map(|rule| rule.id)
            .collect())
    }

    /// Minute candles of `id` in `[from, to)`, oldest first, at most `limit`.
    pub async fn candles(
        &self,
        id: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<Candle>, CoreError> {
        Ok(self.candles.candles(id, from, to, limit).await?)
    }

    /// The last `count` bars of `interval` of `id` that start before `to`, oldest first, built
    /// from the stored minute candles; intervals without trades have no bar. What the store
    /// lacks is fetched from the exchange meanwhile (see [`Chart::complete`]); day bars of past
    /// days are the exchange's own daily candles where it has them.
    pub async fn chart(
        &self,
        id: &InstrumentId,
        interval: Interval,
        to: Timestamp,
        count: usize,
    ) -> Result<Chart, CoreError> {
        let market = id.market();
        let newest = interval.bar_start(market, to);
        let back = interval.length() * i32::try_from(count.saturating_sub(1)).unwrap_or(i32::MAX);
        let from = interval.bar_start(market, newest - back);
        let folded_from =
            from.max(interval.bar_start(market, to - chrono::Duration::days(FOLDED_DAYS)));
        let mut complete = true;
        let mut past_days = Vec::new();
        if interval == Interval::D1 {
            // Only today is built from minutes; the days before are the exchange's.
            let zone = market.time_zone();
            let day = |at: Timestamp| at.with_timezone(&zone).date_naive();
            if let Some(yesterday) = day(newest).pred_opt() {
                (past_days, complete) =
                    self.backfill
                        .past_days_in_background(id, day(from), yesterday);
            }
            complete &= self.backfill.fill_in_background(id, newest, to).await?;
        } else {
            complete = self.backfill.fill_in_background(id, from, to).await?;
        }
        let minutes = usize::try_from((to - folded_from).num_minutes()).unwrap_or(0) + 1;
        let candles = self.candles.candles(id, folded_from, to, minutes).await?;
        let mut bars = minute_bars(&candles, interval, market);
        if !past_days.is_empty() {
            bars = with_past_days(market, bars, past_days, newest);
        }
        let surplus = bars.len().saturating_sub(count);
        bars.drain(..surplus);
        Ok(Chart { bars, complete })
    }

    /// Marks `id` viewed live for a while, as a one-off quote request does.
    pub fn glance(&self, id: &InstrumentId) {
        self.interest.glance(id);
    }

    /// The live quotes of `id`, conflated (a receiver sees the newest only), and the guard that
    /// keeps `id` marked as viewed live until dropped.
    pub fn follow(&self, id: &InstrumentId) -> (LiveQuotes, ViewGuard) {
        (self.book.subscribe(id), self.interest.view(id))
    }

    fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        // Catalog updates replace entries whole, so a poisoned lock holds a consistent catalog.
        self.catalog.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the original API called a target: a one-shot ABOVE or BELOW level. It kept one per user
/// and symbol, so setting a target replaces these and leaves the user's other rules alone.
pub fn is_target(rule: &AlertRule) -> bool {
    rule.spec.repeat == Repeat::Once
        && matches!(
            rule.spec.condition,
            Condition::Above(_) | Condition::Below(_)
        )
}

/// Day bars with the exchange's `days` in place of those folded from minutes before `today`
/// (the store may hold part of a past day only), oldest first.
fn with_past_days(
    market: Market,
    folded: Vec<Bar>,
    days: Vec<DailyCandle>,
    today: Timestamp,
) -> Vec<Bar> {
    let zone = market.time_zone();
    let start = |day: NaiveDate| {
        zone.from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map(|at| at.with_timezone(&Utc))
    };
    let mut bars: std::collections::BTreeMap<Timestamp, Bar> =
        folded.into_iter().map(|bar| (bar.start, bar)).collect();
    for day in days {
        let Some(at) = start(day.day).filter(|at| *at < today) else {
            continue;
        };
        bars.insert(
            at,
            Bar {
                start: at,
                open: day.open,
                high: day.high,
                low: day.low,
                close: day.close,
                volume: day.volume,
            },
        );
    }
    bars.into_values().collect()
}
