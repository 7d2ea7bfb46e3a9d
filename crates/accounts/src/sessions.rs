//! Sessions that ended before their tokens expire, as every instance of both services sees them.
//!
//! A session's token is a JWT valid until the session expires; each service verifies it on its
//! own, with no database. Ending a session early (sign-out, a password change, "sign out that
//! device") records its id in the shared cache until the moment its token would have expired, and
//! every service refuses a token whose session is recorded there. The database stays the record
//! of truth: the cache can be emptied (a Redis restart without persistence), so the Alert Service
//! notices an emptied cache and writes the ended sessions back
//! ([`EndedSessions::needs_restoring`]).

use signal_domain::Timestamp;
use signal_ports::{CacheError, SharedCache};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A sign-in session: random, so it cannot be guessed from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(Uuid);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session id")]
pub struct SessionIdError;

impl SessionId {
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl FromStr for SessionId {
    type Err = SessionIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| SessionIdError)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Set while the cache holds every ended session; its absence means the cache was emptied.
const RESTORED_MARKER: &str = "accounts:ended-sessions-restored";

#[derive(Clone)]
pub struct EndedSessions {
    cache: Arc<dyn SharedCache>,
}

impl EndedSessions {
    pub fn new(cache: Arc<dyn SharedCache>) -> Self {
        Self { cache }
    }

    fn key(id: SessionId) -> String {
        format!("accounts:ended-session:{id}")
    }

    /// Records that `id` ended; kept until `token_expires_at`, after which its token is refused
    /// anyway.
    pub async fn record(
        &self,
        id: SessionId,
        token_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), CacheError> {
        let Ok(remaining) = (token_expires_at - now).to_std() else {
            return Ok(()); // already expired
        };
        // Rounded up, so the record outlives the token by at most a second rather than expiring
        // just before it.
        let ttl = Duration::from_secs(remaining.as_secs() + 1);
        self.cache.set(&Self::key(id), "", ttl).await
    }

    pub async fn has_ended(&self, id: SessionId) -> Result<bool, CacheError> {
        Ok(self.cache.get(&Self::key(id)).await?.is_some())
    }

    /// True once after the cache starts empty or is emptied, to the one caller that must then
    /// write the ended sessions back. `horizon` is the longest a session lives: after it, every
    /// session recorded before has expired, so restoring again is harmless.
    pub async fn needs_restoring(&self, horizon: Duration) -> Result<bool, CacheError> {
        self.cache.claim(RESTORED_MARKER, horizon).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_memory::MemorySharedCache;

    #[tokio::test(start_paused = true)]
    async fn an_ended_session_is_remembered_until_its_token_expires() {
        let sessions = EndedSessions::new(Arc::new(MemorySharedCache::default()));
        let id = SessionId::random();
        let now = chrono::Utc::now();
        assert!(!sessions.has_ended(id).await.unwrap());
        sessions
            .record(id, now + chrono::Duration::seconds(60), now)
            .await
            .unwrap();
        assert!(sessions.has_ended(id).await.unwrap());
        assert!(!sessions.has_ended(SessionId::random()).await.unwrap());
        tokio::time::advance(Duration::from_secs(62)).await;
        assert!(!sessions.has_ended(id).await.unwrap());
    }

    #[tokio::test]
    async fn restoring_is_asked_of_one_caller() {
        let sessions = EndedSessions::new(Arc::new(MemorySharedCache::default()));
        let horizon = Duration::from_secs(3600);
        assert!(sessions.needs_restoring(horizon).await.unwrap());
        assert!(!sessions.needs_restoring(horizon).await.unwrap());
    }

    #[test]
    fn ids_round_trip_as_text() {
        let id = SessionId::random();
        assert_eq!(id.to_string().parse::<SessionId>(), Ok(id));
        assert_eq!("nope".parse::<SessionId>(), Err(SessionIdError));
    }
}
