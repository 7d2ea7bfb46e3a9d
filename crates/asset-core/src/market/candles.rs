//! Minute candles (OHLCV per instrument and UTC minute of the exchange time), built from the same
//! ticks the trigger engine sees and written to the store in batches.
//!
//! The pipeline only offers each tick to a bounded queue and never waits: when the aggregator
//! falls behind, ticks are dropped from the candles (and counted), not delayed on their way to
//! the engine. Writing happens in a task of its own, so a slow or failing database does not stop
//! aggregation either; the aggregator keeps what it could not hand over and sends it later.
//!
//! Each write carries the whole candle as the aggregator knows it, partial ones included, and
//! replaces the stored row: decimal text does not compare numerically in SQL, so the highs and
//! lows are decided here. A restarted instance therefore rewrites the minute it restarted in with
//! only the ticks it saw itself.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use rust_decimal::Decimal;
use signal_domain::ErrorChain;
use signal_domain::{InstrumentId, Price, Tick, Timestamp};
use signal_ports::{Candle, CandleStore};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Trades waiting for the aggregator; it only folds each into a map, so this absorbs bursts.
const TRADE_QUEUE: usize = 65_536;
/// How stale a stored candle may be.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Completed candles kept while the store is failing. Beyond this the oldest go: a long outage
/// must not take the service's memory with it.
const MAX_BACKLOG: usize = 200_000;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct CandleMetrics {
    ticks_dropped: IntCounterVec,
    written: IntCounter,
    lost: IntCounter,
}

impl CandleMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            ticks_dropped: IntCounterVec::new(
                Opts::new(
                    "signal_candle_ticks_dropped_total",
                    "Ticks left out of the minute candles",
                ),
                &["reason"],
            )?,
            written: IntCounter::new(
                "signal_candles_written_total",
                "Candle rows written to the store (a partial candle counts each time)",
            )?,
            lost: IntCounter::new(
                "signal_candles_lost_total",
                "Candles given up on because the store kept failing",
            )?,
        };
        registry.register(Box::new(metrics.ticks_dropped.clone()))?;
        registry.register(Box::new(metrics.written.clone()))?;
        registry.register(Box::new(metrics.lost.clone()))?;
        Ok(metrics)
    }
}

/// What a candle needs of a tick.
struct Trade {
    instrument: InstrumentId,
    price: Price,
    volume: Decimal,
    at: Timestamp,
}

/// The pipeline's end of the aggregator.
pub struct CandleSink {
    trades: mpsc::Sender<Trade>,
    queue_full: IntCounter,
}

impl CandleSink {
    /// Hands the tick over without waiting; a full queue drops it (and counts it).
    pub fn offer(&self, tick: &Tick) {
        let trade = Trade {
            instrument: tick.instrument.clone(),
            price: tick.price,
            volume: tick.trade_volume.unwrap_or_default(),
            at: tick.exchange_time,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.trades.try_send(trade) {
            self.queue_full.inc();
        }
    }
}

/// Starts the aggregator and its writer; the task ends after a last write once `shutdown` fires.
pub fn start(
    store: Arc<dyn CandleStore>,
    registry: &Registry,
    shutdown: CancellationToken,
) -> prometheus::Result<(CandleSink, JoinHandle<()>)> {
    let metrics = CandleMetrics::register(registry)?;
    let (trades, queue) = mpsc::channel(TRADE_QUEUE);
    // One batch waiting while another is written: batches reach the store in order, and a
    // partial candle is never overwritten by an older copy of itself.
    let (batches, pending) = mpsc::channel(1);
    let sink = CandleSink {
        trades,
        queue_full: metrics.ticks_dropped.with_label_values(&["queue_full"]),
    };
    let aggregator = Aggregator {
        open: HashMap::new(),
        completed: VecDeque::new(),
        metrics: metrics.clone(),
    };
    let task = tokio::spawn(async move {
        tokio::join!(
            aggregator.run(queue, batches, shutdown.clone()),
            write_batches(store, pending, metrics, shutdown),
        );
    });
    Ok((sink, task))
}

/// The candle of the current minute of one instrument.
struct OpenCandle {
    candle: Candle,
    /// Changed since it was last handed to the writer.
    dirty: bool,
}

struct Aggregator {
    open: HashMap<InstrumentId, OpenCandle>,
    /// Finished minutes not yet handed to the writer, oldest first.
    completed: VecDeque<Candle>,
    metrics: CandleMetrics,
}

/// The start of the UTC minute `at` falls in.
fn minute_of(at: Timestamp) -> Option<Timestamp> {
    use chrono::Timelike;
    at.with_second(0)?.with_nanosecond(0)
}

fn first_candle(trade: Trade, minute: Timestamp) -> Candle {
    Candle {
        instrument: trade.instrument,
        minute,
        open: trade.price,
        high: trade.price,
        low: trade.price,
        close: trade.price,
        volume: trade.volume,
        trades: 1,
    }
}

impl Aggregator {
    async fn run(
        mut self,
        mut queue: mpsc::Receiver<Trade>,
        batches: mpsc::Sender<Vec<Candle>>,
        shutdown: CancellationToken,
    ) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                trade = queue.recv() => match trade {
                    Some(trade) => self.add(trade),
                    // The pipeline has stopped.
                    None => break,
                },
                _ = flush.tick() => {
                    // A busy writer keeps the candles here, to go with the next batch.
                    if let Ok(slot) = batches.try_reserve() {
                        let batch = self.take_batch();
                        if !batch.is_empty() {
                            slot.send(batch);
                        }
                    }
                }
            }
        }
        while let Ok(trade) = queue.try_recv() {
            self.add(trade);
        }
        let batch = self.take_batch();
        if !batch.is_empty() {
            // The writer is draining too; waiting for its slot is brief.
            let _ = batches.send(batch).await;
        }
    }

    fn add(&mut self, trade: Trade) {
        let Some(minute) = minute_of(trade.at) else {
            return;
        };
        let Some(open) = self.open.get_mut(&trade.instrument) else {
            let candle = first_candle(trade, minute);
            self.open.insert(
                candle.instrument.clone(),
                OpenCandle {
                    candle,
                    dirty: true,
                },
            );
            return;
        };
        let current = &mut open.candle;
        if minute < current.minute {
            // Its minute may already be stored whole; a candle of this one trade would replace it.
            self.metrics
                .ticks_dropped
                .with_label_values(&["late"])
                .inc();
            return;
        }
        if minute > current.minute {
            let done = std::mem::replace(current, first_candle(trade, minute));
            open.dirty = true;
            self.complete(done);
            return;
        }
        current.high = current.high.max(trade.price);
        current.low = current.low.min(trade.price);
        current.close = trade.price;
        // Past Decimal's range the sum stops growing rather than panicking on a feed's numbers.
        current.volume = current
            .volume
            .checked_add(trade.volume)
            .unwrap_or(current.volume);
        current.trades = current.trades.saturating_add(1);
        open.dirty = true;
    }

    fn complete(&mut self, candle: Candle) {
        self.completed.push_back(candle);
        if self.completed.len() > MAX_BACKLOG {
            self.completed.pop_front();
            self.metrics.lost.inc();
        }
    }

    /// Completed candles, then every open candle that changed since the last batch.
    fn take_batch(&mut self) -> Vec<Candle> {
        let mut batch: Vec<Candle> = self.completed.drain(..).collect();
        for open in self.open.values_mut().filter(|open| open.dirty) {
            open.dirty = false;
            batch.push(open.candle.clone());
        }
        batch
    }
}

