//! The in-process event bus. `publish` waits for the consumer's acknowledgement, which comes only
//! after the alert is stored: the outbox keeps an event until then, so a crash in between loses
//! nothing and a redelivery is absorbed by the consumer's idempotence.

use async_trait::async_trait;
use signal_domain::TriggeredAlert;
use signal_ports::{AlertInbox, AlertPublisher, BusError, Delivery, DeliveryAck};
use tokio::sync::{mpsc, oneshot};

type Envelope = (TriggeredAlert, oneshot::Sender<()>);

/// The consumer let a delivery go without acknowledging it: the event is not stored.
#[derive(Debug, thiserror::Error)]
#[error("the consumer dropped an event without storing it")]
struct NotStored;

#[derive(Clone)]
pub struct InProcessPublisher {
    sender: mpsc::Sender<Envelope>,
}

pub struct InProcessInbox {
    receiver: mpsc::Receiver<Envelope>,
}

/// A connected publisher and inbox holding at most `capacity` unconsumed events.
pub fn in_process_bus(capacity: usize) -> (InProcessPublisher, InProcessInbox) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    (InProcessPublisher { sender }, InProcessInbox { receiver })
}

#[async_trait]
impl AlertPublisher for InProcessPublisher {
    async fn publish(&self, events: &[TriggeredAlert]) -> Result<(), BusError> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let (ack, acked) = oneshot::channel();
            self.sender
                .send((event.clone(), ack))
                .await
                .map_err(|_| BusError::Closed)?;
            acks.push(acked);
        }
        for acked in acks {
            acked
                .await
                .map_err(|_| BusError::Unavailable(Box::new(NotStored)))?;
        }
        Ok(())
    }
}

struct OneshotAck(oneshot::Sender<()>);

#[async_trait]
impl DeliveryAck for OneshotAck {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        // The publisher may have given up waiting; the event is stored either way.
        let _ = self.0.send(());
        Ok(())
    }
}

#[async_trait]
impl AlertInbox for InProcessInbox {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        let (event, ack) = self.receiver.recv().await.ok_or(BusError::Closed)?;
        Ok(Delivery {
            event,
            ack: Box::new(OneshotAck(ack)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_domain::{ConditionKind, RuleId, UserId};

    fn event() -> TriggeredAlert {
        TriggeredAlert {
            event_id: uuid::Uuid::now_v7(),
            schema_version: 1,
            user_id: UserId::new("alice").unwrap(),
            rule_id: RuleId(1),
            instrument: "KRX:005930".parse().unwrap(),
            symbol: "005930".into(),
            condition: ConditionKind::Above,
            level: "1".parse().unwrap(),
            percent: None,
            price: "1".parse().unwrap(),
            exchange_time: chrono::Utc::now(),
            triggered_at: chrono::Utc::now(),
            note: None,
            simulated: true,
            params: None,
            also: None,
            channels: None,
            message: None,
            change_percent: None,
        }
    }

    #[tokio::test]
    async fn publish_completes_only_after_the_consumer_acknowledges() {
        let (publisher, mut inbox) = in_process_bus(8);
        let sent = event();
        let publishing = tokio::spawn({
            let sent = sent.clone();
            async move { publisher.publish(&[sent]).await }
        });
        let delivery = inbox.next().await.unwrap();
        assert_eq!(delivery.event, sent);
        assert!(!publishing.is_finished());
        delivery.ack.ack().await.unwrap();
        publishing.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_dropped_delivery_fails_the_publish_so_the_outbox_keeps_it() {
        let (publisher, mut inbox) = in_process_bus(8);
        let publishing = tokio::spawn(async move { publisher.publish(&[event()]).await });
        drop(inbox.next().await.unwrap());
        assert!(publishing.await.unwrap().is_err());
    }
}
