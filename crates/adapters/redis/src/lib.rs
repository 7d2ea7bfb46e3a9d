//! Shared state over Redis, for services running as several instances: the latest quote per
//! instrument, expiring values with one-holder claims (exchange tokens and the right to issue
//! them), and broadcast channels every instance hears (alert pushes, rule changes). Every key starts with a
//! configurable prefix, so deployments and tests can share one Redis.

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::stream::BoxStream;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use signal_domain::{InstrumentId, Quote};
use signal_ports::{Broadcast, BroadcastError, CacheError, QuoteCache, SharedCache};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Clone)]
pub struct RedisState {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: String,
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

impl RedisState {
    /// Connects to `url` (`redis://host:6379/0`); every key gets `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(cache_error)?;
        let connection = ConnectionManager::new(client.clone())
            .await
            .map_err(cache_error)?;
        Ok(Self {
            client,
            connection,
            prefix: prefix.to_string(),
        })
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
        redis::pipe()
            .set(self.quote_key(&quote.instrument), json)
            .ignore()
            .sadd(self.key("quotes"), quote.instrument.to_string())
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(cache_error)
    }

    async fn get(&self, id: &InstrumentId) -> Result<Option<Quote>, CacheError> {
        let mut conn = self.connection.clone();
        let raw: Option<String> = conn.get(self.quote_key(id)).await.map_err(cache_error)?;
        Self::decode(raw)
    }

    async fn get_many(&self, ids: &[InstrumentId]) -> Result<Vec<Quote>, CacheError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.quote_key(id)).collect();
        let mut conn = self.connection.clone();
        let raw: Vec<Option<String>> = conn.mget(keys).await.map_err(cache_error)?;
        let mut quotes = Vec::with_capacity(raw.len());
        for value in raw {
            quotes.extend(Self::decode(value)?);
        }
        Ok(quotes)
    }

    async fn all(&self) -> Result<Vec<Quote>, CacheError> {
        let mut conn = self.connection.clone();
        let members: Vec<String> = conn
            .smembers(self.key("quotes"))
            .await
            .map_err(cache_error)?;
        let ids: Vec<InstrumentId> = members.iter().filter_map(|m| m.parse().ok()).collect();
        self.get_many(&ids).await
    }
}

#[async_trait]
impl SharedCache for RedisState {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let mut conn = self.connection.clone();
        conn.get(self.key(key)).await.map_err(cache_error)
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let mut conn = self.connection.clone();
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut conn)
            .await
            .map_err(cache_error)
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let mut conn = self.connection.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg("claimed")
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(cache_error)?;
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
        let held: i64 = redis::cmd("EVAL")
            .arg(LEASE)
            .arg(1)
            .arg(self.key(key))
            .arg(holder)
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(cache_error)?;
        Ok(held == 1)
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), CacheError> {
        const RELEASE: &str = r"
            if redis.call('GET', KEYS[1]) == ARGV[1] then
                return redis.call('DEL', KEYS[1])
            end
            return 0";
        let mut conn = self.connection.clone();
        redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.key(key))
            .arg(holder)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(cache_error)?;
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
        conn.publish::<_, _, ()>(&self.channel, message)
            .await
            .map_err(broadcast_error)
    }

    /// The stream survives Redis restarts: a background task resubscribes with back-off.
    /// Messages published while it was reconnecting are missed; the alert socket's replay of
    /// unacknowledged alerts covers those.
    async fn subscribe(&self) -> Result<BoxStream<'static, Vec<u8>>, BroadcastError> {
        let channel = self.channel.clone();
        let first = subscribed(&self.state.client, &channel)
            .await
            .map_err(broadcast_error)?;
        let (sender, receiver) = mpsc::channel(1024);
        let client = self.state.client.clone();
        tokio::spawn(async move {
            let policy = ExponentialBuilder::default().with_max_delay(Duration::from_secs(10));
            let mut messages = Some(first);
            loop {
                if let Some(stream) = messages.take() {
                    let mut stream = stream;
                    while let Some(message) = stream.next().await {
                        if sender.send(message).await.is_err() {
                            return;
                        }
                    }
                    tracing::warn!(%channel, "redis subscription lost; resubscribing");
                }
                let mut delays = policy.build();
                while messages.is_none() {
                    if sender.is_closed() {
                        return;
                    }
                    tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(10))).await;
                    messages = subscribed(&client, &channel).await.ok();
                }
            }
        });
        Ok(ReceiverStream::new(receiver).boxed())
    }
}

async fn subscribed(
    client: &redis::Client,
    channel: &str,
) -> Result<BoxStream<'static, Vec<u8>>, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub
        .into_on_message()
        .map(|message| message.get_payload_bytes().to_vec())
        .boxed())
}
