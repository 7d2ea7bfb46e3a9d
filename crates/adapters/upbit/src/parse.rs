//! Turns Upbit's wire messages into domain values. Kept free of I/O so every shape Upbit is known to
//! send (WebSocket DEFAULT and SIMPLE keys, the legacy `market` key, REST objects) can be tested on the
//! real examples. Prices are read from the raw JSON text of each number, never through `f64`, so
//! `162876000.00000000` becomes exactly 162876000.

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use signal_domain::ErrorChain;
use signal_domain::{
    Instrument, InstrumentId, InstrumentIdError, Market, Price, PriceError, QuoteSource, Tick,
    Timestamp,
};
use signal_ports::{Candle, DailyCandle};
use std::str::FromStr;

/// Why a message from Upbit could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the message is not UTF-8")]
    NotUtf8,
    #[error("the message is not the expected JSON")]
    Json(#[from] serde_json::Error),
    #[error("`{field}` is not a number: `{text}`")]
    NotANumber { field: &'static str, text: String },
    #[error("`{field}` is not a valid price")]
    BadPrice {
        field: &'static str,
        source: PriceError,
    },
    #[error(transparent)]
    BadMarket(#[from] InstrumentIdError),
    #[error("the ticker carries no usable trade timestamp")]
    NoTimestamp,
    #[error("a `{0}` message arrived where a ticker was expected")]
    NotATicker(String),
    #[error("`{field}` is not a candle time: `{text}`")]
    BadCandleTime { field: &'static str, text: String },
}

/// An error Upbit reported in its own format, over REST or the WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UpbitError {
    pub name: String,
    pub message: String,
}

/// What one WebSocket message says.
#[derive(Debug)]
pub enum StreamMessage {
    /// Ticker messages (one for DEFAULT/SIMPLE, several for the *_LIST formats), each parsed on its
    /// own so one bad element does not hide the others.
    Tickers(Vec<Result<Tick, ParseError>>),
    /// The answer to the text `PING`: `{"status":"UP"}`.
    Status(String),
    Error(UpbitError),
}

/// The keys a ticker shares between REST, WebSocket DEFAULT and SIMPLE (aliases), and the legacy
/// `market`. Numbers stay as raw text until they are read as decimals.
#[derive(Deserialize)]
struct WireTicker<'a> {
    #[serde(default, rename = "type", alias = "ty")]
    kind: Option<String>,
    #[serde(alias = "cd", alias = "market")]
    code: String,
    #[serde(borrow, alias = "tp")]
    trade_price: &'a RawValue,
    #[serde(borrow, default, alias = "pcp")]
    prev_closing_price: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "tv")]
    trade_volume: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "atv")]
    acc_trade_volume: Option<&'a RawValue>,
    #[serde(default, alias = "ttms")]
    trade_timestamp: Option<i64>,
    #[serde(default, alias = "tms")]
    timestamp: Option<i64>,
}

/// Only the keys that tell a control message from a ticker.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<UpbitError>,
}

/// Parses one WebSocket message (the payload of a binary or text frame).
pub fn parse_stream_message(
    payload: &[u8],
    received_at: Timestamp,
) -> Result<StreamMessage, ParseError> {
    let text = std::str::from_utf8(payload).map_err(|_| ParseError::NotUtf8)?;
    if text.trim_start().starts_with('[') {
        return parse_ticker_array(text, received_at).map(StreamMessage::Tickers);
    }
    let envelope: Envelope = serde_json::from_str(text)?;
    if let Some(error) = envelope.error {
        return Ok(StreamMessage::Error(error));
    }
    if let Some(status) = envelope.status {
        return Ok(StreamMessage::Status(status));
    }
    Ok(StreamMessage::Tickers(vec![parse_ticker(
        text,
        received_at,
    )]))
}

/// Parses a `GET /v1/ticker` body: an array of ticker objects.
pub fn parse_rest_tickers(
    body: &str,
    received_at: Timestamp,
) -> Result<Vec<Result<Tick, ParseError>>, ParseError> {
    parse_ticker_array(body, received_at)
}

fn parse_ticker_array(
    text: &str,
    received_at: Timestamp,
) -> Result<Vec<Result<Tick, ParseError>>, ParseError> {
    let elements: Vec<&RawValue> = serde_json::from_str(text)?;
    Ok(elements
        .into_iter()
        .map(|element| parse_ticker(element.get(), received_at))
        .collect())
}

