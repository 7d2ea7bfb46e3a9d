//! Relational store adapter. One code path serves SQLite (the embedded default) and PostgreSQL
//! (production) through sqlx's `Any` driver: columns use portable types (epoch-microsecond
//! integers, exact decimals as text) and each backend has its own migration folder.

mod accounts;
mod alert;
mod asset;
mod candles;
mod channels;
mod codec;
mod connect;
mod outbox;
mod owner_only;
mod probe;

pub use accounts::SqlAccountStore;
pub use alert::SqlAlertStore;
pub use asset::SqlAssetStore;
pub use candles::SqlCandleStore;
pub use connect::{connect, Backend, ConnectError, Schema};
