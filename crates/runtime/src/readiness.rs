//! What readiness checks beyond a service's own tasks: the adapters the settings chose. The
//! database and, in production, Redis and Kafka are required (the service cannot do its work
//! without them); market feeds are reported but not required, since an exchange that is down is
//! down for every instance and taking them all out of service would not bring it back.

use async_trait::async_trait;
use signal_kafka::KafkaProbe;
use signal_ports::{FeedState, Probe, ProbeError, QuoteFeed, SharedCache};
use signal_web::Dependency;
use std::sync::Arc;

use crate::adapters::{self, SharedState};
use crate::Settings;

/// The service's database.
pub fn database(store: Arc<dyn Probe>) -> Dependency {
    Dependency {
        name: "database",
        required: true,
        probe: store,
    }
}

/// Redis and Kafka, when the settings use them (the in-process ones cannot be down).
pub fn shared(settings: &Settings, shared: &SharedState) -> anyhow::Result<Vec<Dependency>> {
    let mut dependencies = Vec::new();
    if !settings.cache.url.starts_with("memory:") {
        dependencies.push(Dependency {
            name: "redis",
            required: true,
            probe: Arc::new(CacheProbe(shared.cache.clone())),
        });
    }
    if let Some(kafka) = adapters::kafka(settings)? {
        dependencies.push(Dependency {
            name: "kafka",
            required: true,
            probe: Arc::new(KafkaProbe::new(&kafka)?),
        });
    }
    Ok(dependencies)
}

/// A market feed, named as it names itself (`upbit`, `kis`).
pub fn feed(feed: Arc<dyn QuoteFeed>) -> Dependency {
    Dependency {
        name: feed.name(),
        required: false,
        probe: Arc::new(FeedProbe(feed)),
    }
}

/// One read of a key nobody writes: a round trip through the same connection every call uses.
struct CacheProbe(Arc<dyn SharedCache>);

#[async_trait]
impl Probe for CacheProbe {
    async fn probe(&self) -> Result<(), ProbeError> {
        self.0.get("readiness-probe").await?;
        Ok(())
    }
}

/// A feed is down when something is wanted from it and its connection is not up.
struct FeedProbe(Arc<dyn QuoteFeed>);

#[async_trait]
impl Probe for FeedProbe {
    async fn probe(&self) -> Result<(), ProbeError> {
        match self.0.state() {
            FeedState::Live | FeedState::Idle => Ok(()),
            FeedState::Down => Err(ProbeError::Disconnected),
        }
    }
}
