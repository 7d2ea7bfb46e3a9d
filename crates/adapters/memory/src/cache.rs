//! Shared cache for a single process: the same contract as Redis's `SET ... PX` and
//! `SET ... NX PX`, enough when one instance is all there is.

use async_trait::async_trait;
use signal_ports::{SharedCache, StoreError};
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
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.with_live_entries(|e| e.get(key).map(|(v, _)| v.clone())))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.with_live_entries(|e| {
            e.insert(key.to_string(), (value.to_string(), Instant::now() + ttl));
        });
        Ok(())
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with_live_entries(|e| {
            if e.contains_key(key) {
                return false;
            }
            e.insert(key.to_string(), (String::new(), Instant::now() + ttl));
            true
        }))
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
}
