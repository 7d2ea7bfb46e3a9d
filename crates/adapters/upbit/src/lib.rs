//! The Upbit connector: a [`QuoteFeed`] that follows Upbit's KRW markets over its public WebSocket
//! ticker stream, lists them from the REST market list, and after every (re)connection fills what
//! the socket may have missed with a REST snapshot, so a level crossed while disconnected still
//! fires. It also answers for Upbit's candle history ([`signal_ports::CandleHistory`]). Every
//! address is configuration, so tests and proxies can point it elsewhere.

mod history;
mod parse;
mod rest;
mod stream;

pub use parse::{
    parse_day_candles, parse_error_body, parse_market_list, parse_minute_candles,
    parse_remaining_req, parse_rest_tickers, parse_stream_message, parse_ticker, ParseError,
    RemainingReq, StreamMessage, UpbitError,
};
pub use rest::RestError;

use async_trait::async_trait;
use backon::ExponentialBuilder;
use rest::RestClient;
use serde::{Deserialize, Deserializer};
use signal_domain::Instrument;
use signal_exchange_socket::Link;
use signal_feed_metrics::SourceMetrics;
use signal_ports::{FeedContext, FeedError, FeedState, QuoteFeed};
use std::time::Duration;

const FEED_NAME: &str = "upbit";

/// Where Upbit is and how gently to talk to it. Durations are written as `60s`, `500ms`, `1m`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpbitConfig {
    pub rest_url: String,
    pub ws_url: String,
    /// Stream every KRW market, not only the ones someone needs.
    pub stream_all_krw_markets: bool,
    /// REST pace; Upbit allows 10 per second per IP and group, this stays below it.
    pub requests_per_second: u32,
    /// How often the text `PING` goes out, well inside Upbit's ~120 s idle timeout.
    #[serde(deserialize_with = "human_duration")]
    pub ping_interval: Duration,
    /// First wait after a failure (a dropped socket, an HTTP 429); doubled, with jitter, each time.
    #[serde(deserialize_with = "human_duration")]
    pub backoff_min: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub backoff_max: Duration,
    /// Markets per `GET /v1/ticker` snapshot request.
    pub snapshot_batch: usize,
}

impl Default for UpbitConfig {
    fn default() -> Self {
        Self {
            rest_url: "https://api.upbit.com".into(),
            ws_url: "wss://api.upbit.com/websocket/v1".into(),
            stream_all_krw_markets: false,
            requests_per_second: 8,
            ping_interval: Duration::from_secs(60),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            snapshot_batch: 100,
        }
    }
}

fn human_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// The Upbit market-data feed.
pub struct UpbitFeed {
    config: UpbitConfig,
    metrics: SourceMetrics,
    rest: RestClient,
    link: Link,
}

impl UpbitFeed {
    pub fn new(config: UpbitConfig, metrics: SourceMetrics) -> Self {
        let rest = RestClient::new(
            &config.rest_url,
            config.requests_per_second,
            backoff(&config),
        );
        Self {
            config,
            metrics,
            rest,
            link: Link::default(),
        }
    }
}

/// The exponential, jittered back-off used after every failure, from `backoff_min` to
/// `backoff_max` and never giving up (callers decide when to stop).
fn backoff(config: &UpbitConfig) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(config.backoff_min)
        .with_max_delay(config.backoff_max.max(config.backoff_min))
        .with_jitter()
        .without_max_times()
}

fn failed(error: impl std::error::Error + Send + Sync + 'static) -> FeedError {
    FeedError::Failed {
        feed: FEED_NAME,
        source: Box::new(error),
    }
}

#[async_trait]
impl QuoteFeed for UpbitFeed {
    fn name(&self) -> &'static str {
        FEED_NAME
    }

    /// Upbit's KRW markets, from `GET /v1/market/all?is_details=true`.
    async fn instruments(&self) -> Result<Vec<Instrument>, FeedError> {
        self.rest.instruments().await.map_err(failed)
    }

    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        stream::run(self, ctx).await
    }

    fn state(&self) -> FeedState {
        self.link.state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_human_durations_and_defaults_the_rest() {
        let config: UpbitConfig = serde_json::from_str(
            r#"{"ws_url":"ws://127.0.0.1:9/websocket/v1","ping_interval":"500ms","backoff_max":"2m"}"#,
        )
        .unwrap();
        assert_eq!(config.ws_url, "ws://127.0.0.1:9/websocket/v1");
        assert_eq!(config.ping_interval, Duration::from_millis(500));
        assert_eq!(config.backoff_max, Duration::from_secs(120));
        assert_eq!(config.rest_url, "https://api.upbit.com");
        assert_eq!(config.requests_per_second, 8);
        assert_eq!(config.snapshot_batch, 100);
    }
}
