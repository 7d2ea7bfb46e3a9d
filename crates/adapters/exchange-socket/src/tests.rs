//! The socket against a local exchange that drops it, refuses it and stalls it.

use super::*;
use prometheus::Registry;
use signal_feed_metrics::FeedMetrics;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::accept_async;

/// A connector whose session subscribes with `SUB a,b`, reads each text message as one item, and
/// answers `ping` with `pong`; what it sees goes to the test.
struct Echo {
    url: String,
    seen: mpsc::UnboundedSender<Seen>,
}

#[derive(Debug, PartialEq)]
enum Seen {
    Subscribed(Vec<String>),
    Item(String),
}

struct EchoSession {
    has: BTreeSet<String>,
    seen: mpsc::UnboundedSender<Seen>,
}

impl Connector for Echo {
    type Key = String;
    type Session = EchoSession;
    type Error = std::convert::Infallible;

    fn name(&self) -> &'static str {
        "echo"
    }

    fn url(&self) -> &str {
        &self.url
    }

    async fn open(&self) -> Result<EchoSession, Self::Error> {
        Ok(EchoSession {
            has: BTreeSet::new(),
            seen: self.seen.clone(),
        })
    }
}

impl Session for EchoSession {
    type Key = String;

    fn subscribe(&mut self, wanted: &BTreeSet<String>) -> Subscription<String> {
        let added = wanted.difference(&self.has).cloned().collect();
        self.has = wanted.clone();
        let codes: Vec<&str> = wanted.iter().map(String::as_str).collect();
        Subscription {
            requests: vec![Message::text(format!("SUB {}", codes.join(",")))],
            added,
        }
    }

    async fn subscribed(&mut self, added: Vec<String>) -> Result<(), ConsumerGone> {
        self.seen
            .send(Seen::Subscribed(added))
            .map_err(|_| ConsumerGone)
    }

    async fn receive(&mut self, payload: Payload<'_>) -> Result<Vec<Message>, ConsumerGone> {
        match payload {
            Payload::Text("ping") => Ok(vec![Message::text("pong")]),
            Payload::Text(text) => {
                self.seen
                    .send(Seen::Item(text.to_string()))
                    .map_err(|_| ConsumerGone)?;
                Ok(Vec::new())
            }
            Payload::Binary(_) => Ok(Vec::new()),
        }
    }
}

struct Running {
    listener: TcpListener,
    seen: mpsc::UnboundedReceiver<Seen>,
    wanted: watch::Sender<BTreeSet<String>>,
    metrics: SourceMetrics,
    link: Link,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ConsumerGone>>,
}

fn set(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| c.to_string()).collect()
}

impl Running {
    async fn start(wanted: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (wanted, wanted_rx) = watch::channel(set(wanted));
        let metrics = FeedMetrics::register(&Registry::new())
            .unwrap()
            .source("echo");
        let link = Link::default();
        let shutdown = CancellationToken::new();
        let socket = ExchangeSocket {
            connector: Echo { url, seen: seen_tx },
            reconnect: Reconnect {
                connect_timeout: Duration::from_millis(200),
                backoff_min: Duration::from_millis(10),
                backoff_max: Duration::from_millis(50),
                healthy_after: Duration::from_secs(30),
            },
            metrics: metrics.clone(),
            link: link.clone(),
        };
        let stop = shutdown.clone();
        let task = tokio::spawn(async move { socket.run(wanted_rx, &stop).await });
        Self {
            listener,
            seen,
            wanted,
            metrics,
            link,
            shutdown,
            task,
        }
    }

    /// The next client connection, through the WebSocket handshake.
    async fn accept(&self) -> WebSocketStream<TcpStream> {
        let (tcp, _) = self.listener.accept().await.unwrap();
        accept_async(tcp).await.unwrap()
    }

