//! The Upbit feed end to end against a local fake Upbit: listing, streaming, resubscribing,
//! reconnecting with gap recovery, REST throttling and bad input.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use rust_decimal_macros::dec;
use signal_domain::{InstrumentId, Tick};
use signal_exchange_fakes::upbit::{default_ticker, simple_ticker, FakeUpbit};
use signal_feed_metrics::{FeedMetrics, SourceMetrics};
use signal_ports::{FeedContext, FeedError, Interest, Need, QuoteFeed};
use signal_upbit::{UpbitConfig, UpbitFeed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

fn config(fake: &FakeUpbit) -> UpbitConfig {
    UpbitConfig {
        rest_url: fake.rest_url(),
        ws_url: fake.ws_url(),
        requests_per_second: 50,
        ping_interval: Duration::from_millis(200),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..UpbitConfig::default()
    }
}

fn metrics() -> SourceMetrics {
    FeedMetrics::register(&prometheus::Registry::new())
        .unwrap()
        .source("upbit")
}

fn interest(ids: &[&str]) -> Arc<Interest> {
    let mut interest = Interest::default();
    for id in ids {
        interest.add(id.parse().unwrap(), Need::ActiveRule);
    }
    Arc::new(interest)
}

/// A feed running against the fake, with the test holding the other end of every channel.
struct Running {
    metrics: SourceMetrics,
    ticks: mpsc::Receiver<Tick>,
    interest: watch::Sender<Arc<Interest>>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), FeedError>>,
}

impl Running {
    fn start(config: UpbitConfig, wanted: &[&str]) -> Self {
        let metrics = metrics();
        let feed = UpbitFeed::new(config, metrics.clone());
        let (sink, ticks) = mpsc::channel(64);
        let (interest, interest_rx) = watch::channel(interest(wanted));
        let shutdown = CancellationToken::new();
        let ctx = FeedContext {
            sink,
            interest: interest_rx,
            shutdown: shutdown.clone(),
        };
        let task = tokio::spawn(async move { feed.run(ctx).await });
        Self {
            metrics,
            ticks,
            interest,
            shutdown,
            task,
        }
    }

    async fn next_tick(&mut self) -> Tick {
        timeout(Duration::from_secs(5), self.ticks.recv())
            .await
            .expect("a tick within 5 s")
            .expect("the feed is still running")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let result = timeout(Duration::from_secs(5), self.task).await;
        assert!(
            matches!(result, Ok(Ok(Ok(())))),
            "run() ends with Ok on shutdown"
        );
    }
}

fn btc() -> InstrumentId {
    "UPBIT:KRW-BTC".parse().unwrap()
}

#[tokio::test]
async fn instruments_are_the_krw_markets_with_names_and_warnings() {
    let fake = FakeUpbit::start().await;
    let feed = UpbitFeed::new(config(&fake), metrics());
    let listed: Vec<(String, String, String, bool)> = feed
        .instruments()
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id.to_string(), i.korean_name, i.english_name, i.warning))
        .collect();
    let expected = [
        ("UPBIT:KRW-BTC", "비트코인", "Bitcoin", false),
        ("UPBIT:KRW-ETH", "이더리움", "Ethereum", false),
        ("UPBIT:KRW-XRP", "엑스알피(리플)", "XRP", true),
        ("UPBIT:KRW-DOGE", "도지코인", "Dogecoin", true),
    ]
    .map(|(id, ko, en, warning)| (id.into(), ko.into(), en.into(), warning));
    assert_eq!(listed, expected);
    assert_eq!(fake.rest_requests()[0].1, "/v1/market/all?is_details=true");
}

#[tokio::test]
async fn default_and_simple_frames_become_exact_ticks() {
    let fake = FakeUpbit::start().await;
    fake.set_price("KRW-BTC", "162876000.00000000");
    let mut feed = Running::start(config(&fake), &["UPBIT:KRW-BTC"]);
    fake.wait_for_subscriptions(1).await;

    let snapshot = feed.next_tick().await;
    assert_eq!(snapshot.price.value().to_string(), "162876000");

    fake.send_binary(default_ticker("KRW-BTC", "32287000"));
    let tick = feed.next_tick().await;
    assert_eq!(tick.instrument, btc());
    assert_eq!(tick.price.value(), dec!(32287000));
    assert_eq!(tick.prev_close.unwrap().value(), dec!(31883000));
    assert_eq!(tick.trade_volume, Some(dec!(0.03103806)));
    assert_eq!(tick.cumulative_volume, Some(dec!(2429.58834336)));
    assert_eq!(tick.exchange_time.timestamp_millis(), 1676965262139);

    fake.send_binary(simple_ticker("KRW-BTC", "32287000.00000000"));
    let tick = feed.next_tick().await;
    assert_eq!(tick.price.value().to_string(), "32287000");
    assert_eq!(tick.exchange_time.timestamp_millis(), 1751854855934);

    // Text frames are accepted too, should a proxy re-frame the stream.
    fake.send_text(&default_ticker("KRW-BTC", "32288000"));
    assert_eq!(feed.next_tick().await.price.value(), dec!(32288000));
    assert_eq!(feed.metrics.ticks.get(), 4);
    assert_eq!(feed.metrics.parse_errors.get(), 0);
    feed.stop().await;
}

