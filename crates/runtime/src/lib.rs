//! What every binary shares: layered settings, the adapters the settings' URLs name, and serving
//! a router until shutdown. The all-in-one binary and the two service binaries differ only in
//! which services they start over these.

pub mod adapters;
pub mod logging;
pub mod readiness;
pub mod serve;
pub mod settings;

pub use settings::Settings;
