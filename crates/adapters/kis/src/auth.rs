//! KIS credentials are expensive to mint: an access token may be issued once a minute per app
//! key (EGW00133 otherwise) and every issuance sends the account owner a KakaoTalk message. So
//! tokens live in the shared cache, keyed by a hash of the app key, and are shared by every
//! instance; only the instance holding the issue claim asks KIS for a new one.

use crate::venue::kst;
use crate::{Credentials, KisError};
use chrono::{NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use signal_feed_metrics::SourceMetrics;
use signal_ports::SharedCache;
use std::sync::Arc;
use std::time::Duration;

/// Renew this long before KIS says a token expires, so no request carries a dying token.
const RENEW_BEFORE: Duration = Duration::from_secs(10 * 60);
/// KIS states no expiry for approval keys beyond "24 hours"; renew well inside it.
const APPROVAL_KEY_LIFETIME: Duration = Duration::from_secs(20 * 3600);

pub(crate) struct Auth {
    http: reqwest::Client,
    rest_url: String,
    credentials: Credentials,
    cache: Arc<dyn SharedCache>,
    metrics: SourceMetrics,
    /// `kis:<hash of the app key>`: per app key, without putting the key itself in the cache.
    prefix: String,
    issue_interval: Duration,
    token_wait: Duration,
}

#[derive(Serialize, Deserialize)]
struct CachedToken {
    token: String,
    expires_at: chrono::DateTime<Utc>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    /// KST wall clock; trusted over `expires_in`, which has been seen wrong.
    access_token_token_expired: Option<String>,
    expires_in: Option<i64>,
    error_code: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct ApprovalReply {
    approval_key: Option<String>,
}

/// When a token expires: the KST wall clock KIS states, else `expires_in` from now.
fn stated_expiry(reply: &TokenReply) -> Option<chrono::DateTime<Utc>> {
    let stated = reply
        .access_token_token_expired
        .as_deref()
        .and_then(|text| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok())
        .and_then(|local| kst().from_local_datetime(&local).single());
    match stated {
        Some(at) => Some(at.to_utc()),
        None => Some(Utc::now() + chrono::Duration::seconds(reply.expires_in?)),
    }
}

impl Auth {
    pub fn new(
        http: reqwest::Client,
        rest_url: &str,
        credentials: Credentials,
        cache: Arc<dyn SharedCache>,
        metrics: SourceMetrics,
        issue_interval: Duration,
        token_wait: Duration,
    ) -> Self {
        let hash = format!("{:x}", Sha256::digest(credentials.app_key.as_bytes()));
        Self {
            http,
            rest_url: rest_url.trim_end_matches('/').to_string(),
            prefix: format!("kis:{}", &hash[..16]),
            credentials,
            cache,
            metrics,
            issue_interval,
            token_wait,
        }
    }

    fn token_key(&self) -> String {
        format!("{}:access-token", self.prefix)
    }

    /// A valid access token: the shared one, or a new one if this instance wins the issue claim.
    /// Losers (and an instance KIS refused with EGW00133) wait for the winner's token to appear.
    pub async fn access_token(&self) -> Result<String, KisError> {
        // Two claim windows: time for the claim holder to issue, or for its claim to lapse.
        let give_up = tokio::time::Instant::now() + self.issue_interval * 2;
        while tokio::time::Instant::now() < give_up {
            if let Some(token) = self.cached_token().await? {
                return Ok(token);
            }
            let claim = format!("{}:token-issue", self.prefix);
            if self.cache.claim(&claim, self.issue_interval).await? {
                match self.issue_token().await {
                    Ok(token) => return Ok(token),
                    Err(KisError::Api { code, .. }) if code == "EGW00133" => {
                        tracing::warn!("KIS refused a token issuance as too frequent; waiting for the shared token");
                    }
                    Err(error) => return Err(error),
                }
            }
            tokio::time::sleep(self.token_wait).await;
        }
        Err(KisError::TokenUnavailable)
    }

    async fn cached_token(&self) -> Result<Option<String>, KisError> {
        let Some(raw) = self.cache.get(&self.token_key()).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_str::<CachedToken>(&raw)
            .ok()
            .filter(|cached| cached.expires_at > Utc::now() && !cached.token.is_empty())
            .map(|cached| cached.token))
    }

    async fn issue_token(&self) -> Result<String, KisError> {
        let body = serde_json::json!({
            "grant_type": "client_credentials",
            "appkey": self.credentials.app_key,
            "appsecret": self.credentials.app_secret,
        });
        let response = self
            .http
            .post(format!("{}/oauth2/tokenP", self.rest_url))
            .json(&body)
            .send()
            .await?;
        let reply: TokenReply =
            serde_json::from_str(&response.text().await?).map_err(|source| {
                KisError::Unreadable {
                    what: "token reply",
                    source,
                }
            })?;
        let Some(token) = reply.access_token.clone().filter(|t| !t.is_empty()) else {
            return Err(KisError::Api {
                code: reply.error_code.unwrap_or_default(),
                message: reply.error_description.unwrap_or_default(),
            });
        };
        self.metrics.token_issuances.inc();
        let expires_at = stated_expiry(&reply).ok_or(KisError::Incomplete {
            what: "token reply",
            missing: "expiry",
        })?;
        let renew_at = expires_at - chrono::Duration::from_std(RENEW_BEFORE).unwrap_or_default();
        let ttl = (renew_at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let cached = CachedToken {
            token: token.clone(),
            expires_at: renew_at,
        };
        if !ttl.is_zero() {
            let value = serde_json::to_string(&cached).map_err(|source| KisError::Unreadable {
                what: "token to cache",
                source,
            })?;
            self.cache.set(&self.token_key(), &value, ttl).await?;
        }
        tracing::info!(%expires_at, "issued a KIS access token");
        Ok(token)
    }

    /// Forgets `token` after KIS called it expired (EGW00123) or invalid (EGW00121), unless
    /// another instance has already replaced it.
    pub async fn invalidate(&self, token: &str) -> Result<(), KisError> {
        if self.cached_token().await?.as_deref() == Some(token) {
            // The port has no delete; an entry expiring at once is the same.
            self.cache
                .set(&self.token_key(), "", Duration::from_millis(1))
                .await?;
        }
        Ok(())
    }

    /// The key that authorises WebSocket subscriptions.
    pub async fn approval_key(&self) -> Result<String, KisError> {
        let cache_key = format!("{}:approval-key", self.prefix);
        if let Some(key) = self.cache.get(&cache_key).await?.filter(|k| !k.is_empty()) {
            return Ok(key);
        }
        let body = serde_json::json!({
            "grant_type": "client_credentials",
            "appkey": self.credentials.app_key,
            // The same secret, under another name than tokenP's.
            "secretkey": self.credentials.app_secret,
        });
        let response = self
            .http
            .post(format!("{}/oauth2/Approval", self.rest_url))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let reply: ApprovalReply =
            serde_json::from_str(&response.text().await?).map_err(|source| {
                KisError::Unreadable {
                    what: "approval reply",
                    source,
                }
            })?;
        let key = reply
            .approval_key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| KisError::Api {
                code: status.to_string(),
                message: "no approval_key in the reply".into(),
            })?;
        self.metrics.token_issuances.inc();
        self.cache
            .set(&cache_key, &key, APPROVAL_KEY_LIFETIME)
            .await?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stated_kst_expiry_wins_over_expires_in() {
        let reply: TokenReply = serde_json::from_str(
            r#"{"access_token":"eyJ0eXAiOi...","access_token_token_expired":"2023-12-22 08:16:59","token_type":"Bearer","expires_in":4000}"#,
        )
        .unwrap();
        assert_eq!(
            stated_expiry(&reply),
            Some(Utc.with_ymd_and_hms(2023, 12, 21, 23, 16, 59).unwrap())
        );
    }

    #[test]
    fn without_a_stated_expiry_expires_in_counts_from_now() {
        let reply: TokenReply =
            serde_json::from_str(r#"{"access_token":"t","expires_in":86400}"#).unwrap();
        let expiry = stated_expiry(&reply).unwrap();
        assert!(expiry > Utc::now() + chrono::Duration::hours(23));
    }
}
