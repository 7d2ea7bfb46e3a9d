//! Event bus port: how triggered alerts travel from the Asset Service to the Alert Service.
//!
//! Both sides are at-least-once: `publish` returns only once the bus holds the events durably, and
//! a consumer acknowledges a delivery only after it has stored the alert. Consumers deduplicate on
//! the event id, so the user sees each alert once.

use async_trait::async_trait;
use signal_domain::{QuoteChanged, TriggeredAlert};

use crate::error::BusError;

/// The producing side, used by the outbox relay.
#[async_trait]
pub trait AlertPublisher: Send + Sync + 'static {
    /// Publishes `events` in order; returns once every one of them is durably on the bus.
    /// `Err(BusError::Refused)` names an event the bus will never take: the ones before it went
    /// through; the ones after it may have, and are to be sent again.
    async fn publish(&self, events: &[TriggeredAlert]) -> Result<(), BusError>;

    /// Whether the bus has been found to no longer hold events it acknowledged earlier (its
    /// cluster was replaced or came back empty, or the topic was deleted and created again) since
    /// the last call, which clears it. The relay then publishes again what it sent recently; the
    /// consumers keep one of each. A bus that never loses what it acknowledged keeps the default.
    fn take_lost_acknowledged(&self) -> bool {
        false
    }
}

/// Market-data change events for consumers outside the system, keyed by instrument. Unlike alerts
/// they are not kept for a retry: each one is superseded by the instrument's next.
#[async_trait]
pub trait MarketDataPublisher: Send + Sync + 'static {
    async fn publish(&self, events: &[QuoteChanged]) -> Result<(), BusError>;
}

/// Completes a delivery: commits the consumer's position past this event.
#[async_trait]
pub trait DeliveryAck: Send {
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
}

/// One event handed to the consumer, with the handle that acknowledges it.
pub struct Delivery {
    pub event: TriggeredAlert,
    pub ack: Box<dyn DeliveryAck>,
}

/// The consuming side, used by the Alert Service. Undecodable messages never reach it: the adapter
/// routes them aside (a dead-letter topic) and moves on.
#[async_trait]
pub trait AlertInbox: Send + 'static {
    /// The next delivery; `Err(BusError::Closed)` when the bus has shut down.
    async fn next(&mut self) -> Result<Delivery, BusError>;
}
