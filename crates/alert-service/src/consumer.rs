//! Consumes triggered alerts from the bus: store (idempotent on the event id) with the rule's
//! message worded for its owner, acknowledge to the bus only once stored, then push to the
//! user's open sessions (see `push`).

use backon::{BackoffBuilder, ExponentialBuilder};
use signal_channels::ChannelService;
use signal_domain::{ErrorChain, TriggeredAlert};
use signal_ports::{
    micros_since, AlertHistoryStore, AlertInbox, AlertRecord, BusError, StoreError, LATENCY_TARGET,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::AlertMetrics;
use crate::push::Pushes;

/// How long the consumer waits between attempts to store an event while the database fails:
/// short enough that alerts flow again within about a second of its return.
const STORE_RETRY_MAX: Duration = Duration::from_secs(1);
/// How long it waits after the bus itself reports an error.
const BUS_RETRY_MAX: Duration = Duration::from_secs(5);

pub async fn run_consumer(
    mut inbox: Box<dyn AlertInbox>,
    history: Arc<dyn AlertHistoryStore>,
    channels: Arc<ChannelService>,
    pushes: Arc<Pushes>,
    metrics: AlertMetrics,
    running: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let bus_retry = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(BUS_RETRY_MAX)
        .without_max_times();
    let mut bus_backoff = bus_retry.build();
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = inbox.next() => next,
        };
        let delivery = match delivery {
            Ok(delivery) => delivery,
            Err(BusError::Closed) => break,
            Err(e) => {
                let wait = bus_backoff.next().unwrap_or(BUS_RETRY_MAX);
                tracing::warn!(error = %ErrorChain(&e), retry_in = ?wait, "alert consumer: bus error");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
        };
        bus_backoff = bus_retry.build();
        // Only a stored event is acknowledged, and the next one is read only after this one is
        // stored: acknowledging a later event would commit the bus's position past this one.
        // The history insert; `fired_us`: how long ago the alert fired when it got here.
        let storing = tracing::debug_span!(
            target: LATENCY_TARGET,
            "alert.store",
            fired_us = micros_since(delivery.event.triggered_at),
        );
        let stored = store(history.as_ref(), &channels, &delivery.event, &shutdown)
            .instrument(storing)
            .await;
        let Some(stored) = stored else {
            // Stopping: the event is not acknowledged, so the bus delivers it again.
            break;
        };
        if let Err(e) = delivery.ack.ack().await {
            // The row is stored; a redelivery will be recognised as a duplicate.
            tracing::warn!(error = %ErrorChain(&e), "acknowledging a stored alert failed");
        }
        match stored {
            Stored::New(record) => {
                metrics.alerts_stored.inc();
                pushes.stored(*record);
            }
            Stored::Already => metrics.duplicates_ignored.inc(),
        }
    }
    running.store(false, Ordering::Relaxed);
    // Closing a Kafka consumer waits on its broker, which may be gone: never on a worker thread.
    tokio::task::spawn_blocking(move || drop(inbox));
}

/// Stores the event once, its rule's message rendered in the owner's current language and time
/// zone.
async fn store_once(
    history: &dyn AlertHistoryStore,
    channels: &ChannelService,
    event: &TriggeredAlert,
) -> Result<Option<AlertRecord>, StoreError> {
    let message = channels.rule_message(event).await?;
    let render = move |record: &AlertRecord| message.as_ref().map(|message| message.render(record));
    history
        .insert_if_absent(event, &render, chrono::Utc::now())
        .await
}

/// What became of a delivered event.
enum Stored {
    /// Stored now, as this record.
    New(Box<AlertRecord>),
    /// In history already: a redelivery.
    Already,
}

/// Stores the delivered event in history, retrying with back-off for as long as the database
/// fails; None when the service stops first.
async fn store(
    history: &dyn AlertHistoryStore,
    channels: &ChannelService,
    event: &TriggeredAlert,
    shutdown: &CancellationToken,
) -> Option<Stored> {
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(STORE_RETRY_MAX)
        .without_max_times()
        .build();
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return None,
            attempt = store_once(history, channels, event) => attempt,
        };
        match attempt {
            Ok(Some(record)) => return Some(Stored::New(Box::new(record))),
            Ok(None) => return Some(Stored::Already),
            Err(e) => {
                let wait = backoff.next().unwrap_or(STORE_RETRY_MAX);
                tracing::error!(error = %ErrorChain(&e), retry_in = ?wait, event = %event.event_id, "storing an alert failed; retrying it");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}
