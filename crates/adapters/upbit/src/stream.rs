//! The live half of the feed: one WebSocket connection carrying the ticker of every market that is
//! needed, kept alive with `PING`, resubscribed when the interest changes, and replaced (with
//! back-off) whenever it fails. Each new connection starts with a REST snapshot, because trades
//! that happened while the socket was down are otherwise never seen.

use crate::parse::{parse_stream_message, StreamMessage};
use crate::{backoff, failed, UpbitFeed};
use backon::BackoffBuilder;
use futures::{SinkExt, StreamExt};
use signal_domain::ErrorChain;
use signal_domain::{Market, Tick};
use signal_ports::{FeedContext, FeedError, Interest, TickSink};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{
    connect_async_tls_with_config, Connector, MaybeTlsStream, WebSocketStream,
};
use tokio_util::sync::CancellationToken;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Upbit accepts 5 request messages per second per connection; one subscription per this gap
/// leaves room for the keep-alive `PING`.
const MIN_REQUEST_GAP: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection's life ended.
enum SessionEnd {
    Shutdown,
    /// The interest no longer names any Upbit market; Upbit has no empty subscription, so the
    /// connection is given up until something is wanted again.
    NothingWanted,
    SinkClosed,
    Socket(tungstenite::Error),
    Closed(String),
}

type Session = Result<(), SessionEnd>;

/// Connects, streams, and reconnects until shutdown or until the consumer goes away.
pub(crate) async fn run(feed: &UpbitFeed, ctx: FeedContext) -> Result<(), FeedError> {
    let FeedContext {
        sink,
        mut interest,
        shutdown,
    } = ctx;
    let mut live = Live {
        feed,
        sink,
        shutdown,
        all_krw: Vec::new(),
    };
    let tls = tls_connector().map_err(failed)?;
    let mut delays = backoff(&feed.config).build();
    // Set when a connection was lost, so the next one counts as a reconnection; a connection
    // closed because nothing was wanted any more is not a loss.
    let mut lost = false;
    loop {
        let retry_later = 'attempt: {
            if feed.config.stream_all_krw_markets && !live.refresh_all_krw().await {
                break 'attempt true;
            }
            if !live.until_something_is_wanted(&mut interest).await {
                return Ok(());
            }
            let connected = tokio::select! {
                _ = live.shutdown.cancelled() => return Ok(()),
                connected = timeout(
                    CONNECT_TIMEOUT,
                    connect_async_tls_with_config(
                        feed.config.ws_url.as_str(),
                        None,
                        false,
                        Some(tls.clone()),
                    ),
                ) => connected,
            };
            let socket = match connected {
                Ok(Ok((socket, _))) => socket,
                Ok(Err(error)) => {
                    tracing::warn!(error = %ErrorChain(&error), "cannot connect to Upbit");
                    break 'attempt true;
                }
                Err(_) => {
                    tracing::warn!("connecting to Upbit timed out");
                    break 'attempt true;
                }
            };
            if lost {
                feed.metrics.reconnects.inc();
            }
            delays = backoff(&feed.config).build();
            match live.session(socket, &mut interest).await {
                SessionEnd::Shutdown => return Ok(()),
                SessionEnd::SinkClosed => return Err(FeedError::SinkClosed),
                SessionEnd::NothingWanted => {
                    lost = false;
                    false
                }
                SessionEnd::Socket(error) => {
                    tracing::warn!(error = %ErrorChain(&error), "Upbit socket failed; reconnecting");
                    lost = true;
                    true
                }
                SessionEnd::Closed(why) => {
                    tracing::warn!(%why, "Upbit closed the socket; reconnecting");
                    lost = true;
                    true
                }
            }
        };
        if retry_later {
            let delay = delays.next().unwrap_or(feed.config.backoff_max);
            tokio::select! {
                _ = live.shutdown.cancelled() => return Ok(()),
                _ = sleep(delay) => {}
            }
        }
    }
}

