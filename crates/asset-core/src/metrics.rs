//! The Asset Service's Prometheus metrics.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct AssetMetrics {
    pub ticks_processed: IntCounterVec,
    pub active_rules: IntGauge,
    pub alerts_fired: IntCounter,
    pub quote_sockets_open: IntGauge,
    pub outbox_published: IntCounter,
    pub outbox_dead_lettered: IntCounter,
    pub outbox_deleted: IntCounter,
    pub outbox_resent: IntCounter,
    pub outbox_pending: IntGauge,
    pub outbox_oldest_pending_seconds: Gauge,
    pub owned_shards: IntGauge,
}

impl AssetMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            ticks_processed: IntCounterVec::new(
                Opts::new(
                    "signal_ticks_processed_total",
                    "Ticks run through the trigger engine",
                ),
                &["source"],
            )?,
            active_rules: IntGauge::new(
                "signal_active_rules",
                "Alert rules the engine is watching",
            )?,
            alerts_fired: IntCounter::new("signal_alerts_fired_total", "Rules that fired")?,
            quote_sockets_open: IntGauge::new(
                "signal_quote_sockets_open",
                "Open live-quote WebSocket sessions",
            )?,
            outbox_published: IntCounter::new(
                "signal_outbox_published_total",
                "Events the outbox relay handed to the bus",
            )?,
            outbox_dead_lettered: IntCounter::new(
                "signal_outbox_dead_lettered_total",
                "Events the relay set aside for good (unreadable, or refused by the bus as invalid)",
            )?,
            outbox_deleted: IntCounter::new(
                "signal_outbox_deleted_total",
                "Sent events deleted from the outbox after their retention",
            )?,
            outbox_resent: IntCounter::new(
                "signal_outbox_resent_total",
                "Sent events put back in line because the bus lost what it had acknowledged",
            )?,
            outbox_pending: IntGauge::new(
                "signal_outbox_pending",
                "Events waiting for the outbox relay",
            )?,
            outbox_oldest_pending_seconds: Gauge::new(
                "signal_outbox_oldest_pending_seconds",
                "How long the oldest event waiting for the outbox relay has waited (0 when none)",
            )?,
            owned_shards: IntGauge::new(
                "signal_owned_shards",
                "Shards of instruments whose rules this instance evaluates (of 64)",
            )?,
        };
        registry.register(Box::new(metrics.ticks_processed.clone()))?;
        registry.register(Box::new(metrics.owned_shards.clone()))?;
        registry.register(Box::new(metrics.active_rules.clone()))?;
        registry.register(Box::new(metrics.alerts_fired.clone()))?;
        registry.register(Box::new(metrics.quote_sockets_open.clone()))?;
        registry.register(Box::new(metrics.outbox_published.clone()))?;
        registry.register(Box::new(metrics.outbox_dead_lettered.clone()))?;
        registry.register(Box::new(metrics.outbox_deleted.clone()))?;
        registry.register(Box::new(metrics.outbox_resent.clone()))?;
        registry.register(Box::new(metrics.outbox_pending.clone()))?;
        registry.register(Box::new(metrics.outbox_oldest_pending_seconds.clone()))?;
        Ok(metrics)
    }
}
