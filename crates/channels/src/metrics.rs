//! Delivery metrics, labelled by channel kind.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use signal_ports::ChannelKind;

#[derive(Clone)]
pub struct DeliveryMetrics {
    delivered: IntCounterVec,
    failed: IntCounterVec,
    retried: IntCounterVec,
    deferred: IntCounterVec,
    digests: IntCounterVec,
    disabled: IntCounterVec,
    latency: HistogramVec,
}

impl DeliveryMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(counter.clone()))?;
            Ok::<_, prometheus::Error>(counter)
        };
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "signal_delivery_latency_seconds",
                "From the rule firing to the channel accepting the alert (first try or retry)",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
                7200.0, 86400.0,
            ]),
            &["channel"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self {
            delivered: counter(
                "signal_deliveries_delivered_total",
                "Alerts a channel accepted",
                &["channel"],
            )?,
            failed: counter(
                "signal_deliveries_failed_total",
                "Alerts given up on (a permanent failure, or every retry failed)",
                &["channel"],
            )?,
            retried: counter(
                "signal_deliveries_retried_total",
                "Failed attempts that will be tried again",
                &["channel"],
            )?,
            deferred: counter(
                "signal_deliveries_deferred_total",
                "Alerts held back by quiet hours or the per-minute cap",
                &["channel", "reason"],
            )?,
            digests: counter(
                "signal_delivery_digests_total",
                "Digest messages built from several alerts",
                &["channel"],
            )?,
            disabled: counter(
                "signal_channels_disabled_total",
                "Channels stopped after a permanent failure",
                &["channel"],
            )?,
            latency,
        })
    }

    pub fn delivered(&self, kind: ChannelKind, count: usize, latencies: &[f64]) {
        self.delivered
            .with_label_values(&[kind.as_str()])
            .inc_by(count as u64);
        let histogram = self.latency.with_label_values(&[kind.as_str()]);
        for seconds in latencies {
            histogram.observe(*seconds);
        }
    }

    pub fn failed(&self, kind: ChannelKind, count: usize) {
        self.failed
            .with_label_values(&[kind.as_str()])
            .inc_by(count as u64);
    }

    pub fn retried(&self, kind: ChannelKind, count: usize) {
        self.retried
            .with_label_values(&[kind.as_str()])
            .inc_by(count as u64);
    }

    pub fn deferred(&self, kind: ChannelKind, reason: &'static str, count: usize) {
        self.deferred
            .with_label_values(&[kind.as_str(), reason])
            .inc_by(count as u64);
    }

    pub fn digest(&self, kind: ChannelKind) {
        self.digests.with_label_values(&[kind.as_str()]).inc();
    }

    pub fn disabled(&self, kind: ChannelKind) {
        self.disabled.with_label_values(&[kind.as_str()]).inc();
    }
}
