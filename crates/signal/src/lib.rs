//! DonTouch Signal in one process: the Asset Service and the Alert Service on their own ports,
//! wired over the embedded adapters (SQLite, in-process bus, in-memory state), and the web app
//! on one origin in front of them. The same service libraries run apart in production; only
//! this wiring differs.

pub mod app;
pub mod gateway;
pub mod listen;
pub mod outbox;
pub mod standalone;

pub use app::{start, RunningApp};
pub use signal_runtime::Settings;

/// jemalloc rather than glibc's malloc for every binary of the crate: glibc kept what thousands of
/// closed quote sockets had used resident in its arenas for good, where jemalloc gives it back
/// (its purging is configured in `.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
