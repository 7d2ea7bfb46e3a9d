//! The delivery workers: one per channel kind, each with its own concurrency, so a slow or failing
//! kind never holds up another (and none of them holds up the sockets, which never wait on a
//! delivery). A worker claims channels with due deliveries (exclusively, across instances), works
//! through each channel's deliveries in one task, keeps its claim alive while it works, and
//! records every attempt. A worker that dies stops renewing its claims, and another instance
//! takes them over when they lapse: the receiver may then see a message twice, with the same id.

use futures::FutureExt;
use signal_catalog::Catalog;
use signal_domain::{ErrorChain, Timestamp};
use signal_ports::{
    AlertHistoryStore, ChannelKind, ChannelRecord, ChannelState, ChannelStore, DeliveryOutcome,
    DeliveryRecord, DeliveryStore, StoreError, UserSettings,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::message::{AlertNotice, Content, Locale, Notification};
use crate::metrics::DeliveryMetrics;
use crate::schedule::RetrySchedule;
use crate::sender::{self, ChannelSender, SendError};
use crate::storm;

/// How the workers run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How long a claim hides its deliveries from other workers; renewed while they are worked
    /// on, so it only bounds how long a crashed worker's deliveries wait.
    pub lease: Duration,
    /// How often an idle worker looks for due deliveries (it is also woken when alerts arrive).
    pub poll: Duration,
    pub schedule: RetrySchedule,
    /// Channels of one kind worked on at once, per instance.
    pub concurrency: usize,
    /// The web app's address, for links in messages.
    pub app_url: String,
    /// The window the per-channel cap counts messages over.
    pub cap_window: chrono::Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            schedule: RetrySchedule::default(),
            concurrency: 16,
            app_url: "http://localhost:8080".into(),
            cap_window: storm::WINDOW,
        }
    }
}

/// What the workers read and write.
#[derive(Clone)]
pub struct WorkerDeps {
    pub channels: Arc<dyn ChannelStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub history: Arc<dyn AlertHistoryStore>,
    pub catalog: Arc<Catalog>,
    pub metrics: DeliveryMetrics,
    /// Changes when new alerts (and so new deliveries) are stored.
    pub wake: watch::Receiver<u64>,
}

/// Starts one worker per sender.
pub fn spawn(
    deps: WorkerDeps,
    senders: Vec<Arc<dyn ChannelSender>>,
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    senders
        .into_iter()
        .map(|sender| {
            let worker = Arc::new(KindWorker {
                deps: deps.clone(),
                sender,
                config: config.clone(),
            });
            tokio::spawn(worker.run(shutdown.clone()))
        })
        .collect()
}

struct KindWorker {
    deps: WorkerDeps,
    sender: Arc<dyn ChannelSender>,
    config: WorkerConfig,
}

