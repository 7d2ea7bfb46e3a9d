//! Consumes triggered alerts from the bus: store (idempotent on the event id), acknowledge to the
//! bus only once stored, then push to the user's open sessions.

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::stream::BoxStream;
use futures::StreamExt;
use signal_domain::ErrorChain;
use signal_ports::{AlertHistoryStore, AlertInbox, AlertRecord, Broadcast, BusError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::announcement::AlertStored;
use crate::metrics::AlertMetrics;
use crate::sessions::SessionHub;

pub async fn run_consumer(
    mut inbox: Box<dyn AlertInbox>,
    history: Arc<dyn AlertHistoryStore>,
    broadcast: Arc<dyn Broadcast>,
    metrics: AlertMetrics,
    running: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let backoff_policy = ExponentialBuilder::default().with_max_delay(Duration::from_secs(10));
    let mut backoff = backoff_policy.build();
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = inbox.next() => next,
        };
        let delivery = match delivery {
            Ok(delivery) => delivery,
            Err(BusError::Closed) => break,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "alert consumer: bus error");
                tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(10))).await;
                continue;
            }
        };
        match history
            .insert_if_absent(&delivery.event, chrono::Utc::now())
            .await
        {
            Ok(stored) => {
                backoff = backoff_policy.build();
                if let Err(e) = delivery.ack.ack().await {
                    // The row is stored; a redelivery will be recognised as a duplicate.
                    tracing::warn!(error = %ErrorChain(&e), "acknowledging a stored alert failed");
                }
                match stored {
                    Some(record) => {
                        metrics.alerts_stored.inc();
                        announce(broadcast.as_ref(), &record).await;
                    }
                    None => metrics.duplicates_ignored.inc(),
                }
            }
            Err(e) => {
                // Not acknowledged: the bus keeps the event and delivers it again.
                let wait = backoff.next().unwrap_or(Duration::from_secs(10));
                tracing::error!(error = %ErrorChain(&e), retry_in = ?wait, event = %delivery.event.event_id, "storing an alert failed");
                drop(delivery);
                tokio::time::sleep(wait).await;
            }
        }
    }
    running.store(false, Ordering::Relaxed);
}

/// Tells every instance (this one included) about a newly stored alert. If that fails the alert
/// is still in history, unacknowledged, and reaches the user when a socket of theirs reconnects.
async fn announce(broadcast: &dyn Broadcast, record: &AlertRecord) {
    let bytes = match serde_json::to_vec(&AlertStored::of(record)) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(error = %ErrorChain(&error), alert = record.id, "cannot encode an alert announcement; it will be replayed on reconnect");
            return;
        }
    };
    if let Err(error) = broadcast.publish(&bytes).await {
        tracing::warn!(error = %ErrorChain(&error), alert = record.id, "live push not announced; it will be replayed on reconnect");
    }
}

/// Pushes every announced alert to the sessions of its user open on this instance, and wakes the
/// delivery workers for its other channels.
pub async fn run_pusher(
    mut announcements: BoxStream<'static, Vec<u8>>,
    hub: Arc<SessionHub>,
    metrics: AlertMetrics,
    stored: tokio::sync::watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = announcements.next() => message,
        };
        let Some(message) = message else { break };
        match AlertStored::decode(&message) {
            Ok(announced) => {
                stored.send_modify(|count| *count = count.wrapping_add(1));
                let triggered_at = announced.triggered_at;
                if hub.push(Arc::new(announced.into_record())) > 0 {
                    let latency = chrono::Utc::now() - triggered_at;
                    metrics
                        .tick_to_push_seconds
                        .observe(latency.num_microseconds().unwrap_or(0) as f64 / 1e6);
                }
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "ignoring an unreadable alert announcement")
            }
        }
    }
}
