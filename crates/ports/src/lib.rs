//! Ports: the small traits through which the services reach everything that does I/O. Each has an
//! embedded adapter (in-process, SQLite, in-memory, simulated) and a production one (Kafka,
//! PostgreSQL, Redis, exchanges), chosen by configuration.

pub mod bus;
pub mod error;
pub mod feed;
pub mod history;
pub mod notify;
pub mod probe;
pub mod state;
pub mod store;

pub use bus::{AlertInbox, AlertPublisher, Delivery, DeliveryAck, MarketDataPublisher};
pub use error::{BoxError, BroadcastError, BusError, CacheError, StoreError};
pub use feed::{FeedContext, FeedError, FeedState, Interest, Need, QuoteFeed, TickSink};
pub use history::{CandleHistory, HistoryError};
pub use notify::{
    ChannelKind, ChannelRecord, ChannelState, ChannelStore, ChannelTarget, DeliveryAttempt,
    DeliveryOutcome, DeliveryQuery, DeliveryRecord, DeliveryStatus, DeliveryStore, Language,
    NewChannel, PendingCode, QuietHours, UnknownName, UserSettings,
};
pub use probe::{Probe, ProbeError};
pub use state::{Broadcast, QuoteCache, SharedCache};
pub use store::{
    AlertHistoryStore, AlertMessage, AlertRecord, Candle, CandleStore, Capped, DailyCandle,
    DeadLetter, HistoryPage, HistoryQuery, OutboxEntry, OutboxLag, OutboxStore, RuleChange,
    RuleHold, RuleStore, RulesChanged, UnreadableEvent, WatchlistStore,
};

/// The tracing target of the spans along an alert's path, from the engine storing a firing to
/// the socket writing it, all at debug level: `RUST_LOG=info,signal_latency=debug` logs the time
/// of each stage when it ends (docs/benchmarks.md, "Tick to alert", reads them).
pub const LATENCY_TARGET: &str = "signal_latency";

/// Microseconds from `at` until now: how long ago an alert fired or a trade was received, as a
/// stage of the alert's path records it.
pub fn micros_since(at: signal_domain::Timestamp) -> i64 {
    (chrono::Utc::now() - at)
        .num_microseconds()
        .unwrap_or(i64::MAX)
}
