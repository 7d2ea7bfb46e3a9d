//! The event bus over Kafka. Triggered alerts go to one topic keyed by user, so each user's alerts
//! stay in order on one partition; market-data changes go to another, keyed by instrument. The publisher is idempotent with `acks=all`; the inbox reads in
//! a consumer group and commits an offset only when the service acknowledges the delivery (after
//! the history row is stored). A message that cannot be decoded goes to the dead-letter topic with
//! the reason, and its partition moves on.

mod probe;

pub use probe::KafkaProbe;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use signal_domain::ErrorChain;
use signal_domain::{
    QuoteChanged, TriggeredAlert, TRIGGERED_ALERT_SCHEMA_V1, TRIGGERED_ALERT_SCHEMA_VERSION,
};
use signal_ports::{
    AlertInbox, AlertPublisher, BusError, Delivery, DeliveryAck, MarketDataPublisher,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the bus lives and how its topics are laid out.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port[,host:port...]`
    pub brokers: String,
    /// Triggered alerts, keyed by user.
    pub alerts_topic: String,
    /// Market-data change events, keyed by instrument.
    pub market_data_topic: String,
    /// Partitions of both topics.
    pub partitions: i32,
    pub replication: i32,
    /// How long a publish waits for the broker before it counts as failed; the outbox keeps the
    /// event and the relay tries again.
    pub delivery_timeout: Duration,
    /// Caps messages per produced record batch; `None` leaves librdkafka's default. Brokers that
    /// mis-serve a fetch starting inside a batch (tansu 0.6, used in tests) need 1.
    pub max_batch_messages: Option<u32>,
    /// How long a producer holds a message for others to batch with (`linger.ms`): every
    /// alert waits this long on its way.
    pub producer_linger: Duration,
    /// The longest the broker may hold a consumer's fetch while it has nothing new
    /// (`fetch.wait.max.ms`). Apache Kafka answers as soon as a message arrives, so this only
    /// paces an idle consumer; tansu 0.6 holds every fetch for this long (half of it when it
    /// is 250 ms or more), so there it is added to every alert's way.
    pub consumer_fetch_wait: Duration,
    /// The triggered-alert schema version written (1 or 2); both are read.
    pub alert_schema_version: u16,
}

impl KafkaSettings {
    /// Undecodable triggered-alert messages, with the reason in a `reason` header.
    pub fn dead_letter_topic(&self) -> String {
        format!("{}.dlq", self.alerts_topic)
    }
}

fn unavailable(error: KafkaError) -> BusError {
    BusError::Unavailable(Box::new(error))
}

/// The broker would not create a topic the services need.
#[derive(Debug, thiserror::Error)]
#[error("cannot create topic `{topic}`")]
struct TopicNotCreated {
    topic: String,
    #[source]
    code: RDKafkaErrorCode,
}

/// Every broker went away while a send was waiting for them.
#[derive(Debug, thiserror::Error)]
#[error("every Kafka broker went away while events were on their way")]
struct ClusterLost;

fn base_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        // A broker that comes back is reconnected to within a second (librdkafka's default
        // backs off up to 10 s), and a topic created again after it came back empty is seen
        // within seconds (the default refresh is every 5 minutes), so clients heal by
        // themselves.
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "5000");
    config
}

/// Creates the alert topic, its dead-letter topic and the market-data topic when they are absent:
/// at start, and again whenever a client finds one missing (a broker that came back empty, a
/// cluster replaced, a topic deleted), so that publishing and consuming resume by themselves.
/// Returns whether the alert topic was created now: it holds none of the events sent before.
pub async fn ensure_topics(settings: &KafkaSettings) -> Result<bool, BusError> {
    let admin: AdminClient<DefaultClientContext> =
        base_config(settings).create().map_err(unavailable)?;
    let dead_letter = settings.dead_letter_topic();
    let topics = [
        NewTopic::new(
            &settings.alerts_topic,
            settings.partitions,
            TopicReplication::Fixed(settings.replication),
        ),
        NewTopic::new(
            &dead_letter,
            1,
            TopicReplication::Fixed(settings.replication),
        ),
        NewTopic::new(
            &settings.market_data_topic,
            settings.partitions,
            TopicReplication::Fixed(settings.replication),
        ),
    ];
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(unavailable)?;
    let mut alerts_created = false;
    for result in results {
        match result {
            Ok(topic) => {
                tracing::info!(%topic, "created topic");
                alerts_created |= topic == settings.alerts_topic;
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(BusError::Unavailable(Box::new(TopicNotCreated {
                    topic,
                    code,
                })))
            }
        }
    }
    Ok(alerts_created)
}

/// What a producer promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Idempotent with `acks=all`: a message reported delivered is on every in-sync replica,
    /// once, in order per partition. For alerts.
    Reliable,
    /// `acks=1`, not idempotent: a message lost or written twice is superseded by the next. For
    /// market data, on a producer of its own, so that its traffic, and its timeouts while a
    /// broker is away, never touch the alerts' producer (whose recovery after a timeout
    /// re-initialises its idempotent session).
    BestEffort,
}

/// What a producer's librdkafka client tells about its cluster.
#[derive(Default)]
struct ClusterWatch {
    /// The producer has had an event delivered: it knew a live cluster.
    delivered: AtomicBool,
    /// Every broker went away after that.
    lost: AtomicBool,
    /// Wakes sends waiting on deliveries when every broker went away.
    lost_now: tokio::sync::Notify,
}

/// The client context of a producer: global errors go to the log, and losing every broker is
/// recorded in the [`ClusterWatch`].
struct WatchedContext(Arc<ClusterWatch>);

impl ClientContext for WatchedContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown)
            && self.0.delivered.load(Ordering::Relaxed)
        {
            self.0.lost.store(true, Ordering::Relaxed);
            self.0.lost_now.notify_waiters();
        }
        tracing::error!(%error, reason, "Kafka producer");
    }
}

type WatchedProducer = FutureProducer<WatchedContext>;

/// One librdkafka producer and what it knows of its cluster.
struct Generation {
    producer: WatchedProducer,
    watch: Arc<ClusterWatch>,
    /// Whether the id of the cluster this producer delivered to was compared with the last
    /// one known.
    cluster_checked: AtomicBool,
}

impl Generation {
    fn create(config: &ClientConfig) -> Result<Self, BusError> {
        let watch = Arc::new(ClusterWatch::default());
        let producer = config
            .create_with_context(WatchedContext(watch.clone()))
            .map_err(unavailable)?;
        Ok(Self {
            producer,
            watch,
            cluster_checked: AtomicBool::new(false),
        })
    }
}

/// What tells a producer that the cluster no longer holds events it acknowledged: the alert
/// topic was missing or created again, the cluster's id changed, or a partition's log started
/// over (a delivery at or below an offset acknowledged before, which only a new log gives,
/// whoever else writes to it).
#[derive(Default)]
struct Acknowledged {
    /// The offset of the last delivery to each partition of each topic.
    last: std::sync::Mutex<HashMap<(String, i32), i64>>,
    /// The id of the cluster the producers delivered to.
    cluster: std::sync::Mutex<Option<String>>,
    /// Set when found out, until the publisher's user takes it.
    lost: AtomicBool,
}

impl Acknowledged {
    fn lose(&self, why: &str) {
        tracing::warn!(
            why,
            "the Kafka cluster no longer holds events it acknowledged"
        );
        self.lost.store(true, Ordering::Relaxed);
    }

    fn delivered(&self, topic: &str, partition: i32, offset: i64) {
        let previous = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((topic.to_string(), partition), offset);
        if previous.is_some_and(|previous| offset <= previous) {
            self.lose("a partition's log started over");
        }
    }

    fn cluster_is(&self, id: String) {
        let previous = self
            .cluster
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(id.clone());
        if previous.is_some_and(|previous| previous != id) {
            self.lose("the cluster was replaced");
        }
    }
}

pub struct KafkaProducer {
    settings: KafkaSettings,
    config: ClientConfig,
    /// Replaced when it cannot go on: librdkafka declared a fatal error (an idempotent session
    /// fenced after a broker outage), a delivery timed out, or every broker went away after it
    /// had delivered (the cluster that comes back may have lost its topics and its idempotent
    /// sessions, as a broker restarted empty has). The caller keeps its events and retries, and
    /// a new producer carries them.
    current: std::sync::RwLock<Arc<Generation>>,
    delivery_timeout: Duration,
    acknowledged: Acknowledged,
}

impl KafkaProducer {
    pub fn new(settings: &KafkaSettings, guarantee: Guarantee) -> Result<Self, BusError> {
        let mut config = base_config(settings);
        if let Some(max) = settings.max_batch_messages {
            config.set("batch.num.messages", max.to_string());
        }
        config.set(
            "linger.ms",
            settings.producer_linger.as_millis().to_string(),
        );
        match guarantee {
            Guarantee::Reliable => config.set("enable.idempotence", "true").set("acks", "all"),
            Guarantee::BestEffort => config.set("enable.idempotence", "false").set("acks", "1"),
        };
        config.set(
            "message.timeout.ms",
            settings.delivery_timeout.as_millis().to_string(),
        );
        let first = Generation::create(&config)?;
        Ok(Self {
            settings: settings.clone(),
            config,
            current: std::sync::RwLock::new(Arc::new(first)),
            delivery_timeout: settings.delivery_timeout,
            acknowledged: Acknowledged::default(),
        })
    }

    fn current(&self) -> Arc<Generation> {
        // A poisoned lock still holds a usable producer.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a new producer in place of `old` (unless that happened already), and fails what
    /// `old` still holds, so no send waits on it.
    fn replace(&self, old: &Arc<Generation>, reason: &str) -> Result<(), BusError> {
        {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            if Arc::ptr_eq(&current, old) {
                tracing::warn!(%reason, "replacing the Kafka producer");
                *current = Arc::new(Generation::create(&self.config)?);
            }
        }
        old.producer
            .purge(PurgeConfig::default().queue().inflight());
        Ok(())
    }

    /// Sends `(key, payload)` records in order and waits until the broker holds every one.
    async fn send_all(&self, topic: &str, records: &[(String, String)]) -> Result<(), BusError> {
        let mut generation = self.current();
        if generation.watch.lost.load(Ordering::Relaxed) {
            self.replace(
                &generation,
                "every broker went away since its last delivery",
            )?;
            generation = self.current();
        }
        let producer = &generation.producer;
        let lost = generation.watch.lost_now.notified();
        // Polled in order, so they are enqueued in order; an idempotent producer keeps that
        // order per partition.
        let deliveries = records.iter().map(|(key, payload)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(payload),
                self.delivery_timeout,
            )
        });
        let outcomes = tokio::select! {
            outcomes = futures::future::join_all(deliveries) => outcomes,
            _ = lost => {
                self.replace(&generation, "every broker went away during a send")?;
                return Err(BusError::Unavailable(Box::new(ClusterLost)));
            }
        };
        let mut failed = None;
        for (index, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(delivery) => {
                    self.acknowledged
                        .delivered(topic, delivery.partition, delivery.offset);
                }
                Err((error, _)) => {
                    failed.get_or_insert((index, error));
                }
            }
        }
        let Some((index, error)) = failed else {
            generation.watch.delivered.store(true, Ordering::Relaxed);
            self.check_cluster(&generation).await;
            return Ok(());
        };
        if topic_missing(&error) {
            self.acknowledged.lose("the topic was missing");
            if recreate_topics(&self.settings).await {
                self.acknowledged.lose("the alert topic was created again");
            }
        }
        if let Some(reason) = unusable(producer, &error) {
            self.replace(&generation, &reason)?;
        }
        if refused_for_good(&error) {
            return Err(BusError::Refused {
                index,
                source: Box::new(error),
            });
        }
        Err(unavailable(error))
    }
}

impl KafkaProducer {
    /// Compares the id of the cluster `generation` delivered to with the last one known, once
    /// per producer: a producer is replaced when every broker went away, and the cluster that
    /// answers the next one may be another.
    async fn check_cluster(&self, generation: &Arc<Generation>) {
        if generation.cluster_checked.swap(true, Ordering::Relaxed) {
            return;
        }
        let asked = generation.clone();
        // A metadata request, answered at once by a cluster that just took a delivery.
        let id = tokio::task::spawn_blocking(move || {
            asked
                .producer
                .client()
                .fetch_cluster_id(Duration::from_secs(1))
        })
        .await;
        match id {
            Ok(Some(id)) => self.acknowledged.cluster_is(id),
            // Not known this time; the next producer asks again.
            _ => generation.cluster_checked.store(false, Ordering::Relaxed),
        }
    }
}

/// Whether `error` says the topic is missing: the broker lost it, or it was never created.
fn topic_missing(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
    )
}

/// Creates the topics again after a client found one missing; returns whether the alert topic
/// was created. A failure is only logged: the caller reports its own error and tries again
/// later, and so comes back here.
async fn recreate_topics(settings: &KafkaSettings) -> bool {
    tracing::warn!(
        topic = %settings.alerts_topic,
        "a topic is missing on the broker; creating the topics again"
    );
    ensure_topics(settings).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "creating the missing topics failed");
        false
    })
}

/// Why `producer` can send nothing more, if so: librdkafka declared a fatal error, the broker
/// refused its idempotent session (seen on tansu after a broker outage: every later message is
/// refused as fenced, though librdkafka does not call it fatal), or a delivery timed out (an
/// idempotent session the broker no longer knows is retried until then: seen on tansu
/// restarted empty, which answers every later message with "unknown producer id").
fn unusable(producer: &WatchedProducer, error: &KafkaError) -> Option<String> {
    if let Some((code, reason)) = producer.client().fatal_error() {
        return Some(format!("{code:?}: {reason}"));
    }
    match error {
        KafkaError::MessageProduction(
            code @ (RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::MessageTimedOut),
        ) => Some(code.to_string()),
        _ => None,
    }
}

/// Whether the broker refused this one message for what it is (too large, malformed), so that
/// sending it again cannot succeed.
fn refused_for_good(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

/// Encodes each event as JSON under its key.
fn keyed_json<E: serde::Serialize>(
    events: &[E],
    key: impl Fn(&E) -> String,
) -> Result<Vec<(String, String)>, BusError> {
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            serde_json::to_string(event)
                .map(|json| (key(event), json))
                .map_err(|error| BusError::Refused {
                    index,
                    source: Box::new(error),
                })
        })
        .collect()
}

pub struct KafkaPublisher {
    producer: KafkaProducer,
    topic: String,
    version: u16,
}

impl KafkaPublisher {
    /// `topic_created`: whether the alert topic was created at start ([`ensure_topics`]), so
    /// that it holds none of what was sent before, as when the cluster lost it while the
    /// service was down.
    pub fn new(producer: KafkaProducer, settings: &KafkaSettings, topic_created: bool) -> Self {
        if topic_created {
            producer
                .acknowledged
                .lose("the alert topic was created at start");
        }
        Self {
            producer,
            topic: settings.alerts_topic.clone(),
            version: settings.alert_schema_version,
        }
    }
}

#[async_trait]
impl AlertPublisher for KafkaPublisher {
    async fn publish(&self, events: &[TriggeredAlert]) -> Result<(), BusError> {
        let events: Vec<TriggeredAlert> = events
            .iter()
            .map(|event| event.in_version(self.version))
            .collect();
        let records = keyed_json(&events, |event| event.user_id.as_str().to_string())?;
        self.producer.send_all(&self.topic, &records).await
    }

    fn take_lost_acknowledged(&self) -> bool {
        self.producer
            .acknowledged
            .lost
            .swap(false, Ordering::Relaxed)
    }
}

pub struct KafkaMarketDataPublisher {
    producer: KafkaProducer,
    topic: String,
}

impl KafkaMarketDataPublisher {
    pub fn new(producer: KafkaProducer, settings: &KafkaSettings) -> Self {
        Self {
            producer,
            topic: settings.market_data_topic.clone(),
        }
    }
}

#[async_trait]
impl MarketDataPublisher for KafkaMarketDataPublisher {
    async fn publish(&self, events: &[QuoteChanged]) -> Result<(), BusError> {
        let records = keyed_json(events, |event| event.quote.instrument.to_string())?;
        self.producer.send_all(&self.topic, &records).await
    }
}

/// Logs partition assignments: who consumes what is the first question when alerts stall.
pub struct GroupContext;

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let assigned: Vec<String> = partitions
                    .elements()
                    .iter()
                    .map(|p| format!("{}/{}", p.topic(), p.partition()))
                    .collect();
                tracing::info!(?assigned, "consumer group assigned partitions");
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(
                    count = partitions.count(),
                    "consumer group revoked partitions"
                )
            }
            Rebalance::Error(e) => {
                tracing::warn!(error = %ErrorChain(e), "consumer group rebalance failed")
            }
        }
    }
}

type GroupConsumer = StreamConsumer<GroupContext>;

pub struct KafkaInbox {
    settings: KafkaSettings,
    group: String,
    consumer: Arc<GroupConsumer>,
    errors: ErrorLog,
    dead_letters: FutureProducer,
    dead_letter_topic: String,
    delivery_timeout: Duration,
}

impl KafkaInbox {
    /// Joins consumer group `group` on the alert topic.
    pub fn new(settings: &KafkaSettings, group: &str) -> Result<Self, BusError> {
        let consumer = group_consumer(settings, group)?;
        let dead_letters = base_config(settings)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()
            .map_err(unavailable)?;
        Ok(Self {
            settings: settings.clone(),
            group: group.to_string(),
            consumer: Arc::new(consumer),
            errors: ErrorLog::default(),
            dead_letters,
            dead_letter_topic: settings.dead_letter_topic(),
            delivery_timeout: settings.delivery_timeout,
        })
    }

    fn commit(&self, topic: &str, partition: i32, offset: i64) -> Result<(), BusError> {
        commit(&self.consumer, topic, partition, offset)
    }

    /// Replaces the consumer with a new member of the group, after every broker went away.
    ///
    /// The cluster that comes back may not be the one that left: restarted empty, or replaced.
    /// A new consumer starts from what that cluster says (its topics, the group's committed
    /// positions, or the earliest events when it has none) instead of fetching by the old
    /// cluster's topic ids. It also keeps clear of a librdkafka crash: a fetch answered for a
    /// topic the broker does not know, with a zero topic id and a leader hint (as tansu answers),
    /// makes librdkafka look the topic up by a name it does not have. Events delivered and not
    /// yet acknowledged come again from the new consumer; the service keeps one of each.
    fn rejoin(&mut self) -> Result<(), BusError> {
        let fresh = Arc::new(group_consumer(&self.settings, &self.group)?);
        let gone = std::mem::replace(&mut self.consumer, fresh);
        tracing::warn!(group = %self.group, "every broker went away; rejoining the consumer group with a new consumer");
        // Closing a consumer waits on its broker, which is gone: never on this thread.
        std::thread::spawn(move || drop(gone));
        Ok(())
    }
}

/// Logs the consumer's errors without flooding: while brokers are away librdkafka reports the
/// same error many times a second. Each kind is logged when it first comes and then at most
/// every [`ErrorLog::EVERY`], with how many were left out.
#[derive(Default)]
struct ErrorLog {
    last: Option<(RDKafkaErrorCode, std::time::Instant)>,
    left_out: u64,
}

impl ErrorLog {
    const EVERY: Duration = Duration::from_secs(10);

    fn report(&mut self, error: &KafkaError) {
        let code = error
            .rdkafka_error_code()
            .unwrap_or(RDKafkaErrorCode::Unknown);
        let now = std::time::Instant::now();
        match self.last {
            Some((last, at)) if last == code && now.duration_since(at) < Self::EVERY => {
                self.left_out += 1;
            }
            _ => {
                tracing::warn!(%error, left_out_since_last = self.left_out, "alert consumer: kafka reports an error");
                self.last = Some((code, now));
                self.left_out = 0;
            }
        }
    }
}

/// A member of consumer group `group`, subscribed to the alert topic, committing only what the
/// service acknowledges.
fn group_consumer(settings: &KafkaSettings, group: &str) -> Result<GroupConsumer, BusError> {
    let consumer: GroupConsumer = base_config(settings)
        .set("group.id", group)
        // A crashed instance's partitions move to the others after this long.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "fetch.wait.max.ms",
            settings.consumer_fetch_wait.as_millis().to_string(),
        )
        .create_with_context(GroupContext)
        .map_err(unavailable)?;
    consumer
        .subscribe(&[&settings.alerts_topic])
        .map_err(unavailable)?;
    Ok(consumer)
}

fn commit(
    consumer: &GroupConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(), BusError> {
    let mut position = TopicPartitionList::new();
    position
        .add_partition_offset(topic, partition, Offset::Offset(offset + 1))
        .map_err(unavailable)?;
    consumer
        .commit(&position, CommitMode::Async)
        .map_err(unavailable)
}

struct CommitOnAck {
    consumer: Arc<GroupConsumer>,
    topic: String,
    partition: i32,
    offset: i64,
}

#[async_trait]
impl DeliveryAck for CommitOnAck {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        commit(&self.consumer, &self.topic, self.partition, self.offset)
    }
}

#[async_trait]
impl AlertInbox for KafkaInbox {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let message = match self.consumer.recv().await {
                Ok(message) => message,
                Err(error) => {
                    // librdkafka reconnects and refetches by itself; what it reports here is
                    // for the log, except what only the service can mend.
                    self.errors.report(&error);
                    if topic_missing(&error) {
                        // What the topic held is gone with it; the Asset Service notices too
                        // and publishes its recent events again.
                        recreate_topics(&self.settings).await;
                    }
                    // A consumer without partitions (one that rejoined already) fetches nothing.
                    let assigned = self.consumer.assignment().is_ok_and(|a| a.count() > 0);
                    if assigned
                        && error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown)
                    {
                        self.rejoin()?;
                    }
                    continue;
                }
            };
            let (topic, partition, offset) = (
                message.topic().to_string(),
                message.partition(),
                message.offset(),
            );
            let payload = message.payload().unwrap_or_default();
            let decoded = serde_json::from_slice::<TriggeredAlert>(payload)
                .map_err(|e| format!("not a triggered-alert event: {e}"))
                .and_then(|event| match event.schema_version {
                    TRIGGERED_ALERT_SCHEMA_V1..=TRIGGERED_ALERT_SCHEMA_VERSION => Ok(event),
                    other => Err(format!("unsupported schemaVersion {other}")),
                });
            match decoded {
                Ok(event) => {
                    return Ok(Delivery {
                        event,
                        ack: Box::new(CommitOnAck {
                            consumer: self.consumer.clone(),
                            topic,
                            partition,
                            offset,
                        }),
                    })
                }
                Err(reason) => {
                    tracing::warn!(%topic, partition, offset, %reason, "dead-lettering a message");
                    let headers = OwnedHeaders::new()
                        .insert(Header {
                            key: "reason",
                            value: Some(reason.as_str()),
                        })
                        .insert(Header {
                            key: "source-topic",
                            value: Some(topic.as_str()),
                        });
                    let mut record = FutureRecord::<[u8], [u8]>::to(&self.dead_letter_topic)
                        .payload(payload)
                        .headers(headers);
                    if let Some(key) = message.key() {
                        record = record.key(key);
                    }
                    self.dead_letters
                        .send(record, self.delivery_timeout)
                        .await
                        .map_err(|(error, _)| unavailable(error))?;
                    self.commit(&topic, partition, offset)?;
                }
            }
        }
    }
}
