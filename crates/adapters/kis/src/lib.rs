//! Market data for KRX and US stocks from KIS Open API (Korea Investment & Securities).
//!
//! The most important instruments (see [`signal_ports::Interest::by_priority`]) get real-time
//! trades over the KIS WebSocket, up to the registrations KIS allows per session; the rest are
//! polled over REST within the per-second budget, except while their market is closed (see
//! [`signal_domain::MarketCalendar`]): a price that cannot move is fetched once. Access tokens are
//! shared between instances through the [`SharedCache`], because KIS issues them sparingly. The
//! feed also answers for KIS's chart history ([`signal_ports::CandleHistory`]).

mod auth;
mod chart;
mod frame;
mod plan;
mod rest;
mod stream;
mod venue;

pub use frame::FrameError;

use async_trait::async_trait;
use auth::Auth;
use plan::{due, plan, Plan};
use rest::Rest;
use serde::{Deserialize, Deserializer};
use signal_domain::ErrorChain;
use signal_domain::{CalendarConfig, InstrumentId, MarketCalendar, Tick, Timestamp};
use signal_exchange_socket::{ConsumerGone, ExchangeSocket, Link, Reconnect};
use signal_feed_metrics::SourceMetrics;
use signal_ports::{
    CacheError, FeedContext, FeedError, FeedState, Interest, QuoteFeed, SharedCache, TickSink,
};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How to reach KIS and how hard to use it. Durations are given in seconds (fractions allowed).
#[derive(Clone, Deserialize)]
pub struct KisConfig {
    #[serde(default = "defaults::rest_url")]
    pub rest_url: String,
    #[serde(default = "defaults::ws_url")]
    pub ws_url: String,
    pub app_key: String,
    pub app_secret: String,
    /// REST calls per second for this app key (KIS: about 20 real, 1 to 2 mock).
    #[serde(default = "defaults::rest_per_second")]
    pub rest_per_second: u32,
    /// Real-time registrations KIS accepts per session.
    #[serde(default = "defaults::max_registrations")]
    pub max_registrations: usize,
    /// "P" individual, "B" corporate.
    #[serde(default = "defaults::custtype")]
    pub custtype: String,
    #[serde(default = "defaults::poll_interval", deserialize_with = "seconds")]
    pub poll_interval: Duration,
    /// The shortest and longest wait before reconnecting the WebSocket (jittered, doubling).
    #[serde(default = "defaults::reconnect_min", deserialize_with = "seconds")]
    pub reconnect_min: Duration,
    #[serde(default = "defaults::reconnect_max", deserialize_with = "seconds")]
    pub reconnect_max: Duration,
    /// First wait after EGW00201 (too many REST calls this second).
    #[serde(default = "defaults::busy_backoff", deserialize_with = "seconds")]
    pub busy_backoff: Duration,
    /// KIS issues at most one access token per this interval (one minute).
    #[serde(
        default = "defaults::token_issue_interval",
        deserialize_with = "seconds"
    )]
    pub token_issue_interval: Duration,
    /// How often an instance without the issue claim looks for the token another one issued.
    #[serde(default = "defaults::token_wait", deserialize_with = "seconds")]
    pub token_wait: Duration,
    /// Exchange holidays and special sessions. Outside its market's session a polled instrument
    /// is fetched once, not every `poll_interval`. Not a setting of its own: the system's one
    /// calendar (`calendar` in the settings) is handed in, so quotes and polling agree.
    #[serde(skip)]
    pub calendar: CalendarConfig,
    /// The clock the calendar is read with. Not a setting: tests put the markets in or out of
    /// session with it.
    #[serde(skip, default = "defaults::now")]
    pub now: fn() -> Timestamp,
}

mod defaults {
    use signal_domain::Timestamp;
    use std::time::Duration;

    pub fn rest_url() -> String {
        "https://openapi.koreainvestment.com:9443".into()
    }
    pub fn ws_url() -> String {
        "ws://ops.koreainvestment.com:21000".into()
    }
    pub fn rest_per_second() -> u32 {
        18
    }
    pub fn max_registrations() -> usize {
        41
    }
    pub fn custtype() -> String {
        "P".into()
    }
    pub fn poll_interval() -> Duration {
        Duration::from_secs(2)
    }
    pub fn reconnect_min() -> Duration {
        Duration::from_millis(500)
    }
    pub fn reconnect_max() -> Duration {
        Duration::from_secs(60)
    }
    pub fn busy_backoff() -> Duration {
        Duration::from_millis(250)
    }
    pub fn token_issue_interval() -> Duration {
        Duration::from_secs(60)
    }
    pub fn token_wait() -> Duration {
        Duration::from_secs(1)
    }
    pub fn now() -> fn() -> Timestamp {
        chrono::Utc::now
    }
}

fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
}

