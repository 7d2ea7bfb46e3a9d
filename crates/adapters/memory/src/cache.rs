//! Shared cache for a single process: the same contract as Redis's `SET ... PX` and
//! `SET ... NX PX`, enough when one instance is all there is.

use async_trait::async_trait;
use signal_ports::{CacheError, SharedCache};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Default)]
pub struct MemorySharedCache {
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

impl MemorySharedCache {
    fn with_live_entries<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, (String, Instant)>) -> T,
    ) -> T {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        entries.retain(|_, (_, expires)| *expires > now);
        f(&mut entries)
    }
}

#[async_trait]
impl SharedCache for MemorySharedCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        Ok(self.with_live_entries(|e| e.get(key).map(|(v, _)| v.clone())))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        self.with_live_entries(|e| {
            e.insert(key.to_string(), (value.to_string(), Instant::now() + ttl));
        });
        Ok(())
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        Ok(self.with_live_entries(|e| {
            if e.contains_key(key) {
                return false;
            }
            e.insert(key.to_string(), (String::new(), Instant::now() + ttl));
            true
        }))
    }

    async fn lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, CacheError> {
        Ok(self.with_live_entries(|e| {
            if e.get(key).is_some_and(|(current, _)| current != holder) {
                return false;
            }
            e.insert(key.to_string(), (holder.to_string(), Instant::now() + ttl));
            true
        }))
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), CacheError> {
        self.with_live_entries(|e| {
            if e.get(key).is_some_and(|(current, _)| current == holder) {
                e.remove(key);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn values_and_claims_expire() {
        let cache = MemorySharedCache::default();
        cache
            .set("token", "abc", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(cache.claim("issue", Duration::from_secs(60)).await.unwrap());
        assert!(!cache.claim("issue", Duration::from_secs(60)).await.unwrap());
        assert_eq!(cache.get("token").await.unwrap().as_deref(), Some("abc"));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(cache.get("token").await.unwrap(), None);
        assert!(cache.claim("issue", Duration::from_secs(60)).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_has_one_holder_until_released_or_expired() {
        let cache = MemorySharedCache::default();
        let ttl = Duration::from_secs(5);
        assert!(cache.lease("shard:1", "a", ttl).await.unwrap());
        assert!(!cache.lease("shard:1", "b", ttl).await.unwrap());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(cache.lease("shard:1", "a", ttl).await.unwrap(), "renewed");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(
            !cache.lease("shard:1", "b", ttl).await.unwrap(),
            "the renewal held"
        );
        cache.release("shard:1", "b").await.unwrap();
        assert!(
            !cache.lease("shard:1", "b", ttl).await.unwrap(),
            "not b's to release"
        );
        cache.release("shard:1", "a").await.unwrap();
        assert!(cache.lease("shard:1", "b", ttl).await.unwrap());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(
            cache.lease("shard:1", "a", ttl).await.unwrap(),
            "b's lease expired"
        );
    }
}
