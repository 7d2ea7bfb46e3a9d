//! The fake exchange on its own, for pointing a system started by hand at it.

use crate::feed::{upbit_markets, Feed};

#[derive(clap::Args)]
pub struct Options {
    /// Background trades per second, spread round-robin over the markets.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How many of the catalog's KRW markets to trade (default: all).
    #[arg(long)]
    markets: Option<usize>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let feed = Feed::start(upbit_markets()).await?;
    let count = options
        .markets
        .unwrap_or(feed.markets().len())
        .min(feed.markets().len());
    feed.set_background(options.rate, (0..count).collect());
    println!(
        "fake Upbit: {count} KRW markets at {} trades/s",
        options.rate
    );
    println!("  SIGNAL_UPBIT__REST_URL={}", feed.rest_url());
    println!("  SIGNAL_UPBIT__WS_URL={}", feed.ws_url());
    println!("  SIGNAL_UPBIT__STREAM_ALL_KRW_MARKETS=true");
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    let (written, dropped) = feed.frames();
    println!("frames written: {written}, dropped for slow readers: {dropped}");
    Ok(())
}