/// TLS for `wss://` with the ring provider named explicitly: rustls's automatic choice panics in a
/// binary that links more than one crypto provider.
fn tls_connector() -> Result<Connector, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}

/// What every connection shares.
struct Live<'a> {
    feed: &'a UpbitFeed,
    sink: TickSink,
    shutdown: CancellationToken,
    /// Every KRW market, when configured to stream them all; kept from the last listing that
    /// succeeded.
    all_krw: Vec<String>,
}

impl Live<'_> {
    /// One connection's life: subscribe, snapshot, then stream until something ends it.
    async fn session(
        &mut self,
        mut socket: Socket,
        interest: &mut watch::Receiver<Arc<Interest>>,
    ) -> SessionEnd {
        let mut subscribed = self.wanted(&interest.borrow_and_update());
        let ticket = uuid::Uuid::new_v4().to_string();
        let mut last_request = Instant::now();
        let mut pending_change = false;
        let mut interest_open = true;
        let mut ping = tokio::time::interval_at(
            Instant::now() + self.feed.config.ping_interval,
            self.feed.config.ping_interval,
        );
        // After a stalled consumer, one PING is enough; a burst would eat the message allowance.
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let streamed: Result<Infallible, SessionEnd> = async {
            if subscribed.is_empty() {
                return Err(SessionEnd::NothingWanted);
            }
            subscribe(&mut socket, &ticket, &subscribed).await?;
            self.feed.metrics.streamed.set(subscribed.len() as i64);
            self.snapshot(&subscribed).await?;
            loop {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return Err(SessionEnd::Shutdown),
                    changed = interest.changed(), if interest_open => match changed {
                        Ok(()) => pending_change = true,
                        // The interest will not change any more; keep streaming what we have.
                        Err(_) => interest_open = false,
                    },
                    _ = sleep_until(last_request + MIN_REQUEST_GAP), if pending_change => {
                        pending_change = false;
                        let wanted = self.wanted(&interest.borrow_and_update());
                        if wanted.is_empty() {
                            return Err(SessionEnd::NothingWanted);
                        }
                        if wanted != subscribed {
                            subscribe(&mut socket, &ticket, &wanted).await?;
                            last_request = Instant::now();
                            let added: Vec<String> = wanted
                                .iter()
                                .filter(|market| subscribed.binary_search(market).is_err())
                                .cloned()
                                .collect();
                            subscribed = wanted;
                            self.feed.metrics.streamed.set(subscribed.len() as i64);
                            // A new market's stream starts with its next trade; the snapshot
                            // gives it a price now.
                            self.snapshot(&added).await?;
                        }
                    }
                    _ = ping.tick() => socket
                        .send(Message::Text("PING".into()))
                        .await
                        .map_err(SessionEnd::Socket)?,
                    frame = socket.next() => match frame {
                        None => return Err(SessionEnd::Closed("end of stream".into())),
                        Some(Err(error)) => return Err(SessionEnd::Socket(error)),
                        Some(Ok(Message::Binary(payload))) => self.on_message(&payload).await?,
                        Some(Ok(Message::Text(text))) => self.on_message(text.as_bytes()).await?,
                        Some(Ok(Message::Close(frame))) => {
                            return Err(SessionEnd::Closed(
                                frame.map(|f| f.to_string()).unwrap_or_else(|| "close frame".into()),
                            ))
                        }
                        // tungstenite answers pings itself; pongs need nothing.
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
        .await;
        let Err(end) = streamed;
        if matches!(
            end,
            SessionEnd::Shutdown | SessionEnd::SinkClosed | SessionEnd::NothingWanted
        ) {
            // A courtesy to the server; an error here changes nothing.
            let _ = socket.close(None).await;
        }
        self.feed.metrics.streamed.set(0);
        end
    }

    /// The markets to stream: the Upbit instruments someone needs, plus every KRW market when
    /// configured so. Sorted, so an unchanged set compares equal.
    fn wanted(&self, interest: &Interest) -> Vec<String> {
        let needed = interest
            .needs
            .keys()
            .filter(|id| id.market() == Market::Upbit)
            .map(|id| id.symbol().to_string());
        needed
            .chain(self.all_krw.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Re-lists every KRW market, so new listings join on the next connection. Returns whether a
    /// list is known (this one or an earlier one).
    async fn refresh_all_krw(&mut self) -> bool {
        let listed = tokio::select! {
            _ = self.shutdown.cancelled() => return !self.all_krw.is_empty(),
            listed = self.feed.rest.instruments() => listed,
        };
        match listed {
            Ok(instruments) => {
                self.all_krw = instruments
                    .into_iter()
                    .map(|i| i.id.symbol().to_string())
                    .collect()
            }
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "cannot list Upbit markets; keeping the previous list")
            }
        }
        !self.all_krw.is_empty()
    }

    /// Waits until some Upbit market is wanted; false when shutdown comes first.
    async fn until_something_is_wanted(
        &self,
        interest: &mut watch::Receiver<Arc<Interest>>,
    ) -> bool {
        let interest_can_change = tokio::select! {
            _ = self.shutdown.cancelled() => return false,
            wanted = interest.wait_for(|now| !self.wanted(now).is_empty()) => match wanted {
                Ok(_) => return true,
                Err(_) => false,
            },
        };
        if !interest_can_change {
            // Nobody can change the interest any more, so nothing will ever be wanted.
            self.shutdown.cancelled().await;
        }
        false
    }

    /// Emits the current REST ticker of `markets`. A failure here is logged, not fatal: the live
    /// stream is still worth having.
    async fn snapshot(&self, markets: &[String]) -> Session {
        if markets.is_empty() {
            return Ok(());
        }
        let fetched = tokio::select! {
            _ = self.shutdown.cancelled() => return Err(SessionEnd::Shutdown),
            fetched = self.feed.rest.tickers(markets, self.feed.config.snapshot_batch) => fetched,
        };
        match fetched {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(tick) => self.deliver(tick).await?,
                        Err(error) => self.parse_error(&error),
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "Upbit snapshot failed; gaps may go unnoticed")
            }
        }
        Ok(())
    }

    async fn on_message(&self, payload: &[u8]) -> Session {
        match parse_stream_message(payload, chrono::Utc::now()) {
            Ok(StreamMessage::Tickers(results)) => {
                for result in results {
                    match result {
                        Ok(tick) => self.deliver(tick).await?,
                        Err(error) => self.parse_error(&error),
                    }
                }
            }
            Ok(StreamMessage::Status(status)) => tracing::debug!(%status, "Upbit status"),
            Ok(StreamMessage::Error(error)) => {
                tracing::warn!(name = %error.name, message = %error.message, "Upbit reported an error")
            }
            Err(error) => self.parse_error(&error),
        }
        Ok(())
    }

    fn parse_error(&self, error: &crate::ParseError) {
        self.feed.metrics.parse_errors.inc();
        tracing::warn!(error = %ErrorChain(error), "unreadable message from Upbit");
    }

    async fn deliver(&self, tick: Tick) -> Session {
        self.feed.metrics.tick(&tick);
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(SessionEnd::Shutdown),
            sent = self.sink.send(tick) => sent.map_err(|_| SessionEnd::SinkClosed),
        }
    }
}

/// Sends the whole wanted set as one request; Upbit treats each request as the full subscription.
async fn subscribe(socket: &mut Socket, ticket: &str, codes: &[String]) -> Session {
    let request = serde_json::json!([
        { "ticket": ticket },
        { "type": "ticker", "codes": codes },
        { "format": "DEFAULT" },
    ]);
    socket
        .send(Message::Text(request.to_string().into()))
        .await
        .map_err(SessionEnd::Socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_for_wss_builds_without_a_process_wide_provider() {
        assert!(matches!(tls_connector(), Ok(Connector::Rustls(_))));
    }
}
