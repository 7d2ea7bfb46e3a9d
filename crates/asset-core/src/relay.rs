//! The outbox relay: publishes events the pipeline stored and marks them sent. An event leaves the
//! outbox only after the bus has taken it durably, so a bus outage delays alerts but loses none.

use backon::{BackoffBuilder, ExponentialBuilder};
use signal_domain::ErrorChain;
use signal_ports::{AlertPublisher, BusError, RuleStore, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::AssetMetrics;

const BATCH: usize = 256;
/// Also poll now and then: a notification can be missed across a restart of the relay.
const IDLE_POLL: Duration = Duration::from_secs(2);

pub async fn run_relay(
    store: Arc<dyn RuleStore>,
    publisher: Arc<dyn AlertPublisher>,
    ready: Arc<Notify>,
    metrics: AssetMetrics,
    shutdown: CancellationToken,
) {
    let backoff_policy = ExponentialBuilder::default().with_max_delay(Duration::from_secs(30));
    let mut backoff = backoff_policy.build();
    loop {
        match relay_batch(store.as_ref(), publisher.as_ref(), &metrics).await {
            Ok(sent) => {
                backoff = backoff_policy.build();
                if sent > 0 && !shutdown.is_cancelled() {
                    continue;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ready.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
            Err(error) => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(30));
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

/// Why a batch did not go out.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("the outbox cannot be read or updated")]
    Store(#[from] StoreError),
    #[error("the bus did not take the events")]
    Bus(#[from] BusError),
}

/// Publishes one batch; returns how many events went out.
async fn relay_batch(
    store: &dyn RuleStore,
    publisher: &dyn AlertPublisher,
    metrics: &AssetMetrics,
) -> Result<usize, RelayError> {
    let pending = store.pending_outbox(BATCH).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let events: Vec<_> = pending.iter().map(|entry| entry.event.clone()).collect();
    publisher.publish(&events).await?;
    let ids: Vec<i64> = pending.iter().map(|entry| entry.id).collect();
    // If this fails the events are published again later; the consumer deduplicates them.
    store.mark_outbox_sent(&ids, chrono::Utc::now()).await?;
    metrics.outbox_published.inc_by(ids.len() as u64);
    Ok(ids.len())
}