impl KisConfig {
    /// The real KIS hosts and limits, for this app key.
    pub fn new(app_key: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self {
            rest_url: defaults::rest_url(),
            ws_url: defaults::ws_url(),
            app_key: app_key.into(),
            app_secret: app_secret.into(),
            rest_per_second: defaults::rest_per_second(),
            max_registrations: defaults::max_registrations(),
            custtype: defaults::custtype(),
            poll_interval: defaults::poll_interval(),
            reconnect_min: defaults::reconnect_min(),
            reconnect_max: defaults::reconnect_max(),
            busy_backoff: defaults::busy_backoff(),
            token_issue_interval: defaults::token_issue_interval(),
            token_wait: defaults::token_wait(),
            calendar: CalendarConfig::default(),
            now: defaults::now(),
        }
    }
}

impl fmt::Debug for KisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KisConfig")
            .field("rest_url", &self.rest_url)
            .field("ws_url", &self.ws_url)
            .field("app_key", &"<redacted>")
            .field("app_secret", &"<redacted>")
            .field("rest_per_second", &self.rest_per_second)
            .field("max_registrations", &self.max_registrations)
            .field("custtype", &self.custtype)
            .field("poll_interval", &self.poll_interval)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("busy_backoff", &self.busy_backoff)
            .field("token_issue_interval", &self.token_issue_interval)
            .field("token_wait", &self.token_wait)
            .field("calendar", &self.calendar)
            .finish_non_exhaustive()
    }
}

