//! Backfill: an instrument's history from before this system watched it.
//!
//! The store holds the minute candles the market stage built from the trades it saw. For the
//! spans it did not see (before the system ran, or while nobody followed the instrument) this
//! stage asks the exchange's candle API, through the [`CandleHistory`] port of the source that
//! serves the market, and stores the minutes it gets: the next reader finds them in the store.
//! Past days come from the exchange's daily candles and are kept in memory (the store holds
//! minutes; a past day does not change).
//!
//! - [`Backfill::minute_candles`]: a span's minute candles, its gaps filled first, for a caller
//!   that can wait (an indicator warming up).
//! - [`Backfill::fill_in_background`]: starts filling a span and answers at once whether anything
//!   is still to come, for a chart that shows what the store has and asks again.
//! - [`Backfill::past_days`] and [`Backfill::past_days_in_background`]: daily candles, likewise.
//!
//! Each span is asked of the exchange once per run: a minute without a stored candle that the
//! exchange did not report either had no trades. After a refusal the instrument's exchange rests
//! for a minute, and meanwhile the stored candles are all there is.

use chrono::{NaiveDate, TimeDelta};
use signal_domain::{ErrorChain, InstrumentId, Market, Timestamp};
use signal_ports::{Candle, CandleHistory, CandleStore, DailyCandle, HistoryError, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A run this short without a stored candle is quiet trading, not a gap worth a request.
const MIN_GAP: TimeDelta = TimeDelta::minutes(10);
/// Gaps closer than this are asked as one span: one request instead of two.
const JOIN_GAPS: TimeDelta = TimeDelta::minutes(200);
/// Fetched and stored at a time, newest first, so a long gap fills a chart step by step.
const STEP: TimeDelta = TimeDelta::days(1);
/// How long an instrument's exchange is left alone after it refused.
const REST: Duration = Duration::from_secs(60);

/// A span of minutes, `[start, end)`.
type Span = (Timestamp, Timestamp);

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("cannot read or write the stored candles")]
    Store(#[from] StoreError),
    #[error("cannot get the candle history of {instrument} from the exchange")]
    History {
        instrument: InstrumentId,
        #[source]
        source: HistoryError,
    },
}

/// Fills the store's gaps from the exchanges' candle histories.
pub struct Backfill {
    store: Arc<dyn CandleStore>,
    /// Asked in order; the first that serves a market is its history.
    sources: Vec<Arc<dyn CandleHistory>>,
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    /// The spans already asked of the exchange, per instrument, merged and in order.
    asked: HashMap<InstrumentId, Vec<Span>>,
    days: HashMap<InstrumentId, KnownDays>,
    /// Instruments being filled in the background.
    filling: HashSet<InstrumentId>,
    /// Instruments whose exchange refused, until when it rests.
    resting: HashMap<InstrumentId, Instant>,
}

/// The daily candles fetched for `first..=last`.
struct KnownDays {
    first: NaiveDate,
    last: NaiveDate,
    candles: BTreeMap<NaiveDate, DailyCandle>,
}

impl Backfill {
    pub fn new(store: Arc<dyn CandleStore>, sources: Vec<Arc<dyn CandleHistory>>) -> Self {
        Self {
            store,
            sources,
            memory: Mutex::default(),
        }
    }

