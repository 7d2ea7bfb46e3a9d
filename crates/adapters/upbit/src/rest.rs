//! Upbit's quotation REST API: the market list and ticker snapshots. Upbit counts requests per IP
//! and group (10/s) and answers an excess with 429, then with a growing 418 block if the client keeps
//! going; so every request here passes one gate that paces it, honours `Remaining-Req`, and after a
//! 429 backs off before anything else is sent.

use crate::parse::{
    parse_day_candles, parse_error_body, parse_market_list, parse_minute_candles,
    parse_remaining_req, parse_rest_tickers, ParseError,
};
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use signal_domain::{Instrument, Tick, Timestamp};
use signal_ports::{Candle, DailyCandle};
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::{sleep_until, Instant};

/// How many 429 answers in a row one request sits out before it gives up.
const MAX_THROTTLED_ATTEMPTS: usize = 6;
/// When `Remaining-Req` says no calls are left this second, the next one waits this long.
const SECOND: Duration = Duration::from_secs(1);
/// A request that has not completed by then is treated as failed rather than left to hang a snapshot.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A candle request's `to`: ISO 8601 in UTC, its colons escaped for the query string.
fn candle_time(at: Timestamp) -> String {
    at.format("%Y-%m-%dT%H%%3A%M%%3A%SZ").to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("request to {url} failed")]
    Http { url: String, source: reqwest::Error },
    #[error("Upbit kept answering 429 Too Many Requests ({0} attempts)")]
    RateLimited(usize),
    #[error("Upbit answered {status}: {detail}")]
    Status { status: StatusCode, detail: String },
    #[error("Upbit's answer could not be understood")]
    Parse(#[from] ParseError),
}

/// When the next request may go, shared by every request of one client.
struct Gate {
    not_before: Option<Instant>,
    /// The back-off of the current run of 429s; `None` once a request succeeds.
    throttled: Option<ExponentialBackoff>,
}

pub(crate) struct RestClient {
    http: reqwest::Client,
    base_url: String,
    pace: DefaultDirectRateLimiter,
    backoff: ExponentialBuilder,
    gate: Mutex<Gate>,
}

impl RestClient {
    pub(crate) fn new(
        base_url: &str,
        requests_per_second: u32,
        backoff: ExponentialBuilder,
    ) -> Self {
        let rate = NonZeroU32::new(requests_per_second).unwrap_or(NonZeroU32::MIN);
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_string(),
            // A burst of one: Upbit's window is one second, and a full bucket released at once
            // could land in the same second as the previous requests.
            pace: RateLimiter::direct(Quota::per_second(rate).allow_burst(NonZeroU32::MIN)),
            backoff,
            gate: Mutex::new(Gate {
                not_before: None,
                throttled: None,
            }),
        }
    }

    /// The KRW markets with their names and warning flags.
    pub(crate) async fn instruments(&self) -> Result<Vec<Instrument>, RestError> {
        let body = self.get("/v1/market/all?is_details=true").await?;
        Ok(parse_market_list(&body)?)
    }

    /// The current ticker of `markets`, `batch` markets per request. Each element is parsed on its
    /// own so one odd entry does not hide the rest.
    pub(crate) async fn tickers(
        &self,
        markets: &[String],
        batch: usize,
    ) -> Result<Vec<Result<Tick, ParseError>>, RestError> {
        let mut results = Vec::with_capacity(markets.len());
        for chunk in markets.chunks(batch.max(1)) {
            let body = self
                .get(&format!("/v1/ticker?markets={}", chunk.join(",")))
                .await?;
            results.extend(parse_rest_tickers(&body, chrono::Utc::now())?);
        }
        Ok(results)
    }

    /// Up to `count` one-minute candles of `market` that start before `to`, newest first.
    pub(crate) async fn minute_candles(
        &self,
        market: &str,
        to: Timestamp,
        count: usize,
    ) -> Result<Vec<Result<Candle, ParseError>>, RestError> {
        let body = self
            .get(&format!(
                "/v1/candles/minutes/1?market={market}&to={}&count={count}",
                candle_time(to)
            ))
            .await?;
        Ok(parse_minute_candles(&body)?)
    }

    /// Up to `count` daily candles of `market` whose (UTC) day starts before `to`, newest first.
    pub(crate) async fn day_candles(
        &self,
        market: &str,
        to: Timestamp,
        count: usize,
    ) -> Result<Vec<Result<DailyCandle, ParseError>>, RestError> {
        let body = self
            .get(&format!(
                "/v1/candles/days?market={market}&to={}&count={count}",
                candle_time(to)
            ))
            .await?;
        Ok(parse_day_candles(&body)?)
    }

    /// GETs `path_and_query`, holding the gate for the whole exchange so that no request is in
    /// flight while an earlier one's 429 is being learned.
    async fn get(&self, path_and_query: &str) -> Result<String, RestError> {
        let url = format!("{}{}", self.base_url, path_and_query);
        let mut gate = self.gate.lock().await;
        for _ in 0..MAX_THROTTLED_ATTEMPTS {
            if let Some(when) = gate.not_before.take() {
                sleep_until(when).await;
            }
            self.pace.until_ready().await;
            let response = self
                .http
                .get(&url)
                .header("accept", "application/json")
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await
                .map_err(|source| RestError::Http {
                    url: url.clone(),
                    source,
                })?;
            let remaining = response
                .headers()
                .get("remaining-req")
                .and_then(|value| value.to_str().ok())
                .and_then(parse_remaining_req);
            if remaining.is_some_and(|r| r.sec == 0) {
                gate.not_before = Some(Instant::now() + SECOND);
            }
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::IM_A_TEAPOT {
                let backoff = &self.backoff;
                let delay = gate
                    .throttled
                    .get_or_insert_with(|| backoff.build())
                    .next()
                    .unwrap_or(SECOND);
                tracing::warn!(%url, %status, ?delay, "Upbit is throttling; backing off");
                gate.not_before = Some(Instant::now() + delay);
                if status == StatusCode::IM_A_TEAPOT {
                    // Blocked: retrying now would only lengthen the block.
                    return Err(RestError::Status {
                        status,
                        detail: "418: this IP is temporarily blocked".into(),
                    });
                }
                continue;
            }
            gate.throttled = None;
            let body = response.text().await.map_err(|source| RestError::Http {
                url: url.clone(),
                source,
            })?;
            if !status.is_success() {
                let detail = parse_error_body(&body)
                    .map(|e| format!("{}: {}", e.name, e.message))
                    .unwrap_or(body);
                return Err(RestError::Status { status, detail });
            }
            return Ok(body);
        }
        Err(RestError::RateLimited(MAX_THROTTLED_ATTEMPTS))
    }
}
