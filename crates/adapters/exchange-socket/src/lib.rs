//! The WebSocket every exchange connector streams through, kept up for it.
//!
//! In the manner of barter-data's reconnecting stream, a connector ([`Connector`]) supplies only
//! what is its own: the address, what each connection needs before it opens (a key, a ticket),
//! the frames that subscribe ([`Session::subscribe`]), how to read a message
//! ([`Session::receive`]) and what keeps a quiet connection alive ([`Keepalive`]). Everything
//! else is here, once: connecting within a timeout (TLS with the webpki roots for `wss://`),
//! waiting out failures with exponential, jittered, capped back-off that starts over once a
//! connection has stayed up for a while, subscribing every new connection to what is wanted now,
//! following changes of what is wanted at the pace the exchange allows, holding no connection
//! while nothing is wanted, and reporting reconnections and the link's state.

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{SinkExt, StreamExt};
use signal_domain::ErrorChain;
use signal_feed_metrics::SourceMetrics;
use signal_ports::FeedState;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::{
    connect_async_tls_with_config, Connector as Tls, MaybeTlsStream, WebSocketStream,
};
use tokio_util::sync::CancellationToken;

pub use tokio_tungstenite::tungstenite::Message;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How hard to try to stay connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    /// How long opening a connection (TCP, TLS and the WebSocket handshake) may take.
    pub connect_timeout: Duration,
    /// First wait after a failure; doubled, with jitter, after each further one.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A connection that stayed up this long was healthy: after it ends, the back-off starts
    /// over from `backoff_min`. A server that accepts and at once drops keeps the waits growing.
    pub healthy_after: Duration,
}

impl Reconnect {
    /// Waits from `backoff_min` to `backoff_max`, 10 s to connect, healthy after 30 s up.
    pub fn new(backoff_min: Duration, backoff_max: Duration) -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            backoff_min,
            backoff_max,
            healthy_after: Duration::from_secs(30),
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.backoff_min)
            .with_max_delay(self.backoff_max.max(self.backoff_min))
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// A message sent on a schedule to an exchange that drops quiet clients.
#[derive(Debug, Clone)]
pub struct Keepalive {
    pub every: Duration,
    pub message: Message,
}

/// One message from the exchange, as it came.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// What moves a connection's subscription to what is wanted.
#[derive(Debug)]
pub struct Subscription<K> {
    /// Sent in order; none when the connection already has what is wanted.
    pub requests: Vec<Message>,
    /// What this connection streams from now on that it did not before (everything, on a new
    /// connection): the session is told, once the requests are sent, so it can fill the gap.
    pub added: Vec<K>,
}

/// Whoever takes what the feed delivers has gone away; the feed stops.
#[derive(Debug, thiserror::Error)]
#[error("the tick consumer has gone away")]
pub struct ConsumerGone;

/// An exchange's side of the socket.
pub trait Connector: Send + Sync {
    /// One thing a connection subscribes to (a market code, an instrument).
    type Key: Ord + Clone + Send + Sync + 'static;
    type Session: Session<Key = Self::Key>;
    /// Why a connection could not be readied.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The exchange's name, for logs.
    fn name(&self) -> &'static str;
    fn url(&self) -> &str;
    /// What readies one connection, before it is opened (an approval key, a ticket).
    fn open(&self) -> impl Future<Output = Result<Self::Session, Self::Error>> + Send;
    fn keepalive(&self) -> Option<Keepalive> {
        None
    }
    /// The shortest gap between two subscription changes on one connection: changes that come
    /// faster are gathered into one.
    fn request_gap(&self) -> Duration {
        Duration::ZERO
    }
}

/// One connection's state on the exchange's side: what it has subscribed, how to read it.
pub trait Session: Send {
    type Key;
    /// The requests that take this connection from what it has to `wanted` (never empty).
    fn subscribe(&mut self, wanted: &BTreeSet<Self::Key>) -> Subscription<Self::Key>;
    /// The requests for `added` have been sent.
    fn subscribed(
        &mut self,
        added: Vec<Self::Key>,
    ) -> impl Future<Output = Result<(), ConsumerGone>> + Send;
    /// Reads one message; returns the answers the exchange expects to it.
    fn receive(
        &mut self,
        payload: Payload<'_>,
    ) -> impl Future<Output = Result<Vec<Message>, ConsumerGone>> + Send;
}

/// The state of a connector's link, shared with whoever reports on it.
#[derive(Debug, Clone)]
pub struct Link(Arc<AtomicU8>);

impl Default for Link {
    fn default() -> Self {
        Self(Arc::new(AtomicU8::new(Self::encode(FeedState::Idle))))
    }
}