/// The app key and secret, which KIS wants in every REST call. Never printed.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub app_key: String,
    pub app_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KisError {
    /// A reply that is not the JSON its API promises.
    #[error("KIS's {what} is unreadable")]
    Unreadable {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A reply that reads but lacks what the call is for.
    #[error("KIS's {what} has no {missing}")]
    Incomplete {
        what: &'static str,
        missing: &'static str,
    },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("KIS answered {code}: {message}")]
    Api { code: String, message: String },
    #[error("HTTP request to KIS failed")]
    Http(#[from] reqwest::Error),
    #[error("the shared cache failed")]
    Cache(#[from] CacheError),
    #[error("no access token: issuance is throttled and no other instance issued one")]
    TokenUnavailable,
    #[error("{0} is not served by KIS")]
    NotServed(InstrumentId),
    #[error("the tick consumer has gone away")]
    SinkClosed,
}

impl KisError {
    /// Whether KIS sent something this crate could not read (as opposed to a failed call).
    fn is_parse_error(&self) -> bool {
        matches!(
            self,
            KisError::Unreadable { .. } | KisError::Incomplete { .. } | KisError::Frame(_)
        )
    }
}

/// The KIS connector. Cheap to keep around; all work happens in [`QuoteFeed::run`].
pub struct KisFeed {
    config: KisConfig,
    auth: Arc<Auth>,
    rest: Rest,
    calendar: MarketCalendar,
    metrics: SourceMetrics,
    /// When each streamed instrument last traded on the socket. A snapshot waits its turn for
    /// the REST budget, and REST quotes carry no trade time: one that comes back after a
    /// streamed trade is older than it, and is dropped.
    last_streamed: std::sync::Mutex<HashMap<InstrumentId, tokio::time::Instant>>,
    link: Link,
}

/// Instruments whose current price the streaming half wants, asked for at `asked`.
pub(crate) struct SnapshotRequest {
    pub ids: Vec<InstrumentId>,
    pub asked: tokio::time::Instant,
}

impl KisFeed {
    pub fn new(
        config: KisConfig,
        cache: Arc<dyn SharedCache>,
        metrics: SourceMetrics,
    ) -> Result<Self, KisError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let credentials = Credentials {
            app_key: config.app_key.clone(),
            app_secret: config.app_secret.clone(),
        };
        let auth = Arc::new(Auth::new(
            http.clone(),
            &config.rest_url,
            credentials.clone(),
            cache,
            metrics.clone(),
            config.token_issue_interval,
            config.token_wait,
        ));
        let rest = Rest::new(
            http,
            &config.rest_url,
            credentials,
            config.custtype.clone(),
            auth.clone(),
            config.rest_per_second,
            config.busy_backoff,
        );
        Ok(Self {
            calendar: MarketCalendar::new(&config.calendar),
            config,
            auth,
            rest,
            metrics,
            last_streamed: std::sync::Mutex::default(),
            link: Link::default(),
        })
    }

    fn streamed_since(&self, id: &InstrumentId, since: tokio::time::Instant) -> bool {
        let last = self.last_streamed.lock().unwrap_or_else(|p| p.into_inner());
        last.get(id).is_some_and(|at| *at >= since)
    }

    pub(crate) fn note_streamed(&self, id: &InstrumentId) {
        let mut last = self.last_streamed.lock().unwrap_or_else(|p| p.into_inner());
        last.insert(id.clone(), tokio::time::Instant::now());
    }

    /// Hands a tick on, counted.
    async fn emit(&self, sink: &TickSink, tick: Tick) -> Result<(), KisError> {
        self.metrics.tick(&tick);
        sink.send(tick).await.map_err(|_| KisError::SinkClosed)
    }

    /// Re-plans whenever the interest changes or KIS refuses a registration, and publishes the
    /// plan to the polling half and what to stream to the socket.
    async fn plan_loop(
        &self,
        mut interest: watch::Receiver<Arc<Interest>>,
        mut refusals: mpsc::UnboundedReceiver<InstrumentId>,
        plans: watch::Sender<Arc<Plan>>,
        streams: watch::Sender<BTreeSet<InstrumentId>>,
    ) -> Result<(), KisError> {
        let mut capacity = self.config.max_registrations;
        let mut refused = BTreeSet::new();
        let mut interest_open = true;
        loop {
            let current = interest.borrow_and_update().clone();
            // A refusal only matters while the instrument is wanted; forgetting it afterwards lets
            // it stream again if it comes back.
            refused.retain(|id| current.needs.contains_key(id));
            let next = plan(&current, capacity, &refused);
            self.metrics.streamed.set(next.streamed.len() as i64);
            self.metrics.polled.set(next.polled.len() as i64);
            let streamed: BTreeSet<InstrumentId> = next.streamed.iter().cloned().collect();
            streams.send_if_modified(|current| {
                let changed = *current != streamed;
                if changed {
                    *current = streamed;
                }
                changed
            });
            plans.send_if_modified(|plan| {
                let changed = **plan != next;
                if changed {
                    *plan = Arc::new(next);
                }
                changed
            });
            tokio::select! {
                changed = interest.changed(), if interest_open => interest_open = changed.is_ok(),
                Some(id) = refusals.recv() => {
                    // KIS counts registrations we cannot see (other TRs on this app key), so
                    // its limit is lower than configured: give up a stream rather than let the
                    // next instrument in line be refused too.
                    capacity = capacity.saturating_sub(1);
                    refused.insert(id);
                }
                else => std::future::pending().await,
            }
        }
    }

    /// Polls the instruments without a stream every `poll_interval` (those of closed markets only
    /// until they have a quote), and takes the snapshots the streaming half asks for after a
    /// reconnect, first.
    async fn poll_loop(
        &self,
        plans: watch::Receiver<Arc<Plan>>,
        mut snapshots: mpsc::UnboundedReceiver<SnapshotRequest>,
        sink: &TickSink,
    ) -> Result<(), KisError> {
        let mut every = tokio::time::interval(self.config.poll_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fetched = BTreeSet::new();
        loop {
            let (batch, asked) = tokio::select! {
                biased;
                Some(request) = snapshots.recv() => (request.ids, Some(request.asked)),
                _ = every.tick() => {
                    let due = due(&plans.borrow().polled, &mut fetched, &self.calendar, (self.config.now)());
                    (due, None)
                }
            };
            for id in batch {
                match self.rest.quote(&id).await {
                    Ok(tick) => {
                        let superseded = asked.is_some_and(|asked| self.streamed_since(&id, asked));
                        fetched.insert(id);
                        if !superseded {
                            self.emit(sink, tick).await?;
                        }
                    }
                    Err(error) => {
                        if error.is_parse_error() {
                            self.metrics.parse_errors.inc();
                        }
                        tracing::warn!(instrument = %id, error = %ErrorChain(&error), "KIS quote failed");
                    }
                }
            }
        }
    }
}

#[async_trait]
impl QuoteFeed for KisFeed {
    fn name(&self) -> &'static str {
        "kis"
    }

    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        let FeedContext {
            sink,
            interest,
            shutdown,
        } = ctx;
        let (plans, plan_updates) = watch::channel(Arc::new(Plan::default()));
        let (streams, stream_updates) = watch::channel(BTreeSet::new());
        let (refuse, refusals) = mpsc::unbounded_channel();
        let (snapshot, snapshots) = mpsc::unbounded_channel();
        let socket = ExchangeSocket {
            connector: stream::Kis {
                feed: self,
                sink: &sink,
                refuse,
                snapshot,
            },
            reconnect: Reconnect::new(self.config.reconnect_min, self.config.reconnect_max),
            metrics: self.metrics.clone(),
            link: self.link.clone(),
        };
        let result = tokio::select! {
            // The socket closes itself on shutdown; the other halves just stop.
            streamed = socket.run(stream_updates, &shutdown) => streamed.map_err(|ConsumerGone| KisError::SinkClosed),
            result = self.plan_loop(interest, refusals, plans, streams) => result,
            result = self.poll_loop(plan_updates, snapshots, &sink) => result,
        };
        result.map_err(|error| match error {
            KisError::SinkClosed => FeedError::SinkClosed,
            other => FeedError::Failed {
                feed: "kis",
                source: Box::new(other),
            },
        })
    }

    fn state(&self) -> FeedState {
        self.link.state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_the_secrets() {
        let config = KisConfig::new("PSappkey123", "secret456");
        let printed = format!("{config:?}");
        assert!(!printed.contains("PSappkey123") && !printed.contains("secret456"));
    }

    #[test]
    fn config_fills_defaults_and_reads_seconds() {
        let config: KisConfig =
            serde_json::from_str(r#"{"app_key":"k","app_secret":"s","poll_interval":0.5}"#)
                .unwrap();
        assert_eq!(config.poll_interval, Duration::from_millis(500));
        assert_eq!(config.max_registrations, 41);
        assert_eq!(config.rest_per_second, 18);
        assert_eq!(config.ws_url, "ws://ops.koreainvestment.com:21000");
        assert_eq!(config.calendar, CalendarConfig::default());
    }
}
