//! The Alert Service's Prometheus metrics.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

#[derive(Clone)]
pub struct AlertMetrics {
    pub alerts_stored: IntCounter,
    pub duplicates_ignored: IntCounter,
    pub alerts_pushed: IntCounter,
    pub alert_sockets_open: IntGauge,
    pub tick_to_push_seconds: Histogram,
    pub announcements_pending: IntGauge,
    pub announcements_dropped: IntCounter,
}

impl AlertMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            alerts_stored: IntCounter::new(
                "signal_alerts_stored_total",
                "Alerts written to history",
            )?,
            duplicates_ignored: IntCounter::new(
                "signal_alert_duplicates_total",
                "Redelivered events that were already in history",
            )?,
            alerts_pushed: IntCounter::new(
                "signal_alerts_pushed_total",
                "Alert messages written to user sockets (live and replayed)",
            )?,
            alert_sockets_open: IntGauge::new(
                "signal_alert_sockets_open",
                "Open alert WebSocket sessions",
            )?,
            tick_to_push_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "signal_tick_to_push_seconds",
                    "From the moment a rule fired on a tick to the live push to its user",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            announcements_pending: IntGauge::new(
                "signal_alert_announcements_pending",
                "Stored alerts waiting to be announced to the other instances (Redis away)",
            )?,
            announcements_dropped: IntCounter::new(
                "signal_alert_announcements_dropped_total",
                "Announcements dropped because too many were waiting; those alerts reach other \
                 instances' sockets on reconnect",
            )?,
        };
        registry.register(Box::new(metrics.alerts_stored.clone()))?;
        registry.register(Box::new(metrics.duplicates_ignored.clone()))?;
        registry.register(Box::new(metrics.alerts_pushed.clone()))?;
        registry.register(Box::new(metrics.alert_sockets_open.clone()))?;
        registry.register(Box::new(metrics.tick_to_push_seconds.clone()))?;
        registry.register(Box::new(metrics.announcements_pending.clone()))?;
        registry.register(Box::new(metrics.announcements_dropped.clone()))?;
        Ok(metrics)
    }
}
