//! Quote sockets, on the system under test and on the Node peer in the same run:
//! - memory: resident memory per open, subscribed socket, and how fast it comes back once they
//!   close;
//! - fan-out: many sockets on one market trading fast, messages received per second;
//! - a stalled reader: one socket stops reading while its market trades, then resumes; how many
//!   messages arrive before the current price.

use crate::feed::{format_price, upbit_markets, Feed};
use crate::measure::median;
use crate::peer::NodePeer;
use crate::quote_client::{self, OpenSockets, Server};
use crate::report::{self, RunHeader};
use anyhow::Context as _;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

use super::Context;

pub const SCENARIO: &str = "sockets";

#[derive(clap::Args)]
pub struct Options {
    /// Sockets for the memory figure, each subscribed to one market (round-robin). Both this
    /// harness and the server need a descriptor per socket, so the open-file limit bounds it.
    #[arg(long, default_value_t = 19_000)]
    sockets: usize,
    /// Background trades per second over every market while measuring memory.
    #[arg(long, default_value_t = 100.0)]
    memory_rate: f64,
    /// How long to follow memory after the sockets close, in seconds.
    #[arg(long, default_value_t = 20)]
    close_watch: u64,
    /// Sockets on the one fan-out market.
    #[arg(long, default_value_t = 5_000)]
    fanout_sockets: usize,
    /// Trades per second on the fan-out market.
    #[arg(long, default_value_t = 1_000.0)]
    fanout_rate: f64,
    /// Seconds each fan-out measurement counts messages for.
    #[arg(long, default_value_t = 10)]
    window: u64,
    /// Fan-out measurements per server, alternating between them.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// How long the stalled reader stops reading, in seconds.
    #[arg(long, default_value_t = 10)]
    stall: u64,
    /// The stalled reader's receive buffer in bytes (1: the kernel's minimum); the kernel's
    /// default if not given. What the reader's own buffer took before it stalled reaches it
    /// before anything the server sends on resuming, so this separates the client's share of
    /// the stale messages from the server's.
    #[arg(long)]
    stall_receive_buffer: Option<u32>,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// The fan-out and stalled-reader market.
    #[arg(long, default_value = "KRW-BTC")]
    market: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SocketsResult {
    pub run: RunHeader,
    pub node_version: String,
    pub app: ServerFigures,
    pub node: ServerFigures,
    /// The system's median fan-out over the peer's.
    pub fanout_ratio: f64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ServerFigures {
    pub memory: Memory,
    pub fanout_sockets: usize,
    pub fanout_ticks_per_second: f64,
    pub fanout_messages_per_second: Vec<f64>,
    pub fanout_median: f64,
    pub stalled: Stalled,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Memory {
    pub sockets: usize,
    pub failed: usize,
    pub idle_rss_bytes: u64,
    pub loaded_rss_bytes: u64,
    pub bytes_per_socket: f64,
    /// `(seconds since the first socket opened, resident bytes)`: opening, holding, closing.
    pub timeline: Vec<(f64, u64)>,
    /// Seconds from closing the last socket until memory was within 10 % of the idle figure.
    pub back_to_idle_seconds: Option<f64>,
    /// Resident memory 10 s after the sockets closed.
    pub rss_10s_after_close_bytes: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Stalled {
    pub stall_seconds: u64,
    /// The reader's receive buffer as set (`--stall-receive-buffer`); None: the kernel's default.
    #[serde(default)]
    pub receive_buffer: Option<u32>,
    /// Messages received after resuming, before the one with the current price.
    pub stale_messages: u64,
    /// From resuming to reading the current price.
    pub resume_to_current_ms: f64,
}

/// One of the two servers, seen through the same clients.
struct Subject<'a> {
    server: Server,
    rss: Box<dyn Fn() -> anyhow::Result<u64> + 'a>,
}

async fn memory(subject: &Subject<'_>, feed: &Feed, options: &Options) -> anyhow::Result<Memory> {
    feed.set_background(options.memory_rate, (0..feed.markets().len()).collect());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = (subject.rss)()?;
    let started = Instant::now();
    let mut timeline = vec![(0.0, idle)];
    let codes: Vec<String> = feed.markets().iter().map(|m| m.code.clone()).collect();
    let opening =
        quote_client::open_many(&subject.server, options.sockets, options.in_flight, |i| {
            codes[i % codes.len()].clone()
        });
    futures::pin_mut!(opening);
    let sockets: OpenSockets = loop {
        tokio::select! {
            opened = &mut opening => break opened,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                timeline.push((started.elapsed().as_secs_f64(), (subject.rss)()?));
            }
        }
    };
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        timeline.push((started.elapsed().as_secs_f64(), (subject.rss)()?));
    }
    let loaded = (subject.rss)()?;
    let opened = sockets.len();
    let failed = sockets.failed;
    sockets.close().await;
    let closed = Instant::now();
    let mut back_to_idle_seconds = None;
    let mut rss_10s_after_close_bytes = None;
    while closed.elapsed() < Duration::from_secs(options.close_watch) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = (subject.rss)()?;
        timeline.push((started.elapsed().as_secs_f64(), rss));
        if back_to_idle_seconds.is_none() && (rss as f64) <= idle as f64 * 1.1 {
            back_to_idle_seconds = Some(closed.elapsed().as_secs_f64());
        }
        if rss_10s_after_close_bytes.is_none() && closed.elapsed() >= Duration::from_secs(10) {
            rss_10s_after_close_bytes = Some(rss);
        }
    }
    feed.set_background(0.0, Vec::new());
    Ok(Memory {
        sockets: opened,
        failed,
        idle_rss_bytes: idle,
        loaded_rss_bytes: loaded,
        bytes_per_socket: (loaded as f64 - idle as f64) / opened.max(1) as f64,
        timeline,
        back_to_idle_seconds,
        rss_10s_after_close_bytes,
    })
}