    /// The minute candles of `instrument` in `[from, to)`, oldest first: what the store holds,
    /// once the spans it lacked have been fetched from the exchange and stored.
    pub async fn minute_candles(
        &self,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Candle>, BackfillError> {
        self.fill(instrument, from, to).await?;
        Ok(self
            .store
            .candles(instrument, from, to, span_minutes(from, to))
            .await?)
    }

    /// Fetches the minutes of `[from, to)` the store lacks from the exchange and stores them;
    /// how many it stored. The minute now forming is left to the live candles.
    pub async fn fill(
        &self,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<usize, BackfillError> {
        let Some(source) = self.source(instrument.market()) else {
            return Ok(0);
        };
        if self.resting(instrument) {
            return Ok(0);
        }
        let (from, to) = whole_minutes(from, to);
        let stored = self.stored_minutes(instrument, from, to).await?;
        let mut written = 0;
        for (gap_start, gap_end) in self.gaps(instrument, from, to, &stored).into_iter().rev() {
            let mut end = gap_end;
            while end > gap_start {
                let start = (end - STEP).max(gap_start);
                let fetched = match source.minute_candles(instrument, start, end).await {
                    Ok(fetched) => fetched,
                    Err(source) => return Err(self.refused(instrument, source)),
                };
                let lacking: Vec<Candle> = fetched
                    .into_iter()
                    .filter(|c| c.minute >= start && c.minute < end && !stored.contains(&c.minute))
                    .collect();
                self.store.upsert_candles(&lacking).await?;
                written += lacking.len();
                remember(
                    self.memory().asked.entry(instrument.clone()).or_default(),
                    (start, end),
                );
                end = start;
            }
        }
        Ok(written)
    }

    /// Whether the store holds all the exchange can give of `[from, to)`; when it does not, the
    /// filling starts in the background (unless it runs already) and the answer is `false`.
    pub async fn fill_in_background(
        self: &Arc<Self>,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<bool, BackfillError> {
        if self.source(instrument.market()).is_none() || self.resting(instrument) {
            return Ok(true);
        }
        if self.memory().filling.contains(instrument) {
            return Ok(false);
        }
        let (from, to) = whole_minutes(from, to);
        let stored = self.stored_minutes(instrument, from, to).await?;
        if self.gaps(instrument, from, to, &stored).is_empty() {
            return Ok(true);
        }
        let this = self.clone();
        let id = instrument.clone();
        Ok(self.start(instrument, async move {
            this.fill(&id, from, to).await.map(|_| ())
        }))
    }

    /// The exchange's daily candles of `instrument` for the market days `first..=last`, oldest
    /// first, fetched once per run; none when no source serves the market. Meant for days that
    /// are over: a day still trading would be remembered as it was when first asked.
    pub async fn past_days(
        &self,
        instrument: &InstrumentId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DailyCandle>, BackfillError> {
        if let Some(known) = self.known_days(instrument, first, last) {
            return Ok(known);
        }
        let Some(source) = self.source(instrument.market()) else {
            return Ok(Vec::new());
        };
        if self.resting(instrument) {
            return Ok(Vec::new());
        }
        // Asked as one span with what is known already, so memory keeps one span per instrument.
        let (first, last) = match self.memory().days.get(instrument) {
            Some(known) => (first.min(known.first), last.max(known.last)),
            None => (first, last),
        };
        let candles = match source.daily_candles(instrument, first, last).await {
            Ok(candles) => candles,
            Err(source) => return Err(self.refused(instrument, source)),
        };
        let candles: BTreeMap<NaiveDate, DailyCandle> =
            candles.into_iter().map(|c| (c.day, c)).collect();
        let answer = candles.values().cloned().collect();
        self.memory().days.insert(
            instrument.clone(),
            KnownDays {
                first,
                last,
                candles,
            },
        );
        Ok(answer)
    }

    /// The daily candles known for `first..=last`, and whether that is all the exchange can give;
    /// when it is not, they are fetched in the background.
    pub fn past_days_in_background(
        self: &Arc<Self>,
        instrument: &InstrumentId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> (Vec<DailyCandle>, bool) {
        if let Some(known) = self.known_days(instrument, first, last) {
            return (known, true);
        }
        if self.source(instrument.market()).is_none() || self.resting(instrument) {
            return (Vec::new(), true);
        }
        let this = self.clone();
        let id = instrument.clone();
        let complete = self.start(instrument, async move {
            this.past_days(&id, first, last).await.map(|_| ())
        });
        (Vec::new(), complete)
    }

    fn source(&self, market: Market) -> Option<&Arc<dyn CandleHistory>> {
        self.sources.iter().find(|source| source.serves(market))
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        // Every update leaves the memory consistent, so a poisoned lock holds usable data.
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn resting(&self, instrument: &InstrumentId) -> bool {
        let mut memory = self.memory();
        match memory.resting.get(instrument) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                memory.resting.remove(instrument);
                false
            }
            None => false,
        }
    }

    fn refused(&self, instrument: &InstrumentId, source: HistoryError) -> BackfillError {
        self.memory()
            .resting
            .insert(instrument.clone(), Instant::now() + REST);
        BackfillError::History {
            instrument: instrument.clone(),
            source,
        }
    }

    fn known_days(
        &self,
        instrument: &InstrumentId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Option<Vec<DailyCandle>> {
        let memory = self.memory();
        let known = memory.days.get(instrument)?;
        (known.first <= first && last <= known.last).then(|| {
            known
                .candles
                .range(first..=last)
                .map(|(_, c)| c.clone())
                .collect()
        })
    }

    /// Runs `job` for `instrument` in the background unless one runs already; `false`: more is
    /// to come.
    fn start(
        self: &Arc<Self>,
        instrument: &InstrumentId,
        job: impl Future<Output = Result<(), BackfillError>> + Send + 'static,
    ) -> bool {
        if !self.memory().filling.insert(instrument.clone()) {
            return false;
        }
        let this = self.clone();
        let instrument = instrument.clone();
        tokio::spawn(async move {
            if let Err(e) = job.await {
                tracing::warn!(%instrument, error = %ErrorChain(&e), "candle history not filled");
            }
            this.memory().filling.remove(&instrument);
        });
        false
    }

    async fn stored_minutes(
        &self,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<BTreeSet<Timestamp>, StoreError> {
        let stored = self
            .store
            .candles(instrument, from, to, span_minutes(from, to))
            .await?;
        Ok(stored.into_iter().map(|c| c.minute).collect())
    }

    fn gaps(
        &self,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
        stored: &BTreeSet<Timestamp>,
    ) -> Vec<Span> {
        let memory = self.memory();
        let asked = memory.asked.get(instrument).map_or(&[][..], Vec::as_slice);
        gaps(from, to, stored, asked)
    }
}

/// `[from, to)` in whole minutes, ending before the minute now forming.
fn whole_minutes(from: Timestamp, to: Timestamp) -> Span {
    let minute = |at: Timestamp| {
        Timestamp::from_timestamp(at.timestamp().div_euclid(60) * 60, 0).unwrap_or(at)
    };
    (minute(from), minute(to).min(minute(chrono::Utc::now())))
}

fn span_minutes(from: Timestamp, to: Timestamp) -> usize {
    usize::try_from((to - from).num_minutes()).unwrap_or(0) + 1
}

/// Adds `span` to `spans` (in order, not overlapping), merging what touches.
fn remember(spans: &mut Vec<Span>, span: Span) {
    spans.push(span);
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for &(start, end) in spans.iter() {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    *spans = merged;
}

/// The spans of `[from, to)` covered neither by a stored minute nor by an earlier request, at
/// least [`MIN_GAP`] long, with those less than [`JOIN_GAPS`] apart joined; oldest first.
fn gaps(from: Timestamp, to: Timestamp, stored: &BTreeSet<Timestamp>, asked: &[Span]) -> Vec<Span> {
    let mut covered: Vec<Span> = stored
        .iter()
        .map(|&minute| (minute, minute + TimeDelta::minutes(1)))
        .chain(asked.iter().copied())
        .collect();
    covered.sort_unstable();
    let mut open = Vec::new();
    let mut cursor = from;
    for (start, end) in covered {
        if start > cursor {
            open.push((cursor, start.min(to)));
        }
        cursor = cursor.max(end);
        if cursor >= to {
            break;
        }
    }
    if cursor < to {
        open.push((cursor, to));
    }
    let mut joined: Vec<Span> = Vec::new();
    for (start, end) in open.into_iter().filter(|(s, e)| *e - *s >= MIN_GAP) {
        match joined.last_mut() {
            Some(last) if start - last.1 < JOIN_GAPS => last.1 = end,
            _ => joined.push((start, end)),
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn minutes(from: &str, count: i64) -> BTreeSet<Timestamp> {
        (0..count)
            .map(|m| at(from) + TimeDelta::minutes(m))
            .collect()
    }

    #[test]
    fn an_empty_store_lacks_the_whole_span() {
        let (from, to) = (at("2026-03-02T00:00:00Z"), at("2026-03-02T08:00:00Z"));
        assert_eq!(gaps(from, to, &BTreeSet::new(), &[]), vec![(from, to)]);
    }

    #[test]
    fn quiet_minutes_are_not_gaps_and_near_gaps_are_asked_together() {
        let (from, to) = (at("2026-03-02T00:00:00Z"), at("2026-03-02T12:00:00Z"));
        // Stored: 01:00-05:00 with a five-minute pause at 03:00, and 06:00-07:00.
        let mut stored = minutes("2026-03-02T01:00:00Z", 120);
        stored.extend(minutes("2026-03-02T03:05:00Z", 115));
        stored.extend(minutes("2026-03-02T06:00:00Z", 60));
        assert_eq!(
            gaps(from, to, &stored, &[]),
            vec![
                (from, at("2026-03-02T01:00:00Z")),
                // 05:00-06:00 and 07:00-12:00, less than 200 minutes apart, as one.
                (at("2026-03-02T05:00:00Z"), to),
            ]
        );
    }

    #[test]
    fn what_was_asked_is_not_asked_again() {
        let (from, to) = (at("2026-03-02T00:00:00Z"), at("2026-03-02T12:00:00Z"));
        let mut asked = Vec::new();
        remember(&mut asked, (at("2026-03-02T06:00:00Z"), to));
        remember(&mut asked, (from, at("2026-03-02T06:00:00Z")));
        assert_eq!(asked, vec![(from, to)]);
        assert!(gaps(from, to, &BTreeSet::new(), &asked).is_empty());
    }
}
