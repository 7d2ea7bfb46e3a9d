//! Live push of stored alerts to every open socket of their user, on whichever instance holds
//! it. This instance's own sockets get an alert straight from the consumer; the other instances
//! hear of it through the broadcast channel (Redis in production). That channel may be away: an
//! announcement then waits in a bounded queue and is sent again until it goes through, and
//! nothing else waits for it, neither the consumer nor this instance's sockets.

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::stream::BoxStream;
use futures::StreamExt;
use signal_domain::ErrorChain;
use signal_ports::{AlertRecord, Broadcast};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::announcement::AlertStored;
use crate::metrics::AlertMetrics;
use crate::sessions::SessionHub;

/// Announcements waiting for the broadcast channel. Past this many, new ones are dropped: their
/// alerts are stored and unacknowledged, so a socket on another instance gets them when it
/// reconnects.
const PENDING_ANNOUNCEMENTS: usize = 10_000;
/// The longest pause between two attempts to send an announcement.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Delivers alerts to this instance's sockets and queues their announcements for the others.
pub struct Pushes {
    instance: Uuid,
    hub: Arc<SessionHub>,
    metrics: AlertMetrics,
    /// Bumped for every alert stored by any instance, so the delivery workers of the other
    /// channels look for its deliveries at once.
    stored: watch::Sender<u64>,
    outgoing: mpsc::Sender<AlertStored>,
}

impl Pushes {
    /// Returns the pushes and the queue of announcements for [`run_announcer`].
    pub fn new(
        hub: Arc<SessionHub>,
        metrics: AlertMetrics,
        stored: watch::Sender<u64>,
    ) -> (Arc<Self>, AnnouncementQueue) {
        let (outgoing, queue) = mpsc::channel(PENDING_ANNOUNCEMENTS);
        let pushes = Pushes {
            instance: Uuid::new_v4(),
            hub,
            metrics,
            stored,
            outgoing,
        };
        (Arc::new(pushes), AnnouncementQueue(queue))
    }

    /// A newly stored alert: to this instance's sessions of its user now, and to the other
    /// instances' as soon as the broadcast channel takes it.
    pub fn stored(&self, alert: AlertRecord) {
        let announcement = AlertStored::of(self.instance, &alert);
        self.deliver(Arc::new(alert));
        match self.outgoing.try_send(announcement) {
            Ok(()) => self.metrics.announcements_pending.inc(),
            Err(mpsc::error::TrySendError::Full(dropped)) => {
                self.metrics.announcements_dropped.inc();
                tracing::warn!(
                    alert = dropped.id,
                    "too many alerts waiting to be announced to other instances; this one will \
                     reach their sockets when they reconnect"
                );
            }
            // The announcer has stopped: the service is stopping.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn deliver(&self, alert: Arc<AlertRecord>) {
        self.stored
            .send_modify(|count| *count = count.wrapping_add(1));
        let triggered_at = alert.triggered_at;
        if self.hub.push(alert) > 0 {
            let latency = chrono::Utc::now() - triggered_at;
            self.metrics
                .tick_to_push_seconds
                .observe(latency.num_microseconds().unwrap_or(0) as f64 / 1e6);
        }
    }
}

/// Announcements on their way to the broadcast channel.
pub struct AnnouncementQueue(mpsc::Receiver<AlertStored>);

/// Sends queued announcements in order, each until the broadcast channel takes it.
pub async fn run_announcer(
    mut queue: AnnouncementQueue,
    broadcast: Arc<dyn Broadcast>,
    metrics: AlertMetrics,
    shutdown: CancellationToken,
) {
    let retry = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(RETRY_MAX)
        .without_max_times();
    loop {
        let announcement = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = queue.0.recv() => match next {
                Some(announcement) => announcement,
                None => return,
            },
        };
        let message = match serde_json::to_vec(&announcement) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%error, alert = announcement.id, "cannot encode an alert announcement");
                metrics.announcements_pending.dec();
                continue;
            }
        };
        let mut delays = retry.build();
        while let Err(error) = broadcast.publish(&message).await {
            let wait = delays.next().unwrap_or(RETRY_MAX);
            tracing::warn!(
                error = %error,
                alert = announcement.id,
                retry_in = ?wait,
                "live push not announced to other instances yet; retrying"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        metrics.announcements_pending.dec();
    }
}

/// Pushes the alerts other instances announce to the sessions of their user open here.
pub async fn run_listener(
    mut announcements: BoxStream<'static, Vec<u8>>,
    pushes: Arc<Pushes>,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = announcements.next() => message,
        };
        let Some(message) = message else { break };
        match AlertStored::decode(&message) {
            // This instance's own: its sessions have it already.
            Ok(announcement) if announcement.origin == Some(pushes.instance) => {}
            Ok(announcement) => pushes.deliver(Arc::new(announcement.into_record())),
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "ignoring an unreadable alert announcement")
            }
        }
    }
}
