//! KIS's chart history, for the candles the store lacks. Every call goes through the REST
//! client, so history shares the app key's per-second budget with the price polling.
//!
//! | what | TR | rows per call | reach |
//! |---|---|---|---|
//! | KRX daily | FHKST03010100 `inquire-daily-itemchartprice` | 100, newest first, `[DATE_1, DATE_2]` | years (adjusted prices) |
//! | KRX minutes today | FHKST03010200 `inquire-time-itemchartprice` | 30 at or before `HOUR_1` | today |
//! | KRX minutes of a past day | FHKST03010230 `inquire-time-dailychartprice` | 120 at or before `HOUR_1` on `DATE_1` | about a year; real accounts only |
//! | US daily | HHDFS76240000 `dailyprice` | 100 on or before `BYMD`, newest first | years (adjusted prices) |
//! | US minutes | HHDFS76950200 `inquire-time-itemchartprice` | 120 before `KEYB` | about a month, regular session |
//!
//! Rows carry their time as text: KRX rows in Korean time (`stck_bsop_date` + `stck_cntg_hour`,
//! the minute's start), US rows in both exchange time (`xymd`/`xhms`) and Korean time
//! (`kymd`/`khms`); Korean time is read, since Korea keeps no daylight saving.

use async_trait::async_trait;
use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use signal_domain::{Exchange, InstrumentId, Market, Price, Timestamp};
use signal_ports::{Candle, CandleHistory, DailyCandle, HistoryError};
use std::str::FromStr;

use crate::venue::{kst, us_exchange_code};
use crate::{KisError, KisFeed};

const DOMESTIC_DAILY_PATH: &str = "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice";
const DOMESTIC_DAILY_TR: &str = "FHKST03010100";
const DOMESTIC_TODAY_MINUTES_PATH: &str =
    "/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice";
const DOMESTIC_TODAY_MINUTES_TR: &str = "FHKST03010200";
const DOMESTIC_DAY_MINUTES_PATH: &str =
    "/uapi/domestic-stock/v1/quotations/inquire-time-dailychartprice";
const DOMESTIC_DAY_MINUTES_TR: &str = "FHKST03010230";
const OVERSEAS_DAILY_PATH: &str = "/uapi/overseas-price/v1/quotations/dailyprice";
const OVERSEAS_DAILY_TR: &str = "HHDFS76240000";
const OVERSEAS_MINUTES_PATH: &str =
    "/uapi/overseas-price/v1/quotations/inquire-time-itemchartprice";
const OVERSEAS_MINUTES_TR: &str = "HHDFS76950200";

/// Rows per call, as KIS documents them.
const DAILY_ROWS: usize = 100;
const TODAY_MINUTE_ROWS: usize = 30;
const DAY_MINUTE_ROWS: usize = 120;
const OVERSEAS_MINUTE_ROWS: usize = 120;

/// One of the daily-chart TRs: where it is and how its rows read.
struct DailyTr {
    path: &'static str,
    tr: &'static str,
    rows: fn(&Row, &InstrumentId) -> Vec<DailyCandle>,
}