async fn fanout(subject: &Subject<'_>, feed: &Feed, options: &Options) -> anyhow::Result<f64> {
    let market = feed
        .market_index(&options.market)
        .context("fan-out market")?;
    let sockets = quote_client::open_many(
        &subject.server,
        options.fanout_sockets,
        options.in_flight,
        |_| options.market.clone(),
    )
    .await;
    anyhow::ensure!(
        sockets.failed == 0,
        "{} fan-out sockets failed to open",
        sockets.failed
    );
    feed.set_background(options.fanout_rate, vec![market]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = sockets.received();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(options.window)).await;
    let rate = (sockets.received() - before) as f64 / start.elapsed().as_secs_f64();
    feed.set_background(0.0, Vec::new());
    sockets.close().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(rate)
}

async fn stalled(subject: &Subject<'_>, feed: &Feed, options: &Options) -> anyhow::Result<Stalled> {
    let index = feed
        .market_index(&options.market)
        .context("stalled-reader market")?;
    let base = feed.markets()[index].base;
    let mut socket = quote_client::connect(
        &subject.server,
        0,
        &options.market,
        options.stall_receive_buffer,
    )
    .await?;
    feed.set_background(options.fanout_rate, vec![index]);
    // Read normally for a second, then stop reading while the market keeps trading.
    let reading = Instant::now();
    while reading.elapsed() < Duration::from_secs(1) {
        let _ = tokio::time::timeout(Duration::from_millis(100), socket.next()).await;
    }
    tokio::time::sleep(Duration::from_secs(options.stall)).await;
    feed.set_background(0.0, Vec::new());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The current price: outside the background's range, so it cannot be mistaken.
    let current = format_price(base * 1.01, base);
    feed.trade(&options.market, &current);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resumed = Instant::now();
    let mut stale_messages = 0;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .context("the current price did not arrive within 60 s of resuming")?
            .context("the socket closed")??;
        if quote_client::price_of(&message).as_deref() == Some(current.as_str()) {
            break;
        }
        stale_messages += 1;
    }
    let resume_to_current_ms = resumed.elapsed().as_secs_f64() * 1000.0;
    drop(socket);
    Ok(Stalled {
        stall_seconds: options.stall,
        receive_buffer: options.stall_receive_buffer,
        stale_messages,
        resume_to_current_ms,
    })
}

