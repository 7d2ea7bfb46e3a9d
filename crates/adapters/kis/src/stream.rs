//! The KIS WebSocket session: registers the planned instruments, turns data frames into ticks,
//! answers the server's PINGPONG (or be dropped), and reconnects when the session ends. Trades
//! during a gap are lost for good, so after a reconnect the streamed instruments are fetched
//! once over REST: a level crossed during the gap still fires.

use crate::frame::{Control, Decoded, Decoder};
use crate::plan::Plan;
use crate::venue::{instrument_of, stream_key};
use crate::{KisError, KisFeed, SnapshotRequest};
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use futures::{Sink, SinkExt, StreamExt};
use signal_domain::ErrorChain;
use signal_domain::InstrumentId;
use signal_ports::TickSink;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Registration requests: "1" registers, "2" releases.
const REGISTER: &str = "1";
const RELEASE: &str = "2";

impl KisFeed {
    pub(crate) async fn stream_loop(
        &self,
        mut plans: watch::Receiver<Arc<Plan>>,
        refuse: mpsc::UnboundedSender<InstrumentId>,
        snapshot: mpsc::UnboundedSender<SnapshotRequest>,
        sink: &TickSink,
    ) -> Result<(), KisError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.reconnect_min)
            .with_max_delay(self.config.reconnect_max)
            .with_jitter()
            .without_max_times();
        let mut delays = backoff.build();
        let mut after_gap = false;
        loop {
            // An idle session buys nothing, and KIS frowns on connect/close churn: wait for work.
            while plans.borrow_and_update().streamed.is_empty() {
                plans.changed().await.map_err(|_| KisError::Closed)?;
            }
            let mut connected = false;
            let ended = self
                .session(
                    &mut plans,
                    &refuse,
                    &snapshot,
                    sink,
                    after_gap,
                    &mut connected,
                )
                .await;
            match ended {
                Err(KisError::SinkClosed) => return Err(KisError::SinkClosed),
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), "KIS WebSocket session ended")
                }
                Ok(()) => {}
            }
            if connected {
                delays = backoff.build();
            }
            let delay = delays.next().unwrap_or(self.config.reconnect_max);
            tokio::time::sleep(delay).await;
            after_gap = true;
        }
    }

    /// One connection, until it fails. `connected` tells the caller it got as far as connecting.
    async fn session(
        &self,
        plans: &mut watch::Receiver<Arc<Plan>>,
        refuse: &mpsc::UnboundedSender<InstrumentId>,
        snapshot: &mpsc::UnboundedSender<SnapshotRequest>,
        sink: &TickSink,
        after_gap: bool,
        connected: &mut bool,
    ) -> Result<(), KisError> {
        let approval_key = self.auth.approval_key().await?;
        let (socket, _) = tokio_tungstenite::connect_async(self.config.ws_url.as_str()).await?;
        *connected = true;
        if after_gap {
            self.metrics.reconnects.inc();
        }
        let (mut writer, mut reader) = socket.split();
        let mut decoder = Decoder::default();
        let mut registered = BTreeSet::new();
        let wanted = plans.borrow_and_update().streamed.clone();
        self.register(
            &mut writer,
            &approval_key,
            &mut registered,
            &wanted,
            snapshot,
        )
        .await?;
        loop {
            tokio::select! {
                message = reader.next() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None => return Err(KisError::Closed),
                        // tungstenite answers WebSocket pings itself.
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => return Err(error.into()),
                    };
                    match decoder.decode(text.as_str(), Utc::now()) {
                        Ok(Decoded::Ticks(ticks)) => {
                            for tick in ticks {
                                self.note_streamed(&tick.instrument);
                                self.emit(sink, tick).await?;
                            }
                        }
                        Ok(Decoded::Control(Control::PingPong)) => {
                            // Official clients disagree on a text echo or a WebSocket pong; the
                            // server accepts either, so send both.
                            writer.send(Message::Pong(text.as_bytes().to_vec().into())).await?;
                            writer.send(Message::Text(text)).await?;
                        }
                        Ok(Decoded::Control(control)) => self.on_control(control, &mut registered, refuse),
                        Err(error) => {
                            self.metrics.parse_errors.inc();
                            tracing::warn!(error = %ErrorChain(&error), "unreadable KIS WebSocket message");
                        }
                    }
                }
                changed = plans.changed() => {
                    changed.map_err(|_| KisError::Closed)?;
                    let wanted = plans.borrow_and_update().streamed.clone();
                    self.register(&mut writer, &approval_key, &mut registered, &wanted, snapshot).await?;
                }
            }
        }
    }

    fn on_control(
        &self,
        control: Control,
        registered: &mut BTreeSet<InstrumentId>,
        refuse: &mpsc::UnboundedSender<InstrumentId>,
    ) {
        match control {
            Control::Subscribed { tr_id, tr_key }
            | Control::AlreadySubscribed { tr_id, tr_key }
            | Control::Unsubscribed { tr_id, tr_key } => {
                tracing::debug!(%tr_id, %tr_key, "KIS registration answered");
            }
            Control::LimitReached { tr_id, tr_key } => {
                tracing::warn!(%tr_id, %tr_key, "KIS refused a registration (MAX SUBSCRIBE OVER); polling it instead");
                if let Some(id) = instrument_of(&tr_id, &tr_key) {
                    registered.remove(&id);
                    // A closed planner means the feed is stopping anyway.
                    let _ = refuse.send(id);
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

    /// Releases what dropped out of `wanted` (first, freeing slots), then registers what came in
    /// and asks for a snapshot of it. A stream carries only the trades from now on; the snapshot
    /// gives each new registration its price at once: after a gap, the price it moved to while
    /// nobody listened; in a closed market, its last close.
    async fn register<W>(
        &self,
        writer: &mut W,
        approval_key: &str,
        registered: &mut BTreeSet<InstrumentId>,
        wanted: &[InstrumentId],
        snapshot: &mpsc::UnboundedSender<SnapshotRequest>,
    ) -> Result<(), KisError>
    where
        W: Sink<Message, Error = WsError> + Unpin,
    {
        let wanted: BTreeSet<InstrumentId> = wanted.iter().cloned().collect();
        let released: Vec<_> = registered.difference(&wanted).cloned().collect();
        let added: Vec<_> = wanted.difference(registered).cloned().collect();
        for (tr_type, ids) in [(RELEASE, released), (REGISTER, added.clone())] {
            for id in ids {
                let Some((tr_id, tr_key)) = stream_key(&id) else {
                    continue;
                };
                let request = serde_json::json!({
                    "header": {
                        "approval_key": approval_key,
                        "custtype": self.config.custtype,
                        "tr_type": tr_type,
                        "content-type": "utf-8",
                    },
                    "body": { "input": { "tr_id": tr_id, "tr_key": tr_key } },
                });
                writer.send(Message::text(request.to_string())).await?;
                if tr_type == REGISTER {
                    registered.insert(id);
                } else {
                    registered.remove(&id);
                }
            }
        }
        if !added.is_empty() {
            // The poller owns the REST budget; it takes this ahead of its rounds. A closed
            // poller means the feed is stopping anyway.
            let _ = snapshot.send(SnapshotRequest {
                ids: added,
                asked: tokio::time::Instant::now(),
            });
        }
        Ok(())
    }
}
