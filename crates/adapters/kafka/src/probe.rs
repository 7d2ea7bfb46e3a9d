//! The bus's readiness probe: the alert topic's metadata, which needs a broker that answers.

use async_trait::async_trait;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use signal_ports::{BusError, Probe, ProbeError};
use std::sync::Arc;
use std::time::Duration;

use crate::{base_config, unavailable, KafkaSettings};

/// How long a broker may take to answer the probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Asks the brokers for the alert topic. A client of its own: the producers' and the consumer's
/// queues may be full or backing off, and the probe should not wait behind them.
pub struct KafkaProbe {
    client: Arc<AdminClient<DefaultClientContext>>,
    topic: String,
}

impl KafkaProbe {
    pub fn new(settings: &KafkaSettings) -> Result<Self, BusError> {
        Ok(Self {
            client: Arc::new(base_config(settings).create().map_err(unavailable)?),
            topic: settings.alerts_topic.clone(),
        })
    }
}

#[async_trait]
impl Probe for KafkaProbe {
    async fn probe(&self) -> Result<(), ProbeError> {
        let client = self.client.clone();
        let topic = self.topic.clone();
        // librdkafka's metadata call blocks its thread until the answer or the timeout.
        let fetched = tokio::task::spawn_blocking(move || {
            client
                .inner()
                .fetch_metadata(Some(&topic), PROBE_TIMEOUT)
                .map(drop)
        })
        .await
        .map_err(|joined| BusError::Unavailable(Box::new(joined)))?;
        fetched
            .map_err(|error: KafkaError| unavailable(error))
            .map_err(ProbeError::from)
    }
}
