//! Consumes triggered alerts from the bus: store (idempotent on the event id), acknowledge to the
//! bus only once stored, then push to the user's open sessions.

use backon::{BackoffBuilder, ExponentialBuilder};
use signal_ports::{AlertHistoryStore, AlertInbox, BusError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::metrics::AlertMetrics;
use crate::sessions::SessionHub;

pub async fn run_consumer(
    mut inbox: Box<dyn AlertInbox>,
    history: Arc<dyn AlertHistoryStore>,
    hub: Arc<SessionHub>,
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
                tracing::warn!(error = %e, "alert consumer: bus error");
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
                    tracing::warn!(error = %e, "acknowledging a stored alert failed");
                }
                match stored {
                    Some(record) => {
                        metrics.alerts_stored.inc();
                        let record = Arc::new(record);
                        hub.push(record.clone());
                        let latency = chrono::Utc::now() - record.triggered_at;
                        metrics
                            .tick_to_push_seconds
                            .observe(latency.num_microseconds().unwrap_or(0) as f64 / 1e6);
                    }
                    None => metrics.duplicates_ignored.inc(),
                }
            }
            Err(e) => {
                // Not acknowledged: the bus keeps the event and delivers it again.
                let wait = backoff.next().unwrap_or(Duration::from_secs(10));
                tracing::error!(error = %e, retry_in = ?wait, event = %delivery.event.event_id, "storing an alert failed");
                drop(delivery);
                tokio::time::sleep(wait).await;
            }
        }
    }
    running.store(false, Ordering::Relaxed);
}
