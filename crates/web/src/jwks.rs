//! The public keys of an identity provider, read from its JWKS URL, for tokens it signs with
//! RS256 or ES256.
//!
//! The set is fetched when first needed and kept for `max_age`; an older set is fetched again
//! before use, so a key the provider has removed stops working within `max_age`. A token naming a
//! key (`kid`) the set does not hold makes the set be fetched at once, so a key the provider has
//! just added works on its first token; such fetches happen at most once per
//! `min_refresh_interval`, however many tokens name unknown keys, so forged `kid`s cannot make
//! this service hammer the provider. While the provider cannot be reached, the last set it served
//! stays in use.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use signal_domain::ErrorChain;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// The largest key set read from the provider; real ones are a few kilobytes.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The longest a fetch of the key set may take, connecting included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the identity provider publishes its keys, and how long they are trusted unchecked.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    pub url: String,
    /// A set older than this is fetched again before it is used.
    pub max_age: Duration,
    /// Fetches caused by unknown keys or an old set happen at most this often.
    pub min_refresh_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("`{0}` is not an http(s) URL")]
    BadUrl(String),
    #[error("building the HTTP client for the key set failed")]
    Client(#[source] reqwest::Error),
    #[error("fetching the key set from {url} failed")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the key set at {url} is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge { url: String },
    #[error("the document at {url} is not a JWK set")]
    NotAKeySet {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Why no key was found for a token.
#[derive(Debug)]
pub(crate) enum KeyMiss {
    /// The provider's current set has no key for it.
    Unknown,
    /// The set could not be fetched (and the one in hand, if any, has no key for it).
    Unavailable,
}

/// The identity provider's signing keys, cached.
pub struct Jwks {
    config: JwksConfig,
    url: reqwest::Url,
    client: reqwest::Client,
    current: RwLock<Option<Arc<KeySet>>>,
    /// When the set was last fetched (or tried); held while fetching, so one fetch runs at once.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

struct KeySet {
    keys: Vec<SigningKey>,
    fetched_at: Instant,
}

struct SigningKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: Arc<DecodingKey>,
}

enum Refresh {
    Fetched(Arc<KeySet>),
    /// Fetched moments ago: the set in hand is as new as the rate of fetches allows.
    Skipped(Option<Arc<KeySet>>),
    Failed(Option<Arc<KeySet>>),
}

#[derive(serde::Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// The key for a token signed with `algorithm`: the one named `kid`, or, for a token that
    /// names none, the set's only key for that algorithm.
    fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<Arc<DecodingKey>> {
        let mut candidates = self.keys.iter().filter(|k| k.algorithm == algorithm);
        let found = match kid {
            Some(kid) => candidates.find(|k| k.kid.as_deref() == Some(kid)),
            None => match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            },
        };
        found.map(|k| k.key.clone())
    }
}

impl Jwks {
    pub fn new(config: JwksConfig) -> Result<Self, JwksError> {
        let url = reqwest::Url::parse(&config.url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| JwksError::BadUrl(config.url.clone()))?;
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(JwksError::Client)?;
        Ok(Self {
            config,
            url,
            client,
            current: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    /// The key that verifies a token signed with `algorithm` by the key `kid`.
    pub(crate) async fn key(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Arc<DecodingKey>, KeyMiss> {
        if let Some(set) = self.current() {
            if set.fetched_at.elapsed() < self.config.max_age {
                if let Some(key) = set.find(kid, algorithm) {
                    return Ok(key);
                }
            }
        }
        let (set, failed) = match self.refresh().await {
            Refresh::Fetched(set) => (Some(set), false),
            Refresh::Skipped(set) => (set, false),
            Refresh::Failed(set) => (set, true),
        };
        match set.and_then(|set| set.find(kid, algorithm)) {
            Some(key) => Ok(key),
            None if failed => Err(KeyMiss::Unavailable),
            None => Err(KeyMiss::Unknown),
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn refresh(&self) -> Refresh {
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.is_some_and(|at| at.elapsed() < self.config.min_refresh_interval) {
            return match self.current() {
                Some(set) => Refresh::Skipped(Some(set)),
                // The last try failed moments ago.
                None => Refresh::Failed(None),
            };
        }
        *last_fetch = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                let set = Arc::new(set);
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(set.clone());
                Refresh::Fetched(set)
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "the identity provider's keys could not be fetched");
                Refresh::Failed(self.current())
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let url = || self.config.url.clone();
        let fetch_error = |source| JwksError::Fetch { url: url(), source };
        let mut response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(fetch_error)?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fetch_error)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge { url: url() });
            }
            body.extend_from_slice(&chunk);
        }
        let raw: RawKeySet = serde_json::from_slice(&body)
            .map_err(|source| JwksError::NotAKeySet { url: url(), source })?;
        // A set may hold keys of kinds this service does not take (encryption keys, other
        // curves): those are passed over, not a reason to refuse the others.
        let keys: Vec<SigningKey> = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| signing_key(&jwk))
            .collect();
        tracing::debug!(keys = keys.len(), url = %self.config.url, "fetched the identity provider's keys");
        Ok(KeySet {
            keys,
            fetched_at: Instant::now(),
        })
    }
}

/// A key that signs RS256 (RSA) or ES256 (P-256) tokens; None for any other key.
fn signing_key(jwk: &Jwk) -> Option<SigningKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(SigningKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key: Arc::new(key),
    })
}
