//! Live-quote socket clients in the `/ws/stocks` protocol, for the system under test and the Node
//! peer alike. Many sockets come from many loopback source addresses, since one address offers
//! only the ~28,000 ports of the ephemeral range; each client keeps small buffers so that the
//! harness's own memory stays out of the way.

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

/// Sockets per loopback source address, well inside the ephemeral port range.
const SOCKETS_PER_SOURCE: usize = 20_000;

pub type QuoteSocket = WebSocketStream<TcpStream>;

/// A quote socket server: the system under test or the peer.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    /// `ws://` path and query, e.g. `/ws/stocks?token=...`.
    pub path: String,
}

impl Server {
    fn url(&self) -> String {
        format!("ws://{}{}", self.addr, self.path)
    }
}

fn source_address(index: usize) -> Ipv4Addr {
    let n = u32::try_from(index / SOCKETS_PER_SOURCE).unwrap_or(0);
    // 127.0.1.0 upwards: the whole of 127.0.0.0/8 reaches the loopback interface.
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 1, 0)) + n)
}

/// Opens socket number `index` and subscribes it to `symbol`, returning once the server has
/// answered the subscription. `receive_buffer`: the socket's receive buffer in bytes (the kernel
/// doubles it and keeps it above its minimum) instead of the kernel's default.
pub async fn connect(
    server: &Server,
    index: usize,
    symbol: &str,
    receive_buffer: Option<u32>,
) -> anyhow::Result<QuoteSocket> {
    let socket = TcpSocket::new_v4()?;
    if let Some(bytes) = receive_buffer {
        // Before connecting, so that the window the client offers starts small too.
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.bind(SocketAddr::from((source_address(index), 0)))?;
    let stream = socket.connect(server.addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(server.url(), stream, Some(config)).await?;
    let subscribe = serde_json::json!({ "type": "subscribe", "symbol": symbol });
    ws.send(Message::text(subscribe.to_string())).await?;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .context("no answer to the subscription within 30 s")?
            .context("the socket closed before answering the subscription")??;
        let Message::Text(text) = message else {
            continue;
        };
        let answer: Value = serde_json::from_str(text.as_str())?;
        match answer["status"].as_str() {
            Some("success") => return Ok(ws),
            Some(_) => anyhow::bail!("subscription refused: {text}"),
            None => continue,
        }
    }
}

/// The exact price of a `price_update`, if `message` is one.
pub fn price_of(message: &Message) -> Option<String> {
    let Message::Text(text) = message else {
        return None;
    };
    let update: Value = serde_json::from_str(text.as_str()).ok()?;
    (update["type"] == "price_update").then(|| update["priceExact"].as_str().map(str::to_string))?
}

/// Many open sockets, each reading and counting what it receives until closed.
pub struct OpenSockets {
    pub received: Arc<AtomicU64>,
    pub failed: usize,
    stop: CancellationToken,
    readers: Vec<JoinHandle<()>>,
}

impl OpenSockets {
    pub fn len(&self) -> usize {
        self.readers.len()
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Closes every socket with a close frame and waits for the readers to finish.
    pub async fn close(self) {
        self.stop.cancel();
        for reader in self.readers {
            let _ = reader.await;
        }
    }
}

/// Opens `count` sockets, socket `i` subscribed to `symbol_of(i)`, `in_flight` at a time.
pub async fn open_many(
    server: &Server,
    count: usize,
    in_flight: usize,
    symbol_of: impl Fn(usize) -> String,
) -> OpenSockets {
    let received = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let connections = futures::stream::iter(0..count)
        .map(|index| {
            let symbol = symbol_of(index);
            async move { connect(server, index, &symbol, None).await }
        })
        .buffer_unordered(in_flight.max(1));
    futures::pin_mut!(connections);
    let mut readers = Vec::with_capacity(count);
    let mut failed = 0;
    while let Some(connected) = connections.next().await {
        match connected {
            Ok(socket) => readers.push(tokio::spawn(read_until_stopped(
                socket,
                received.clone(),
                stop.clone(),
            ))),
            Err(error) => {
                if failed == 0 {
                    eprintln!("a quote socket failed to open: {error:#}");
                }
                failed += 1;
            }
        }
    }
    OpenSockets {
        received,
        failed,
        stop,
        readers,
    }
}

async fn read_until_stopped(
    mut socket: QuoteSocket,
    received: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = socket.close(None).await;
                return;
            }
            message = socket.next() => match message {
                Some(Ok(_)) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                _ => return,
            }
        }
    }
}
