//! Shared state over Redis, for services running as several instances: the latest quote per
//! instrument, expiring values with one-holder claims (exchange tokens and the right to issue
//! them), and broadcast channels every instance hears (alert pushes, rule changes). Every key starts with a
//! configurable prefix, so deployments and tests can share one Redis.
//!
//! Redis holds only what may be lost, so no caller ever waits on it for long: every command
//! gives up after [`RedisTimeouts::command`] (connecting included), and a broken connection is
//! re-established in the background with a short back-off while callers fail fast and move on.

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::stream::BoxStream;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use redis::{AsyncCommands, RedisError, RedisResult};
use signal_domain::{InstrumentId, Quote};
use signal_ports::{Broadcast, BroadcastError, CacheError, QuoteCache, SharedCache};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How long the adapter waits on Redis.
#[derive(Debug, Clone, Copy)]
pub struct RedisTimeouts {
    /// The longest any call waits, for its answer and for a connection to send it on. Past it the
    /// call fails, and its caller drops or defers its own work.
    pub command: Duration,
    /// One attempt to open a connection.
    pub connect: Duration,
    /// The longest pause between attempts to reconnect.
    pub reconnect_max_delay: Duration,
    /// How often an idle subscription checks that its connection still answers: a connection
    /// that died without closing (a frozen server, a dropped network) is noticed after about
    /// this long and replaced.
    pub subscription_ping: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        Self {
            command: Duration::from_secs(1),
            connect: Duration::from_secs(1),
            reconnect_max_delay: Duration::from_secs(1),
            subscription_ping: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
pub struct RedisState {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: String,
    timeouts: RedisTimeouts,
}

/// Redis's error as the cache port's: one that means Redis cannot be reached now is
/// unavailability, anything else a failed command.
fn cache_error(error: redis::RedisError) -> CacheError {
    if unreachable(&error) {
        CacheError::Unavailable(Box::new(error))
    } else {
        CacheError::Failed(Box::new(error))
    }
}

fn unreachable(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
}

fn broadcast_error(error: redis::RedisError) -> BroadcastError {
    BroadcastError::Unavailable(Box::new(error))
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The error of a call that ran out of time: an I/O timeout, as a read that never returned
/// would be.
fn timed_out(what: &str) -> RedisError {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out")).into()
}

/// Runs `call`, failing it once `limit` has passed.
async fn within<T>(
    limit: Duration,
    what: &str,
    call: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(timed_out(what)))
}

impl RedisState {
    /// Connects to `url` (`redis://host:6379/0`) with the default timeouts; every key gets
    /// `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CacheError> {
        Self::connect_with(url, prefix, RedisTimeouts::default()).await
    }

    pub async fn connect_with(
        url: &str,
        prefix: &str,
        timeouts: RedisTimeouts,
    ) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(cache_error)?;
        // Set explicitly: the client's defaults have no response timeout and back off for up to
        // a minute between reconnection attempts. Here a reconnection tries three times about a
        // second apart (the delays start at one second and are capped at
        // `reconnect_max_delay`), and the next call that finds it failed starts another.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeouts.connect)
            .set_response_timeout(timeouts.command)
            .set_number_of_retries(2)
            .set_factor(2)
            .set_max_delay(
                u64::try_from(timeouts.reconnect_max_delay.as_millis()).unwrap_or(u64::MAX),
            );
        let connection = within(
            timeouts.command + timeouts.connect,
            "connecting to redis",
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(cache_error)?;
        Ok(Self {
            client,
            connection,
            prefix: prefix.to_string(),
            timeouts,
        })
    }

    /// Awaits a call on the shared connection for at most the command deadline.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = RedisResult<T>>,
    ) -> Result<T, CacheError> {
        within(self.timeouts.command, "a redis command", call)
            .await
            .map_err(cache_error)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    fn quote_key(&self, id: &InstrumentId) -> String {
        self.key(&format!("quote:{id}"))
    }

    fn decode(raw: Option<String>) -> Result<Option<Quote>, CacheError> {
        raw.map(|json| {
            serde_json::from_str(&json).map_err(|e| CacheError::Corrupt {
                what: "quote",
                source: Box::new(e),
            })
        })
        .transpose()
    }
}

#[async_trait]
impl QuoteCache for RedisState {
    async fn put(&self, quote: &Quote) -> Result<(), CacheError> {
        let json = serde_json::to_string(quote).map_err(|e| CacheError::Failed(Box::new(e)))?;
        let mut conn = self.connection.clone();
        let mut pipe = redis::pipe();
        pipe.set(self.quote_key(&quote.instrument), json)
            .ignore()
            .sadd(self.key("quotes"), quote.instrument.to_string())
            .ignore();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }

