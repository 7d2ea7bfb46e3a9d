//! The live half of the feed: Upbit's side of the shared exchange socket
//! ([`signal_exchange_socket`]), which keeps the connection up. Upbit supplies its address, the
//! text `PING` that keeps it alive, its subscription request (the whole wanted set each time, at
//! most one per [`MIN_REQUEST_GAP`]) and its parser. Every connection, and every market that
//! joins one, starts with a REST snapshot, because trades that happened while the socket was
//! down, or before the market was streamed, are otherwise never seen.

use crate::parse::{parse_stream_message, StreamMessage};
use crate::{backoff, UpbitFeed};
use backon::BackoffBuilder;
use signal_domain::{ErrorChain, Market, Tick};
use signal_exchange_socket::{
    Connector, ConsumerGone, ExchangeSocket, Keepalive, Message, Payload, Reconnect, Session,
    Subscription,
};
use signal_ports::{FeedContext, FeedError, Interest, TickSink};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

/// Upbit accepts 5 request messages per second per connection; one subscription per this gap
/// leaves room for the keep-alive `PING`.
const MIN_REQUEST_GAP: Duration = Duration::from_millis(250);
/// How often every KRW market is listed again when all of them are streamed, so new listings
/// join the stream.
const RELIST_EVERY: Duration = Duration::from_secs(600);

/// Streams until shutdown, or until the consumer goes away.
pub(crate) async fn run(feed: &UpbitFeed, ctx: FeedContext) -> Result<(), FeedError> {
    let FeedContext {
        sink,
        interest,
        shutdown,
    } = ctx;
    let (wanted, wanted_updates) = watch::channel(BTreeSet::new());
    let socket = ExchangeSocket {
        connector: Upbit { feed, sink },
        reconnect: Reconnect::new(feed.config.backoff_min, feed.config.backoff_max),
        metrics: feed.metrics.clone(),
        link: feed.link.clone(),
    };
    tokio::select! {
        never = follow_interest(feed, interest, wanted) => match never {},
        ran = socket.run(wanted_updates, &shutdown) => ran.map_err(|ConsumerGone| FeedError::SinkClosed),
    }
}

/// Keeps `wanted` at the markets to stream: the Upbit instruments someone needs, plus every KRW
/// market when configured so.
async fn follow_interest(
    feed: &UpbitFeed,
    mut interest: watch::Receiver<Arc<Interest>>,
    wanted: watch::Sender<BTreeSet<String>>,
) -> Infallible {
    let mut all_krw = BTreeSet::new();
    let mut failures = backoff(&feed.config).build();
    let all = feed.config.stream_all_krw_markets;
    // Listed before anything is wanted, so the first connection subscribes to all of them.
    let mut next_listing = Instant::now();
    if all {
        next_listing = list_all_krw(feed, &mut all_krw, &mut failures).await;
    }
    let mut interest_open = true;
    loop {
        let now = markets(&interest.borrow_and_update(), &all_krw);
        wanted.send_if_modified(|current| {
            let changed = *current != now;
            if changed {
                *current = now;
            }
            changed
        });
        tokio::select! {
            changed = interest.changed(), if interest_open => interest_open = changed.is_ok(),
            _ = sleep_until(next_listing), if all => {
                next_listing = list_all_krw(feed, &mut all_krw, &mut failures).await;
            }
            // Nothing can change what is wanted any more: the socket keeps streaming it.
            else => std::future::pending().await,
        }
    }
}

/// Sorted, so an unchanged set compares equal.
fn markets(interest: &Interest, all_krw: &BTreeSet<String>) -> BTreeSet<String> {
    interest
        .needs
        .keys()
        .filter(|id| id.market() == Market::Upbit)
        .map(|id| id.symbol().to_string())
        .chain(all_krw.iter().cloned())
        .collect()
}

/// Lists every KRW market, keeping the previous list when that fails; returns when to list
/// again (sooner after a failure, with back-off).
async fn list_all_krw(
    feed: &UpbitFeed,
    all_krw: &mut BTreeSet<String>,
    failures: &mut backon::ExponentialBackoff,
) -> Instant {
    match feed.rest.instruments().await {
        Ok(instruments) => {
            *all_krw = instruments
                .into_iter()
                .map(|i| i.id.symbol().to_string())
                .collect();
            *failures = backoff(&feed.config).build();
            Instant::now() + RELIST_EVERY
        }
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), "cannot list Upbit markets; keeping the previous list");
            Instant::now() + failures.next().unwrap_or(feed.config.backoff_max)
        }
    }
}