/// Parses one ticker object in any of the key styles Upbit uses.
pub fn parse_ticker(text: &str, received_at: Timestamp) -> Result<Tick, ParseError> {
    let wire: WireTicker = serde_json::from_str(text)?;
    if let Some(kind) = wire.kind.filter(|kind| kind != "ticker") {
        return Err(ParseError::NotATicker(kind));
    }
    let instrument = InstrumentId::new(Market::Upbit, &wire.code)?;
    let price = exact_price("trade_price", wire.trade_price)?;
    let prev_close = wire
        .prev_closing_price
        .map(|raw| exact_price("prev_closing_price", raw))
        .transpose()?;
    let trade_volume = wire
        .trade_volume
        .map(|raw| decimal("trade_volume", raw))
        .transpose()?;
    let cumulative_volume = wire
        .acc_trade_volume
        .map(|raw| decimal("acc_trade_volume", raw))
        .transpose()?;
    // The trade time is what a tick means; the message timestamp is only a fallback for shapes
    // (such as the docs' SIMPLE_LIST excerpt) that might lack it.
    let millis = wire
        .trade_timestamp
        .or(wire.timestamp)
        .ok_or(ParseError::NoTimestamp)?;
    let exchange_time = Utc
        .timestamp_millis_opt(millis)
        .single()
        .ok_or(ParseError::NoTimestamp)?;
    Ok(Tick {
        instrument,
        price,
        trade_volume,
        cumulative_volume,
        prev_close,
        exchange_time,
        received_at,
        source: QuoteSource::Upbit,
    })
}

fn exact_price(field: &'static str, raw: &RawValue) -> Result<Price, ParseError> {
    Price::new(decimal(field, raw)?).map_err(|source| ParseError::BadPrice { field, source })
}

/// Reads a JSON number (or, defensively, a numeric string) exactly from its text.
fn decimal(field: &'static str, raw: &RawValue) -> Result<Decimal, ParseError> {
    let text = raw.get();
    let digits = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(text);
    Decimal::from_str(digits)
        .or_else(|_| Decimal::from_scientific(digits))
        .map(|value| value.normalize())
        .map_err(|_| ParseError::NotANumber {
            field,
            text: text.to_string(),
        })
}

/// A candle of `GET /v1/candles/minutes/{unit}` or `/v1/candles/days`: the keys both share.
#[derive(Deserialize)]
struct WireCandle<'a> {
    market: String,
    /// The candle's start, UTC, without a zone: `2025-07-29T00:00:00`.
    candle_date_time_utc: String,
    #[serde(borrow)]
    opening_price: &'a RawValue,
    #[serde(borrow)]
    high_price: &'a RawValue,
    #[serde(borrow)]
    low_price: &'a RawValue,
    #[serde(borrow)]
    trade_price: &'a RawValue,
    #[serde(borrow)]
    candle_acc_trade_volume: &'a RawValue,
}

struct CandleValues {
    instrument: InstrumentId,
    start: chrono::NaiveDateTime,
    open: Price,
    high: Price,
    low: Price,
    close: Price,
    volume: Decimal,
}

fn candle_values(text: &str) -> Result<CandleValues, ParseError> {
    let wire: WireCandle = serde_json::from_str(text)?;
    let start =
        chrono::NaiveDateTime::parse_from_str(&wire.candle_date_time_utc, "%Y-%m-%dT%H:%M:%S")
            .map_err(|_| ParseError::BadCandleTime {
                field: "candle_date_time_utc",
                text: wire.candle_date_time_utc.clone(),
            })?;
    Ok(CandleValues {
        instrument: InstrumentId::new(Market::Upbit, &wire.market)?,
        start,
        open: exact_price("opening_price", wire.opening_price)?,
        high: exact_price("high_price", wire.high_price)?,
        low: exact_price("low_price", wire.low_price)?,
        close: exact_price("trade_price", wire.trade_price)?,
        volume: decimal("candle_acc_trade_volume", wire.candle_acc_trade_volume)?,
    })
}