    async fn get(&self, id: &InstrumentId) -> Result<Option<Quote>, CacheError> {
        let mut conn = self.connection.clone();
        let raw: Option<String> = self.bounded(conn.get(self.quote_key(id))).await?;
        Self::decode(raw)
    }

    async fn get_many(&self, ids: &[InstrumentId]) -> Result<Vec<Quote>, CacheError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.quote_key(id)).collect();
        let mut conn = self.connection.clone();
        let raw: Vec<Option<String>> = self.bounded(conn.mget(keys)).await?;
        let mut quotes = Vec::with_capacity(raw.len());
        for value in raw {
            quotes.extend(Self::decode(value)?);
        }
        Ok(quotes)
    }

    async fn all(&self) -> Result<Vec<Quote>, CacheError> {
        let mut conn = self.connection.clone();
        let members: Vec<String> = self.bounded(conn.smembers(self.key("quotes"))).await?;
        let ids: Vec<InstrumentId> = members.iter().filter_map(|m| m.parse().ok()).collect();
        self.get_many(&ids).await
    }
}

#[async_trait]
impl SharedCache for RedisState {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let mut conn = self.connection.clone();
        self.bounded(conn.get(self.key(key))).await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let mut conn = self.connection.clone();
        let mut set = redis::cmd("SET");
        set.arg(self.key(key)).arg(value).arg("PX").arg(millis(ttl));
        self.bounded(set.query_async::<()>(&mut conn)).await
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let mut conn = self.connection.clone();
        let mut claim = redis::cmd("SET");
        claim
            .arg(self.key(key))
            .arg("claimed")
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let reply: Option<String> = self.bounded(claim.query_async(&mut conn)).await?;
        Ok(reply.is_some())
    }

    async fn lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, CacheError> {
        // One script, so no other holder can slip in between the read and the write.
        const LEASE: &str = r"
            local current = redis.call('GET', KEYS[1])
            if current == ARGV[1] then
                redis.call('PEXPIRE', KEYS[1], ARGV[2])
                return 1
            end
            if current then
                return 0
            end
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
            return 1";
        let mut conn = self.connection.clone();
        let mut lease = redis::cmd("EVAL");
        lease
            .arg(LEASE)
            .arg(1)
            .arg(self.key(key))
            .arg(holder)
            .arg(millis(ttl));
        let held: i64 = self.bounded(lease.query_async(&mut conn)).await?;
        Ok(held == 1)
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), CacheError> {
        const RELEASE: &str = r"
            if redis.call('GET', KEYS[1]) == ARGV[1] then
                return redis.call('DEL', KEYS[1])
            end
            return 0";
        let mut conn = self.connection.clone();
        let mut release = redis::cmd("EVAL");
        release.arg(RELEASE).arg(1).arg(self.key(key)).arg(holder);
        self.bounded(release.query_async::<i64>(&mut conn)).await?;
        Ok(())
    }
}

/// One named pub/sub channel, under the state's prefix.
#[derive(Clone)]
pub struct RedisChannel {
    state: RedisState,
    channel: String,
}

impl RedisState {
    pub fn channel(&self, name: &str) -> RedisChannel {
        RedisChannel {
            channel: self.key(name),
            state: self.clone(),
        }
    }
}

