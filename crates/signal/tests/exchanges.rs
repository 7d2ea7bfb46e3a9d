//! The whole system pointed at local stand-ins for Upbit and KIS: their real messages become
//! alerts on the user's socket and in history, at the exact traded price, and a level crossed
//! while an exchange socket was down still fires, once.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{settings, spawn_with, Socket, TestApp};
use serde_json::{json, Value};
use signal_domain::Timestamp;
use signal_exchange_fakes::kis::{domestic_record, frame, overseas_record};
use signal_exchange_fakes::{FakeKis, FakeUpbit};
use std::collections::BTreeMap;
use std::time::Duration;

/// Tuesday 10:00 in Seoul: KRX is in session whenever the test runs.
fn krx_session() -> Timestamp {
    "2026-11-24T01:00:00Z".parse().unwrap()
}

struct Exchanges {
    upbit: FakeUpbit,
    kis: FakeKis,
}

impl Exchanges {
    async fn start() -> Exchanges {
        let upbit = FakeUpbit::start().await;
        upbit.set_price("KRW-BTC", "160000000");
        let kis = FakeKis::start().await;
        kis.set_price("005930", "62700");
        kis.set_price("AAPL", "169.92");
        Exchanges { upbit, kis }
    }

    /// The system with both connectors on, pointed at the stand-ins.
    async fn spawn_system(&self, dir: &std::path::Path) -> TestApp {
        self.spawn_system_with(dir, |_| {}).await
    }

    /// The same, with some settings of the test's own.
    async fn spawn_system_with(
        &self,
        dir: &std::path::Path,
        adjust: impl FnOnce(&mut dontouch_signal::Settings),
    ) -> TestApp {
        let mut settings = settings(dir);
        adjust(&mut settings);
        settings.feeds.upbit = true;
        settings.upbit.rest_url = self.upbit.rest_url();
        settings.upbit.ws_url = self.upbit.ws_url();
        let mut kis = signal_kis::KisConfig::new("PSfakeAppKey0123456789", "fake-app-secret");
        kis.rest_url = self.kis.rest_url();
        kis.ws_url = self.kis.ws_url();
        kis.reconnect_min = Duration::from_millis(50);
        kis.reconnect_max = Duration::from_millis(200);
        kis.now = krx_session;
        settings.kis = Some(kis);
        spawn_with(settings).await
    }

