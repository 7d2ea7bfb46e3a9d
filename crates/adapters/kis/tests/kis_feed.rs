//! The KIS feed against a local fake KIS: what a user of `QuoteFeed` sees (ticks, metrics) and
//! what KIS sees (registrations, token issuances, echoes), with no network beyond 127.0.0.1.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use rust_decimal::Decimal;
use signal_domain::{InstrumentId, Tick, Timestamp};
use signal_exchange_fakes::kis::{
    domestic_record, encrypted_frame, frame, overseas_record, FakeKis,
};
use signal_feed_metrics::{FeedMetrics, SourceMetrics};
use signal_kis::{KisConfig, KisFeed};
use signal_memory::MemorySharedCache;
use signal_ports::{FeedContext, FeedError, Interest, Need, QuoteFeed, SharedCache};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(5);

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Tuesday 10:00 in Seoul (Monday 20:00 in New York): KRX is in session, the US is not, so the
/// tests that poll repeatedly do not depend on when they run.
fn krx_session() -> Timestamp {
    at("2026-11-24T01:00:00Z")
}

fn config(fake: &FakeKis) -> KisConfig {
    let mut config = KisConfig::new("PSfakeAppKey0123456789", "fake-app-secret");
    config.rest_url = fake.rest_url();
    config.ws_url = fake.ws_url();
    config.rest_per_second = 50;
    config.poll_interval = Duration::from_millis(200);
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(200);
    config.busy_backoff = Duration::from_millis(50);
    config.token_wait = Duration::from_millis(50);
    config.now = krx_session;
    config
}

fn id(text: &str) -> InstrumentId {
    text.parse().unwrap()
}

fn interest_in(ids: &[String]) -> Arc<Interest> {
    let mut interest = Interest::default();
    for text in ids {
        interest.add(id(text), Need::ActiveRule);
    }
    Arc::new(interest)
}

struct Running {
    ticks: mpsc::Receiver<Tick>,
    metrics: SourceMetrics,
    interest: watch::Sender<Arc<Interest>>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), FeedError>>,
}

impl Running {
    fn start(config: KisConfig, cache: Arc<dyn SharedCache>, ids: &[&str]) -> Self {
        let metrics = FeedMetrics::register(&prometheus::Registry::new())
            .unwrap()
            .source("kis");
        let feed = KisFeed::new(config, cache, metrics.clone()).unwrap();
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let (interest, receiver) = watch::channel(interest_in(&ids));
        let (sink, ticks) = mpsc::channel(1024);
        let shutdown = CancellationToken::new();
        let ctx = FeedContext {
            sink,
            interest: receiver,
            shutdown: shutdown.clone(),
        };
        let task = tokio::spawn(async move { feed.run(ctx).await });
        Self {
            ticks,
            metrics,
            interest,
            shutdown,
            task,
        }
    }