#[async_trait]
impl Broadcast for RedisChannel {
    async fn publish(&self, message: &[u8]) -> Result<(), BroadcastError> {
        let mut conn = self.state.connection.clone();
        within(
            self.state.timeouts.command,
            "publishing",
            conn.publish::<_, _, ()>(&self.channel, message),
        )
        .await
        .map_err(broadcast_error)
    }

    /// The stream survives Redis restarts and connections that die silently: a background task
    /// checks its connection with a ping every [`RedisTimeouts::subscription_ping`] and
    /// resubscribes with back-off when it is lost. Messages published while it was
    /// resubscribing are missed; the alert socket's replay of unacknowledged alerts and the
    /// periodic rule reconciliation cover those.
    async fn subscribe(&self) -> Result<BoxStream<'static, Vec<u8>>, BroadcastError> {
        let timeouts = self.state.timeouts;
        let first = subscribed(&self.state.client, &self.channel, timeouts)
            .await
            .map_err(broadcast_error)?;
        let (sender, receiver) = mpsc::channel(1024);
        tokio::spawn(follow(
            self.state.client.clone(),
            self.channel.clone(),
            timeouts,
            first,
            sender,
        ));
        Ok(ReceiverStream::new(receiver).boxed())
    }
}

type Subscription = (PubSubSink, PubSubStream);

/// A subscription to `channel` on a connection of its own, opened within the deadlines.
async fn subscribed(
    client: &redis::Client,
    channel: &str,
    timeouts: RedisTimeouts,
) -> RedisResult<Subscription> {
    let pubsub = within(
        timeouts.connect,
        "connecting to redis",
        client.get_async_pubsub(),
    )
    .await?;
    let (mut sink, stream) = pubsub.split();
    within(timeouts.command, "subscribing", sink.subscribe(channel)).await?;
    Ok((sink, stream))
}

/// Forwards `channel`'s messages to `sender` until nobody listens, resubscribing whenever the
/// subscription is lost.
async fn follow(
    client: redis::Client,
    channel: String,
    timeouts: RedisTimeouts,
    first: Subscription,
    sender: mpsc::Sender<Vec<u8>>,
) {
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(timeouts.reconnect_max_delay)
        .without_max_times();
    let mut subscription = first;
    loop {
        if let Ended::NobodyListens = forward(subscription, &sender, timeouts).await {
            return;
        }
        tracing::warn!(%channel, "redis subscription lost; resubscribing");
        let mut delays = policy.build();
        subscription = loop {
            tokio::select! {
                _ = sender.closed() => return,
                _ = tokio::time::sleep(delays.next().unwrap_or(timeouts.reconnect_max_delay)) => {}
            }
            match subscribed(&client, &channel, timeouts).await {
                Ok(subscription) => break subscription,
                Err(error) => tracing::debug!(%channel, %error, "resubscribing failed"),
            }
        };
        tracing::info!(%channel, "redis subscription restored");
    }
}

/// Why forwarding a subscription stopped.
enum Ended {
    /// Its connection closed or stopped answering.
    Lost,
    /// Nobody listens to the stream any more.
    NobodyListens,
}

/// Forwards messages until the subscription's connection closes or stops answering pings.
async fn forward(
    (mut sink, mut stream): Subscription,
    sender: &mpsc::Sender<Vec<u8>>,
    timeouts: RedisTimeouts,
) -> Ended {
    let mut pings = tokio::time::interval(timeouts.subscription_ping);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    pings.reset();
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => {
                    if sender.send(message.get_payload_bytes().to_vec()).await.is_err() {
                        return Ended::NobodyListens;
                    }
                }
                None => return Ended::Lost,
            },
            _ = pings.tick() => {
                let ping = within(timeouts.command, "a subscription ping", sink.ping::<redis::Value>());
                if let Err(error) = ping.await {
                    tracing::debug!(%error, "redis subscription does not answer");
                    return Ended::Lost;
                }
            }
            _ = sender.closed() => return Ended::NobodyListens,
        }
    }
}
