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
    AlertHistoryStore, AlertRecord, Candle, CandleStore, Capped, DailyCandle, DeadLetter,
    HistoryPage, HistoryQuery, OutboxEntry, OutboxLag, OutboxStore, RuleChange, RuleHold,
    RuleStore, UnreadableEvent, WatchlistStore,
};
