//! Adapters chosen by URL: `sqlite:`/`postgres:` for the stores, `memory://`/`redis://` for shared
//! state, `memory://`/`kafka://` for the bus.

use anyhow::Context;
use signal_kafka::{
    Guarantee, KafkaInbox, KafkaMarketDataPublisher, KafkaProducer, KafkaPublisher, KafkaSettings,
};
use signal_memory::{MemoryBroadcast, MemoryQuoteCache, MemorySharedCache};
use signal_ports::{
    AlertInbox, AlertPublisher, Broadcast, MarketDataPublisher, QuoteCache, SharedCache,
};
use signal_redis::{RedisState, RedisTimeouts};
use signal_store_sql::{
    connect, Schema, SqlAccountStore, SqlAlertStore, SqlAssetStore, SqlCandleStore,
};
use std::sync::Arc;

use crate::settings::Settings;

pub async fn asset_store(settings: &Settings) -> anyhow::Result<Arc<SqlAssetStore>> {
    let pool = connect(&settings.asset_database_url(), Schema::Asset)
        .await
        .context("opening the Asset Service database")?;
    Ok(Arc::new(SqlAssetStore::new(pool)))
}

/// The minute candles, in the Asset Service's database. A pool of their own: a large candle batch
/// never holds the connections that rule writes need.
pub async fn candle_store(settings: &Settings) -> anyhow::Result<Arc<SqlCandleStore>> {
    let pool = connect(&settings.asset_database_url(), Schema::Asset)
        .await
        .context("opening the Asset Service database for candles")?;
    Ok(Arc::new(SqlCandleStore::new(pool)))
}

pub async fn alert_store(settings: &Settings) -> anyhow::Result<Arc<SqlAlertStore>> {
    let pool = connect(&settings.alert_database_url(), Schema::Alert)
        .await
        .context("opening the Alert Service database")?;
    Ok(Arc::new(SqlAlertStore::new(pool)))
}

/// Built-in accounts and their sessions, in the Alert Service's database.
pub async fn account_store(settings: &Settings) -> anyhow::Result<Arc<SqlAccountStore>> {
    let pool = connect(&settings.alert_database_url(), Schema::Alert)
        .await
        .context("opening the Alert Service database for accounts")?;
    Ok(Arc::new(SqlAccountStore::new(pool)))
}

/// The shared-state ports, all over one backend.
pub struct SharedState {
    pub quotes: Arc<dyn QuoteCache>,
    pub cache: Arc<dyn SharedCache>,
    /// Stored alerts, to the Alert Service instance holding the user's sockets.
    pub alert_pushes: Arc<dyn Broadcast>,
    /// Rule changes, to every Asset Service instance's engine.
    pub rule_changes: Arc<dyn Broadcast>,
    /// Asset Service instances announcing themselves, to divide the instruments between them.
    pub asset_members: Arc<dyn Broadcast>,
}

pub async fn shared_state(settings: &Settings) -> anyhow::Result<SharedState> {
    let url = &settings.cache.url;
    if url.starts_with("memory:") {
        return Ok(SharedState {
            quotes: Arc::new(MemoryQuoteCache::default()),
            cache: Arc::new(MemorySharedCache::default()),
            alert_pushes: Arc::new(MemoryBroadcast::default()),
            rule_changes: Arc::new(MemoryBroadcast::default()),
            asset_members: Arc::new(MemoryBroadcast::default()),
        });
    }
    anyhow::ensure!(
        url.starts_with("redis:") || url.starts_with("rediss:"),
        "cache.url must be memory:// or redis://host:6379, got `{url}`"
    );
    let timeout = std::time::Duration::from_millis(settings.cache.timeout_ms);
    let timeouts = RedisTimeouts {
        command: timeout,
        connect: timeout,
        ..RedisTimeouts::default()
    };
    let redis = RedisState::connect_with(url, &settings.cache.key_prefix, timeouts)
        .await
        .context("connecting to Redis")?;
    Ok(SharedState {
        quotes: Arc::new(redis.clone()),
        cache: Arc::new(redis.clone()),
        alert_pushes: Arc::new(redis.channel("alert-pushes")),
        rule_changes: Arc::new(redis.channel("rule-changes")),
        asset_members: Arc::new(redis.channel("asset-members")),
    })
}

/// The Kafka side of the bus; `None` for `memory://`, which only the all-in-one binary can use.
pub fn kafka(settings: &Settings) -> anyhow::Result<Option<KafkaSettings>> {
    let url = &settings.bus.url;
    if url.starts_with("memory:") {
        return Ok(None);
    }
    let brokers = url
        .strip_prefix("kafka://")
        .with_context(|| format!("bus.url must be memory:// or kafka://host:9092, got `{url}`"))?;
    let version = settings.bus.alert_schema_version;
    if !(signal_domain::TRIGGERED_ALERT_SCHEMA_V1..=signal_domain::TRIGGERED_ALERT_SCHEMA_VERSION)
        .contains(&version)
    {
        anyhow::bail!("bus.alert_schema_version must be 1 or 2, got {version}");
    }
    Ok(Some(KafkaSettings {
        brokers: brokers.trim_end_matches('/').to_string(),
        alerts_topic: settings.bus.alerts_topic.clone(),
        market_data_topic: settings.bus.market_data_topic.clone(),
        partitions: settings.bus.partitions,
        replication: settings.bus.replication,
        delivery_timeout: std::time::Duration::from_millis(settings.bus.delivery_timeout_ms),
        max_batch_messages: settings.bus.producer_batch_messages,
        producer_linger: std::time::Duration::from_millis(settings.bus.producer_linger_ms),
        consumer_fetch_wait: std::time::Duration::from_millis(settings.bus.consumer_fetch_wait_ms),
        alert_schema_version: version,
    }))
}

fn require_kafka(settings: &Settings, service: &str) -> anyhow::Result<KafkaSettings> {
    kafka(settings)?.with_context(|| {
        format!(
            "the {service} runs apart from the other service, so it needs a shared bus: set \
             bus.url (SIGNAL_BUS__URL) to kafka://host:9092; memory:// only works in the \
             all-in-one binary"
        )
    })
}

/// What the Asset Service publishes: triggered alerts, and market data when anyone outside the
/// process can hear it.
pub struct AssetBus {
    pub alerts: Arc<dyn AlertPublisher>,
    pub market_data: Option<Arc<dyn MarketDataPublisher>>,
}

/// The Asset Service's end of the bus, with its topics created when absent.
pub async fn asset_bus(settings: &Settings) -> anyhow::Result<AssetBus> {
    let kafka = require_kafka(settings, "Asset Service")?;
    let created = signal_kafka::ensure_topics(&kafka).await?;
    let alerts = KafkaProducer::new(&kafka, Guarantee::Reliable)?;
    let market_data = KafkaProducer::new(&kafka, Guarantee::BestEffort)?;
    Ok(AssetBus {
        alerts: Arc::new(KafkaPublisher::new(alerts, &kafka, created)),
        market_data: Some(Arc::new(KafkaMarketDataPublisher::new(market_data, &kafka))),
    })
}

/// The Alert Service's end of the bus, with its topics created when absent.
pub async fn alert_inbox(settings: &Settings) -> anyhow::Result<Box<dyn AlertInbox>> {
    let kafka = require_kafka(settings, "Alert Service")?;
    signal_kafka::ensure_topics(&kafka).await?;
    Ok(Box::new(KafkaInbox::new(
        &kafka,
        &settings.bus.consumer_group,
    )?))
}