/// Writes each batch, retrying until it is stored: a later batch may hold only the minutes that
/// changed since, so dropping one would leave gaps. After shutdown a batch gets one more try.
async fn write_batches(
    store: Arc<dyn CandleStore>,
    mut pending: mpsc::Receiver<Vec<Candle>>,
    metrics: CandleMetrics,
    shutdown: CancellationToken,
) {
    while let Some(batch) = pending.recv().await {
        let mut wait = Duration::from_millis(200);
        loop {
            match store.upsert_candles(&batch).await {
                Ok(()) => {
                    metrics.written.inc_by(batch.len() as u64);
                    break;
                }
                Err(e) if shutdown.is_cancelled() => {
                    tracing::error!(error = %ErrorChain(&e), candles = batch.len(), "candles lost at shutdown");
                    metrics.lost.inc_by(batch.len() as u64);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), retry_in = ?wait, "writing candles failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    wait = (wait * 2).min(MAX_RETRY_WAIT);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn trade(price: &str, volume: u32, at: Timestamp) -> Trade {
        Trade {
            instrument: "KRX:005930".parse().unwrap(),
            price: price.parse().unwrap(),
            volume: volume.into(),
            at,
        }
    }

    fn aggregator() -> Aggregator {
        Aggregator {
            open: HashMap::new(),
            completed: VecDeque::new(),
            metrics: CandleMetrics::register(&Registry::new()).unwrap(),
        }
    }

    #[test]
    fn a_later_minute_completes_the_candle_and_partials_are_sent_once_per_change() {
        let at = |m: u32, s: u32| chrono::Utc.with_ymd_and_hms(2026, 1, 5, 9, m, s).unwrap();
        let mut candles = aggregator();
        candles.add(trade("100.5", 2, at(1, 0)));
        candles.add(trade("102", 1, at(1, 20)));
        candles.add(trade("99.25", 3, at(1, 59)));
        candles.add(trade("101", 1, at(1, 30)));

        let partial = candles.take_batch();
        assert_eq!(partial.len(), 1);
        assert_eq!(partial[0].minute, at(1, 0));
        assert_eq!(partial[0].open.to_string(), "100.5");
        assert_eq!(partial[0].high.to_string(), "102");
        assert_eq!(partial[0].low.to_string(), "99.25");
        assert_eq!(partial[0].close.to_string(), "101");
        assert_eq!(partial[0].volume, Decimal::from(7));
        assert_eq!(partial[0].trades, 4);
        assert!(
            candles.take_batch().is_empty(),
            "unchanged: nothing to write"
        );

        candles.add(trade("103", 1, at(2, 5)));
        candles.add(trade("90", 1, at(1, 58)));
        let batch = candles.take_batch();
        assert_eq!(batch.len(), 2);
        assert_eq!((batch[0].minute, batch[0].trades), (at(1, 0), 4));
        assert_eq!(batch[1].minute, at(2, 0));
        assert_eq!(batch[1].open.to_string(), "103");
        assert_eq!(
            candles
                .metrics
                .ticks_dropped
                .with_label_values(&["late"])
                .get(),
            1
        );
    }
}