#[tokio::test]
async fn keeps_the_socket_alive_with_ping_and_accepts_the_status_answer() {
    let fake = FakeUpbit::start().await;
    let feed = Running::start(config(&fake), &["UPBIT:KRW-BTC"]);
    fake.wait_for_subscriptions(1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(fake.pings() >= 2, "PING every 200 ms, got {}", fake.pings());
    assert_eq!(feed.metrics.parse_errors.get(), 0);
    assert_eq!(fake.connections(), 1);
    feed.stop().await;
}

#[tokio::test]
async fn answers_websocket_pings() {
    let fake = FakeUpbit::start().await;
    let config = UpbitConfig {
        ping_interval: Duration::from_secs(60),
        ..config(&fake)
    };
    let feed = Running::start(config, &["UPBIT:KRW-BTC"]);
    fake.wait_for_subscriptions(1).await;
    fake.send_ping();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while fake.pongs() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no pong");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    feed.stop().await;
}

#[tokio::test]
async fn holds_no_connection_while_no_upbit_market_is_wanted() {
    let fake = FakeUpbit::start().await;
    let feed = Running::start(config(&fake), &["KRX:005930"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.connections(), 0, "Upbit has no empty subscription");

    feed.interest.send_replace(interest(&["UPBIT:KRW-ETH"]));
    assert_eq!(fake.wait_for_subscriptions(1).await[0], ["KRW-ETH"]);

    feed.interest.send_replace(interest(&["KRX:005930"]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while fake.open_connections() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "socket kept open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(feed.metrics.streamed.get(), 0);

    feed.interest.send_replace(interest(&["UPBIT:KRW-BTC"]));
    assert_eq!(fake.wait_for_subscriptions(2).await[1], ["KRW-BTC"]);
    assert_eq!(fake.connections(), 2);
    assert_eq!(
        feed.metrics.reconnects.get(),
        0,
        "closing on purpose is no loss"
    );
    feed.stop().await;
}

#[tokio::test]
async fn subscribes_to_the_interest_and_resubscribes_when_it_changes() {
    let fake = FakeUpbit::start().await;
    let feed = Running::start(config(&fake), &["UPBIT:KRW-BTC", "KRX:005930"]);
    let first = fake.wait_for_subscriptions(1).await;
    assert_eq!(first, vec![vec!["KRW-BTC".to_string()]]);
    let request = &fake.subscriptions()[0].1;
    assert!(request[0]["ticket"].is_string());
    assert_eq!(request[1]["type"], "ticker");
    assert_eq!(request[2]["format"], "DEFAULT");
    assert_eq!(feed.metrics.streamed.get(), 1);

    // A burst of changes is coalesced: requests stay at least 250 ms apart and the last one is
    // the whole final set.
    for ids in [
        &["UPBIT:KRW-BTC", "UPBIT:KRW-ETH"][..],
        &["UPBIT:KRW-ETH"],
        &["UPBIT:KRW-BTC", "UPBIT:KRW-XRP", "UPBIT:KRW-ETH"],
    ] {
        feed.interest.send_replace(interest(ids));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while fake.subscribed_codes().last().map(Vec::len) != Some(3) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            fake.subscribed_codes()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let subscriptions = fake.subscriptions();
    assert!(subscriptions.len() <= 3, "debounced: {subscriptions:?}");
    for pair in subscriptions.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= Duration::from_millis(200));
    }
    assert_eq!(
        fake.subscribed_codes().last().unwrap(),
        &["KRW-BTC", "KRW-ETH", "KRW-XRP"]
    );
    assert_eq!(feed.metrics.streamed.get(), 3);
    assert_eq!(fake.connections(), 1, "resubscribed on the same socket");
    feed.stop().await;
}

#[tokio::test]
async fn a_market_that_joins_the_subscription_has_its_price_by_snapshot_before_any_trade() {
    let fake = FakeUpbit::start().await;
    fake.set_price("KRW-ETH", "5012000");
    let mut feed = Running::start(config(&fake), &["UPBIT:KRW-BTC"]);
    fake.wait_for_subscriptions(1).await;

    feed.interest
        .send_replace(interest(&["UPBIT:KRW-BTC", "UPBIT:KRW-ETH"]));
    let codes = fake.wait_for_subscriptions(2).await;
    assert_eq!(codes[1], ["KRW-BTC", "KRW-ETH"]);
    let tick = feed.next_tick().await;
    assert_eq!(tick.instrument.to_string(), "UPBIT:KRW-ETH");
    assert_eq!(tick.price.value(), dec!(5012000));
    assert!(
        fake.rest_requests()
            .iter()
            .any(|(_, request)| request == "/v1/ticker?markets=KRW-ETH"),
        "only the new market is fetched: {:?}",
        fake.rest_requests()
    );
    feed.stop().await;
}

#[tokio::test]
async fn streams_every_krw_market_when_configured() {
    let fake = FakeUpbit::start().await;
    let config = UpbitConfig {
        stream_all_krw_markets: true,
        ..config(&fake)
    };
    let feed = Running::start(config, &[]);
    let codes = fake.wait_for_subscriptions(1).await;
    assert_eq!(codes[0], ["KRW-BTC", "KRW-DOGE", "KRW-ETH", "KRW-XRP"]);
    assert_eq!(feed.metrics.streamed.get(), 4);
    feed.stop().await;
}

#[tokio::test]
async fn a_level_crossed_while_disconnected_arrives_by_snapshot_after_reconnecting() {
    let fake = FakeUpbit::start().await;
    fake.set_price("KRW-BTC", "100000000.00000000");
    let mut feed = Running::start(config(&fake), &["UPBIT:KRW-BTC"]);
    fake.wait_for_subscriptions(1).await;
    assert_eq!(feed.next_tick().await.price.value(), dec!(100000000));

    fake.drop_connections();
    // While the socket is down the market moves across, say, a 105,000,000 level.
    fake.set_price("KRW-BTC", "105000000.00000000");

    let codes = fake.wait_for_subscriptions(2).await;
    assert_eq!(codes[1], ["KRW-BTC"], "resubscribed after reconnecting");
    let recovered = feed.next_tick().await;
    assert_eq!(recovered.instrument, btc());
    assert_eq!(recovered.price.value(), dec!(105000000));
    assert_eq!(feed.metrics.reconnects.get(), 1);
    assert_eq!(fake.connections(), 2);
    feed.stop().await;
}

#[tokio::test]
async fn after_a_429_the_client_backs_off_exponentially_before_sending_again() {
    let fake = FakeUpbit::start().await;
    let min = Duration::from_millis(200);
    let config = UpbitConfig {
        backoff_min: min,
        backoff_max: Duration::from_secs(2),
        ..config(&fake)
    };
    let feed = UpbitFeed::new(config, metrics());
    fake.throttle_next(2);
    assert_eq!(feed.instruments().await.unwrap().len(), 4);
    let times: Vec<_> = fake.rest_requests().into_iter().map(|(at, _)| at).collect();
    assert_eq!(times.len(), 3, "two throttled requests, then one answered");
    assert!(times[1] - times[0] >= min, "waited after the first 429");
    assert!(
        times[2] - times[1] >= 2 * min,
        "waited longer after the second"
    );
}

#[tokio::test]
async fn when_no_calls_are_left_this_second_the_next_waits_for_the_next_second() {
    let fake = FakeUpbit::start().await;
    let feed = UpbitFeed::new(config(&fake), metrics());
    fake.exhaust_this_second();
    feed.instruments().await.unwrap();
    feed.instruments().await.unwrap();
    let times: Vec<_> = fake.rest_requests().into_iter().map(|(at, _)| at).collect();
    assert!(times[1] - times[0] >= Duration::from_secs(1));
}

#[tokio::test]
async fn malformed_frames_are_counted_and_the_stream_carries_on() {
    let fake = FakeUpbit::start().await;
    let mut feed = Running::start(config(&fake), &["UPBIT:KRW-BTC"]);
    fake.wait_for_subscriptions(1).await;

    fake.send_binary(vec![0xff, 0xfe, 0x00]);
    fake.send_binary("{\"type\": \"ticker\", \"code\": ");
    fake.send_text(&default_ticker("KRW-BTC", "\"abc\""));
    fake.send_binary(default_ticker("KRW-BTC", "-5"));
    fake.send_binary(default_ticker("KRW-BTC", "32287000"));

    assert_eq!(feed.next_tick().await.price.value(), dec!(32287000));
    assert_eq!(feed.metrics.parse_errors.get(), 4);
    assert_eq!(feed.metrics.reconnects.get(), 0);
    feed.stop().await;
}

#[tokio::test]
async fn run_ends_with_sink_closed_when_the_consumer_goes_away() {
    let fake = FakeUpbit::start().await;
    let mut feed = Running::start(config(&fake), &["UPBIT:KRW-BTC"]);
    fake.wait_for_subscriptions(1).await;
    feed.ticks.close();
    fake.send_binary(default_ticker("KRW-BTC", "32287000"));
    let result = timeout(Duration::from_secs(5), feed.task).await;
    assert!(matches!(result, Ok(Ok(Err(FeedError::SinkClosed)))));
}