impl Link {
    pub fn state(&self) -> FeedState {
        match self.0.load(Ordering::Relaxed) {
            0 => FeedState::Idle,
            1 => FeedState::Live,
            _ => FeedState::Down,
        }
    }

    fn set(&self, state: FeedState) {
        self.0.store(Self::encode(state), Ordering::Relaxed);
    }

    fn encode(state: FeedState) -> u8 {
        match state {
            FeedState::Idle => 0,
            FeedState::Live => 1,
            FeedState::Down => 2,
        }
    }
}

/// The socket of one connector.
pub struct ExchangeSocket<C> {
    pub connector: C,
    pub reconnect: Reconnect,
    pub metrics: SourceMetrics,
    pub link: Link,
}

/// Why a connection's life ended.
enum End {
    Shutdown,
    ConsumerGone,
    /// Nothing is wanted any more; the connection was closed on purpose.
    NothingWanted,
    Lost(Lost),
}

#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("the socket failed")]
    Socket(#[source] tungstenite::Error),
    #[error("the exchange closed the socket: {0}")]
    Closed(String),
}

impl From<ConsumerGone> for End {
    fn from(_: ConsumerGone) -> Self {
        End::ConsumerGone
    }
}

impl<C: Connector> ExchangeSocket<C> {
    /// Streams what `wanted` names until `shutdown`, reconnecting whenever the connection fails.
    /// Ends early only when the consumer has gone away.
    pub async fn run(
        &self,
        mut wanted: watch::Receiver<BTreeSet<C::Key>>,
        shutdown: &CancellationToken,
    ) -> Result<(), ConsumerGone> {
        let name = self.connector.name();
        let tls = tls_connector();
        let mut delays = self.reconnect.backoff();
        // Set when a connection was lost, so the next one counts as a reconnection; closing
        // because nothing was wanted any more is no loss.
        let mut lost = false;
        loop {
            if wanted.borrow().is_empty() {
                self.link.set(FeedState::Idle);
            }
            if !until_something_is_wanted(&mut wanted, shutdown).await {
                return Ok(());
            }
            self.link.set(FeedState::Down);
            let opened = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                opened = self.open(tls.clone()) => opened,
            };
            match opened {
                Err(error) => {
                    tracing::warn!(exchange = name, error = %ErrorChain(&error), "no connection")
                }
                Ok((socket, session)) => {
                    if lost {
                        self.metrics.reconnects.inc();
                    }
                    let since = Instant::now();
                    self.link.set(FeedState::Live);
                    self.metrics.connected.set(1);
                    let end = self.stream(socket, session, &mut wanted, shutdown).await;
                    self.metrics.connected.set(0);
                    match end {
                        End::Shutdown => return Ok(()),
                        End::ConsumerGone => return Err(ConsumerGone),
                        End::NothingWanted => {
                            lost = false;
                            delays = self.reconnect.backoff();
                            continue;
                        }
                        End::Lost(why) => {
                            tracing::warn!(exchange = name, error = %ErrorChain(&why), "connection lost; reconnecting");
                            lost = true;
                            if since.elapsed() >= self.reconnect.healthy_after {
                                delays = self.reconnect.backoff();
                            }
                        }
                    }
                }
            }
            self.link.set(FeedState::Down);
            let delay = delays.next().unwrap_or(self.reconnect.backoff_max);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = sleep(delay) => {}
            }
        }
    }

    /// Readies a session and opens its connection, within the connect timeout.
    async fn open(&self, tls: Option<Tls>) -> Result<(Socket, C::Session), OpenError<C::Error>> {
        let session = self.connector.open().await.map_err(OpenError::Session)?;
        let connecting = connect_async_tls_with_config(self.connector.url(), None, true, tls);
        match timeout(self.reconnect.connect_timeout, connecting).await {
            Ok(Ok((socket, _))) => Ok((socket, session)),
            Ok(Err(error)) => Err(OpenError::Connect(error)),
            Err(_) => Err(OpenError::TimedOut(self.reconnect.connect_timeout)),
        }
    }

    /// One connection's life: subscribe, then stream until something ends it.
    async fn stream(
        &self,
        mut socket: Socket,
        mut session: C::Session,
        wanted: &mut watch::Receiver<BTreeSet<C::Key>>,
        shutdown: &CancellationToken,
    ) -> End {
        let end: Result<std::convert::Infallible, End> = async {
            let gap = self.connector.request_gap();
            let now_wanted = wanted.borrow_and_update().clone();
            resubscribe(&mut socket, &mut session, &now_wanted, shutdown).await?;
            let mut last_request = Instant::now();
            let mut change_pending = false;
            let mut wanted_open = true;
            let keepalive = self.connector.keepalive();
            let mut keepalive_timer = keepalive.as_ref().map(|keepalive| {
                let mut timer =
                    tokio::time::interval_at(Instant::now() + keepalive.every, keepalive.every);
                // After a stalled consumer one keepalive is enough; a burst would only count
                // against the exchange's message allowance.
                timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
                timer
            });
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(End::Shutdown),
                    changed = wanted.changed(), if wanted_open => match changed {
                        Ok(()) => change_pending = true,
                        // Nothing will change what is wanted any more; keep streaming it.
                        Err(_) => wanted_open = false,
                    },
                    _ = sleep_until(last_request + gap), if change_pending => {
                        change_pending = false;
                        let now_wanted = wanted.borrow_and_update().clone();
                        if resubscribe(&mut socket, &mut session, &now_wanted, shutdown).await? {
                            last_request = Instant::now();
                        }
                    }
                    _ = tick(&mut keepalive_timer) => {
                        if let Some(keepalive) = &keepalive {
                            socket.send(keepalive.message.clone()).await.map_err(lost)?;
                        }
                    }
                    frame = socket.next() => {
                        let message = match frame {
                            None => return Err(End::Lost(Lost::Closed("end of stream".into()))),
                            Some(Err(error)) => return Err(lost(error)),
                            Some(Ok(message)) => message,
                        };
                        let payload = match &message {
                            Message::Text(text) => Payload::Text(text.as_str()),
                            Message::Binary(bytes) => Payload::Binary(bytes),
                            Message::Close(close) => {
                                let why = close
                                    .as_ref()
                                    .map_or_else(|| "close frame".to_string(), |c| c.to_string());
                                return Err(End::Lost(Lost::Closed(why)));
                            }
                            // tungstenite answers pings itself; pongs need nothing.
                            _ => continue,
                        };
                        for answer in until_shutdown(shutdown, session.receive(payload)).await? {
                            socket.send(answer).await.map_err(lost)?;
                        }
                    }
                }
            }
        }
        .await;
        let Err(end) = end;
        if !matches!(end, End::Lost(_)) {
            // A courtesy to the server; an error here changes nothing.
            let _ = socket.close(None).await;
        }
        end
    }
}

