//! A local stand-in for Upbit's quotation API, speaking its formats with its real example messages,
//! so the connector can be tested end to end without the internet. The test decides the prices,
//! can make the REST side answer 429, and can push frames into or drop the WebSocket.

use crate::Bar;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{NaiveDate, NaiveDateTime};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Official DEFAULT ticker example (docs.upbit.com websocket-ticker, 2023-02-21), verbatim.
pub const WS_DEFAULT: &str = r#"{
  "type": "ticker",
  "code": "KRW-BTC",
  "opening_price": 31883000,
  "high_price": 32310000,
  "low_price": 31855000,
  "trade_price": 32287000,
  "prev_closing_price": 31883000.00000000,
  "acc_trade_price": 78039261076.51241000,
  "change": "RISE",
  "change_price": 404000.00000000,
  "signed_change_price": 404000.00000000,
  "change_rate": 0.0126713295,
  "signed_change_rate": 0.0126713295,
  "ask_bid": "ASK",
  "trade_volume": 0.03103806,
  "acc_trade_volume": 2429.58834336,
  "trade_date": "20230221",
  "trade_time": "074102",
  "trade_timestamp": 1676965262139,
  "acc_ask_volume": 1146.25573608,
  "acc_bid_volume": 1283.33260728,
  "highest_52_week_price": 57678000.00000000,
  "highest_52_week_date": "2022-03-28",
  "lowest_52_week_price": 20700000.00000000,
  "lowest_52_week_date": "2022-12-30",
  "market_state": "ACTIVE",
  "is_trading_suspended": false,
  "delisting_date": null,
  "market_warning": "NONE",
  "timestamp": 1676965262177,
  "acc_trade_price_24h": 228827082483.70729000,
  "acc_trade_volume_24h": 7158.80283560,
  "stream_type": "REALTIME"
}"#;

/// Official SIMPLE_LIST example (2025-07-07), verbatim: a list of one SIMPLE ticker.
pub const WS_SIMPLE_LIST: &str = r#"[
  {
    "ty": "ticker",
    "cd": "KRW-BTC",
    "op": 148500000.0,
    "hp": 149064000.0,
    "lp": 148050000.0,
    "tp": 148956000.0,
    "pcp": 148500000.0,
    "atp": 16115868486.03173,
    "c": "RISE",
    "cp": 456000.0,
    "scp": 456000.0,
    "cr": 0.0030707071,
    "scr": 0.0030707071,
    "ab": "BID",
    "tv": 0.0602652,
    "atv": 108.51228784,
    "tdt": "20250707",
    "ttm": "022055",
    "ttms": 1751854855934,
    "aav": 36.9943567,
    "abv": 71.51793114,
    "h52wp": 163325000.0,
    "h52wdt": "2025-01-20",
    "st": "SNAPSHOT"
  }
]"#;

/// The KRW-BTC object of the official REST /v1/ticker response (2025-07-30), verbatim.
const REST_TICKER: &str = r#"{"market":"KRW-BTC","trade_date":"20250730","trade_time":"170315","trade_date_kst":"20250731","trade_time_kst":"020315","trade_timestamp":1753894995076,"opening_price":163248000.00000000,"high_price":163708000.00000000,"low_price":162248000.00000000,"trade_price":162876000.00000000,"prev_closing_price":163158000.00000000,"change":"FALL","change_price":282000.00000000,"change_rate":0.0017283860,"signed_change_price":-282000.00000000,"signed_change_rate":-0.0017283860,"trade_volume":0.02543652,"acc_trade_price":137728155832.9616000000000000,"acc_trade_price_24h":167740032580.71786000,"acc_trade_volume":844.94369319,"acc_trade_volume_24h":1029.27369910,"highest_52_week_price":166800000.00000000,"highest_52_week_date":"2025-07-14","lowest_52_week_price":72100000.00000000,"lowest_52_week_date":"2024-08-05","timestamp":1753894995113}"#;

/// The official `GET /v1/candles/days?market=KRW-BTC&to=2025-07-30T00:00:00+09:00&count=2` response
/// (the "first Upbit API call" guide, 2025-07-30), verbatim.
pub const REST_DAY_CANDLES: &str = r#"[{"market":"KRW-BTC","candle_date_time_utc":"2025-07-29T00:00:00","candle_date_time_kst":"2025-07-29T09:00:00","opening_price":162483000.00000000,"high_price":163800000.00000000,"low_price":162034000.00000000,"trade_price":163158000.00000000,"timestamp":1753833599704,"candle_acc_trade_price":242634976840.02426000,"candle_acc_trade_volume":1487.53432374,"prev_closing_price":162483000.00000000,"change_price":675000.00000000,"change_rate":0.0041542808},{"market":"KRW-BTC","candle_date_time_utc":"2025-07-28T00:00:00","candle_date_time_kst":"2025-07-28T09:00:00","opening_price":162548000.00000000,"high_price":162985000.00000000,"low_price":161391000.00000000,"trade_price":162483000.00000000,"timestamp":1753747199919,"candle_acc_trade_price":237170267365.09124000,"candle_acc_trade_volume":1461.59937798,"prev_closing_price":162717000.00000000,"change_price":-234000.00000000,"change_rate":-0.0014380796}]"#;