/// Parses a `GET /v1/candles/minutes/1` body (newest first) into one-minute candles, each on
/// its own: one odd element does not hide the others. Upbit counts no trades per candle.
pub fn parse_minute_candles(body: &str) -> Result<Vec<Result<Candle, ParseError>>, ParseError> {
    let elements: Vec<&RawValue> = serde_json::from_str(body)?;
    Ok(elements
        .into_iter()
        .map(|element| {
            let values = candle_values(element.get())?;
            Ok(Candle {
                instrument: values.instrument,
                minute: values.start.and_utc(),
                open: values.open,
                high: values.high,
                low: values.low,
                close: values.close,
                volume: values.volume,
                trades: 0,
            })
        })
        .collect())
}

/// Parses a `GET /v1/candles/days` body (newest first). Upbit's day starts at 00:00 UTC (09:00
/// KST), so the UTC date of `candle_date_time_utc` is the candle's day.
pub fn parse_day_candles(body: &str) -> Result<Vec<Result<DailyCandle, ParseError>>, ParseError> {
    let elements: Vec<&RawValue> = serde_json::from_str(body)?;
    Ok(elements
        .into_iter()
        .map(|element| {
            let values = candle_values(element.get())?;
            Ok(DailyCandle {
                instrument: values.instrument,
                day: values.start.date(),
                open: values.open,
                high: values.high,
                low: values.low,
                close: values.close,
                volume: values.volume,
            })
        })
        .collect())
}

#[derive(Deserialize)]
struct WireMarket {
    market: String,
    korean_name: String,
    english_name: String,
    #[serde(default)]
    market_event: Option<WireMarketEvent>,
    #[serde(default)]
    market_warning: Option<String>,
}

#[derive(Deserialize)]
struct WireMarketEvent {
    #[serde(default)]
    warning: bool,
}

/// Parses a `GET /v1/market/all?is_details=true` body into the KRW markets. A market whose code
/// does not make an instrument id is skipped (and logged) rather than losing the whole listing.
pub fn parse_market_list(body: &str) -> Result<Vec<Instrument>, ParseError> {
    let markets: Vec<WireMarket> = serde_json::from_str(body)?;
    Ok(markets
        .into_iter()
        .filter(|entry| entry.market.starts_with("KRW-"))
        .filter_map(|entry| match InstrumentId::new(Market::Upbit, &entry.market) {
            Ok(id) => Some(Instrument {
                id,
                warning: entry.market_event.is_some_and(|event| event.warning)
                    || entry.market_warning.as_deref() == Some("CAUTION"),
                korean_name: entry.korean_name,
                english_name: entry.english_name,
            }),
            Err(error) => {
                tracing::warn!(market = %entry.market, error = %ErrorChain(&error), "skipping an unusable Upbit market");
                None
            }
        })
        .collect())
}

/// Reads Upbit's `{"error":{"name","message"}}` body, if that is what `body` is.
pub fn parse_error_body(body: &str) -> Option<UpbitError> {
    serde_json::from_str::<Envelope>(body).ok()?.error
}

/// The `Remaining-Req` header: calls left in the current second for a rate-limit group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemainingReq {
    pub group: String,
    pub sec: u32,
}