    /// The next tick of `instrument`, skipping others.
    async fn tick_of(&mut self, instrument: &str) -> Tick {
        let wanted = id(instrument);
        tokio::time::timeout(PATIENCE, async {
            loop {
                let tick = self.ticks.recv().await.expect("feed stopped");
                if tick.instrument == wanted {
                    return tick;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no tick of {instrument}"))
    }

    /// The next tick of `instrument` at `price`, skipping others.
    async fn tick_at(&mut self, instrument: &str, price: &str) -> Tick {
        let price = Decimal::from_str(price).unwrap();
        loop {
            let tick = self.tick_of(instrument).await;
            if tick.price.value() == price {
                return tick;
            }
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let ended = tokio::time::timeout(PATIENCE, self.task).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "feed did not stop cleanly");
    }
}

fn fresh_cache() -> Arc<dyn SharedCache> {
    Arc::new(MemorySharedCache::default())
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn registered(fake: &FakeKis, keys: &[&str]) {
    eventually("registrations", || {
        let now = fake.registered();
        keys.iter().all(|k| now.contains(*k))
    })
    .await;
}

#[tokio::test]
async fn domestic_and_overseas_trades_become_exact_ticks() {
    let fake = FakeKis::start().await;
    let mut feed = Running::start(config(&fake), fresh_cache(), &["KRX:005930", "NASDAQ:AAPL"]);
    registered(&fake, &["005930", "DNASAAPL"]).await;

    fake.send(frame("H0STCNT0", &[domestic_record("005930", "71900")]));
    let samsung = feed.tick_of("KRX:005930").await;
    assert_eq!(samsung.price.value(), Decimal::from(71900));
    assert_eq!(samsung.prev_close.unwrap().value(), Decimal::from(71500));

    fake.send(frame(
        "HDFSCNT0",
        &[overseas_record("DNASAAPL", "170.1234")],
    ));
    let apple = feed.tick_of("NASDAQ:AAPL").await;
    assert_eq!(apple.price.value(), Decimal::from_str("170.1234").unwrap());
    assert_eq!(feed.metrics.ticks.get(), 2);
    feed.stop().await;
}

#[tokio::test]
async fn a_streamed_instrument_has_its_price_by_snapshot_before_any_trade() {
    let fake = FakeKis::start().await;
    fake.set_price("005930", "62700");
    fake.set_price("AAPL", "260.2900");
    // New York is closed at this hour: the snapshot is its last close, and no trade will come.
    let mut feed = Running::start(config(&fake), fresh_cache(), &["KRX:005930", "NASDAQ:AAPL"]);
    registered(&fake, &["005930", "DNASAAPL"]).await;
    feed.tick_at("KRX:005930", "62700").await;
    feed.tick_at("NASDAQ:AAPL", "260.29").await;
    assert_eq!(
        feed.metrics.polled.get(),
        0,
        "both are streamed, not polled"
    );
    feed.stop().await;
}

#[tokio::test]
async fn a_snapshot_that_returns_after_a_streamed_trade_is_dropped_as_older() {
    let fake = FakeKis::start().await;
    fake.set_price("005930", "62700");
    // KIS is busy: the registration's snapshot waits its turn behind EGW00201 answers.
    fake.set_rest_budget(0);
    let mut feed = Running::start(config(&fake), fresh_cache(), &["KRX:005930"]);
    registered(&fake, &["005930"]).await;
    eventually("a busy answer", || fake.busy_answers() > 0).await;
    fake.send(frame("H0STCNT0", &[domestic_record("005930", "63000")]));
    feed.tick_at("KRX:005930", "63000").await;

    fake.set_rest_budget(50);
    eventually("the snapshot's answer", || fake.prices_answered() > 0).await;
    // Time for the feed to hand the snapshot on, were it going to.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.send(frame("H0STCNT0", &[domestic_record("005930", "63100")]));
    let next = feed.tick_of("KRX:005930").await;
    assert_eq!(
        next.price.value(),
        Decimal::from(63100),
        "the snapshot's older price came after a newer trade"
    );
    feed.stop().await;
}

#[tokio::test]
async fn a_multi_record_frame_gives_a_tick_per_record_and_an_encrypted_frame_is_opened() {
    let fake = FakeKis::start().await;
    let mut feed = Running::start(config(&fake), fresh_cache(), &["NASDAQ:AAPL", "KRX:005930"]);
    registered(&fake, &["005930", "DNASAAPL"]).await;

    let prices = ["169.80", "169.81", "169.82"];
    let records: Vec<String> = prices
        .iter()
        .map(|p| overseas_record("DNASAAPL", p))
        .collect();
    fake.send(frame("HDFSCNT0", &records));
    for price in prices {
        let tick = feed.tick_of("NASDAQ:AAPL").await;
        assert_eq!(tick.price.value(), Decimal::from_str(price).unwrap());
    }

    fake.send(encrypted_frame(
        "H0STCNT0",
        &[domestic_record("005930", "72100")],
    ));
    feed.tick_at("KRX:005930", "72100").await;
    assert_eq!(feed.metrics.parse_errors.get(), 0);
    feed.stop().await;
}

#[tokio::test]
async fn pingpong_is_echoed_and_the_session_stays_up() {
    let fake = FakeKis::start().await;
    let mut feed = Running::start(config(&fake), fresh_cache(), &["KRX:005930"]);
    registered(&fake, &["005930"]).await;

    for round in 1..=2 {
        fake.pingpong();
        eventually("the echo", || fake.echoes() == round).await;
    }
    fake.send(frame("H0STCNT0", &[domestic_record("005930", "70000")]));
    feed.tick_at("KRX:005930", "70000").await;
    assert_eq!(fake.sessions(), 1);
    assert_eq!(fake.silent_drops(), 0);
    assert_eq!(feed.metrics.reconnects.get(), 0);
    feed.stop().await;
}

#[tokio::test]
async fn forty_one_instruments_are_streamed_and_the_forty_second_is_polled() {
    let fake = FakeKis::start().await;
    let ids: Vec<String> = (1..=42).map(|n| format!("KRX:{n:06}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    fake.set_price("000042", "15550");
    let mut feed = Running::start(config(&fake), fresh_cache(), &refs);

    eventually("41 registrations", || fake.registered().len() == 41).await;
    assert!(!fake.registered().contains("000042"));
    let polled = feed.tick_of("KRX:000042").await;
    assert_eq!(polled.price.value(), Decimal::from(15550));
    assert_eq!(feed.metrics.streamed.get(), 41);
    assert_eq!(feed.metrics.polled.get(), 1);
    feed.stop().await;
}

#[tokio::test]
async fn a_registration_kis_refuses_is_polled_instead() {
    let fake = FakeKis::start().await;
    // Something else on this app key holds a registration: KIS accepts only 40 more.
    fake.set_max_registrations(40);
    let ids: Vec<String> = (1..=41).map(|n| format!("KRX:{n:06}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    fake.set_price("000041", "8080");
    let mut feed = Running::start(config(&fake), fresh_cache(), &refs);

    eventually("the refusal to move it", || feed.metrics.polled.get() == 1).await;
    assert_eq!(feed.metrics.streamed.get(), 40);
    feed.tick_at("KRX:000041", "8080").await;
    assert_eq!(fake.registered().len(), 40);
    feed.stop().await;
}

#[tokio::test]
async fn after_a_dropped_socket_the_feed_resubscribes_and_snapshots_the_gap() {
    let fake = FakeKis::start().await;
    let mut feed = Running::start(config(&fake), fresh_cache(), &["KRX:005930", "NASDAQ:AAPL"]);
    registered(&fake, &["005930", "DNASAAPL"]).await;
    fake.send(frame("H0STCNT0", &[domestic_record("005930", "70000")]));
    feed.tick_at("KRX:005930", "70000").await;

    // The price moves while the socket is down; no frame will ever tell.
    fake.set_price("005930", "68000");
    fake.set_price("AAPL", "171.5000");
    fake.drop_clients();

    feed.tick_at("KRX:005930", "68000").await;
    feed.tick_at("NASDAQ:AAPL", "171.5").await;
    eventually("resubscription", || fake.registered().len() == 2).await;
    assert_eq!(fake.sessions(), 2);
    assert_eq!(feed.metrics.reconnects.get(), 1);
    fake.send(frame("H0STCNT0", &[domestic_record("005930", "68100")]));
    feed.tick_at("KRX:005930", "68100").await;
    feed.stop().await;
}

#[tokio::test]
async fn a_change_of_interest_releases_what_left_and_registers_what_came() {
    let fake = FakeKis::start().await;
    let feed = Running::start(config(&fake), fresh_cache(), &["KRX:005930", "NASDAQ:AAPL"]);
    registered(&fake, &["005930", "DNASAAPL"]).await;

    let next = ["KRX:005930".to_string(), "NYSE:IBM".to_string()];
    feed.interest.send_replace(interest_in(&next));
    eventually("the new registrations", || {
        fake.registered().into_iter().collect::<Vec<_>>() == ["005930", "DNYSIBM"]
    })
    .await;
    assert_eq!(fake.sessions(), 1);
    feed.stop().await;
}

/// Only REST: no stream may take the instruments.
fn polling_only(fake: &FakeKis) -> KisConfig {
    let mut config = config(fake);
    config.max_registrations = 0;
    config
}

#[tokio::test]
async fn egw00201_backs_off_and_the_retry_succeeds() {
    let fake = FakeKis::start().await;
    fake.set_rest_budget(1);
    fake.set_price("005930", "71000");
    fake.set_price("AAPL", "260.2900");
    let mut config = polling_only(&fake);
    config.busy_backoff = Duration::from_millis(200);
    // One polling round within the test: only a retry inside the call can fetch both.
    config.poll_interval = Duration::from_secs(60);
    let mut feed = Running::start(config, fresh_cache(), &["KRX:005930", "NASDAQ:AAPL"]);

    feed.tick_at("KRX:005930", "71000").await;
    feed.tick_at("NASDAQ:AAPL", "260.29").await;
    assert!(fake.busy_answers() >= 1, "the budget was never exceeded");
    feed.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_reissued_once() {
    let fake = FakeKis::start().await;
    fake.set_issue_window(Duration::from_millis(300));
    fake.set_price("005930", "71000");
    let mut config = polling_only(&fake);
    config.token_issue_interval = Duration::from_millis(300);
    let mut feed = Running::start(config, fresh_cache(), &["KRX:005930"]);
    feed.tick_at("KRX:005930", "71000").await;
    assert_eq!(fake.tokens_issued(), 1);

    tokio::time::sleep(Duration::from_millis(400)).await;
    fake.expire_token();
    fake.set_price("005930", "71100");
    feed.tick_at("KRX:005930", "71100").await;
    feed.tick_at("KRX:005930", "71100").await;
    assert_eq!(fake.tokens_issued(), 2);
    assert_eq!(fake.token_requests(), 2, "no refused issuance attempts");
    assert_eq!(feed.metrics.token_issuances.get(), 2);
    feed.stop().await;
}

#[tokio::test]
async fn egw00133_waits_for_the_issue_window_instead_of_hammering_tokenp() {
    let fake = FakeKis::start().await;
    fake.set_issue_window(Duration::from_millis(600));
    fake.set_price("005930", "71000");
    fake.issue_elsewhere();
    let mut config = polling_only(&fake);
    config.token_issue_interval = Duration::from_millis(250);
    let mut feed = Running::start(config, fresh_cache(), &["KRX:005930"]);

    feed.tick_at("KRX:005930", "71000").await;
    // Refused at once, then at most one try per claim window until KIS's window has passed.
    let requests = fake.token_requests();
    assert!((2..=4).contains(&requests), "{requests} token requests");
    assert_eq!(feed.metrics.token_issuances.get(), 1);
    feed.stop().await;
}

#[tokio::test]
async fn two_instances_sharing_a_cache_issue_one_token() {
    let fake = FakeKis::start().await;
    fake.set_price("005930", "71000");
    fake.set_price("AAPL", "260.2900");
    let cache = fresh_cache();
    let mut first = Running::start(polling_only(&fake), cache.clone(), &["KRX:005930"]);
    let mut second = Running::start(polling_only(&fake), cache, &["NASDAQ:AAPL"]);

    first.tick_at("KRX:005930", "71000").await;
    second.tick_at("NASDAQ:AAPL", "260.29").await;
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(
        first.metrics.token_issuances.get() + second.metrics.token_issuances.get(),
        1
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn malformed_frames_are_counted_and_the_session_goes_on() {
    let fake = FakeKis::start().await;
    let mut feed = Running::start(config(&fake), fresh_cache(), &["KRX:005930"]);
    registered(&fake, &["005930"]).await;

    let truncated = frame("H0STCNT0", &[domestic_record("005930", "70000")]);
    for garbage in [
        "hello",
        "0|H0STCNT0|001|005930^112616",
        &truncated[..truncated.len() / 2],
        "0|H0STCNT0|002|x",
        "1|H0STCNT0|001|bm90IGVuY3J5cHRlZA==",
        "{\"header\":",
    ] {
        fake.send(garbage);
    }
    fake.send(frame("H0STCNT0", &[domestic_record("005930", "70500")]));
    feed.tick_at("KRX:005930", "70500").await;
    assert_eq!(feed.metrics.parse_errors.get(), 6);
    assert_eq!(fake.sessions(), 1);
    feed.stop().await;
}

/// Seconds since the epoch; only the test below moves it.
static MOVING_CLOCK: AtomicI64 = AtomicI64::new(0);

fn moving_clock() -> Timestamp {
    Timestamp::from_timestamp(MOVING_CLOCK.load(Ordering::SeqCst), 0).unwrap_or_default()
}

#[tokio::test]
async fn a_closed_market_gets_one_snapshot_and_is_polled_again_once_it_opens() {
    let fake = FakeKis::start().await;
    fake.set_price("005930", "71000");
    fake.set_price("AAPL", "260.2900");
    MOVING_CLOCK.store(krx_session().timestamp(), Ordering::SeqCst);
    let mut config = polling_only(&fake);
    config.now = moving_clock;
    let mut feed = Running::start(config, fresh_cache(), &["KRX:005930", "NASDAQ:AAPL"]);

    // Each round fetches every due instrument before the next begins, so five KRX quotes mean
    // at least four rounds after the first, in which the closed NASDAQ had its chances.
    let (mut krx, mut nasdaq) = (0, 0);
    while krx < 5 {
        let tick = tokio::time::timeout(PATIENCE, feed.ticks.recv())
            .await
            .expect("KRX stopped being polled")
            .expect("feed stopped");
        match tick.instrument.market() {
            signal_domain::Market::Krx => krx += 1,
            _ => nasdaq += 1,
        }
    }
    assert_eq!(nasdaq, 1, "the closed market was polled more than once");

    // 09:30 in New York.
    MOVING_CLOCK.store(at("2026-11-24T14:30:00Z").timestamp(), Ordering::SeqCst);
    fake.set_price("AAPL", "261.0000");
    feed.tick_at("NASDAQ:AAPL", "261").await;
    feed.stop().await;
}
