//! Embedded adapters for running everything in one process: an in-process event bus and
//! in-memory shared state. They keep the same guarantees as Kafka and Redis where the services
//! rely on them (a published event is handed over only once the consumer has stored it).

mod broadcast;
mod bus;
mod cache;
mod quotes;

pub use broadcast::MemoryBroadcast;
pub use bus::{in_process_bus, InProcessInbox, InProcessPublisher};
pub use cache::MemorySharedCache;
pub use quotes::MemoryQuoteCache;