fn lost(error: tungstenite::Error) -> End {
    End::Lost(Lost::Socket(error))
}

/// Moves the connection's subscription to `wanted`; whether a request went out. Nothing wanted
/// ends the connection: some exchanges have no empty subscription, and an idle connection
/// buys nothing.
async fn resubscribe<S: Session>(
    socket: &mut Socket,
    session: &mut S,
    wanted: &BTreeSet<S::Key>,
    shutdown: &CancellationToken,
) -> Result<bool, End> {
    if wanted.is_empty() {
        return Err(End::NothingWanted);
    }
    let Subscription { requests, added } = session.subscribe(wanted);
    let sent = !requests.is_empty();
    for request in requests {
        socket.send(request).await.map_err(lost)?;
    }
    if !added.is_empty() {
        until_shutdown(shutdown, session.subscribed(added)).await?;
    }
    Ok(sent)
}

#[derive(Debug, thiserror::Error)]
enum OpenError<E> {
    #[error("cannot ready the connection")]
    Session(#[source] E),
    #[error("cannot connect")]
    Connect(#[source] tungstenite::Error),
    #[error("connecting took longer than {0:?}")]
    TimedOut(Duration),
}

/// Runs a session's work unless shutdown comes first.
async fn until_shutdown<T>(
    shutdown: &CancellationToken,
    work: impl Future<Output = Result<T, ConsumerGone>>,
) -> Result<T, End> {
    tokio::select! {
        _ = shutdown.cancelled() => Err(End::Shutdown),
        done = work => done.map_err(End::from),
    }
}

async fn tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Waits until something is wanted; false when shutdown comes first, or when nothing is wanted
/// and nothing can change that any more.
async fn until_something_is_wanted<K>(
    wanted: &mut watch::Receiver<BTreeSet<K>>,
    shutdown: &CancellationToken,
) -> bool {
    let can_change = tokio::select! {
        _ = shutdown.cancelled() => return false,
        found = wanted.wait_for(|now| !now.is_empty()) => match found {
            Ok(_) => return true,
            Err(_) => false,
        },
    };
    if !can_change {
        shutdown.cancelled().await;
    }
    false
}

/// TLS for `wss://` with the ring provider named explicitly: rustls's automatic choice panics in a
/// binary that links more than one crypto provider. None when the roots cannot be set up, which
/// leaves tungstenite's own choice (plain `ws://` never needs one).
fn tls_connector() -> Option<Tls> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| tracing::warn!(error = %error, "cannot set up TLS for exchange sockets"))
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Some(Tls::Rustls(Arc::new(config)))
}

#[cfg(test)]
mod tests;
