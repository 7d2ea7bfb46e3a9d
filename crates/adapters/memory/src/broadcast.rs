//! Broadcast within one process: with a single instance, "every instance" is this one.

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use signal_ports::{Broadcast, BroadcastError};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

pub struct MemoryBroadcast {
    sender: broadcast::Sender<Vec<u8>>,
}

impl Default for MemoryBroadcast {
    fn default() -> Self {
        Self {
            sender: broadcast::Sender::new(4096),
        }
    }
}

#[async_trait]
impl Broadcast for MemoryBroadcast {
    async fn publish(&self, message: &[u8]) -> Result<(), BroadcastError> {
        // No subscriber yet is not an error: nobody is listening.
        let _ = self.sender.send(message.to_vec());
        Ok(())
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, Vec<u8>>, BroadcastError> {
        // A subscriber that lags loses messages; the alert socket's replay of unacknowledged
        // alerts covers what a push misses.
        Ok(BroadcastStream::new(self.sender.subscribe())
            .filter_map(|m| async move { m.ok() })
            .boxed())
    }
}
