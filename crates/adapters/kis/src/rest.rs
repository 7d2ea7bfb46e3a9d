//! KIS's REST calls: current prices (for instruments without a stream and for the snapshot that
//! covers a reconnect gap) and the chart history. KIS meters REST calls per second per app key
//! and answers excess with EGW00201 (usually as HTTP 500), so every call passes one token bucket
//! and that answer is retried after a back-off rather than treated as a failure.

use crate::auth::Auth;
use crate::venue::{rest_query, venue_of};
use crate::{Credentials, KisError};
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::{Map, Value};
use signal_domain::{InstrumentId, Tick};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// EGW00201 retries per call; the back-off doubles each time.
const BUSY_RETRIES: u32 = 4;

pub(crate) struct Rest {
    http: reqwest::Client,
    rest_url: String,
    credentials: Credentials,
    custtype: String,
    auth: Arc<Auth>,
    limiter: DefaultDirectRateLimiter,
    busy_backoff: Duration,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    rt_cd: String,
    #[serde(default)]
    msg_cd: String,
    #[serde(default)]
    msg1: String,
    /// Gateway errors (EGW00121) come OAuth-shaped, with these instead of msg_cd/msg1.
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    error_description: String,
}

impl Rest {
    pub fn new(
        http: reqwest::Client,
        rest_url: &str,
        credentials: Credentials,
        custtype: String,
        auth: Arc<Auth>,
        per_second: u32,
        busy_backoff: Duration,
    ) -> Self {
        // A burst of one spaces the calls evenly: back-to-back calls trip EGW00201 even under
        // the per-second budget.
        let quota = Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Self {
            http,
            rest_url: rest_url.trim_end_matches('/').to_string(),
            credentials,
            custtype,
            auth,
            limiter: RateLimiter::direct(quota),
            busy_backoff,
        }
    }

    /// The current price of `id`.
    pub async fn quote(&self, id: &InstrumentId) -> Result<Tick, KisError> {
        let venue = venue_of(id.market()).ok_or_else(|| KisError::NotServed(id.clone()))?;
        let reply = self
            .call(venue.rest_path, venue.rest_tr_id, &rest_query(id))
            .await?;
        let output =
            reply
                .get("output")
                .and_then(Value::as_object)
                .ok_or(KisError::Incomplete {
                    what: venue.rest_tr_id,
                    missing: "output",
                })?;
        let tick = venue.rest.tick(
            id.clone(),
            |key| output.get(key).and_then(Value::as_str),
            Utc::now(),
        )?;
        Ok(tick)
    }

    /// GETs `path` as `tr_id` with `query`, within the per-second budget, and returns the whole
    /// successful reply (`rt_cd` "0"). EGW00201 (too many calls this second) is waited out with a
    /// doubling back-off; an expired or invalid token is replaced once per call.
    pub async fn call(
        &self,
        path: &str,
        tr_id: &'static str,
        query: &[(&'static str, String)],
    ) -> Result<Map<String, Value>, KisError> {
        let mut token_replaced = false;
        let mut busy = 0;
        loop {
            self.limiter.until_ready().await;
            let token = self.auth.access_token().await?;
            let response = self
                .http
                .get(format!("{}{}", self.rest_url, path))
                .query(query)
                .header("content-type", "application/json; charset=utf-8")
                .header("authorization", format!("Bearer {token}"))
                .header("appkey", &self.credentials.app_key)
                .header("appsecret", &self.credentials.app_secret)
                .header("tr_id", tr_id)
                .header("custtype", &self.custtype)
                .send()
                .await?;
            let text = response.text().await?;
            let mut reply: Reply =
                serde_json::from_str(&text).map_err(|source| KisError::Unreadable {
                    what: tr_id,
                    source,
                })?;
            if reply.msg_cd.is_empty() {
                reply.msg_cd = std::mem::take(&mut reply.error_code);
                reply.msg1 = std::mem::take(&mut reply.error_description);
            }
            match reply.msg_cd.as_str() {
                "EGW00201" if busy < BUSY_RETRIES => {
                    tokio::time::sleep(self.busy_backoff * 2u32.pow(busy)).await;
                    busy += 1;
                    continue;
                }
                "EGW00123" | "EGW00121" if !token_replaced => {
                    tracing::info!(code = %reply.msg_cd, "KIS rejected the access token; replacing it");
                    self.auth.invalidate(&token).await?;
                    token_replaced = true;
                    continue;
                }
                _ => {}
            }
            if reply.rt_cd != "0" {
                return Err(KisError::Api {
                    code: reply.msg_cd,
                    message: reply.msg1,
                });
            }
            return serde_json::from_str(&text).map_err(|source| KisError::Unreadable {
                what: tr_id,
                source,
            });
        }
    }
}
