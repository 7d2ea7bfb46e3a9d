//! The relay's side of the transactional outbox: pending events in order, sent ones marked and
//! later deleted, and the ones that can never be published set aside with their reason.

use async_trait::async_trait;
use signal_domain::Timestamp;
use signal_ports::{DeadLetter, OutboxEntry, OutboxLag, OutboxStore, StoreError, UnreadableEvent};
use sqlx::Row;

use crate::asset::SqlAssetStore;
use crate::codec::{from_micros, micros, placeholders, store_error};

const PENDING: &str = "sent_at IS NULL AND dead_at IS NULL";

#[async_trait]
impl OutboxStore for SqlAssetStore {
    async fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let sql = format!("SELECT id, payload FROM outbox WHERE {PENDING} ORDER BY id LIMIT $1");
        let rows = sqlx::query(&sql)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get("payload").map_err(store_error)?;
                Ok(OutboxEntry {
                    id: row.try_get("id").map_err(store_error)?,
                    event: serde_json::from_str(&payload)
                        .map_err(|error| UnreadableEvent(Box::new(error))),
                })
            })
            .collect()
    }

    async fn mark_outbox_sent(&self, ids: &[i64], at: Timestamp) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE outbox SET sent_at = $1 WHERE id IN ({})",
            placeholders(2, ids.len())
        );
        let mut statement = sqlx::query(&sql).bind(micros(at));
        for id in ids {
            statement = statement.bind(*id);
        }
        statement.execute(self.pool()).await.map_err(store_error)?;
        Ok(())
    }

    async fn dead_letter(&self, id: i64, reason: &str, at: Timestamp) -> Result<(), StoreError> {
        let sql =
            format!("UPDATE outbox SET dead_at = $1, dead_reason = $2 WHERE id = $3 AND {PENDING}");
        sqlx::query(&sql)
            .bind(micros(at))
            .bind(reason)
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, payload, dead_reason, created_at, dead_at FROM outbox \
             WHERE dead_at IS NOT NULL ORDER BY dead_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetter {
                    id: row.try_get("id").map_err(store_error)?,
                    event_id: row.try_get("event_id").map_err(store_error)?,
                    payload: row.try_get("payload").map_err(store_error)?,
                    reason: row
                        .try_get::<Option<String>, _>("dead_reason")
                        .map_err(store_error)?
                        .unwrap_or_default(),
                    created_at: from_micros(row.try_get("created_at").map_err(store_error)?)?,
                    dead_at: from_micros(row.try_get("dead_at").map_err(store_error)?)?,
                })
            })
            .collect()
    }

    async fn requeue_dead_letter(&self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE outbox SET dead_at = NULL, dead_reason = NULL \
             WHERE id = $1 AND dead_at IS NOT NULL",
        )
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_sent(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
             WHERE sent_at IS NOT NULL AND sent_at < $1 ORDER BY id LIMIT $2)",
        )
        .bind(micros(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(self.pool())
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected())
    }

    async fn resend_sent_since(&self, since: Timestamp) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE outbox SET sent_at = NULL WHERE sent_at IS NOT NULL AND sent_at >= $1",
        )
        .bind(micros(since))
        .execute(self.pool())
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected())
    }

    async fn outbox_lag(&self) -> Result<OutboxLag, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM outbox WHERE {PENDING}"
        );
        let row = sqlx::query(&sql)
            .fetch_one(self.pool())
            .await
            .map_err(store_error)?;
        let pending: i64 = row.try_get("pending").map_err(store_error)?;
        let oldest: Option<i64> = row.try_get("oldest").map_err(store_error)?;
        Ok(OutboxLag {
            pending: u64::try_from(pending).unwrap_or_default(),
            oldest: oldest.map(from_micros).transpose()?,
        })
    }
}