    /// Waits until KIS has every one of `keys` registered on its socket.
    async fn kis_registered(&self, keys: &[&str]) {
        for _ in 0..200 {
            let registered = self.kis.registered();
            if keys.iter().all(|key| registered.contains(*key)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "KIS never had {keys:?} registered: {:?}",
            self.kis.registered()
        );
    }

    /// Waits for a subscription to `code` after the first `seen` subscription requests; returns
    /// how many requests there were then.
    async fn upbit_subscribed(&self, code: &str, seen: usize) -> usize {
        for _ in 0..200 {
            let requests = self.upbit.subscribed_codes();
            if requests[seen.min(requests.len())..]
                .iter()
                .any(|codes| codes.iter().any(|c| c == code))
            {
                return requests.len();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("Upbit never had {code} subscribed");
    }
}

async fn create_rule(app: &TestApp, user: &str, instrument: &str, condition: &str, level: &str) {
    let response = app
        .post(format!("{}/api/v1/rules", app.asset), user)
        .json(&json!({"instrument": instrument, "condition": condition, "level": level}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// Waits until the system quotes `instrument` at `price`, as a user looking it up sees it.
async fn quoted_at(app: &TestApp, instrument: &str, price: &str) {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = app
            .get_json(
                format!("{}/api/v1/instruments/{instrument}", app.asset),
                "viewer",
            )
            .await;
        if last["quote"]["price"] == price {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{instrument} never quoted at {price}: {last}");
}

/// The next `count` alerts, by instrument.
async fn alerts(socket: &mut Socket, count: usize) -> BTreeMap<String, Value> {
    let mut alerts = BTreeMap::new();
    while alerts.len() < count {
        let alert = socket.next_of("alert").await;
        let instrument = alert["instrument"].as_str().unwrap().to_string();
        assert!(
            alerts.insert(instrument, alert).is_none(),
            "two alerts for one instrument"
        );
    }
    alerts
}

#[tokio::test]
async fn an_upbit_ticker_and_kis_domestic_and_overseas_trades_each_fire_a_rule_at_their_price() {
    let dir = tempfile::tempdir().unwrap();
    let exchanges = Exchanges::start().await;
    let app = exchanges.spawn_system(dir.path()).await;
    let mut socket = app.alert_socket("mina").await;
    create_rule(&app, "mina", "UPBIT:KRW-BTC", "ABOVE", "161000000").await;
    create_rule(&app, "mina", "KRX:005930", "ABOVE", "63000").await;
    create_rule(&app, "mina", "NASDAQ:AAPL", "BELOW", "169.50").await;
    exchanges.upbit_subscribed("KRW-BTC", 0).await;
    exchanges.kis_registered(&["005930", "DNASAAPL"]).await;
    // Every instrument has its price before its first trade: a REST snapshot on subscribing.
    quoted_at(&app, "UPBIT:KRW-BTC", "160000000").await;
    quoted_at(&app, "KRX:005930", "62700").await;
    quoted_at(&app, "NASDAQ:AAPL", "169.92").await;

    exchanges.upbit.trade("KRW-BTC", "161000500");
    exchanges.kis.send(frame(
        "H0STCNT0",
        &[
            domestic_record("005930", "62900"),
            domestic_record("005930", "63100"),
        ],
    ));
    exchanges.kis.send(frame(
        "HDFSCNT0",
        &[overseas_record("DNASAAPL", "169.4200")],
    ));

    let fired = alerts(&mut socket, 3).await;
    assert_eq!(fired["UPBIT:KRW-BTC"]["price"], "161000500");
    assert_eq!(
        fired["KRX:005930"]["price"], "63100",
        "the record at the level fires"
    );
    assert_eq!(fired["NASDAQ:AAPL"]["price"], "169.42");
    assert_eq!(fired["NASDAQ:AAPL"]["condition"], "BELOW");

    let history = app.history_len_eventually("mina", 3).await;
    let mut stored: Vec<(String, f64)> = history
        .iter()
        .map(|a| {
            (
                a["symbol"].as_str().unwrap().to_string(),
                a["triggeredPrice"].as_f64().unwrap(),
            )
        })
        .collect();
    stored.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        stored,
        vec![
            ("005930".to_string(), 63100.0),
            ("AAPL".to_string(), 169.42),
            ("KRW-BTC".to_string(), 161000500.0),
        ]
    );
    app.app.stop().await;
}

#[tokio::test]
async fn levels_crossed_while_the_exchange_sockets_were_down_fire_once_after_reconnecting() {
    let dir = tempfile::tempdir().unwrap();
    let exchanges = Exchanges::start().await;
    let app = exchanges.spawn_system(dir.path()).await;
    let mut socket = app.alert_socket("jun").await;
    create_rule(&app, "jun", "UPBIT:KRW-BTC", "ABOVE", "161000000").await;
    create_rule(&app, "jun", "KRX:005930", "ABOVE", "63000").await;
    // Far-off levels keep both instruments live after the near ones have fired.
    create_rule(&app, "jun", "UPBIT:KRW-BTC", "ABOVE", "200000000").await;
    create_rule(&app, "jun", "KRX:005930", "ABOVE", "90000").await;
    let subscriptions = exchanges.upbit_subscribed("KRW-BTC", 0).await;
    exchanges.kis_registered(&["005930"]).await;
    quoted_at(&app, "UPBIT:KRW-BTC", "160000000").await;
    quoted_at(&app, "KRX:005930", "62700").await;
    let kis_sessions = exchanges.kis.sessions();
    let upbit_connections = exchanges.upbit.connections();

    // Both sockets drop; while they are down the prices cross the levels and no frame carries it.
    exchanges.upbit.set_price("KRW-BTC", "161200000");
    exchanges.kis.set_price("005930", "63400");
    exchanges.upbit.drop_connections();
    exchanges.kis.drop_clients();

    let fired = alerts(&mut socket, 2).await;
    assert_eq!(fired["KRX:005930"]["price"], "63400");
    assert_eq!(fired["UPBIT:KRW-BTC"]["price"], "161200000");
    assert!(exchanges.upbit.connections() > upbit_connections);
    assert!(exchanges.kis.sessions() > kis_sessions);

    // Live again: further trades past the near levels fire nothing more, those rules being
    // spent, and the far levels are not reached.
    exchanges.kis_registered(&["005930"]).await;
    exchanges.upbit_subscribed("KRW-BTC", subscriptions).await;
    exchanges.upbit.trade("KRW-BTC", "161300000");
    exchanges
        .kis
        .send(frame("H0STCNT0", &[domestic_record("005930", "63500")]));
    socket.assert_no_alert().await;
    assert_eq!(app.history_len_eventually("jun", 2).await.len(), 2);
    app.app.stop().await;
}

/// Asks for a chart until the backfill says it is complete; answers the last series.
async fn complete_chart(app: &TestApp, instrument: &str, query: &str) -> Value {
    let url = format!(
        "{}/api/v1/instruments/{instrument}/candles?{query}",
        app.asset
    );
    for _ in 0..400 {
        let series: Value = app.get_json(&url, "newcomer").await;
        if series["complete"] == true {
            return series;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the {instrument} chart ({query}) never completed");
}

#[tokio::test]
async fn a_fresh_system_charts_the_history_the_exchanges_report_and_keeps_it() {
    use chrono::{Datelike, DurationRound, FixedOffset, NaiveDate, TimeDelta, Utc};
    use signal_exchange_fakes::Bar;
    let dir = tempfile::tempdir().unwrap();
    let exchanges = Exchanges::start().await;
    // Upbit: the 600 minutes before this one; KIS: the 100 Seoul days before today.
    let this_minute = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap();
    let minute_close =
        |at: Timestamp| (160_000_000 + (at.timestamp() / 60 % 1000) * 1000).to_string();
    let minutes: Vec<Timestamp> = (1..=600)
        .map(|back| this_minute - TimeDelta::minutes(back))
        .collect();
    exchanges.upbit.set_minute_history(
        "KRW-BTC",
        minutes.iter().map(|at| {
            let close = minute_close(*at);
            (
                at.naive_utc(),
                Bar::new(&close, &close, &close, &close, "0.5"),
            )
        }),
    );
    let seoul = FixedOffset::east_opt(9 * 3600).unwrap();
    let today = Utc::now().with_timezone(&seoul).date_naive();
    let day_close = |day: NaiveDate| (60_000 + day.ordinal0() % 100 * 100).to_string();
    let days: Vec<NaiveDate> = (1..=100)
        .map(|back| today - TimeDelta::days(back))
        .collect();
    exchanges.kis.set_day_history(
        "005930",
        days.iter().map(|day| {
            let close = day_close(*day);
            (*day, Bar::new(&close, &close, &close, &close, "1000"))
        }),
    );
    let app = exchanges.spawn_system(dir.path()).await;

    // Minute bars: every one the exchange reported within the 500 slots before now.
    let series = complete_chart(&app, "UPBIT:KRW-BTC", "interval=1m&limit=500").await;
    assert_eq!(series["simulated"], false);
    let bars = series["candles"].as_array().unwrap();
    assert!(bars.len() >= 498, "{} bars", bars.len());
    for bar in bars {
        let at: Timestamp = bar["time"].as_str().unwrap().parse().unwrap();
        assert_eq!(bar["close"], minute_close(at), "{bar}");
        assert_eq!(bar["volume"], "0.5");
    }

    // Day bars: the exchange's daily candles of the days before today.
    let series = complete_chart(&app, "KRX:005930", "interval=1d&limit=60").await;
    let closes: Vec<&str> = series["candles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bar| bar["close"].as_str().unwrap())
        .collect();
    let wanted: Vec<String> = days[..59].iter().rev().map(|day| day_close(*day)).collect();
    assert_eq!(closes, wanted);

    // What was fetched is stored: the store's own minute candles (no backfill on this route).
    let (from, to) = (minutes[499], this_minute);
    let stored: Vec<Value> = app
        .get_json(
            format!(
                "{}/api/v1/instruments/UPBIT:KRW-BTC/candles?from={}&to={}&limit=1000",
                app.asset,
                from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            "newcomer",
        )
        .await;
    assert!(stored.len() >= 498, "{} stored", stored.len());
    app.app.stop().await;
}

#[tokio::test]
async fn a_market_upbit_lists_while_the_system_runs_can_be_looked_up_and_fire_a_rule() {
    let dir = tempfile::tempdir().unwrap();
    let exchanges = Exchanges::start().await;
    let app = exchanges
        .spawn_system_with(dir.path(), |settings| {
            settings.asset.listing_refresh_seconds = 1;
        })
        .await;
    let lookup = format!("{}/api/v1/instruments/UPBIT:KRW-NEWCOIN", app.asset);
    let unknown = app.get(&lookup, "mina").send().await.unwrap();
    assert_eq!(unknown.status(), 404, "not listed yet");

    exchanges.upbit.list_markets([
        ("KRW-BTC", "비트코인", "Bitcoin"),
        ("KRW-NEWCOIN", "뉴코인", "New Coin"),
    ]);
    exchanges.upbit.set_price("KRW-NEWCOIN", "1500");
    let mut listed = Value::Null;
    for _ in 0..400 {
        let response = app.get(&lookup, "mina").send().await.unwrap();
        if response.status() == 200 {
            listed = response.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        listed["englishName"], "New Coin",
        "listed without a restart: {listed}"
    );
    let found: Value = app
        .get_json(format!("{}/asset/search?keyword=뉴코인", app.asset), "mina")
        .await;
    assert_eq!(found[0]["instrument"], "UPBIT:KRW-NEWCOIN", "{found}");

    let mut socket = app.alert_socket("mina").await;
    create_rule(&app, "mina", "UPBIT:KRW-NEWCOIN", "ABOVE", "1600").await;
    exchanges.upbit_subscribed("KRW-NEWCOIN", 0).await;
    quoted_at(&app, "UPBIT:KRW-NEWCOIN", "1500").await;
    exchanges.upbit.trade("KRW-NEWCOIN", "1610");
    let fired = alerts(&mut socket, 1).await;
    assert_eq!(fired["UPBIT:KRW-NEWCOIN"]["price"], "1610");
    app.app.stop().await;
}

#[tokio::test]
async fn an_indicator_rule_is_warmed_up_from_the_exchange_s_candles_when_the_store_has_none() {
    use chrono::{DurationRound, TimeDelta, Utc};
    use signal_exchange_fakes::Bar;
    let dir = tempfile::tempdir().unwrap();
    let exchanges = Exchanges::start().await;
    // Upbit reports fifteen minutes of steady falls, which this fresh system never saw: RSI(2)
    // on 1m bars is 0.
    let this_minute = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap();
    exchanges.upbit.set_minute_history(
        "KRW-XRP",
        (1..=15).map(|back: i64| {
            let close = (860 + (back - 1) * 10).to_string();
            (
                (this_minute - TimeDelta::minutes(back)).naive_utc(),
                Bar::new(&close, &close, &close, &close, "1"),
            )
        }),
    );
    exchanges.upbit.set_price("KRW-XRP", "860");
    let app = exchanges.spawn_system(dir.path()).await;
    let mut socket = app.alert_socket("jin").await;
    let response = app
        .post(format!("{}/api/v1/rules", app.asset), "jin")
        .json(
            &json!({"instrument": "UPBIT:KRW-XRP", "condition": "RSI_ABOVE",
                      "interval": "1m", "bars": 2, "level": 80}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    exchanges.upbit_subscribed("KRW-XRP", 0).await;
    quoted_at(&app, "UPBIT:KRW-XRP", "860").await;

    // A small rise does not lift RSI(2) past 80; a jump does, which only an RSI that knows the
    // falls before it can tell.
    exchanges.upbit.trade("KRW-XRP", "862");
    quoted_at(&app, "UPBIT:KRW-XRP", "862").await;
    socket.assert_no_alert().await;
    exchanges.upbit.trade("KRW-XRP", "910");
    let fired = alerts(&mut socket, 1).await;
    assert_eq!(fired["UPBIT:KRW-XRP"]["condition"], "RSI_ABOVE");
    assert_eq!(fired["UPBIT:KRW-XRP"]["price"], "910");
    app.app.stop().await;
}