/// Why one chart row could not be read; the row is skipped, the rest kept.
#[derive(Debug, thiserror::Error)]
pub enum ChartRowError {
    #[error("`{field}` is missing")]
    Missing { field: &'static str },
    #[error("`{field}` is not readable: `{text}`")]
    Unreadable { field: &'static str, text: String },
}

type Row = Map<String, Value>;

fn text<'a>(row: &'a Row, field: &'static str) -> Result<&'a str, ChartRowError> {
    row.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .ok_or(ChartRowError::Missing { field })
}

fn decimal(row: &Row, field: &'static str) -> Result<Decimal, ChartRowError> {
    let raw = text(row, field)?;
    Decimal::from_str(raw).map_err(|_| ChartRowError::Unreadable {
        field,
        text: raw.to_string(),
    })
}

fn price(row: &Row, field: &'static str) -> Result<Price, ChartRowError> {
    Price::new(decimal(row, field)?).map_err(|_| ChartRowError::Unreadable {
        field,
        text: text(row, field).unwrap_or_default().to_string(),
    })
}

fn date(row: &Row, field: &'static str) -> Result<NaiveDate, ChartRowError> {
    let raw = text(row, field)?;
    NaiveDate::parse_from_str(raw, "%Y%m%d").map_err(|_| ChartRowError::Unreadable {
        field,
        text: raw.to_string(),
    })
}

/// A Korean wall-clock date and time as a UTC instant.
fn korean_time(
    row: &Row,
    date_field: &'static str,
    time_field: &'static str,
) -> Result<Timestamp, ChartRowError> {
    let day = date(row, date_field)?;
    let raw = text(row, time_field)?;
    let unreadable = || ChartRowError::Unreadable {
        field: time_field,
        text: raw.to_string(),
    };
    let time = NaiveTime::parse_from_str(raw, "%H%M%S").map_err(|_| unreadable())?;
    kst()
        .from_local_datetime(&day.and_time(time))
        .single()
        .map(|at| at.to_utc())
        .ok_or_else(unreadable)
}

/// The rows of `output2`. KIS pads an answer without data with rows of empty strings; those
/// carry no date and are left out here rather than reported as unreadable.
fn rows<'a>(reply: &'a Row, date_field: &'static str) -> Vec<&'a Row> {
    reply
        .get("output2")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter(|row| text(row, date_field).is_ok())
        .collect()
}

/// Keeps the rows that read, logging the ones that do not.
fn readable<T>(
    what: &'static str,
    parsed: impl IntoIterator<Item = Result<T, ChartRowError>>,
) -> Vec<T> {
    parsed
        .into_iter()
        .filter_map(|result| {
            result
                .map_err(|e| tracing::warn!(tr = what, error = %e, "skipped a KIS chart row"))
                .ok()
        })
        .collect()
}

/// FHKST03010100 rows: `stck_bsop_date`, `stck_oprc`/`hgpr`/`lwpr`/`clpr`, `acml_vol`.
pub(crate) fn domestic_daily_rows(reply: &Row, id: &InstrumentId) -> Vec<DailyCandle> {
    readable(
        DOMESTIC_DAILY_TR,
        rows(reply, "stck_bsop_date").into_iter().map(|row| {
            Ok(DailyCandle {
                instrument: id.clone(),
                day: date(row, "stck_bsop_date")?,
                open: price(row, "stck_oprc")?,
                high: price(row, "stck_hgpr")?,
                low: price(row, "stck_lwpr")?,
                close: price(row, "stck_clpr")?,
                volume: decimal(row, "acml_vol")?,
            })
        }),
    )
}

/// FHKST03010200 and FHKST03010230 rows: `stck_bsop_date` + `stck_cntg_hour` (Korean time),
/// `stck_oprc`/`hgpr`/`lwpr`, `stck_prpr` (the minute's last price), `cntg_vol`.
pub(crate) fn domestic_minute_rows(
    reply: &Row,
    id: &InstrumentId,
    tr: &'static str,
) -> Vec<Candle> {
    readable(
        tr,
        rows(reply, "stck_bsop_date").into_iter().map(|row| {
            Ok(Candle {
                instrument: id.clone(),
                minute: korean_time(row, "stck_bsop_date", "stck_cntg_hour")?,
                open: price(row, "stck_oprc")?,
                high: price(row, "stck_hgpr")?,
                low: price(row, "stck_lwpr")?,
                close: price(row, "stck_prpr")?,
                volume: decimal(row, "cntg_vol")?,
                trades: 0,
            })
        }),
    )
}

/// HHDFS76240000 rows: `xymd` (the exchange's day), `open`/`high`/`low`/`clos`, `tvol`.
pub(crate) fn overseas_daily_rows(reply: &Row, id: &InstrumentId) -> Vec<DailyCandle> {
    readable(
        OVERSEAS_DAILY_TR,
        rows(reply, "xymd").into_iter().map(|row| {
            Ok(DailyCandle {
                instrument: id.clone(),
                day: date(row, "xymd")?,
                open: price(row, "open")?,
                high: price(row, "high")?,
                low: price(row, "low")?,
                close: price(row, "clos")?,
                volume: decimal(row, "tvol")?,
            })
        }),
    )
}

/// HHDFS76950200 rows: `kymd` + `khms` (Korean time), `open`/`high`/`low`/`last`, `evol`.
pub(crate) fn overseas_minute_rows(reply: &Row, id: &InstrumentId) -> Vec<Candle> {
    readable(
        OVERSEAS_MINUTES_TR,
        rows(reply, "kymd").into_iter().map(|row| {
            Ok(Candle {
                instrument: id.clone(),
                minute: korean_time(row, "kymd", "khms")?,
                open: price(row, "open")?,
                high: price(row, "high")?,
                low: price(row, "low")?,
                close: price(row, "last")?,
                volume: decimal(row, "evol")?,
                trades: 0,
            })
        }),
    )
}

fn ymd(day: NaiveDate) -> String {
    day.format("%Y%m%d").to_string()
}

fn history_error(error: KisError) -> HistoryError {
    match error {
        KisError::Unreadable { .. } | KisError::Incomplete { .. } => {
            HistoryError::Unreadable(Box::new(error))
        }
        other => HistoryError::Unavailable(Box::new(other)),
    }
}

impl KisFeed {
    async fn domestic_daily(
        &self,
        id: &InstrumentId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DailyCandle>, KisError> {
        let daily = DailyTr {
            path: DOMESTIC_DAILY_PATH,
            tr: DOMESTIC_DAILY_TR,
            rows: domestic_daily_rows,
        };
        self.daily_pages(daily, id, first, last, |end| {
            vec![
                ("FID_COND_MRKT_DIV_CODE", "J".to_string()),
                ("FID_INPUT_ISCD", id.symbol().to_string()),
                ("FID_INPUT_DATE_1", ymd(first)),
                ("FID_INPUT_DATE_2", ymd(end)),
                ("FID_PERIOD_DIV_CODE", "D".to_string()),
                // 0: adjusted for splits, so a chart has no artificial jumps.
                ("FID_ORG_ADJ_PRC", "0".to_string()),
            ]
        })
        .await
    }

    async fn overseas_daily(
        &self,
        id: &InstrumentId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DailyCandle>, KisError> {
        let exchange =
            us_exchange_code(id.market()).ok_or_else(|| KisError::NotServed(id.clone()))?;
        let daily = DailyTr {
            path: OVERSEAS_DAILY_PATH,
            tr: OVERSEAS_DAILY_TR,
            rows: overseas_daily_rows,
        };
        self.daily_pages(daily, id, first, last, |end| {
            vec![
                ("AUTH", String::new()),
                ("EXCD", exchange.to_string()),
                ("SYMB", id.symbol().to_string()),
                ("GUBN", "0".to_string()),
                ("BYMD", ymd(end)),
                ("MODP", "1".to_string()),
                ("KEYB", String::new()),
            ]
        })
        .await
    }

    /// Both daily TRs answer at most `DAILY_ROWS` days, newest first, ending at the asked day:
    /// pages are asked from `last` backwards until a short page or `first`.
    async fn daily_pages(
        &self,
        daily: DailyTr,
        id: &InstrumentId,
        first: NaiveDate,
        last: NaiveDate,
        query: impl Fn(NaiveDate) -> Vec<(&'static str, String)>,
    ) -> Result<Vec<DailyCandle>, KisError> {
        let mut collected = Vec::new();
        let mut end = last;
        while end >= first {
            let reply = self.rest.call(daily.path, daily.tr, &query(end)).await?;
            let page = (daily.rows)(&reply, id);
            let full = page.len() >= DAILY_ROWS;
            let oldest = page.iter().map(|c| c.day).min();
            collected.extend(page);
            match oldest.and_then(|day| day.pred_opt()) {
                Some(before) if full && before < end => end = before,
                _ => break,
            }
        }
        Ok(collected)
    }

    /// One Korean trading day's minutes at or before `until` (Korean time of day), back to
    /// `from`: today from the intraday TR, earlier days from the daily-minutes TR.
    async fn domestic_day_minutes(
        &self,
        id: &InstrumentId,
        day: NaiveDate,
        from: Timestamp,
        until: NaiveTime,
        today: bool,
    ) -> Result<Vec<Candle>, KisError> {
        let (path, tr, page_rows) = if today {
            (
                DOMESTIC_TODAY_MINUTES_PATH,
                DOMESTIC_TODAY_MINUTES_TR,
                TODAY_MINUTE_ROWS,
            )
        } else {
            (
                DOMESTIC_DAY_MINUTES_PATH,
                DOMESTIC_DAY_MINUTES_TR,
                DAY_MINUTE_ROWS,
            )
        };
        let mut collected = Vec::new();
        let mut anchor = until;
        loop {
            let mut query = vec![
                ("FID_COND_MRKT_DIV_CODE", "J".to_string()),
                ("FID_INPUT_ISCD", id.symbol().to_string()),
                ("FID_INPUT_HOUR_1", anchor.format("%H%M%S").to_string()),
                ("FID_PW_DATA_INCU_YN", "Y".to_string()),
            ];
            if today {
                query.push(("FID_ETC_CLS_CODE", String::new()));
            } else {
                query.push(("FID_INPUT_DATE_1", ymd(day)));
                query.push(("FID_FAKE_TICK_INCU_YN", String::new()));
            }
            let reply = self.rest.call(path, tr, &query).await?;
            // Rows of other days (`PW_DATA_INCU_YN` = Y may reach back) belong to their own call.
            let page: Vec<Candle> = domestic_minute_rows(&reply, id, tr)
                .into_iter()
                .filter(|c| c.minute.with_timezone(&kst()).date_naive() == day)
                .collect();
            let full = page.len() >= page_rows;
            let oldest = page.iter().map(|c| c.minute).min();
            collected.extend(page.into_iter().filter(|c| c.minute >= from));
            let next = oldest
                .filter(|oldest| full && *oldest > from)
                .map(|oldest| {
                    (oldest - chrono::Duration::minutes(1))
                        .with_timezone(&kst())
                        .time()
                });
            match next {
                Some(earlier) if earlier < anchor => anchor = earlier,
                _ => break,
            }
        }
        Ok(collected)
    }

    async fn domestic_minutes(
        &self,
        id: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Candle>, KisError> {
        let local = |at: Timestamp| at.with_timezone(&kst());
        let today = local((self.config.now)()).date_naive();
        // The last minute wanted is the one before `to`.
        let last = to - chrono::Duration::minutes(1);
        let mut collected = Vec::new();
        let mut day = local(from).date_naive();
        while day <= local(last).date_naive() && day <= today {
            if self.calendar.hours_on(Exchange::Krx, day).is_some() {
                let until = if day == local(last).date_naive() {
                    local(last).time()
                } else {
                    // After the close and its single-price auction.
                    NaiveTime::from_hms_opt(16, 0, 0).unwrap_or_default()
                };
                let minutes = self
                    .domestic_day_minutes(id, day, from, until, day == today)
                    .await?;
                collected.extend(minutes);
            }
            day = day + Days::new(1);
        }
        Ok(collected)
    }

    async fn overseas_minutes(
        &self,
        id: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Candle>, KisError> {
        let exchange =
            us_exchange_code(id.market()).ok_or_else(|| KisError::NotServed(id.clone()))?;
        let zone = id.market().time_zone();
        let key = |at: Timestamp| at.with_timezone(&zone).format("%Y%m%d%H%M%S").to_string();
        // From the newest minute unless `to` lies in the past, then from just before it.
        let mut next_key = (to < (self.config.now)() - chrono::Duration::minutes(1))
            .then(|| key(to - chrono::Duration::minutes(1)));
        let mut collected = Vec::new();
        loop {
            let query = [
                ("AUTH", String::new()),
                ("EXCD", exchange.to_string()),
                ("SYMB", id.symbol().to_string()),
                ("NMIN", "1".to_string()),
                ("PINC", "1".to_string()),
                (
                    "NEXT",
                    if next_key.is_some() { "1" } else { "" }.to_string(),
                ),
                ("NREC", OVERSEAS_MINUTE_ROWS.to_string()),
                ("FILL", String::new()),
                ("KEYB", next_key.clone().unwrap_or_default()),
            ];
            let reply = self
                .rest
                .call(OVERSEAS_MINUTES_PATH, OVERSEAS_MINUTES_TR, &query)
                .await?;
            let page = overseas_minute_rows(&reply, id);
            let more = reply
                .get("output1")
                .and_then(|o| o.get("next"))
                .and_then(Value::as_str)
                == Some("1");
            let oldest = page.iter().map(|c| c.minute).min();
            collected.extend(
                page.into_iter()
                    .filter(|c| c.minute >= from && c.minute < to),
            );
            let before = oldest
                .filter(|oldest| more && *oldest > from)
                .map(|oldest| key(oldest - chrono::Duration::minutes(1)));
            match before {
                Some(earlier) if Some(&earlier) != next_key.as_ref() => next_key = Some(earlier),
                _ => break,
            }
        }
        Ok(collected)
    }
}

fn oldest_first<T>(mut candles: Vec<T>, key: impl Fn(&T) -> NaiveDateTime) -> Vec<T> {
    candles.sort_by_key(|c| key(c));
    candles.dedup_by_key(|c| key(c));
    candles
}

#[async_trait]
impl CandleHistory for KisFeed {
    fn serves(&self, market: Market) -> bool {
        Exchange::of(market).is_some()
    }

    async fn minute_candles(
        &self,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Candle>, HistoryError> {
        let candles = match instrument.market() {
            Market::Krx => self.domestic_minutes(instrument, from, to).await,
            Market::Nasdaq | Market::Nyse | Market::Amex => {
                self.overseas_minutes(instrument, from, to).await
            }
            Market::Upbit => return Err(HistoryError::NotServed(instrument.clone())),
        }
        .map_err(history_error)?;
        let in_range = candles
            .into_iter()
            .filter(|c| c.minute >= from && c.minute < to)
            .collect();
        Ok(oldest_first(in_range, |c| c.minute.naive_utc()))
    }

    async fn daily_candles(
        &self,
        instrument: &InstrumentId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DailyCandle>, HistoryError> {
        let candles = match instrument.market() {
            Market::Krx => self.domestic_daily(instrument, first, last).await,
            Market::Nasdaq | Market::Nyse | Market::Amex => {
                self.overseas_daily(instrument, first, last).await
            }
            Market::Upbit => return Err(HistoryError::NotServed(instrument.clone())),
        }
        .map_err(history_error)?;
        let in_range = candles
            .into_iter()
            .filter(|c| c.day >= first && c.day <= last)
            .collect();
        Ok(oldest_first(in_range, |c| c.day.and_time(NaiveTime::MIN)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use signal_exchange_fakes::kis::{
        DOMESTIC_DAILY_REPLY, DOMESTIC_MINUTE_REPLY, OVERSEAS_DAILY_REPLY, OVERSEAS_MINUTE_REPLY,
    };

    fn reply(text: &str) -> Row {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn domestic_daily_rows_keep_the_days_prices() {
        let samsung = "KRX:005930".parse().unwrap();
        let candles = domestic_daily_rows(&reply(DOMESTIC_DAILY_REPLY), &samsung);
        let first = &candles[0];
        assert_eq!(first.day, NaiveDate::from_ymd_opt(2026, 8, 20).unwrap());
        assert_eq!(first.open.value(), dec!(257000));
        assert_eq!(first.high.value(), dec!(273000));
        assert_eq!(first.low.value(), dec!(252500));
        assert_eq!(first.close.value(), dec!(271000));
        assert_eq!(first.volume, dec!(26095919));
    }

    #[test]
    fn overseas_daily_rows_keep_every_digit() {
        let tesla = "NASDAQ:TSLA".parse().unwrap();
        let candles = overseas_daily_rows(&reply(OVERSEAS_DAILY_REPLY), &tesla);
        assert_eq!(candles[0].day, NaiveDate::from_ymd_opt(2022, 4, 6).unwrap());
        assert_eq!(candles[0].close.value(), dec!(1045.76));
        assert_eq!(candles[0].low.value(), dec!(1027.7));
        assert_eq!(candles[0].volume, dec!(29782845));
    }

    #[test]
    fn minute_rows_are_read_in_korean_time() {
        let tesla = "NASDAQ:TSLA".parse().unwrap();
        let candles = overseas_minute_rows(&reply(OVERSEAS_MINUTE_REPLY), &tesla);
        // kymd 20240223 khms 060000 KST is 21:00 UTC the day before (16:00 in New York).
        assert_eq!(candles[0].minute.to_rfc3339(), "2024-02-22T21:00:00+00:00");
        assert_eq!(candles[0].close.value(), dec!(197.41));
        let samsung = "KRX:005930".parse().unwrap();
        let candles = domestic_minute_rows(&reply(DOMESTIC_MINUTE_REPLY), &samsung, "test");
        assert!(candles
            .iter()
            .all(|c| c.minute.with_timezone(&kst()).date_naive()
                == NaiveDate::from_ymd_opt(2026, 8, 20).unwrap()));
    }

    #[test]
    fn padding_rows_and_unreadable_rows_are_left_out() {
        let samsung = "KRX:005930".parse().unwrap();
        let padded = reply(
            r#"{"rt_cd":"0","output2":[{"stck_bsop_date":"","stck_oprc":""},{"stck_bsop_date":"20260820","stck_oprc":"abc","stck_hgpr":"1","stck_lwpr":"1","stck_clpr":"1","acml_vol":"1"}]}"#,
        );
        assert!(domestic_daily_rows(&padded, &samsung).is_empty());
    }
}
