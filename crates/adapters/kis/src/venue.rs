//! KIS serves Korean and US stocks through two parallel sets of endpoints (a domestic and an
//! overseas one) that carry the same facts under different names. This table is the only place
//! that knows the difference, so the parser, the REST client and the subscriber each have one
//! code path for both.

use crate::frame::FrameError;
use chrono::{FixedOffset, NaiveDateTime, TimeZone};
use rust_decimal::Decimal;
use signal_domain::{InstrumentId, Market, Price, QuoteSource, Tick, Timestamp};
use std::fmt::Debug;
use std::str::FromStr;

/// Where one kind of instrument lives at KIS and where its facts sit in each response.
#[derive(Debug)]
pub(crate) struct Venue {
    /// Real-time trade TR on the WebSocket.
    pub stream_tr_id: &'static str,
    /// Values per record in a data frame of `stream_tr_id`.
    pub record_fields: usize,
    /// Positions of the facts within one record.
    pub record: Layout<usize>,
    /// REST current-price endpoint.
    pub rest_path: &'static str,
    pub rest_tr_id: &'static str,
    /// Keys of the facts within the REST `output` object.
    pub rest: Layout<&'static str>,
}

/// Where the facts of a trade are found; `I` is a field index (frames) or a key (REST).
#[derive(Debug)]
pub(crate) struct Layout<I> {
    pub price: I,
    /// Change from the previous close.
    pub change: I,
    /// When present, `change` is unsigned and this KIS sign code gives its direction.
    pub change_sign: Option<I>,
    pub trade_volume: Option<I>,
    pub cumulative_volume: I,
    /// Korean date (YYYYMMDD) and time (HHMMSS) of the trade.
    pub kst_date: Option<I>,
    pub kst_time: Option<I>,
}

impl<I: Copy + Debug> Layout<I> {
    /// The trade of `instrument` whose fields `field` looks up. Prices stay exact decimals; a
    /// missing or unreadable price, change or time is an error, an empty volume is just absent.
    pub fn tick<'a>(
        &self,
        instrument: InstrumentId,
        field: impl Fn(I) -> Option<&'a str>,
        received_at: Timestamp,
    ) -> Result<Tick, FrameError> {
        let text = |at: I| field(at).ok_or_else(|| FrameError::missing(at));
        let number = |at: I| {
            let raw = text(at)?;
            Decimal::from_str(raw.trim()).map_err(|_| FrameError::field(at, raw))
        };
        let volume = |at: Option<I>| match at.map(|at| (at, text(at))) {
            None => Ok(None),
            Some((_, Ok(raw))) if raw.trim().is_empty() => Ok(None),
            Some((at, _)) => number(at).map(Some),
        };
        let price = Price::new(number(self.price)?)
            .map_err(|_| FrameError::field(self.price, text(self.price).unwrap_or_default()))?;
        let change = match self.change_sign {
            None => number(self.change)?,
            Some(sign) => signed_change(number(self.change)?, text(sign)?)
                .ok_or_else(|| FrameError::field(sign, text(sign).unwrap_or_default()))?,
        };
        let exchange_time = match (self.kst_date, self.kst_time) {
            (Some(date), Some(time)) => kst_to_utc(text(date)?, text(time)?)
                .ok_or_else(|| FrameError::field(time, text(time).unwrap_or_default()))?,
            _ => received_at,
        };
        Ok(Tick {
            instrument,
            price,
            trade_volume: volume(self.trade_volume)?,
            cumulative_volume: volume(Some(self.cumulative_volume))?,
            // A change bigger than the price (bad data) gives no previous close rather than a wrong one.
            prev_close: Price::new(price.value() - change).ok(),
            exchange_time,
            received_at,
            source: QuoteSource::Kis,
        })
    }
}

/// Korea has kept UTC+9 without daylight saving since 1988.
pub(crate) fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| unreachable!("+09:00 is a valid offset"))
}

/// A KIS wall-clock date (YYYYMMDD) and time (HHMMSS) in Korea, as a UTC instant.
fn kst_to_utc(date: &str, time: &str) -> Option<Timestamp> {
    let local = NaiveDateTime::parse_from_str(&format!("{date}{time}"), "%Y%m%d%H%M%S").ok()?;
    Some(kst().from_local_datetime(&local).single()?.to_utc())
}

pub(crate) const DOMESTIC: Venue = Venue {
    stream_tr_id: "H0STCNT0",
    record_fields: 46,
    record: Layout {
        price: 2,
        change: 4,
        change_sign: None,
        trade_volume: Some(12),
        cumulative_volume: 13,
        kst_date: Some(33),
        kst_time: Some(1),
    },
    rest_path: "/uapi/domestic-stock/v1/quotations/inquire-price",
    rest_tr_id: "FHKST01010100",
    rest: Layout {
        price: "stck_prpr",
        change: "prdy_vrss",
        change_sign: None,
        trade_volume: None,
        cumulative_volume: "acml_vol",
        kst_date: None,
        kst_time: None,
    },
};

