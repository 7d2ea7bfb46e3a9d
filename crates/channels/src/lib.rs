//! Notification channels beyond the socket: web push, Standard Webhooks, Telegram and email.
//!
//! Each alert stored by the Alert Service comes with one delivery per active channel of its user,
//! created in the same transaction ([`signal_ports::AlertHistoryStore::insert_if_absent`]). The
//! workers ([`worker`]) send them at least once, with the message id (the alert's event id) as
//! the receiver's idempotency key, so each alert arrives once per channel through crashes. The use
//! cases behind the HTTP API are in [`service`].

pub mod code;
pub mod email;
pub mod message;
pub mod metrics;
pub mod push;
pub mod schedule;
pub mod sender;
pub mod service;
pub mod ssrf;
pub mod storm;
pub mod telegram;
pub mod webhook;
pub mod worker;

use ipnet::IpNet;
use signal_ports::{AlertHistoryStore, ChannelKind, ChannelStore, DeliveryStore, SharedCache};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use metrics::DeliveryMetrics;
pub use sender::{ChannelSender, SendError, Sent};
pub use service::{ChannelError, ChannelService, ChannelUpdate, Created, NewTarget};
/// The one renderer of `{{placeholders}}`, shared with the rules' messages.
pub use signal_domain::template;
pub use worker::{WorkerConfig, WorkerDeps};

/// Web push settings.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebPushConfig {
    /// The VAPID private key (raw 32 bytes, base64url). Every instance of a deployment must use
    /// the same one; when neither this nor the file is set, one is generated into the data
    /// directory.
    pub vapid_private_key: Option<String>,
    pub vapid_private_key_file: Option<PathBuf>,
    /// The contact push services see (`mailto:` or `https:`).
    pub subject: Option<String>,
}

impl std::fmt::Debug for WebPushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPushConfig")
            .field(
                "vapid_private_key",
                &self.vapid_private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("vapid_private_key_file", &self.vapid_private_key_file)
            .field("subject", &self.subject)
            .finish()
    }
}