/// One element of a `GET /v1/candles/minutes/1?market=KRW-BTC&count=1` response: the keys and
/// values of a real answer that was published with Korean annotations after each line; the
/// annotations are removed, nothing else changed.
pub const REST_MINUTE_CANDLE: &str = r#"{"market":"KRW-BTC","candle_date_time_utc":"2025-02-26T12:10:00","candle_date_time_kst":"2025-02-26T21:10:00","opening_price":128500000.00000000,"high_price":128500000.00000000,"low_price":128436000.00000000,"trade_price":128436000.00000000,"timestamp":1740571808225,"candle_acc_trade_price":5003068.03009000,"candle_acc_trade_volume":0.03894042,"unit":1}"#;

/// Upbit answers at most this many candles per request.
const MAX_CANDLES_PER_REQUEST: usize = 200;

/// `GET /v1/market/all?is_details=true` in its documented shape (no verbatim response was
/// available): a plain market, a non-KRW market, one flagged by market_event and one by the
/// legacy market_warning.
const MARKET_ALL: &str = r#"[{"market":"KRW-BTC","korean_name":"비트코인","english_name":"Bitcoin","market_warning":"NONE","market_event":{"warning":false,"caution":{"PRICE_FLUCTUATIONS":false,"TRADING_VOLUME_SOARING":false,"DEPOSIT_AMOUNT_SOARING":false,"GLOBAL_PRICE_DIFFERENCES":false,"CONCENTRATION_OF_SMALL_ACCOUNTS":false}}},{"market":"BTC-ETH","korean_name":"이더리움","english_name":"Ethereum","market_warning":"NONE","market_event":{"warning":false}},{"market":"KRW-ETH","korean_name":"이더리움","english_name":"Ethereum","market_warning":"NONE","market_event":{"warning":false}},{"market":"KRW-XRP","korean_name":"엑스알피(리플)","english_name":"XRP","market_warning":"NONE","market_event":{"warning":true}},{"market":"KRW-DOGE","korean_name":"도지코인","english_name":"Dogecoin","market_warning":"CAUTION","market_event":{"warning":false}}]"#;

