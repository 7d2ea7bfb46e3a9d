//! Upbit's candle history against the local fake Upbit: pages of 200 walked backwards, only the
//! asked range kept, gaps left as gaps, and every request paced like the rest.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use chrono::{Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rust_decimal_macros::dec;
use signal_exchange_fakes::{Bar, FakeUpbit};
use signal_feed_metrics::FeedMetrics;
use signal_ports::{CandleHistory, HistoryError};
use signal_upbit::{UpbitConfig, UpbitFeed};

fn feed(fake: &FakeUpbit) -> UpbitFeed {
    let config = UpbitConfig {
        rest_url: fake.rest_url(),
        ws_url: fake.ws_url(),
        requests_per_second: 50,
        ..UpbitConfig::default()
    };
    let metrics = FeedMetrics::register(&prometheus::Registry::new())
        .unwrap()
        .source("upbit");
    UpbitFeed::new(config, metrics)
}

fn minute(n: i64) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 30)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        + Duration::minutes(n)
}

#[tokio::test]
async fn minute_history_pages_backwards_and_keeps_only_the_asked_range() {
    let fake = FakeUpbit::start().await;
    // 600 minutes of trading, with minute 250 silent (no trades, so no candle).
    fake.set_minute_history(
        "KRW-BTC",
        (0..600).filter(|n| *n != 250).map(|n| {
            let price = format!("{}.5", 1000 + n);
            (minute(n), Bar::new(&price, &price, &price, &price, "0.1"))
        }),
    );
    let history = feed(&fake);
    let btc = "UPBIT:KRW-BTC".parse().unwrap();
    let from = minute(100).and_utc();
    let to = minute(550).and_utc();
    let candles = history.minute_candles(&btc, from, to).await.unwrap();

    assert_eq!(candles.len(), 449, "450 minutes, one without trades");
    assert_eq!(candles.first().unwrap().minute, from);
    assert_eq!(candles.last().unwrap().minute, minute(549).and_utc());
    assert!(candles.windows(2).all(|w| w[0].minute < w[1].minute));
    assert!(!candles.iter().any(|c| c.minute == minute(250).and_utc()));
    assert_eq!(candles[0].close.value(), dec!(1100.5), "every digit kept");
    let requests = fake.rest_requests();
    assert_eq!(requests.len(), 3, "200 + 200 + the rest: {requests:?}");
    assert!(
        requests[0].1.ends_with("to=2026-11-30T09:10:00Z&count=200"),
        "{requests:?}"
    );
    assert!(
        requests[2].1.ends_with("count=49"),
        "the last page asks only for what is left: {requests:?}"
    );
}

#[tokio::test]
async fn daily_history_uses_upbits_utc_days() {
    let fake = FakeUpbit::start().await;
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    fake.set_day_history(
        "KRW-ETH",
        (1..=30).map(|d| {
            (
                day(d),
                Bar::new("5000000", "5100000", "4900000", "5050000", "12.5"),
            )
        }),
    );
    let history = feed(&fake);
    let eth = "UPBIT:KRW-ETH".parse().unwrap();
    let candles = history.daily_candles(&eth, day(10), day(20)).await.unwrap();
    assert_eq!(
        candles.iter().map(|c| c.day).collect::<Vec<_>>(),
        (10..=20).map(day).collect::<Vec<_>>()
    );
    assert_eq!(candles[0].volume, dec!(12.5));
    assert_eq!(fake.rest_requests().len(), 1);
}

#[tokio::test]
async fn history_of_other_markets_is_refused_and_throttling_is_sat_out() {
    let fake = FakeUpbit::start().await;
    let history = feed(&fake);
    let samsung = "KRX:005930".parse().unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    assert!(matches!(
        history
            .minute_candles(&samsung, now - Duration::hours(1), now)
            .await,
        Err(HistoryError::NotServed(_))
    ));

    fake.set_minute_history("KRW-BTC", [(minute(0), Bar::new("1", "1", "1", "1", "1"))]);
    fake.throttle_next(1);
    let btc = "UPBIT:KRW-BTC".parse().unwrap();
    let candles = history
        .minute_candles(&btc, minute(0).and_utc(), minute(1).and_utc())
        .await
        .unwrap();
    assert_eq!(candles.len(), 1, "the 429 was waited out, not returned");
}
