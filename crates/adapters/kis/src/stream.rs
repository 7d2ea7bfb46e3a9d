//! KIS's side of the shared exchange socket ([`signal_exchange_socket`]), which keeps the
//! connection up: each connection is readied with an approval key, registers the planned
//! instruments one request each (releasing first, to free slots), turns data frames into ticks
//! and answers the server's PINGPONG (or be dropped). Trades during a gap are lost for good, so
//! every registration, after a reconnect too, asks the poller for a REST snapshot: a level
//! crossed during the gap still fires.

use crate::frame::{Control, Decoded, Decoder};
use crate::venue::{instrument_of, stream_key};
use crate::{KisError, KisFeed, SnapshotRequest};
use chrono::Utc;
use signal_domain::{ErrorChain, InstrumentId};
use signal_exchange_socket::{Connector, ConsumerGone, Message, Payload, Session, Subscription};
use signal_ports::TickSink;
use std::collections::BTreeSet;
use tokio::sync::mpsc;

/// Registration requests: "1" registers, "2" releases.
const REGISTER: &str = "1";
const RELEASE: &str = "2";

/// KIS's side of the socket.
pub(crate) struct Kis<'a> {
    pub feed: &'a KisFeed,
    pub sink: &'a TickSink,
    /// Registrations KIS refused, for the planner to poll instead.
    pub refuse: mpsc::UnboundedSender<InstrumentId>,
    /// New registrations, for the poller to snapshot.
    pub snapshot: mpsc::UnboundedSender<SnapshotRequest>,
}

impl<'a> Connector for Kis<'a> {
    type Key = InstrumentId;
    type Session = KisSession<'a>;
    type Error = KisError;

    fn name(&self) -> &'static str {
        "KIS"
    }

    fn url(&self) -> &str {
        &self.feed.config.ws_url
    }

    async fn open(&self) -> Result<KisSession<'a>, KisError> {
        Ok(KisSession {
            feed: self.feed,
            sink: self.sink,
            refuse: self.refuse.clone(),
            snapshot: self.snapshot.clone(),
            approval_key: self.feed.auth.approval_key().await?,
            registered: BTreeSet::new(),
            decoder: Decoder::default(),
        })
    }
}

/// One connection: its approval key, what KIS holds registered on it, its frame decoder.
pub(crate) struct KisSession<'a> {
    feed: &'a KisFeed,
    sink: &'a TickSink,
    refuse: mpsc::UnboundedSender<InstrumentId>,
    snapshot: mpsc::UnboundedSender<SnapshotRequest>,
    approval_key: String,
    registered: BTreeSet<InstrumentId>,
    decoder: Decoder,
}

impl Session for KisSession<'_> {
    type Key = InstrumentId;

    /// Releases what dropped out of `wanted` (first, freeing slots), then registers what came in.
    fn subscribe(&mut self, wanted: &BTreeSet<InstrumentId>) -> Subscription<InstrumentId> {
        let released: Vec<_> = self.registered.difference(wanted).cloned().collect();
        let added: Vec<_> = wanted.difference(&self.registered).cloned().collect();
        let mut requests = Vec::new();
        for (tr_type, ids) in [(RELEASE, &released), (REGISTER, &added)] {
            for id in ids {
                let Some((tr_id, tr_key)) = stream_key(id) else {
                    continue;
                };
                let request = serde_json::json!({
                    "header": {
                        "approval_key": self.approval_key,
                        "custtype": self.feed.config.custtype,
                        "tr_type": tr_type,
                        "content-type": "utf-8",
                    },
                    "body": { "input": { "tr_id": tr_id, "tr_key": tr_key } },
                });
                requests.push(Message::text(request.to_string()));
            }
        }
        for id in released {
            self.registered.remove(&id);
        }
        self.registered.extend(added.iter().cloned());
        Subscription { requests, added }
    }

    /// A stream carries only the trades from now on; the snapshot gives each new registration
    /// its price at once: after a gap, the price it moved to while nobody listened; in a closed
    /// market, its last close. The poller owns the REST budget and takes this ahead of its
    /// rounds.
    async fn subscribed(&mut self, added: Vec<InstrumentId>) -> Result<(), ConsumerGone> {
        // A closed poller means the feed is stopping anyway.
        let _ = self.snapshot.send(SnapshotRequest {
            ids: added,
            asked: tokio::time::Instant::now(),
        });
        Ok(())
    }

    async fn receive(&mut self, payload: Payload<'_>) -> Result<Vec<Message>, ConsumerGone> {
        let Payload::Text(text) = payload else {
            return Ok(Vec::new());
        };
        match self.decoder.decode(text, Utc::now()) {
            Ok(Decoded::Ticks(ticks)) => {
                for tick in ticks {
                    self.feed.note_streamed(&tick.instrument);
                    self.feed
                        .emit(self.sink, tick)
                        .await
                        .map_err(|_| ConsumerGone)?;
                }
            }
            Ok(Decoded::Control(Control::PingPong)) => {
                // Official clients disagree on a text echo or a WebSocket pong; the server
                // accepts either, so send both.
                return Ok(vec![
                    Message::Pong(text.as_bytes().to_vec().into()),
                    Message::text(text),
                ]);
            }
            Ok(Decoded::Control(control)) => self.on_control(control),
            Err(error) => {
                self.feed.metrics.parse_errors.inc();
                tracing::warn!(error = %ErrorChain(&error), "unreadable KIS WebSocket message");
            }
        }
        Ok(Vec::new())
    }
}

impl KisSession<'_> {
    fn on_control(&mut self, control: Control) {
        match control {
            Control::Subscribed { tr_id, tr_key }
            | Control::AlreadySubscribed { tr_id, tr_key }
            | Control::Unsubscribed { tr_id, tr_key } => {
                tracing::debug!(%tr_id, %tr_key, "KIS registration answered");
            }
            Control::LimitReached { tr_id, tr_key } => {
                tracing::warn!(%tr_id, %tr_key, "KIS refused a registration (MAX SUBSCRIBE OVER); polling it instead");
                if let Some(id) = instrument_of(&tr_id, &tr_key) {
                    self.registered.remove(&id);
                    // A closed planner means the feed is stopping anyway.
                    let _ = self.refuse.send(id);
                }
            }
            Control::Rejected {
                tr_id,
                tr_key,
                code,
                message,
            } => tracing::warn!(%tr_id, %tr_key, %code, %message, "KIS rejected a request"),
            Control::PingPong => {}
        }
    }
}