/// Each server beside its figures and its name, in the order they are measured.
fn both<'s, 'a>(
    app: &'s Subject<'a>,
    node: &'s Subject<'a>,
    figures: &'s mut [ServerFigures; 2],
) -> [(&'s Subject<'a>, &'s mut ServerFigures, &'static str); 2] {
    let [app_figures, node_figures] = figures;
    [(app, app_figures, "system"), (node, node_figures, "node")]
}

pub async fn run(context: &Context, options: Options) -> anyhow::Result<()> {
    let run = RunHeader::new(SCENARIO);
    let feed = Feed::start(upbit_markets()).await?;
    // Thousands of sockets open from one address within seconds.
    let system = context
        .start_system_with(&feed, &super::NO_REQUEST_LIMITS)
        .await?;
    let codes: Vec<String> = feed.markets().iter().map(|m| m.code.clone()).collect();
    let peer = NodePeer::start(&feed.ws_url(), &codes).await?;
    feed.wait_for_reader(&options.market).await?;
    let token = system.token("socket-user");
    let app = Subject {
        server: Server {
            addr: system.asset,
            path: format!("/ws/stocks?token={token}"),
        },
        rss: Box::new(|| system.rss()),
    };
    let node = Subject {
        server: Server {
            addr: peer.addr,
            path: "/ws/stocks".into(),
        },
        rss: Box::new(|| peer.rss()),
    };
    let mut figures = [ServerFigures::default(), ServerFigures::default()];
    for (subject, figures, name) in both(&app, &node, &mut figures) {
        eprintln!("{name}: memory with {} sockets", options.sockets);
        figures.memory = memory(subject, &feed, &options).await?;
        eprintln!(
            "  {:.0} bytes per socket; back within 10 % of idle after {:?} s",
            figures.memory.bytes_per_socket, figures.memory.back_to_idle_seconds
        );
    }
    for run in 0..options.runs {
        for (subject, figures, name) in both(&app, &node, &mut figures) {
            let rate = fanout(subject, &feed, &options).await?;
            eprintln!("fan-out run {} {name}: {rate:.0} msg/s", run + 1);
            figures.fanout_messages_per_second.push(rate);
        }
    }
    for (subject, figures, name) in both(&app, &node, &mut figures) {
        figures.stalled = stalled(subject, &feed, &options).await?;
        figures.fanout_sockets = options.fanout_sockets;
        figures.fanout_ticks_per_second = options.fanout_rate;
        figures.fanout_median = median(&figures.fanout_messages_per_second);
        eprintln!(
            "{name}: stalled reader got {} stale messages before the current price",
            figures.stalled.stale_messages
        );
    }
    drop((app, node));
    let [app, node] = figures;
    let result = SocketsResult {
        run,
        node_version: peer.version.clone(),
        fanout_ratio: app.fanout_median / node.fanout_median.max(1e-9),
        app,
        node,
    };
    peer.stop().await?;
    system.stop().await?;
    let path = report::write(&context.out, SCENARIO, &result)?;
    crate::plot::sockets(&context.out, &result)?;
    println!(
        "sockets: {:.0} vs {:.0} bytes per socket (system vs Node {}); after close: back to idle in {:?} s; \
         fan-out {:.0} vs {:.0} msg/s (ratio {:.2}); stalled reader: {} vs {} stale messages -> {}",
        result.app.memory.bytes_per_socket,
        result.node.memory.bytes_per_socket,
        result.node_version,
        result.app.memory.back_to_idle_seconds,
        result.app.fanout_median,
        result.node.fanout_median,
        result.fanout_ratio,
        result.app.stalled.stale_messages,
        result.node.stalled.stale_messages,
        path.display()
    );
    Ok(())
}
