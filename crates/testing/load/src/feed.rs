//! The harness's exchange: Upbit's REST API from the project's fake (market list, snapshots), and
//! a ticker stream of its own that writes DEFAULT frames at a chosen rate over a chosen set of
//! markets, with `TCP_NODELAY` so each frame leaves when written. A probe trade reports the moment
//! its frame was handed to the socket, which is where tick-to-alert latency starts.

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use signal_exchange_fakes::upbit::{default_ticker_at, requested_codes};
use signal_exchange_fakes::FakeUpbit;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_util::sync::CancellationToken;

/// Frames waiting for one slow reader of the feed before the feed drops them (and counts it).
const OUTBOX: usize = 1 << 16;

/// An Upbit KRW market the feed trades, around `base`.
#[derive(Debug, Clone)]
pub struct Market {
    pub code: String,
    pub korean_name: String,
    pub english_name: String,
    pub base: f64,
}

/// The KRW markets of the built-in catalog (the 159 the issue's figures were taken over), each
/// trading around its reference price.
pub fn upbit_markets() -> Vec<Market> {
    signal_catalog::Catalog::builtin()
        .entries()
        .filter(|entry| entry.instrument.id.market() == signal_domain::Market::Upbit)
        .filter_map(|entry| {
            Some(Market {
                code: entry.instrument.id.symbol().to_string(),
                korean_name: entry.instrument.korean_name.clone(),
                english_name: entry.instrument.english_name.clone(),
                base: entry.reference_price?.to_f64_lossy(),
            })
        })
        .collect()
}

/// What the background generator trades: `ticks_per_second` in total, round-robin over the
/// markets at these indexes.
#[derive(Debug, Clone, Default)]
pub struct Background {
    pub ticks_per_second: f64,
    pub markets: Vec<usize>,
}

pub struct Feed {
    rest: FakeUpbit,
    ws_addr: SocketAddr,
    hub: Arc<Hub>,
    background: watch::Sender<Background>,
    markets: Arc<Vec<Market>>,
    shutdown: CancellationToken,
}