/// Parses `group=ticker; min=600; sec=9` (`min` is deprecated and ignored).
pub fn parse_remaining_req(header: &str) -> Option<RemainingReq> {
    let mut group = None;
    let mut sec = None;
    for part in header.split(';') {
        match part.trim().split_once('=') {
            Some(("group", value)) => group = Some(value.trim().to_string()),
            Some(("sec", value)) => sec = value.trim().parse().ok(),
            _ => {}
        }
    }
    Some(RemainingReq {
        group: group?,
        sec: sec?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;
    // The official examples, verbatim, as the fake Upbit speaks them.
    use signal_exchange_fakes::upbit::{
        REST_DAY_CANDLES, REST_MINUTE_CANDLE, WS_DEFAULT, WS_SIMPLE_LIST,
    };

    /// Official 2018 message from the "test and request sample" page, with the legacy `market` key.
    const WS_LEGACY: &str = r#"{"market":"KRW-BTC","opening_price":8450000.00000000,"high_price":8679000.00000000,"low_price":8445000.00000000,"trade_price":8629000.0,"prev_closing_price":8450000.00000000,"acc_trade_price":105514711074.18726000,"change":"RISE","change_price":179000.00000000,"signed_change_price":179000.00000000,"change_rate":0.0211834320,"signed_change_rate":0.0211834320,"ask_bid":"ASK","trade_volume":0.0105675,"acc_trade_volume":12312.36058857,"trade_date":"20180418","trade_time":"100729","trade_timestamp":1524046049000,"acc_ask_volume":5703.42273172,"acc_bid_volume":6608.93785685,"highest_52_week_price":28885000.00000000,"highest_52_week_date":"2018-01-06","lowest_52_week_price":3286000.00000000,"lowest_52_week_date":"2017-09-15","trade_status":"ACTIVE","market_state":"ACTIVE","market_state_for_ios":"ACTIVE","is_trading_suspended":false,"delisting_date":null,"market_warning":"NONE","timestamp":1524046049766,"acc_trade_price_24h":55330325803.78210000,"acc_trade_volume_24h":6448.96200341}"#;

    /// Official REST /v1/ticker response ("첫 업비트 API 호출하기", 2025-07-30), verbatim.
    const REST_TICKERS: &str = r#"[{"market":"KRW-BTC","trade_date":"20250730","trade_time":"170315","trade_date_kst":"20250731","trade_time_kst":"020315","trade_timestamp":1753894995076,"opening_price":163248000.00000000,"high_price":163708000.00000000,"low_price":162248000.00000000,"trade_price":162876000.00000000,"prev_closing_price":163158000.00000000,"change":"FALL","change_price":282000.00000000,"change_rate":0.0017283860,"signed_change_price":-282000.00000000,"signed_change_rate":-0.0017283860,"trade_volume":0.02543652,"acc_trade_price":137728155832.9616000000000000,"acc_trade_price_24h":167740032580.71786000,"acc_trade_volume":844.94369319,"acc_trade_volume_24h":1029.27369910,"highest_52_week_price":166800000.00000000,"highest_52_week_date":"2025-07-14","lowest_52_week_price":72100000.00000000,"lowest_52_week_date":"2024-08-05","timestamp":1753894995113},{"market":"KRW-ETH","trade_date":"20250730","trade_time":"170312","trade_date_kst":"20250731","trade_time_kst":"020312","trade_timestamp":1753894992075,"opening_price":5252000.00000000,"high_price":5286000.00000000,"low_price":5189000.00000000,"trade_price":5252000.00000000,"prev_closing_price":5252000.00000000,"change":"EVEN","change_price":0,"change_rate":0,"signed_change_price":0,"signed_change_rate":0,"trade_volume":0.90519935,"acc_trade_price":173631118966.8993200000000000,"acc_trade_price_24h":219851544443.94134000,"acc_trade_volume":33157.31864212,"acc_trade_volume_24h":42001.31603004,"highest_52_week_price":5900000.00000000,"highest_52_week_date":"2024-12-16","lowest_52_week_price":2096000.00000000,"lowest_52_week_date":"2025-04-09","timestamp":1753894995076}]"#;

    /// The documented `is_details=true` shape: market_event.warning, legacy market_warning, and
    /// non-KRW markets that must be left out.
    const MARKET_LIST: &str = r#"[{"market":"KRW-BTC","korean_name":"비트코인","english_name":"Bitcoin","market_warning":"NONE","market_event":{"warning":false,"caution":{"PRICE_FLUCTUATIONS":false,"TRADING_VOLUME_SOARING":false,"DEPOSIT_AMOUNT_SOARING":false,"GLOBAL_PRICE_DIFFERENCES":false,"CONCENTRATION_OF_SMALL_ACCOUNTS":false}}},{"market":"BTC-ETH","korean_name":"이더리움","english_name":"Ethereum","market_warning":"NONE","market_event":{"warning":false}},{"market":"KRW-XRP","korean_name":"엑스알피(리플)","english_name":"XRP","market_warning":"NONE","market_event":{"warning":true}},{"market":"KRW-DOGE","korean_name":"도지코인","english_name":"Dogecoin","market_warning":"CAUTION"}]"#;

    fn only_tick(message: StreamMessage) -> Tick {
        match message {
            StreamMessage::Tickers(mut ticks) if ticks.len() == 1 => {
                ticks.remove(0).expect("a valid ticker")
            }
            other => panic!("expected one ticker, got {other:?}"),
        }
    }

    #[test]
    fn default_ticker_becomes_an_exact_tick() {
        let now = Utc::now();
        let tick = only_tick(parse_stream_message(WS_DEFAULT.as_bytes(), now).unwrap());
        assert_eq!(tick.instrument.to_string(), "UPBIT:KRW-BTC");
        assert_eq!(tick.price.value(), dec!(32287000));
        assert_eq!(tick.prev_close.unwrap().value(), dec!(31883000));
        assert_eq!(tick.trade_volume, Some(dec!(0.03103806)));
        assert_eq!(tick.cumulative_volume, Some(dec!(2429.58834336)));
        assert_eq!(tick.exchange_time.timestamp_millis(), 1676965262139);
        assert_eq!(tick.received_at, now);
        assert_eq!(tick.source, QuoteSource::Upbit);
    }

    #[test]
    fn simple_keys_and_list_format_are_understood() {
        let StreamMessage::Tickers(ticks) =
            parse_stream_message(WS_SIMPLE_LIST.as_bytes(), Utc::now()).unwrap()
        else {
            panic!("expected tickers");
        };
        let tick = ticks.into_iter().next().unwrap().unwrap();
        assert_eq!(tick.instrument.symbol(), "KRW-BTC");
        assert_eq!(tick.price.value(), dec!(148956000));
        assert_eq!(tick.prev_close.unwrap().value(), dec!(148500000));
        assert_eq!(tick.trade_volume, Some(dec!(0.0602652)));
        assert_eq!(tick.cumulative_volume, Some(dec!(108.51228784)));
        assert_eq!(tick.exchange_time.timestamp_millis(), 1751854855934);
    }

    #[test]
    fn legacy_market_key_is_understood() {
        let tick = parse_ticker(WS_LEGACY, Utc::now()).unwrap();
        assert_eq!(tick.instrument.symbol(), "KRW-BTC");
        assert_eq!(tick.price.value(), dec!(8629000));
        assert_eq!(tick.exchange_time.timestamp_millis(), 1524046049000);
    }

    #[test]
    fn rest_tickers_keep_every_digit() {
        let ticks: Vec<Tick> = parse_rest_tickers(REST_TICKERS, Utc::now())
            .unwrap()
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ticks.len(), 2);
        assert_eq!(ticks[0].price.value(), dec!(162876000));
        assert_eq!(ticks[0].price.value().to_string(), "162876000");
        assert_eq!(ticks[0].prev_close.unwrap().value(), dec!(163158000));
        assert_eq!(ticks[0].cumulative_volume, Some(dec!(844.94369319)));
        assert_eq!(ticks[1].instrument.symbol(), "KRW-ETH");
        assert_eq!(ticks[1].exchange_time.timestamp_millis(), 1753894992075);
    }

    #[test]
    fn a_bad_element_does_not_hide_the_others() {
        let body = r#"[{"market":"KRW-BTC","trade_price":0,"trade_timestamp":1},{"market":"KRW-ETH","trade_price":5252000.0,"trade_timestamp":1}]"#;
        let results = parse_rest_tickers(body, Utc::now()).unwrap();
        assert!(matches!(
            results[0],
            Err(ParseError::BadPrice {
                field: "trade_price",
                ..
            })
        ));
        assert_eq!(results[1].as_ref().unwrap().price.value(), dec!(5252000));
    }

    #[test]
    fn market_list_keeps_krw_markets_with_names_and_warnings() {
        let instruments = parse_market_list(MARKET_LIST).unwrap();
        let summary: Vec<(String, &str, bool)> = instruments
            .iter()
            .map(|i| (i.id.to_string(), i.english_name.as_str(), i.warning))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("UPBIT:KRW-BTC".to_string(), "Bitcoin", false),
                ("UPBIT:KRW-XRP".to_string(), "XRP", true),
                ("UPBIT:KRW-DOGE".to_string(), "Dogecoin", true),
            ]
        );
        assert_eq!(instruments[0].korean_name, "비트코인");
    }

    #[test]
    fn status_and_errors_are_recognised() {
        let now = Utc::now();
        assert!(matches!(
            parse_stream_message(br#"{"status":"UP"}"#, now).unwrap(),
            StreamMessage::Status(status) if status == "UP"
        ));
        let error =
            r#"{"error":{"name":"INVALID_AUTH","message":"인증 정보가 올바르지 않습니다."}}"#;
        match parse_stream_message(error.as_bytes(), now).unwrap() {
            StreamMessage::Error(e) => assert_eq!(e.name, "INVALID_AUTH"),
            other => panic!("expected an error, got {other:?}"),
        }
        assert_eq!(parse_error_body(error).unwrap().name, "INVALID_AUTH");
        assert_eq!(parse_error_body(REST_TICKERS), None);
    }

    #[test]
    fn other_message_types_are_not_ticks() {
        let trade = WS_DEFAULT.replace(r#""type": "ticker""#, r#""type": "trade""#);
        assert!(matches!(
            parse_ticker(&trade, Utc::now()),
            Err(ParseError::NotATicker(kind)) if kind == "trade"
        ));
    }

    #[test]
    fn day_candles_keep_every_digit_and_upbits_utc_day() {
        let candles: Vec<DailyCandle> = parse_day_candles(REST_DAY_CANDLES)
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(candles.len(), 2);
        let newest = &candles[0];
        assert_eq!(newest.instrument.to_string(), "UPBIT:KRW-BTC");
        assert_eq!(
            newest.day,
            chrono::NaiveDate::from_ymd_opt(2025, 7, 29).unwrap()
        );
        assert_eq!(newest.open.value(), dec!(162483000));
        assert_eq!(newest.high.value(), dec!(163800000));
        assert_eq!(newest.low.value(), dec!(162034000));
        assert_eq!(newest.close.value(), dec!(163158000));
        assert_eq!(newest.volume, dec!(1487.53432374));
        assert_eq!(
            candles[1].day,
            chrono::NaiveDate::from_ymd_opt(2025, 7, 28).unwrap()
        );
    }

    #[test]
    fn a_minute_candle_starts_at_its_utc_minute() {
        let candles = parse_minute_candles(&format!("[{REST_MINUTE_CANDLE}]")).unwrap();
        let candle = candles[0].as_ref().unwrap();
        assert_eq!(candle.minute.to_rfc3339(), "2025-02-26T12:10:00+00:00");
        assert_eq!(candle.close.value(), dec!(128436000));
        assert_eq!(candle.volume, dec!(0.03894042));
        let broken = parse_minute_candles(
            r#"[{"market":"KRW-BTC","candle_date_time_utc":"yesterday","opening_price":1,"high_price":1,"low_price":1,"trade_price":1,"candle_acc_trade_volume":1}]"#,
        )
        .unwrap();
        assert!(matches!(broken[0], Err(ParseError::BadCandleTime { .. })));
    }

    #[test]
    fn remaining_req_header() {
        assert_eq!(
            parse_remaining_req("group=ticker; min=600; sec=9"),
            Some(RemainingReq {
                group: "ticker".into(),
                sec: 9
            })
        );
        assert_eq!(
            parse_remaining_req("group=market; min=573; sec=0").map(|r| r.sec),
            Some(0)
        );
        assert_eq!(parse_remaining_req("group=ticker; min=600"), None);
        assert_eq!(parse_remaining_req("garbage"), None);
    }

    /// Every parser, on any input: a result, never a panic.
    fn feed_every_parser(text: &str) {
        let now = Utc::now();
        let _ = parse_stream_message(text.as_bytes(), now);
        let _ = parse_ticker(text, now);
        let _ = parse_rest_tickers(text, now);
        let _ = parse_market_list(text);
        let _ = parse_error_body(text);
        let _ = parse_remaining_req(text);
    }

    /// A real message with one byte range replaced, so the input stays close to valid JSON.
    fn mutated_real_message() -> impl Strategy<Value = String> {
        let samples = prop::sample::select(vec![
            WS_DEFAULT,
            WS_SIMPLE_LIST,
            WS_LEGACY,
            REST_TICKERS,
            MARKET_LIST,
            r#"{"status":"UP"}"#,
            r#"{"error":{"name":"WRONG_FORMAT","message":"x"}}"#,
        ]);
        (samples, any::<prop::sample::Index>(), 0usize..8, ".{0,8}").prop_map(
            |(sample, at, len, insert)| {
                let chars: Vec<char> = sample.chars().collect();
                let start = at.index(chars.len());
                let end = (start + len).min(chars.len());
                let mut out: String = chars[..start].iter().collect();
                out.push_str(&insert);
                out.extend(&chars[end..]);
                out
            },
        )
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_stream_message(&bytes, Utc::now());
            feed_every_parser(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn mutated_real_messages_never_panic(text in mutated_real_message()) {
            feed_every_parser(&text);
        }

        #[test]
        fn numbers_of_any_shape_never_panic(number in "-?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][-+]?[0-9]{0,5})?") {
            feed_every_parser(&WS_DEFAULT.replace("32287000", &number));
            feed_every_parser(&REST_TICKERS.replace("1753894995076", &number));
        }
    }
}
