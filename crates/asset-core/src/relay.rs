//! The outbox relay, the last stage: publishes the events the engine stored and marks them sent.
//! An event leaves the outbox only after the bus has taken it durably, so a bus outage delays
//! alerts but loses none. An event that can never be published (its stored form cannot be read,
//! or the bus refuses it as invalid) is set aside as a dead letter with its reason, logged and
//! counted, and the relay goes on with the next: one bad row must not stop every alert. Sent
//! events are deleted after a retention, in batches.

use backon::{BackoffBuilder, ExponentialBuilder};
use signal_domain::{ErrorChain, TriggeredAlert};
use signal_ports::{
    micros_since, AlertPublisher, BusError, OutboxStore, StoreError, LATENCY_TARGET,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::AssetMetrics;

const BATCH: usize = 256;
/// Also poll now and then: a notification can be missed across a restart of the relay.
const IDLE_POLL: Duration = Duration::from_secs(2);
/// How often sent events past their retention are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// Sent events deleted per statement, so a large backlog never holds the table long.
const DELETE_BATCH: usize = 1_000;
/// The longest pause between attempts while the bus or the store fails.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// How often the relay's lag (pending events, the age of the oldest) is measured.
const LAG_EVERY: Duration = Duration::from_secs(1);
/// The relay counts as behind once its oldest pending event is this old: with the bus up it
/// publishes within milliseconds of the engine storing.
const BEHIND_AFTER: Duration = Duration::from_secs(5);
/// While it stays behind, it says so this often.
const BEHIND_LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a batch did not go out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelayError {
    #[error("the outbox cannot be read or updated")]
    Store(#[from] StoreError),
    #[error("the bus did not take the events")]
    Bus(#[from] BusError),
}

pub(crate) struct Relay {
    pub outbox: Arc<dyn OutboxStore>,
    pub publisher: Arc<dyn AlertPublisher>,
    pub metrics: AssetMetrics,
    /// How far back events are published again when the bus lost what it had acknowledged.
    pub resend_window: Duration,
}

impl Relay {
    /// Publishes until `shutdown`, woken by `ready` whenever the engine stored events.
    pub(crate) async fn run(self, ready: Arc<Notify>, shutdown: CancellationToken) {
        // Short pauses, so events flow again within a couple of seconds of the bus's return.
        let backoff_policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(RETRY_MAX);
        let mut backoff = backoff_policy.build();
        // The bus lost events it had acknowledged, and they are not back in line yet.
        let mut resend_due = false;
        loop {
            resend_due |= self.publisher.take_lost_acknowledged();
            let attempt = if resend_due {
                self.resend_recent().await.map(|()| {
                    resend_due = false;
                    // Go on at once with what is back in line.
                    true
                })
            } else {
                self.relay_batch().await.map(|handled| handled > 0)
            };
            match attempt {
                Ok(progressed) => {
                    backoff = backoff_policy.build();
                    if progressed && !shutdown.is_cancelled() {
                        continue;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = ready.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
                Err(error) => {
                    let wait = backoff.next().unwrap_or(RETRY_MAX);
                    tracing::warn!(error = %ErrorChain(&error), retry_in = ?wait, "outbox relay could not publish; events stay pending");
                    // New events must not cut the back-off short while the bus is down.
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Puts what was sent within the resend window back in line: the bus no longer holds some
    /// of it, and cannot say which. The consumers keep one of each event.
    async fn resend_recent(&self) -> Result<(), RelayError> {
        let window =
            chrono::Duration::from_std(self.resend_window).unwrap_or(chrono::Duration::MAX);
        let since = chrono::Utc::now()
            .checked_sub_signed(window)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let requeued = self.outbox.resend_sent_since(since).await?;
        tracing::warn!(
            requeued,
            window = ?self.resend_window,
            "the bus lost events it had acknowledged; publishing again what was sent within the window"
        );
        self.metrics.outbox_resent.inc_by(requeued);
        Ok(())
    }

    /// Publishes one batch in order; returns how many events left the pending set (sent or set
    /// aside).
    pub(crate) async fn relay_batch(&self) -> Result<usize, RelayError> {
        let pending = self
            .outbox
            .pending_outbox(BATCH)
            .instrument(tracing::debug_span!(target: LATENCY_TARGET, "relay.read"))
            .await?;
        let mut handled = 0;
        let mut ids = Vec::with_capacity(pending.len());
        let mut events: Vec<TriggeredAlert> = Vec::with_capacity(pending.len());
        for entry in pending {
            match entry.event {
                Ok(event) => {
                    ids.push(entry.id);
                    events.push(event);
                }
                Err(unreadable) => {
                    let reason = ErrorChain(&unreadable).to_string();
                    self.set_aside(entry.id, reason).await?;
                    handled += 1;
                }
            }
        }
        if events.is_empty() {
            return Ok(handled);
        }
        // `fired_us`: how long ago the first of them fired, i.e. the engine's write and the
        // relay's wake-up and read. In process, publishing includes the Alert Service's storing.
        let publishing = tracing::debug_span!(
            target: LATENCY_TARGET,
            "bus.publish",
            events = events.len(),
            fired_us = micros_since(events[0].triggered_at),
        );
        // If marking fails the events are published again later; the consumer deduplicates.
        match self.publisher.publish(&events).instrument(publishing).await {
            Ok(()) => {
                self.mark_sent(&ids).await?;
                Ok(handled + ids.len())
            }
            Err(BusError::Refused { index, source }) if index < ids.len() => {
                self.mark_sent(&ids[..index]).await?;
                let reason = ErrorChain(source.as_ref()).to_string();
                self.set_aside(ids[index], reason).await?;
                // The events after it go out with the next batch.
                Ok(handled + index + 1)
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn mark_sent(&self, ids: &[i64]) -> Result<(), StoreError> {
        self.outbox
            .mark_outbox_sent(ids, chrono::Utc::now())
            .instrument(tracing::debug_span!(target: LATENCY_TARGET, "relay.mark_sent"))
            .await?;
        self.metrics.outbox_published.inc_by(ids.len() as u64);
        Ok(())
    }

    /// Makes the event a dead letter: it can never be published, and must not hold up the others.
    async fn set_aside(&self, id: i64, reason: String) -> Result<(), StoreError> {
        tracing::error!(outbox_id = id, %reason, "an outbox event can never be published; it is now a dead letter");
        self.outbox
            .dead_letter(id, &reason, chrono::Utc::now())
            .await?;
        self.metrics.outbox_dead_lettered.inc();
        Ok(())
    }
}

/// Every [`LAG_EVERY`], measures how far behind the relay is, for the metrics, and logs it while
/// the oldest pending event is older than [`BEHIND_AFTER`].
pub(crate) async fn watch_lag(
    outbox: Arc<dyn OutboxStore>,
    metrics: AssetMetrics,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(LAG_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_said: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        // The relay reports a failing store itself; the figures stay as last measured.
        let Ok(lag) = outbox.outbox_lag().await else {
            continue;
        };
        let age = lag
            .oldest
            .and_then(|oldest| (chrono::Utc::now() - oldest).to_std().ok())
            .unwrap_or_default();
        metrics
            .outbox_pending
            .set(i64::try_from(lag.pending).unwrap_or(i64::MAX));
        metrics.outbox_oldest_pending_seconds.set(age.as_secs_f64());
        if age >= BEHIND_AFTER {
            if last_said.is_none_or(|at| at.elapsed() >= BEHIND_LOG_EVERY) {
                tracing::warn!(pending = lag.pending, oldest_pending = ?age, "the outbox relay is behind");
                last_said = Some(tokio::time::Instant::now());
            }
        } else if last_said.take().is_some() {
            tracing::info!(pending = lag.pending, "the outbox relay caught up");
        }
    }
}

/// Every [`SWEEP_EVERY`], deletes the events sent more than `retention` ago, a batch at a time.
pub(crate) async fn delete_sent_periodically(
    outbox: Arc<dyn OutboxStore>,
    retention: Duration,
    metrics: AssetMetrics,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let before = chrono::Utc::now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        if let Err(error) = delete_sent(outbox.as_ref(), before, &metrics, &shutdown).await {
            tracing::warn!(error = %ErrorChain(&error), "deleting sent outbox events failed; trying again later");
        }
    }
}

/// Deletes every event sent before `before`, in batches; returns how many went.
pub(crate) async fn delete_sent(
    outbox: &dyn OutboxStore,
    before: signal_domain::Timestamp,
    metrics: &AssetMetrics,
    shutdown: &CancellationToken,
) -> Result<u64, StoreError> {
    let mut total = 0;
    while !shutdown.is_cancelled() {
        let deleted = outbox.delete_sent(before, DELETE_BATCH).await?;
        total += deleted;
        metrics.outbox_deleted.inc_by(deleted);
        if deleted < DELETE_BATCH as u64 {
            break;
        }
        // Other statements get their turn between batches.
        tokio::task::yield_now().await;
    }
    if total > 0 {
        tracing::info!(
            deleted = total,
            "deleted sent outbox events past their retention"
        );
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