/// Upbit's side of the socket.
struct Upbit<'a> {
    feed: &'a UpbitFeed,
    sink: TickSink,
}

impl<'a> Connector for Upbit<'a> {
    type Key = String;
    type Session = UpbitSession<'a>;
    type Error = Infallible;

    fn name(&self) -> &'static str {
        "Upbit"
    }

    fn url(&self) -> &str {
        &self.feed.config.ws_url
    }

    async fn open(&self) -> Result<UpbitSession<'a>, Infallible> {
        Ok(UpbitSession {
            feed: self.feed,
            sink: self.sink.clone(),
            ticket: uuid::Uuid::new_v4().to_string(),
            subscribed: BTreeSet::new(),
        })
    }

    fn keepalive(&self) -> Option<Keepalive> {
        Some(Keepalive {
            every: self.feed.config.ping_interval,
            message: Message::text("PING"),
        })
    }

    fn request_gap(&self) -> Duration {
        MIN_REQUEST_GAP
    }
}

/// One connection: its ticket and what it streams.
struct UpbitSession<'a> {
    feed: &'a UpbitFeed,
    sink: TickSink,
    ticket: String,
    subscribed: BTreeSet<String>,
}

impl Session for UpbitSession<'_> {
    type Key = String;

    /// Upbit treats each request as the whole subscription, so it names every wanted market.
    fn subscribe(&mut self, wanted: &BTreeSet<String>) -> Subscription<String> {
        if *wanted == self.subscribed {
            return Subscription {
                requests: Vec::new(),
                added: Vec::new(),
            };
        }
        let added = wanted.difference(&self.subscribed).cloned().collect();
        let request = serde_json::json!([
            { "ticket": self.ticket },
            { "type": "ticker", "codes": wanted },
            { "format": "DEFAULT" },
        ]);
        self.subscribed = wanted.clone();
        self.feed.metrics.streamed.set(wanted.len() as i64);
        Subscription {
            requests: vec![Message::text(request.to_string())],
            added,
        }
    }

    /// A stream carries only the trades from now on; the snapshot gives each new market its
    /// price at once. A failed snapshot is logged, not fatal: the live stream is still worth
    /// having.
    async fn subscribed(&mut self, added: Vec<String>) -> Result<(), ConsumerGone> {
        match self
            .feed
            .rest
            .tickers(&added, self.feed.config.snapshot_batch)
            .await
        {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(tick) => self.deliver(tick).await?,
                        Err(error) => self.parse_error(&error),
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "Upbit snapshot failed; gaps may go unnoticed")
            }
        }
        Ok(())
    }

    async fn receive(&mut self, payload: Payload<'_>) -> Result<Vec<Message>, ConsumerGone> {
        let bytes = match payload {
            Payload::Text(text) => text.as_bytes(),
            Payload::Binary(bytes) => bytes,
        };
        match parse_stream_message(bytes, chrono::Utc::now()) {
            Ok(StreamMessage::Tickers(results)) => {
                for result in results {
                    match result {
                        Ok(tick) => self.deliver(tick).await?,
                        Err(error) => self.parse_error(&error),
                    }
                }
            }
            Ok(StreamMessage::Status(status)) => tracing::debug!(%status, "Upbit status"),
            Ok(StreamMessage::Error(error)) => {
                tracing::warn!(name = %error.name, message = %error.message, "Upbit reported an error")
            }
            Err(error) => self.parse_error(&error),
        }
        Ok(Vec::new())
    }
}

impl UpbitSession<'_> {
    fn parse_error(&self, error: &crate::ParseError) {
        self.feed.metrics.parse_errors.inc();
        tracing::warn!(error = %ErrorChain(error), "unreadable message from Upbit");
    }

    async fn deliver(&self, tick: Tick) -> Result<(), ConsumerGone> {
        self.feed.metrics.tick(&tick);
        self.sink.send(tick).await.map_err(|_| ConsumerGone)
    }
}

impl Drop for UpbitSession<'_> {
    /// A connection that ended streams nothing.
    fn drop(&mut self) {
        self.feed.metrics.streamed.set(0);
    }
}
