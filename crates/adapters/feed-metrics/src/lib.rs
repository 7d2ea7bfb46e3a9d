//! The metrics every market-data connector reports, under the same names with a `source` label,
//! so one dashboard covers Upbit, KIS and whatever comes next. Register the families once per
//! registry ([`FeedMetrics::register`]) and give each connector its labelled view
//! ([`FeedMetrics::source`]).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use signal_domain::Tick;

#[derive(Clone)]
pub struct FeedMetrics {
    ticks: IntCounterVec,
    parse_errors: IntCounterVec,
    reconnects: IntCounterVec,
    lag_seconds: HistogramVec,
    instruments: IntGaugeVec,
    connected: IntGaugeVec,
    token_issuances: IntCounterVec,
}

impl FeedMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let by_source =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["source"]);
        let metrics = Self {
            ticks: by_source(
                "signal_feed_ticks_total",
                "Ticks received from a market-data source",
            )?,
            parse_errors: by_source(
                "signal_feed_parse_errors_total",
                "Messages from a source that could not be understood",
            )?,
            reconnects: by_source(
                "signal_feed_reconnects_total",
                "Stream reconnections to a source",
            )?,
            lag_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "signal_feed_lag_seconds",
                    "From the exchange's trade time to the moment the tick was received",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0]),
                &["source"],
            )?,
            instruments: IntGaugeVec::new(
                Opts::new(
                    "signal_feed_instruments",
                    "Instruments a source follows, by mode (streamed or polled)",
                ),
                &["source", "mode"],
            )?,
            connected: IntGaugeVec::new(
                Opts::new(
                    "signal_feed_connected",
                    "1 while a source's live connection is up",
                ),
                &["source"],
            )?,
            token_issuances: by_source(
                "signal_feed_token_issuances_total",
                "Access tokens or keys this process had a source issue",
            )?,
        };
        registry.register(Box::new(metrics.ticks.clone()))?;
        registry.register(Box::new(metrics.parse_errors.clone()))?;
        registry.register(Box::new(metrics.reconnects.clone()))?;
        registry.register(Box::new(metrics.lag_seconds.clone()))?;
        registry.register(Box::new(metrics.instruments.clone()))?;
        registry.register(Box::new(metrics.connected.clone()))?;
        registry.register(Box::new(metrics.token_issuances.clone()))?;
        Ok(metrics)
    }

    /// The view one connector reports through.
    pub fn source(&self, source: &str) -> SourceMetrics {
        SourceMetrics {
            ticks: self.ticks.with_label_values(&[source]),
            parse_errors: self.parse_errors.with_label_values(&[source]),
            reconnects: self.reconnects.with_label_values(&[source]),
            lag_seconds: self.lag_seconds.with_label_values(&[source]),
            streamed: self.instruments.with_label_values(&[source, "streamed"]),
            polled: self.instruments.with_label_values(&[source, "polled"]),
            connected: self.connected.with_label_values(&[source]),
            token_issuances: self.token_issuances.with_label_values(&[source]),
        }
    }
}

/// One source's metrics. Cheap to clone.
#[derive(Clone)]
pub struct SourceMetrics {
    pub ticks: IntCounter,
    pub parse_errors: IntCounter,
    pub reconnects: IntCounter,
    pub lag_seconds: Histogram,
    /// Instruments followed over a live stream.
    pub streamed: IntGauge,
    /// Instruments followed by polling.
    pub polled: IntGauge,
    /// 1 while the live connection is up.
    pub connected: IntGauge,
    pub token_issuances: IntCounter,
}

impl SourceMetrics {
    /// Counts a received tick and its lag behind the exchange.
    pub fn tick(&self, tick: &Tick) {
        self.ticks.inc();
        if let Some(micros) = (tick.received_at - tick.exchange_time).num_microseconds() {
            self.lag_seconds.observe(micros.max(0) as f64 / 1e6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_share_the_families_of_one_registry() {
        let registry = Registry::new();
        let metrics = FeedMetrics::register(&registry).unwrap();
        let upbit = metrics.source("upbit");
        let kis = metrics.source("kis");
        upbit.parse_errors.inc();
        kis.streamed.set(41);
        kis.polled.set(1);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(text.contains("signal_feed_parse_errors_total{source=\"upbit\"} 1"));
        assert!(text.contains("signal_feed_instruments{mode=\"streamed\",source=\"kis\"} 41"));
    }
}