impl KindWorker {
    fn kind(&self) -> ChannelKind {
        self.sender.kind()
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut wake = self.deps.wake.clone();
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    permit = slots.acquire() => drop(permit),
                }
                continue;
            }
            let now = chrono::Utc::now();
            let claimed = self
                .deps
                .deliveries
                .claim_due(self.kind(), now, lease_end(now, self.config.lease), free)
                .await;
            let idle = match claimed {
                Ok(claimed) => {
                    failures = 0;
                    let idle = claimed.is_empty();
                    self.dispatch(claimed, &slots).await;
                    idle
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(channel = %self.kind(), error = %ErrorChain(&e), "claiming deliveries failed");
                    true
                }
            };
            if idle {
                let pause = self.config.poll * failures.clamp(1, 20);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = woken(&mut wake) => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
        // Let the channels in flight finish their attempt, so it is recorded.
        let _ = tokio::time::timeout(
            self.config.lease,
            slots.acquire_many(u32::try_from(self.config.concurrency.max(1)).unwrap_or(1)),
        )
        .await;
    }

    /// Hands each claimed channel's deliveries to a task of its own; the claim is given back
    /// when the task is done, or lapses if it fails.
    async fn dispatch(self: &Arc<Self>, claimed: Vec<DeliveryRecord>, slots: &Arc<Semaphore>) {
        let mut by_channel: BTreeMap<i64, Vec<DeliveryRecord>> = BTreeMap::new();
        for delivery in claimed {
            by_channel
                .entry(delivery.channel_id)
                .or_default()
                .push(delivery);
        }
        for (channel_id, deliveries) in by_channel {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                // Not expected (a claim takes at most as many channels as there are free
                // slots); give the channel back rather than hold it idle.
                self.release(channel_id).await;
                continue;
            };
            let worker = self.clone();
            tokio::spawn(async move {
                let work =
                    std::panic::AssertUnwindSafe(worker.work_channel(channel_id, deliveries));
                tokio::select! {
                    result = work.catch_unwind() => match result {
                        Ok(Ok(())) => worker.release(channel_id).await,
                        Ok(Err(e)) => tracing::warn!(channel_id, error = %ErrorChain(&e), "delivering to a channel failed; it is tried again when its claim lapses"),
                        Err(_) => tracing::error!(channel_id, "delivering to a channel panicked; it is tried again when its claim lapses"),
                    },
                    _ = worker.renew_claim(channel_id) => {}
                }
                drop(permit);
            });
        }
    }

    async fn release(&self, channel_id: i64) {
        if let Err(e) = self.deps.deliveries.release_claim(&[channel_id]).await {
            tracing::warn!(channel_id, error = %ErrorChain(&e), "releasing a channel claim failed; it lapses by itself");
        }
    }

    /// Keeps the claim on a channel alive while it is worked on (never returns).
    async fn renew_claim(&self, channel_id: i64) {
        let every = self.config.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let now = chrono::Utc::now();
            if let Err(e) = self
                .deps
                .deliveries
                .extend_claim(&[channel_id], lease_end(now, self.config.lease))
                .await
            {
                tracing::warn!(channel_id, error = %ErrorChain(&e), "renewing a channel claim failed");
            }
        }
    }

    async fn work_channel(
        &self,
        channel_id: i64,
        deliveries: Vec<DeliveryRecord>,
    ) -> Result<(), StoreError> {
        let store = &self.deps.deliveries;
        let ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
        let channel = self.deps.channels.channel_by_id(channel_id).await?;
        let Some(channel) = channel.filter(|c| c.state == ChannelState::Active) else {
            return store
                .skip(&ids, "not sent: the channel was disabled or deleted")
                .await;
        };
        let settings = self
            .deps
            .channels
            .settings(&channel.user)
            .await?
            .unwrap_or_default();
        let locale = Locale::of(&settings);
        let now = chrono::Utc::now();
        if let Some(until) = settings
            .quiet_hours
            .as_ref()
            .and_then(|quiet| storm::quiet_until(quiet, locale.zone, now))
        {
            self.deps
                .metrics
                .deferred(self.kind(), "quiet_hours", ids.len());
            return store.defer(&ids, until).await;
        }
        let window = self.config.cap_window;
        let sent = store.sent_since(channel.id, now - window).await?;
        let (room, frees_at) = storm::room(self.cap(&settings), window, &sent, now);
        let plan = storm::plan(deliveries, room, frees_at);
        if let Some(until) = plan.until {
            self.deps
                .metrics
                .deferred(self.kind(), "cap", plan.deferred.len());
            store.defer(&plan.deferred, until).await?;
        }
        for message in plan.messages {
            let ids: Vec<i64> = message.deliveries.iter().map(|d| d.id).collect();
            if message.assign {
                store.assign_message(&ids, message.message_id).await?;
            }
            let notices = self.notices(&channel, &message.deliveries, &locale).await?;
            if notices.is_empty() {
                store.skip(&ids, "not sent: the alert was deleted").await?;
                continue;
            }
            let content = match <[AlertNotice; 1]>::try_from(notices) {
                Ok([one]) => Content::Alert(Box::new(one)),
                Err(several) => {
                    self.deps.metrics.digest(self.kind());
                    Content::Digest(several)
                }
            };
            let notification = Notification {
                message_id: message.message_id,
                locale,
                content,
                app_url: self.config.app_url.clone(),
            };
            let gone = self
                .attempt(&channel, &notification, &message.deliveries)
                .await?;
            if gone {
                break;
            }
        }
        Ok(())
    }

    fn cap(&self, settings: &UserSettings) -> u32 {
        let user_cap = settings.max_per_channel_per_minute.max(1);
        match self.sender.max_per_minute() {
            Some(kind_cap) => user_cap.min(kind_cap),
            None => user_cap,
        }
    }

    /// The alerts behind these deliveries (those still in history).
    async fn notices(
        &self,
        channel: &ChannelRecord,
        deliveries: &[DeliveryRecord],
        locale: &Locale,
    ) -> Result<Vec<AlertNotice>, StoreError> {
        let mut notices = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let Some(alert_id) = delivery.alert_id else {
                continue;
            };
            if let Some(alert) = self.deps.history.get(&channel.user, alert_id).await? {
                notices.push(AlertNotice::new(alert, &self.deps.catalog, locale.language));
            }
        }
        Ok(notices)
    }

    /// Sends one message and records the outcome for its deliveries. True when the channel is
    /// gone and has been disabled.
    async fn attempt(
        &self,
        channel: &ChannelRecord,
        notification: &Notification,
        deliveries: &[DeliveryRecord],
    ) -> Result<bool, StoreError> {
        let kind = self.kind();
        let ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
        let (result, attempt) = sender::attempt(self.sender.as_ref(), channel, notification).await;
        let now = attempt.at;
        let (outcome, gone) = match &result {
            Ok(_) => {
                let latencies: Vec<f64> = notification
                    .notices()
                    .iter()
                    .map(|n| seconds_since(n.alert.triggered_at, now))
                    .collect();
                self.deps.metrics.delivered(kind, ids.len(), &latencies);
                (DeliveryOutcome::Delivered { at: now }, false)
            }
            Err(error) if error.is_gone() => {
                self.deps.metrics.failed(kind, ids.len());
                (DeliveryOutcome::Failed, true)
            }
            Err(error) => self.after_failure(error, deliveries, now),
        };
        self.deps
            .deliveries
            .record_attempt(&ids, &attempt, &outcome)
            .await?;
        if let Err(error) = &result {
            let error = ErrorChain(error).to_string();
            tracing::info!(channel_id = channel.id, channel = %kind, message = %notification.message_id, error = %error, "delivery attempt failed");
            if gone || outcome == DeliveryOutcome::Failed {
                let reason = if gone {
                    format!("the receiver is gone: {error}")
                } else {
                    format!("every attempt failed: {error}")
                };
                self.deps
                    .channels
                    .disable_channel(channel.id, &reason, now)
                    .await?;
                self.deps.metrics.disabled(kind);
                tracing::warn!(channel_id = channel.id, channel = %kind, user = %channel.user, %reason, "channel disabled");
                return Ok(true);
            }
        }
        Ok(gone)
    }

    /// Retry on the schedule, or give up once it is spent.
    fn after_failure(
        &self,
        error: &SendError,
        deliveries: &[DeliveryRecord],
        now: Timestamp,
    ) -> (DeliveryOutcome, bool) {
        let failed = deliveries.iter().map(|d| d.attempts).max().unwrap_or(0) + 1;
        match self
            .config
            .schedule
            .delay_after(failed, error.retry_after())
        {
            Some(delay) => {
                self.deps.metrics.retried(self.kind(), deliveries.len());
                (
                    DeliveryOutcome::Retry {
                        at: now
                            + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
                    },
                    false,
                )
            }
            None => {
                self.deps.metrics.failed(self.kind(), deliveries.len());
                (DeliveryOutcome::Failed, false)
            }
        }
    }
}

/// Returns when `wake` changes; never, once nobody can change it.
async fn woken(wake: &mut watch::Receiver<u64>) {
    if wake.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn lease_end(now: Timestamp, lease: Duration) -> Timestamp {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30))
}

fn seconds_since(then: Timestamp, now: Timestamp) -> f64 {
    (now - then).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6
}