/// The `channels` section of the settings.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelsConfig {
    /// Where people reach the web app: links in messages point there.
    pub app_url: String,
    /// Networks that webhooks and push endpoints may reach although they are not public
    /// (loopback, private, link-local...). Empty: public addresses only.
    pub allowed_networks: Vec<IpNet>,
    /// Channels of one kind worked on at once, per instance.
    pub concurrency: usize,
    /// How long a claim on deliveries lasts without renewal: how long a crashed instance's
    /// deliveries wait before another takes them.
    pub claim_lease_ms: u64,
    /// How often idle workers look for due deliveries.
    pub poll_ms: u64,
    /// Delays between attempts; the Standard Webhooks schedule (5 s, 5 min, 30 min, 2 h, 5 h,
    /// 10 h, 10 h) when unset.
    pub retry_delays_ms: Option<Vec<u64>>,
    /// The window of the per-channel cap ("per minute"); only tests shorten it.
    pub cap_window_ms: u64,
    pub web_push: WebPushConfig,
    pub telegram: telegram::TelegramConfig,
    pub email: email::EmailConfig,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        Self {
            app_url: "http://localhost:8080".into(),
            allowed_networks: Vec::new(),
            concurrency: 16,
            claim_lease_ms: 30_000,
            poll_ms: 500,
            retry_delays_ms: None,
            cap_window_ms: 60_000,
            web_push: WebPushConfig::default(),
            telegram: telegram::TelegramConfig::default(),
            email: email::EmailConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("web push keys")]
    Vapid(#[from] push::VapidKeyError),
    #[error("email")]
    Email(#[from] email::EmailConfigError),
    #[error("building an HTTP client")]
    Http(#[from] reqwest::Error),
}

/// Everything channels need, built from the settings.
pub struct Channels {
    pub service: Arc<ChannelService>,
    store: Arc<dyn ChannelStore>,
    deliveries: Arc<dyn DeliveryStore>,
    senders: Vec<Arc<dyn ChannelSender>>,
    telegram: Option<Arc<telegram::TelegramApi>>,
    config: WorkerConfig,
}

impl Channels {
    /// Builds the senders the settings enable: webhooks and web push always, Telegram with a bot
    /// token, email with an SMTP server.
    pub fn new(
        config: &ChannelsConfig,
        data_dir: &Path,
        store: Arc<dyn ChannelStore>,
        deliveries: Arc<dyn DeliveryStore>,
    ) -> Result<Self, SetupError> {
        let policy = Arc::new(ssrf::TargetPolicy::new(config.allowed_networks.clone()));
        let vapid = Arc::new(
            match (
                &config.web_push.vapid_private_key,
                &config.web_push.vapid_private_key_file,
            ) {
                (Some(key), _) => push::VapidKeys::from_private_key(key)?,
                (None, Some(file)) => push::VapidKeys::load_or_generate(file)?,
                (None, None) => {
                    push::VapidKeys::load_or_generate(&data_dir.join("vapid-private-key"))?
                }
            },
        );
        let subject = config
            .web_push
            .subject
            .clone()
            .filter(|subject| !subject.trim().is_empty())
            .unwrap_or_else(|| format!("{}/", config.app_url.trim_end_matches('/')));
        let mut senders: Vec<Arc<dyn ChannelSender>> = vec![
            Arc::new(webhook::WebhookSender::new(policy.clone())?),
            Arc::new(push::WebPushSender::new(
                policy.clone(),
                vapid.clone(),
                subject,
            )?),
        ];
        let telegram = telegram::TelegramApi::new(&config.telegram)?.map(Arc::new);
        if let Some(api) = &telegram {
            senders.push(Arc::new(telegram::TelegramSender::new(api.clone())));
        }
        let email = email::EmailSender::new(&config.email)?.map(Arc::new);
        if let Some(email) = &email {
            senders.push(email.clone());
        }
        let by_kind: BTreeMap<ChannelKind, Arc<dyn ChannelSender>> =
            senders.iter().map(|s| (s.kind(), s.clone())).collect();
        let service = Arc::new(ChannelService {
            store: store.clone(),
            deliveries: deliveries.clone(),
            senders: by_kind,
            policy,
            vapid: Some(vapid),
            telegram: telegram.clone(),
            email,
            app_url: config.app_url.clone(),
            catalog: Arc::new(signal_catalog::Catalog::builtin()),
        });
        let schedule = match &config.retry_delays_ms {
            Some(delays) => schedule::RetrySchedule::new(
                delays.iter().map(|ms| Duration::from_millis(*ms)).collect(),
            ),
            None => schedule::RetrySchedule::default(),
        };
        Ok(Self {
            service,
            store,
            deliveries,
            senders,
            telegram,
            config: WorkerConfig {
                lease: Duration::from_millis(config.claim_lease_ms.max(1_000)),
                poll: Duration::from_millis(config.poll_ms.max(10)),
                schedule,
                concurrency: config.concurrency.max(1),
                app_url: config.app_url.clone(),
                cap_window: chrono::Duration::milliseconds(
                    i64::try_from(config.cap_window_ms.max(1_000)).unwrap_or(60_000),
                ),
            },
        })
    }

    /// Starts the delivery workers, and the Telegram update poller when a bot is configured.
    /// `wake` changes whenever alerts are stored; `leases` lets one instance at a time read the
    /// bot's updates.
    pub fn start(
        self,
        history: Arc<dyn AlertHistoryStore>,
        metrics: DeliveryMetrics,
        wake: watch::Receiver<u64>,
        leases: Arc<dyn SharedCache>,
        instance: String,
        shutdown: CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let mut handles = Vec::new();
        if let Some(api) = self.telegram {
            let linker = telegram::TelegramLinker {
                api,
                channels: self.store.clone(),
                leases,
                instance,
            };
            handles.push(tokio::spawn(linker.run(shutdown.clone())));
        }
        let deps = WorkerDeps {
            channels: self.store,
            deliveries: self.deliveries,
            history,
            catalog: self.service.catalog.clone(),
            metrics,
            wake,
        };
        handles.extend(worker::spawn(deps, self.senders, self.config, shutdown));
        handles
    }
}