pub(crate) const OVERSEAS: Venue = Venue {
    stream_tr_id: "HDFSCNT0",
    record_fields: 26,
    record: Layout {
        price: 11,
        change: 13,
        change_sign: Some(12),
        trade_volume: Some(19),
        cumulative_volume: 20,
        kst_date: Some(6),
        kst_time: Some(7),
    },
    rest_path: "/uapi/overseas-price/v1/quotations/price",
    rest_tr_id: "HHDFS00000300",
    rest: Layout {
        price: "last",
        change: "diff",
        change_sign: Some("sign"),
        trade_volume: None,
        cumulative_volume: "tvol",
        kst_date: None,
        kst_time: None,
    },
};

/// US markets: our market, KIS's exchange code, and the code of its daytime (주간) session.
const US_EXCHANGES: [(Market, &str, &str); 3] = [
    (Market::Nasdaq, "NAS", "BAQ"),
    (Market::Nyse, "NYS", "BAY"),
    (Market::Amex, "AMS", "BAA"),
];

/// The venue serving `market`, when KIS serves it at all.
pub(crate) fn venue_of(market: Market) -> Option<&'static Venue> {
    match market {
        Market::Krx => Some(&DOMESTIC),
        Market::Nasdaq | Market::Nyse | Market::Amex => Some(&OVERSEAS),
        Market::Upbit => None,
    }
}

pub(crate) fn us_exchange_code(market: Market) -> Option<&'static str> {
    US_EXCHANGES
        .iter()
        .find(|(m, _, _)| *m == market)
        .map(|(_, code, _)| *code)
}

/// The WebSocket `(tr_id, tr_key)` that streams `id`'s trades.
pub(crate) fn stream_key(id: &InstrumentId) -> Option<(&'static str, String)> {
    let venue = venue_of(id.market())?;
    let key = match us_exchange_code(id.market()) {
        // The free US feed: "D" + exchange + symbol.
        Some(code) => format!("D{code}{}", id.symbol()),
        None => id.symbol().to_string(),
    };
    Some((venue.stream_tr_id, key))
}

/// The instrument a `tr_key` of `tr_id` names (the inverse of [`stream_key`], also accepting the
/// US daytime-session keys).
pub(crate) fn instrument_of(tr_id: &str, tr_key: &str) -> Option<InstrumentId> {
    if tr_id == DOMESTIC.stream_tr_id {
        return InstrumentId::new(Market::Krx, tr_key).ok();
    }
    if tr_id != OVERSEAS.stream_tr_id {
        return None;
    }
    let prefix = tr_key.get(..4)?;
    let symbol = tr_key.get(4..)?;
    let (session, exchange) = prefix.split_at(1);
    let market = US_EXCHANGES.iter().find_map(|(market, regular, daytime)| {
        let known =
            (session == "D" && exchange == *regular) || (session == "R" && exchange == *daytime);
        known.then_some(*market)
    })?;
    InstrumentId::new(market, symbol).ok()
}

/// The REST query selecting `id` on its venue.
pub(crate) fn rest_query(id: &InstrumentId) -> Vec<(&'static str, String)> {
    match us_exchange_code(id.market()) {
        Some(code) => vec![
            ("AUTH", String::new()),
            ("EXCD", code.to_string()),
            ("SYMB", id.symbol().to_string()),
        ],
        None => vec![
            ("FID_COND_MRKT_DIV_CODE", "J".to_string()),
            ("FID_INPUT_ISCD", id.symbol().to_string()),
        ],
    }
}

/// Applies a KIS sign code (1 limit up, 2 up, 3 flat, 4 limit down, 5 down) to an unsigned change.
pub(crate) fn signed_change(change: Decimal, sign_code: &str) -> Option<Decimal> {
    match sign_code.trim() {
        "1" | "2" => Some(change.abs()),
        "3" => Some(Decimal::ZERO),
        "4" | "5" => Some(-change.abs()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_round_trip() {
        for text in ["KRX:005930", "NASDAQ:AAPL", "NYSE:BRK.B", "AMEX:SPY"] {
            let id: InstrumentId = text.parse().unwrap();
            let (tr_id, key) = stream_key(&id).unwrap();
            assert_eq!(instrument_of(tr_id, &key), Some(id));
        }
        assert_eq!(
            stream_key(&"NASDAQ:AAPL".parse().unwrap()).unwrap().1,
            "DNASAAPL"
        );
    }

    #[test]
    fn daytime_session_keys_name_the_same_instrument() {
        assert_eq!(
            instrument_of("HDFSCNT0", "RBAQAAPL"),
            Some("NASDAQ:AAPL".parse().unwrap())
        );
        assert_eq!(instrument_of("HDFSCNT0", "DHKS00003"), None);
        assert_eq!(instrument_of("H0STASP0", "005930"), None);
    }

    #[test]
    fn upbit_is_not_a_kis_venue() {
        assert!(stream_key(&"UPBIT:KRW-BTC".parse().unwrap()).is_none());
    }
}
