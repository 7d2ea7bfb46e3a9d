//! KIS's chart history against the local fake KIS: each TR paged by its own rule (dates for
//! daily rows, an hour anchor for KRX minutes, a next key for US minutes), only the asked range
//! kept, and every call within the app key's per-second budget.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rust_decimal_macros::dec;
use signal_domain::Timestamp;
use signal_exchange_fakes::{Bar, FakeKis};
use signal_feed_metrics::FeedMetrics;
use signal_kis::{KisConfig, KisFeed};
use signal_memory::MemorySharedCache;
use signal_ports::{CandleHistory, HistoryError};
use std::sync::Arc;

/// Thursday 2026-11-26, 16:00 in Seoul: after KRX's close, so "today" is a whole session.
fn thursday_evening() -> Timestamp {
    "2026-11-26T07:00:00Z".parse().unwrap()
}

fn feed(fake: &FakeKis) -> KisFeed {
    feed_with_backoff(fake, std::time::Duration::from_millis(20))
}

/// `busy_backoff`: the first wait after KIS says the second's budget is spent.
fn feed_with_backoff(fake: &FakeKis, busy_backoff: std::time::Duration) -> KisFeed {
    let mut config = KisConfig::new("PSfakeAppKey0123456789", "fake-app-secret");
    config.rest_url = fake.rest_url();
    config.ws_url = fake.ws_url();
    config.rest_per_second = 50;
    config.busy_backoff = busy_backoff;
    config.now = thursday_evening;
    let metrics = FeedMetrics::register(&prometheus::Registry::new())
        .unwrap()
        .source("kis");
    KisFeed::new(config, Arc::new(MemorySharedCache::default()), metrics).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn bar(price: u32) -> Bar {
    let price = price.to_string();
    Bar::new(&price, &price, &price, &price, "100")
}

/// A KRX session's minutes (09:00 to 15:30 Seoul time) on `date`, priced by minute.
fn krx_session_minutes(date: NaiveDate) -> Vec<(DateTime<Utc>, Bar)> {
    let open = chrono::FixedOffset::east_opt(9 * 3600)
        .unwrap()
        .from_local_datetime(&date.and_hms_opt(9, 0, 0).unwrap())
        .unwrap()
        .to_utc();
    (0..=390)
        .map(|n| (open + Duration::minutes(n), bar(70_000 + n as u32)))
        .collect()
}

fn calls_of(fake: &FakeKis, tr: &str) -> usize {
    fake.chart_calls().iter().filter(|(t, _)| t == tr).count()
}

#[tokio::test]
async fn krx_daily_rows_are_paged_a_hundred_days_at_a_time() {
    let fake = FakeKis::start().await;
    let days: Vec<NaiveDate> = day(2026, 1, 1)
        .iter_days()
        .take(330)
        .filter(|d| chrono::Datelike::weekday(d).number_from_monday() <= 5)
        .collect();
    fake.set_day_history("005930", days.iter().map(|d| (*d, bar(60_000))));
    let history = feed(&fake);
    let samsung = "KRX:005930".parse().unwrap();
    let first = days[10];
    let last = days[160];
    let candles = history.daily_candles(&samsung, first, last).await.unwrap();
    assert_eq!(candles.len(), 151);
    assert_eq!(candles.first().unwrap().day, first);
    assert_eq!(candles.last().unwrap().day, last);
    assert_eq!(calls_of(&fake, "FHKST03010100"), 2, "100 + 51 rows");
    let (_, query) = &fake.chart_calls()[0];
    assert_eq!(query["FID_ORG_ADJ_PRC"], "0", "split-adjusted prices");
    assert_eq!(query["FID_PERIOD_DIV_CODE"], "D");
}

#[tokio::test]
async fn krx_minutes_of_past_days_and_today_come_from_their_own_trs() {
    let fake = FakeKis::start().await;
    let wednesday = day(2026, 11, 25);
    let thursday = day(2026, 11, 26);
    fake.set_minute_history("005930", krx_session_minutes(wednesday));
    fake.set_minute_history("005930", krx_session_minutes(thursday));
    fake.set_today(thursday);
    let history = feed(&fake);
    let samsung = "KRX:005930".parse().unwrap();
    // Wednesday 14:00 Seoul to Thursday's close.
    let from: Timestamp = "2026-11-25T05:00:00Z".parse().unwrap();
    let to = thursday_evening();
    let candles = history.minute_candles(&samsung, from, to).await.unwrap();
    assert_eq!(
        candles.len(),
        91 + 391,
        "Wednesday 14:00-15:30 and all of Thursday"
    );
    assert_eq!(candles.first().unwrap().minute, from);
    assert_eq!(candles[0].close.value(), dec!(70300));
    assert!(candles.windows(2).all(|w| w[0].minute < w[1].minute));
    assert_eq!(
        calls_of(&fake, "FHKST03010230"),
        1,
        "120 rows cover Wednesday's 91"
    );
    assert_eq!(
        calls_of(&fake, "FHKST03010200"),
        14,
        "today's TR answers 30 rows a call: 391 minutes take 14"
    );
}

#[tokio::test]
async fn us_daily_and_minute_history_page_by_date_and_next_key() {
    let fake = FakeKis::start().await;
    let days: Vec<NaiveDate> = day(2026, 3, 2)
        .iter_days()
        .take(200)
        .filter(|d| chrono::Datelike::weekday(d).number_from_monday() <= 5)
        .collect();
    fake.set_day_history("AAPL", days.iter().map(|d| (*d, bar(250))));
    // 300 minutes of Wednesday's New York session, from 09:30 EST (14:30 UTC).
    let open: Timestamp = "2026-11-25T14:30:00Z".parse().unwrap();
    fake.set_minute_history(
        "AAPL",
        (0..300).map(|n| (open + Duration::minutes(n), bar(250 + n as u32))),
    );
    let history = feed(&fake);
    let apple = "NASDAQ:AAPL".parse().unwrap();

    let daily = history
        .daily_candles(&apple, days[0], *days.last().unwrap())
        .await
        .unwrap();
    assert_eq!(daily.len(), days.len());
    assert_eq!(calls_of(&fake, "HHDFS76240000"), 2);

    let from = open + Duration::minutes(20);
    let to = open + Duration::minutes(270);
    let minutes = history.minute_candles(&apple, from, to).await.unwrap();
    assert_eq!(minutes.len(), 250);
    assert_eq!(minutes.first().unwrap().minute, from);
    assert_eq!(minutes.last().unwrap().minute, to - Duration::minutes(1));
    let keys: Vec<String> = fake
        .chart_calls()
        .iter()
        .filter(|(tr, _)| tr == "HHDFS76950200")
        .map(|(_, query)| query["KEYB"].clone())
        .collect();
    assert_eq!(
        keys[0], "20261125135900",
        "starts just before `to`, New York time"
    );
    assert_eq!(keys.len(), 3, "120 + 120 + the rest: {keys:?}");
}

#[tokio::test]
async fn calls_over_the_budget_are_waited_out_and_upbit_is_not_served() {
    let fake = FakeKis::start().await;
    fake.set_rest_budget(1);
    let days: Vec<NaiveDate> = day(2026, 11, 2).iter_days().take(20).collect();
    fake.set_day_history("005930", days.iter().map(|d| (*d, bar(60_000))));
    // The back-off doubles from 300 ms: its four retries outlast KIS's one-second window.
    let history = feed_with_backoff(&fake, std::time::Duration::from_millis(300));
    let samsung = "KRX:005930".parse().unwrap();
    for _ in 0..3 {
        let candles = history
            .daily_candles(&samsung, days[0], days[19])
            .await
            .unwrap();
        assert_eq!(candles.len(), 20);
    }
    assert!(fake.busy_answers() > 0, "the budget was hit and waited out");
    let btc = "UPBIT:KRW-BTC".parse().unwrap();
    assert!(matches!(
        history.daily_candles(&btc, days[0], days[1]).await,
        Err(HistoryError::NotServed(_))
    ));
}