impl Feed {
    pub async fn start(markets: Vec<Market>) -> anyhow::Result<Self> {
        let rest = FakeUpbit::start().await;
        rest.list_markets(markets.iter().map(|m| {
            (
                m.code.as_str(),
                m.korean_name.as_str(),
                m.english_name.as_str(),
            )
        }));
        for market in &markets {
            rest.set_price(&market.code, &format_price(market.base, market.base));
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the feed's socket")?;
        let ws_addr = listener.local_addr()?;
        let hub = Arc::new(Hub::default());
        let markets = Arc::new(markets);
        let shutdown = CancellationToken::new();
        let (background, plan) = watch::channel(Background::default());
        tokio::spawn(accept(listener, hub.clone(), shutdown.clone()));
        tokio::spawn(generate(
            hub.clone(),
            markets.clone(),
            plan,
            shutdown.clone(),
        ));
        Ok(Self {
            rest,
            ws_addr,
            hub,
            background,
            markets,
            shutdown,
        })
    }

    pub fn rest_url(&self) -> String {
        self.rest.rest_url()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/websocket/v1", self.ws_addr)
    }

    pub fn markets(&self) -> &[Market] {
        &self.markets
    }

    pub fn market_index(&self, code: &str) -> Option<usize> {
        self.markets.iter().position(|m| m.code == code)
    }

    /// Trades `ticks_per_second` over `markets` from now on (0 stops the background).
    pub fn set_background(&self, ticks_per_second: f64, markets: Vec<usize>) {
        self.background.send_replace(Background {
            ticks_per_second,
            markets,
        });
    }

    /// One trade of `code` at `price`, to every reader subscribed to it. REST snapshots answer
    /// with it too.
    pub fn trade(&self, code: &str, price: &str) {
        self.publish_trade(code, price, None);
    }

    /// [`Feed::trade`], answered with the moment its frame was handed to the first reader's
    /// socket.
    pub fn timed_trade(&self, code: &str, price: &str) -> oneshot::Receiver<Instant> {
        let (written, when) = oneshot::channel();
        self.publish_trade(code, price, Some(written));
        when
    }

    fn publish_trade(&self, code: &str, price: &str, written: Option<oneshot::Sender<Instant>>) {
        self.rest.set_price(code, price);
        let frame = default_ticker_at(code, price, chrono::Utc::now().timestamp_millis());
        self.hub.publish(code, Bytes::from(frame), written);
    }

    /// How many readers subscribed to `code`.
    pub fn readers_of(&self, code: &str) -> usize {
        self.hub
            .readers
            .lock()
            .expect("feed readers")
            .iter()
            .filter(|reader| reader.codes.contains(code))
            .count()
    }

    /// Waits until some reader subscribed to `code`.
    pub async fn wait_for_reader(&self, code: &str) -> anyhow::Result<()> {
        crate::measure::wait_for(
            &format!("a subscription to {code} on the feed"),
            Duration::from_secs(60),
            Duration::from_millis(20),
            || async { (self.readers_of(code) > 0).then_some(()) },
        )
        .await
    }

    /// Frames written to sockets so far, and frames dropped because a reader fell behind.
    pub fn frames(&self) -> (u64, u64) {
        (
            self.hub.written.load(Ordering::Relaxed),
            self.hub.dropped.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A price near `base` written as Upbit would: whole won from 100 up, four places below.
pub fn format_price(price: f64, base: f64) -> String {
    if base >= 100.0 {
        format!("{price:.0}")
    } else {
        format!("{price:.4}")
    }
}

struct Outgoing {
    payload: Bytes,
    written: Option<oneshot::Sender<Instant>>,
}

struct Reader {
    id: u64,
    codes: HashSet<String>,
    outbox: mpsc::Sender<Outgoing>,
}

#[derive(Default)]
struct Hub {
    readers: Mutex<Vec<Reader>>,
    next_id: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

impl Hub {
    fn publish(&self, code: &str, payload: Bytes, mut written: Option<oneshot::Sender<Instant>>) {
        let readers = self.readers.lock().expect("feed readers");
        for reader in readers.iter().filter(|r| r.codes.contains(code)) {
            let outgoing = Outgoing {
                payload: payload.clone(),
                written: written.take(),
            };
            if reader.outbox.try_send(outgoing).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A reader's request replaces its whole subscription, as Upbit's does.
    fn subscribe(&self, id: u64, codes: Vec<String>, outbox: &mpsc::Sender<Outgoing>) {
        let mut readers = self.readers.lock().expect("feed readers");
        readers.retain(|reader| reader.id != id);
        readers.push(Reader {
            id,
            codes: codes.into_iter().collect(),
            outbox: outbox.clone(),
        });
    }

    fn leave(&self, id: u64) {
        self.readers
            .lock()
            .expect("feed readers")
            .retain(|reader| reader.id != id);
    }
}

async fn accept(listener: TcpListener, hub: Arc<Hub>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        tokio::spawn(converse(stream, hub.clone(), shutdown.clone()));
    }
}

/// One reader of the feed: its subscription requests, its `PING`s, and the frames it is sent.
async fn converse(stream: TcpStream, hub: Arc<Hub>, shutdown: CancellationToken) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = socket.split();
    let (outbox, mut pending) = mpsc::channel::<Outgoing>(OUTBOX);
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            incoming = source.next() => match incoming {
                Some(Ok(Message::Text(text))) if text.as_str() == "PING" => {
                    if sink.send(Message::text(r#"{"status":"UP"}"#)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if let Ok(request) = serde_json::from_str(text.as_str()) {
                        hub.subscribe(id, requested_codes(&request), &outbox);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            Some(outgoing) = pending.recv() => {
                if let Some(written) = outgoing.written {
                    let _ = written.send(Instant::now());
                }
                if sink.send(Message::Binary(outgoing.payload)).await.is_err() {
                    break;
                }
                hub.written.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    hub.leave(id);
}

/// Writes the background trades: each market in turn takes a small random step, kept within half
/// a percent of its base so that no rule set further away is ever reached.
async fn generate(
    hub: Arc<Hub>,
    markets: Arc<Vec<Market>>,
    mut plan: watch::Receiver<Background>,
    shutdown: CancellationToken,
) {
    let mut prices: Vec<f64> = markets.iter().map(|m| m.base).collect();
    let mut rng = SmallRng::from_entropy();
    let mut pace = tokio::time::interval(Duration::from_millis(1));
    pace.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut current = plan.borrow_and_update().clone();
    let mut since = Instant::now();
    let mut emitted = 0u64;
    let mut cursor = 0usize;
    loop {
        let active = current.ticks_per_second > 0.0 && !current.markets.is_empty();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = plan.changed() => {
                if changed.is_err() {
                    return;
                }
                current = plan.borrow_and_update().clone();
                since = Instant::now();
                emitted = 0;
            }
            _ = pace.tick(), if active => {
                let due = (since.elapsed().as_secs_f64() * current.ticks_per_second) as u64;
                let now = chrono::Utc::now().timestamp_millis();
                while emitted < due {
                    let index = current.markets[cursor % current.markets.len()];
                    cursor = cursor.wrapping_add(1);
                    let market = &markets[index];
                    let step = market.base * 0.0005 * if rng.gen::<bool>() { 1.0 } else { -1.0 };
                    prices[index] =
                        (prices[index] + step).clamp(market.base * 0.995, market.base * 1.005);
                    let price = format_price(prices[index], market.base);
                    let frame = default_ticker_at(&market.code, &price, now);
                    hub.publish(&market.code, Bytes::from(frame), None);
                    emitted += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_receives_the_trades_of_the_markets_it_subscribed_to() {
        let feed = Feed::start(upbit_markets()).await.unwrap();
        let (mut socket, _) = tokio_tungstenite::connect_async(feed.ws_url())
            .await
            .unwrap();
        let request =
            r#"[{"ticket":"t"},{"type":"ticker","codes":["KRW-ETH"]},{"format":"DEFAULT"}]"#;
        socket.send(Message::text(request)).await.unwrap();
        feed.wait_for_reader("KRW-ETH").await.unwrap();
        feed.trade("KRW-BTC", "1");
        let written = feed.timed_trade("KRW-ETH", "5000001");
        let Some(Ok(Message::Binary(frame))) = socket.next().await else {
            panic!("expected a binary ticker frame");
        };
        let ticker: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(ticker["code"], "KRW-ETH");
        assert_eq!(ticker["trade_price"], 5000001);
        assert!(written.await.is_ok());
    }
}
