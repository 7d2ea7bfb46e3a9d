//! Market data port: anything that produces normalized ticks.

use async_trait::async_trait;
use signal_domain::Tick;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where a feed delivers its ticks. Bounded, so a stalled consumer slows the feed instead of
/// growing memory without limit.
pub type TickSink = mpsc::Sender<Tick>;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("the tick consumer has gone away")]
    SinkClosed,
    #[error("feed `{feed}` failed: {reason}")]
    Failed { feed: &'static str, reason: String },
}

/// A source of market data.
#[async_trait]
pub trait QuoteFeed: Send + Sync + 'static {
    /// Short name for logs and metrics (`simulated`, `upbit`, `kis`).
    fn name(&self) -> &'static str;

    /// Streams ticks into `sink` until `shutdown` is cancelled or the sink closes.
    async fn run(&self, sink: TickSink, shutdown: CancellationToken) -> Result<(), FeedError>;
}