    async fn seen(&mut self) -> Seen {
        self.seen.recv().await.unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn text(server: &mut WebSocketStream<TcpStream>) -> String {
    loop {
        match server.next().await {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("client went away: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_dropped_connection_is_reopened_and_resubscribed_by_itself() {
    let mut feed = Running::start(&["KRW-BTC", "KRW-ETH"]).await;
    let mut first = feed.accept().await;
    assert_eq!(text(&mut first).await, "SUB KRW-BTC,KRW-ETH");
    assert_eq!(
        feed.seen().await,
        Seen::Subscribed(vec!["KRW-BTC".into(), "KRW-ETH".into()])
    );
    first.send(Message::text("one")).await.unwrap();
    assert_eq!(feed.seen().await, Seen::Item("one".into()));
    assert_eq!(feed.link.state(), FeedState::Live);

    // The exchange goes away without a close frame.
    drop(first);

    let mut second = feed.accept().await;
    assert_eq!(
        text(&mut second).await,
        "SUB KRW-BTC,KRW-ETH",
        "resubscribed"
    );
    assert_eq!(
        feed.seen().await,
        Seen::Subscribed(vec!["KRW-BTC".into(), "KRW-ETH".into()]),
        "the new connection's gap is the session's to fill"
    );
    second.send(Message::text("two")).await.unwrap();
    assert_eq!(feed.seen().await, Seen::Item("two".into()));
    assert_eq!(feed.metrics.reconnects.get(), 1);
    assert_eq!(feed.metrics.connected.get(), 1);
    feed.stop().await;
}

#[tokio::test]
async fn failed_and_stalled_handshakes_are_retried_until_the_exchange_answers() {
    let mut feed = Running::start(&["KRW-BTC"]).await;
    // Accepted and closed before the handshake.
    drop(feed.listener.accept().await.unwrap());
    // Accepted and never answered: the connect timeout gives up on it.
    let (stalled, _) = feed.listener.accept().await.unwrap();
    let mut server = feed.accept().await;
    drop(stalled);
    assert_eq!(text(&mut server).await, "SUB KRW-BTC");
    assert_eq!(feed.seen().await, Seen::Subscribed(vec!["KRW-BTC".into()]));
    server.send(Message::text("up")).await.unwrap();
    assert_eq!(feed.seen().await, Seen::Item("up".into()));
    assert_eq!(
        feed.metrics.reconnects.get(),
        0,
        "no connection was up before, so none was lost"
    );
    feed.stop().await;
}

#[tokio::test]
async fn changes_of_what_is_wanted_go_out_on_the_open_connection_and_answers_are_sent() {
    let mut feed = Running::start(&["KRW-BTC"]).await;
    let mut server = feed.accept().await;
    assert_eq!(text(&mut server).await, "SUB KRW-BTC");
    feed.seen().await;

    feed.wanted.send_replace(set(&["KRW-BTC", "KRW-XRP"]));
    assert_eq!(text(&mut server).await, "SUB KRW-BTC,KRW-XRP");
    assert_eq!(feed.seen().await, Seen::Subscribed(vec!["KRW-XRP".into()]));

    server.send(Message::text("ping")).await.unwrap();
    assert_eq!(text(&mut server).await, "pong");
    feed.stop().await;
}

#[tokio::test]
async fn nothing_wanted_closes_the_connection_without_counting_a_loss() {
    let mut feed = Running::start(&["KRW-BTC"]).await;
    let mut server = feed.accept().await;
    text(&mut server).await;
    feed.seen().await;

    feed.wanted.send_replace(BTreeSet::new());
    while let Some(Ok(message)) = server.next().await {
        if message.is_close() {
            break;
        }
    }
    feed.wanted.send_replace(set(&["KRW-ETH"]));
    let mut next = feed.accept().await;
    assert_eq!(text(&mut next).await, "SUB KRW-ETH");
    assert_eq!(feed.metrics.reconnects.get(), 0);
    feed.stop().await;
}

#[tokio::test]
async fn run_ends_when_the_consumer_goes_away() {
    let feed = Running::start(&["KRW-BTC"]).await;
    let Running {
        listener,
        seen,
        task,
        ..
    } = feed;
    drop(seen);
    let (tcp, _) = listener.accept().await.unwrap();
    let _server = accept_async(tcp).await.unwrap();
    assert!(matches!(task.await.unwrap(), Err(ConsumerGone)));
}

#[test]
fn tls_for_wss_builds_without_a_process_wide_provider() {
    assert!(matches!(tls_connector(), Some(Tls::Rustls(_))));
}