/// A DEFAULT ticker message for `market` trading at `price` (the number's text, as sent).
pub fn default_ticker(market: &str, price: &str) -> String {
    WS_DEFAULT
        .replace(r#""code": "KRW-BTC""#, &format!(r#""code": "{market}""#))
        .replace(
            r#""trade_price": 32287000"#,
            &format!(r#""trade_price": {price}"#),
        )
}

/// A DEFAULT ticker message for `market` trading at `price`, traded and sent at `epoch_millis`.
pub fn default_ticker_at(market: &str, price: &str, epoch_millis: i64) -> String {
    let at = epoch_millis.to_string();
    default_ticker(market, price)
        .replace("1676965262139", &at)
        .replace("1676965262177", &at)
}

/// A SIMPLE ticker message for `market` trading at `price`.
pub fn simple_ticker(market: &str, price: &str) -> String {
    // A SIMPLE message is the list's one object.
    let object = WS_SIMPLE_LIST
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']');
    object
        .trim()
        .replace(r#""cd": "KRW-BTC""#, &format!(r#""cd": "{market}""#))
        .replace(r#""tp": 148956000.0"#, &format!(r#""tp": {price}"#))
}

fn rest_ticker(market: &str, price: &str) -> String {
    REST_TICKER
        .replace(r#""market":"KRW-BTC""#, &format!(r#""market":"{market}""#))
        .replace(
            r#""trade_price":162876000.00000000"#,
            &format!(r#""trade_price":{price}"#),
        )
}

#[derive(Clone, Debug)]
enum Push {
    Binary(Vec<u8>),
    Text(String),
    Ping,
    Drop,
}

struct Shared {
    /// The `/v1/market/all` answer, when the test listed markets of its own.
    listed_markets: Mutex<Option<String>>,
    /// REST price text per market; markets without one are left out of /v1/ticker answers.
    prices: Mutex<HashMap<String, String>>,
    /// Every REST request: when it arrived and its path and query.
    rest_requests: Mutex<Vec<(Instant, String)>>,
    throttle_next: AtomicUsize,
    exhaust_second: AtomicBool,
    /// Every subscription request received on any connection, with its arrival time.
    subscriptions: Mutex<Vec<(Instant, serde_json::Value)>>,
    connections: AtomicUsize,
    open_connections: AtomicUsize,
    pings: AtomicUsize,
    pongs: AtomicUsize,
    push: broadcast::Sender<Push>,
    /// One-minute history per market, by the candle's UTC start.
    minute_history: Mutex<HashMap<String, BTreeMap<NaiveDateTime, Bar>>>,
    /// Daily history per market, by Upbit's (UTC) day.
    day_history: Mutex<HashMap<String, BTreeMap<NaiveDate, Bar>>>,
}

pub struct FakeUpbit {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeUpbit {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            listed_markets: Mutex::default(),
            prices: Mutex::default(),
            rest_requests: Mutex::default(),
            throttle_next: AtomicUsize::new(0),
            exhaust_second: AtomicBool::new(false),
            subscriptions: Mutex::default(),
            connections: AtomicUsize::new(0),
            open_connections: AtomicUsize::new(0),
            pings: AtomicUsize::new(0),
            pongs: AtomicUsize::new(0),
            push: broadcast::channel(64).0,
            minute_history: Mutex::default(),
            day_history: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/market/all", get(market_all))
            .route("/v1/ticker", get(ticker))
            .route("/v1/candles/minutes/{unit}", get(minute_candles))
            .route("/v1/candles/days", get(day_candles))
            .route("/websocket/v1", get(websocket))
            .with_state(shared.clone());
        let addr = crate::serve(app).await;
        Self { addr, shared }
    }

    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/websocket/v1", self.addr)
    }

    pub fn set_price(&self, market: &str, price: &str) {
        self.shared
            .prices
            .lock()
            .unwrap()
            .insert(market.into(), price.into());
    }

    /// Makes `/v1/market/all` list these markets, `(market, korean_name, english_name)`, none
    /// flagged, instead of the built-in handful.
    pub fn list_markets<'a>(&self, markets: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) {
        let listed: Vec<serde_json::Value> = markets
            .into_iter()
            .map(|(market, korean_name, english_name)| {
                serde_json::json!({
                    "market": market,
                    "korean_name": korean_name,
                    "english_name": english_name,
                    "market_warning": "NONE",
                    "market_event": { "warning": false },
                })
            })
            .collect();
        *self.shared.listed_markets.lock().unwrap() =
            Some(serde_json::Value::from(listed).to_string());
    }

    /// A trade of `market` at `price`, as a user of the whole system sees one: REST snapshots
    /// answer with it from now on, and open sockets receive it as a DEFAULT frame stamped now.
    pub fn trade(&self, market: &str, price: &str) {
        self.set_price(market, price);
        self.send_binary(default_ticker_at(
            market,
            price,
            chrono::Utc::now().timestamp_millis(),
        ));
    }

    /// Gives `market` one-minute candles (UTC starts), served by `/v1/candles/minutes/1`.
    pub fn set_minute_history(
        &self,
        market: &str,
        bars: impl IntoIterator<Item = (NaiveDateTime, Bar)>,
    ) {
        self.shared
            .minute_history
            .lock()
            .unwrap()
            .entry(market.into())
            .or_default()
            .extend(bars);
    }

    /// Gives `market` daily candles (Upbit's UTC days), served by `/v1/candles/days`.
    pub fn set_day_history(&self, market: &str, bars: impl IntoIterator<Item = (NaiveDate, Bar)>) {
        self.shared
            .day_history
            .lock()
            .unwrap()
            .entry(market.into())
            .or_default()
            .extend(bars);
    }

    /// Answers the next `n` REST requests with 429 and Upbit's (plain-text) complaint.
    pub fn throttle_next(&self, n: usize) {
        self.shared.throttle_next.store(n, Ordering::SeqCst);
    }

    /// Makes the next REST answer say `sec=0`: no calls left in this second.
    pub fn exhaust_this_second(&self) {
        self.shared.exhaust_second.store(true, Ordering::SeqCst);
    }

    pub fn rest_requests(&self) -> Vec<(Instant, String)> {
        self.shared.rest_requests.lock().unwrap().clone()
    }

    pub fn subscriptions(&self) -> Vec<(Instant, serde_json::Value)> {
        self.shared.subscriptions.lock().unwrap().clone()
    }

    /// The codes of every subscription request so far.
    pub fn subscribed_codes(&self) -> Vec<Vec<String>> {
        self.subscriptions()
            .iter()
            .map(|(_, request)| requested_codes(request))
            .collect()
    }

    /// Waits (up to 5 s) until `n` subscription requests have arrived.
    pub async fn wait_for_subscriptions(&self, n: usize) -> Vec<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let codes = self.subscribed_codes();
            if codes.len() >= n {
                return codes;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} subscriptions, got {codes:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn open_connections(&self) -> usize {
        self.shared.open_connections.load(Ordering::SeqCst)
    }

    /// Text `PING`s received.
    pub fn pings(&self) -> usize {
        self.shared.pings.load(Ordering::SeqCst)
    }

    /// WebSocket pongs received, answering [`FakeUpbit::send_ping`].
    pub fn pongs(&self) -> usize {
        self.shared.pongs.load(Ordering::SeqCst)
    }

    /// Sends a WebSocket ping control frame, as Upbit's server may.
    pub fn send_ping(&self) {
        self.push(Push::Ping);
    }

    pub fn send_binary(&self, payload: impl Into<Vec<u8>>) {
        self.push(Push::Binary(payload.into()));
    }

    pub fn send_text(&self, payload: &str) {
        self.push(Push::Text(payload.into()));
    }

    /// Drops every open socket without a closing handshake, as a network failure would.
    pub fn drop_connections(&self) {
        self.push(Push::Drop);
    }

    fn push(&self, push: Push) {
        // No socket open means nobody to tell; the tests wait for a subscription first.
        let _ = self.shared.push.send(push);
    }
}

/// The market codes a ticker subscription request (`[{ticket},{type,codes},{format}]`) names.
pub fn requested_codes(request: &serde_json::Value) -> Vec<String> {
    request
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| part.get("codes"))
        .flat_map(|codes| codes.as_array().cloned().unwrap_or_default())
        .filter_map(|code| code.as_str().map(str::to_string))
        .collect()
}

/// Upbit's headers on a quotation answer, with `sec` as the fake was told.
fn rate_headers(shared: &Shared, group: &str) -> HeaderMap {
    let sec = if shared.exhaust_second.swap(false, Ordering::SeqCst) {
        0
    } else {
        9
    };
    let mut headers = HeaderMap::new();
    let value = format!("group={group}; min=600; sec={sec}");
    headers.insert("remaining-req", HeaderValue::from_str(&value).unwrap());
    headers.insert("limit-by-ip", HeaderValue::from_static("Yes"));
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    headers
}

/// Records the request and, when told to, answers it with 429.
fn admit(shared: &Shared, path_and_query: String) -> Option<Response> {
    shared
        .rest_requests
        .lock()
        .unwrap()
        .push((Instant::now(), path_and_query));
    let throttled = shared
        .throttle_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    throttled.then(|| (StatusCode::TOO_MANY_REQUESTS, "Too many API requests.").into_response())
}

async fn market_all(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = format!(
        "/v1/market/all?is_details={}",
        query.get("is_details").cloned().unwrap_or_default()
    );
    if let Some(throttled) = admit(&shared, path) {
        return throttled;
    }
    let listed = shared.listed_markets.lock().unwrap().clone();
    (
        rate_headers(&shared, "market"),
        listed.unwrap_or_else(|| MARKET_ALL.to_string()),
    )
        .into_response()
}

async fn ticker(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let markets = query.get("markets").cloned().unwrap_or_default();
    if let Some(throttled) = admit(&shared, format!("/v1/ticker?markets={markets}")) {
        return throttled;
    }
    let prices = shared.prices.lock().unwrap().clone();
    let objects: Vec<String> = markets
        .split(',')
        .filter_map(|market| prices.get(market).map(|price| rest_ticker(market, price)))
        .collect();
    (
        rate_headers(&shared, "ticker"),
        format!("[{}]", objects.join(",")),
    )
        .into_response()
}

/// Upbit's error body for a request it will not serve.
fn validation_error(message: &str) -> Response {
    let body = serde_json::json!({"error": {"name": "validation_error", "message": message}});
    (StatusCode::BAD_REQUEST, body.to_string()).into_response()
}

/// The `to` and `count` of a candle request: `to` is exclusive, UTC unless it carries an offset,
/// and defaults to now; `count` defaults to 1 and may not exceed 200.
fn candle_window(query: &HashMap<String, String>) -> Result<(NaiveDateTime, usize), &'static str> {
    let count = match query.get("count") {
        None => 1,
        Some(text) => match text.parse::<usize>() {
            Ok(count @ 1..=MAX_CANDLES_PER_REQUEST) => count,
            _ => return Err("count must be between 1 and 200"),
        },
    };
    let to = match query.get("to") {
        None => chrono::Utc::now().naive_utc(),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|at| at.naive_utc())
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S"))
            .map_err(|_| "to is not a time")?,
    };
    Ok((to, count))
}

fn candle_json(market: &str, start: NaiveDateTime, bar: &Bar, extra: &str) -> String {
    let kst = start + chrono::Duration::hours(9);
    format!(
        r#"{{"market":"{market}","candle_date_time_utc":"{}","candle_date_time_kst":"{}","opening_price":{},"high_price":{},"low_price":{},"trade_price":{},"timestamp":{},"candle_acc_trade_price":0.00000000,"candle_acc_trade_volume":{}{extra}}}"#,
        start.format("%Y-%m-%dT%H:%M:%S"),
        kst.format("%Y-%m-%dT%H:%M:%S"),
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        start.and_utc().timestamp_millis(),
        bar.volume,
    )
}

async fn minute_candles(
    State(shared): State<Arc<Shared>>,
    Path(unit): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let market = query.get("market").cloned().unwrap_or_default();
    let path = format!(
        "/v1/candles/minutes/{unit}?market={market}&to={}&count={}",
        query.get("to").cloned().unwrap_or_default(),
        query.get("count").cloned().unwrap_or_default()
    );
    if let Some(throttled) = admit(&shared, path) {
        return throttled;
    }
    if unit != "1" {
        return validation_error("this stand-in serves one-minute candles only");
    }
    let (to, count) = match candle_window(&query) {
        Ok(window) => window,
        Err(refusal) => return validation_error(refusal),
    };
    let history = shared.minute_history.lock().unwrap();
    let candles: Vec<String> = history
        .get(&market)
        .into_iter()
        .flat_map(|bars| bars.range(..to).rev().take(count))
        .map(|(start, bar)| candle_json(&market, *start, bar, r#","unit":1"#))
        .collect();
    (
        rate_headers(&shared, "candles"),
        format!("[{}]", candles.join(",")),
    )
        .into_response()
}

async fn day_candles(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let market = query.get("market").cloned().unwrap_or_default();
    let path = format!(
        "/v1/candles/days?market={market}&to={}&count={}",
        query.get("to").cloned().unwrap_or_default(),
        query.get("count").cloned().unwrap_or_default()
    );
    if let Some(throttled) = admit(&shared, path) {
        return throttled;
    }
    let (to, count) = match candle_window(&query) {
        Ok(window) => window,
        Err(refusal) => return validation_error(refusal),
    };
    let history = shared.day_history.lock().unwrap();
    let candles: Vec<String> = history
        .get(&market)
        .into_iter()
        .flat_map(|bars| {
            bars.iter()
                .rev()
                .filter(move |(day, _)| day.and_hms_opt(0, 0, 0).is_some_and(|start| start < to))
                .take(count)
        })
        .map(|(day, bar)| {
            let start = day.and_hms_opt(0, 0, 0).unwrap_or_default();
            candle_json(&market, start, bar, "")
        })
        .collect();
    (
        rate_headers(&shared, "candles"),
        format!("[{}]", candles.join(",")),
    )
        .into_response()
}

async fn websocket(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| serve_socket(socket, shared))
}

async fn serve_socket(socket: WebSocket, shared: Arc<Shared>) {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    shared.open_connections.fetch_add(1, Ordering::SeqCst);
    converse(socket, &shared).await;
    shared.open_connections.fetch_sub(1, Ordering::SeqCst);
}

async fn converse(mut socket: WebSocket, shared: &Shared) {
    let mut pushes = shared.push.subscribe();
    loop {
        tokio::select! {
            received = socket.recv() => match received {
                Some(Ok(Message::Text(text))) if text.as_str() == "PING" => {
                    shared.pings.fetch_add(1, Ordering::SeqCst);
                    if socket.send(Message::Text(r#"{"status":"UP"}"#.into())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if let Ok(request) = serde_json::from_str(text.as_str()) {
                        shared.subscriptions.lock().unwrap().push((Instant::now(), request));
                    }
                }
                Some(Ok(Message::Pong(_))) => {
                    shared.pongs.fetch_add(1, Ordering::SeqCst);
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            pushed = pushes.recv() => {
                let message = match pushed {
                    Ok(Push::Binary(bytes)) => Message::Binary(bytes.into()),
                    Ok(Push::Text(text)) => Message::Text(text.into()),
                    Ok(Push::Ping) => Message::Ping(b"upbit".to_vec().into()),
                    Ok(Push::Drop) | Err(_) => return,
                };
                if socket.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}
