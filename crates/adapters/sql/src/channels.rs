//! The Alert Service's notification tables: channels, deliveries and their attempts, and user
//! settings. Channels with due deliveries are claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of
//! instances share them without two taking the same row; SQLite has one writer at a time, which
//! makes its plain `UPDATE ... RETURNING` claim exclusive by itself. The claim is on the channel,
//! with all its due deliveries: one worker at a time sends to a channel, so its cap holds.

use async_trait::async_trait;
use signal_domain::{Timestamp, UserId};
use signal_ports::{
    AlertRecord, ChannelKind, ChannelRecord, ChannelState, ChannelStore, DeliveryAttempt,
    DeliveryOutcome, DeliveryQuery, DeliveryRecord, DeliveryStatus, DeliveryStore, NewChannel,
    PendingCode, StoreError, UserSettings,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use crate::codec::{corrupt, from_micros, micros, opt_from_micros, store_error, user};
use crate::connect::Backend;
use crate::SqlAlertStore;

const CHANNEL_COLUMNS: &str =
    "id, user_id, name, target, state, disabled_reason, disabled_at, created_at, updated_at";

const DELIVERY_COLUMNS: &str = "id, alert_id, event_id, user_id, channel_id, kind, status, \
     attempts, next_attempt_at, message_id, last_error, last_status, created_at, delivered_at, \
     latency_ms";

/// Creates the deliveries of a newly stored alert, inside the transaction that stores it: one
/// per active channel of its user, or of those among `channels` when the rule chose some.
pub(crate) async fn create_deliveries(
    tx: &mut Transaction<'static, Any>,
    alert: &AlertRecord,
    channels: Option<&[i64]>,
    at: Timestamp,
) -> Result<(), StoreError> {
    let chosen = match channels {
        Some([]) => return Ok(()),
        Some(ids) => format!(" AND id IN ({})", placeholders(5, ids.len())),
        None => String::new(),
    };
    let sql = format!(
        "INSERT INTO deliveries (alert_id, event_id, user_id, channel_id, kind, status, attempts, \
         next_attempt_at, created_at) \
         SELECT $1, $2, $3, id, kind, 'pending', 0, $4, $4 FROM channels \
         WHERE user_id = $3 AND state = 'active'{chosen}"
    );
    let mut query = sqlx::query(&sql)
        .bind(alert.id)
        .bind(alert.event_id.to_string())
        .bind(alert.user.as_str())
        .bind(micros(at));
    for id in channels.unwrap_or_default() {
        query = query.bind(*id);
    }
    query.execute(&mut **tx).await.map_err(store_error)?;
    Ok(())
}

/// `$first, $first+1, ...` for an `IN (...)` list of `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value bound before an id list.
enum Lead {
    Int(i64),
    Text(String),
}

/// Runs `<head> id IN (...)` for `ids` (nothing when there are none); `lead`, when given, is
/// `$1` in `head`.
async fn update_ids(
    pool: &sqlx::AnyPool,
    head: &str,
    lead: Option<Lead>,
    ids: &[i64],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let first = if lead.is_some() { 2 } else { 1 };
    let sql = format!("{head} id IN ({})", placeholders(first, ids.len()));
    let mut query = sqlx::query(&sql);
    match lead {
        Some(Lead::Int(value)) => query = query.bind(value),
        Some(Lead::Text(value)) => query = query.bind(value),
        None => {}
    }
    for id in ids {
        query = query.bind(*id);
    }
    query.execute(pool).await.map_err(store_error)?;
    Ok(())
}

fn channel_from_row(row: &AnyRow) -> Result<ChannelRecord, StoreError> {
    let get_err = |e: sqlx::Error| corrupt("channels row", e);
    let text = |name: &str| row.try_get::<String, _>(name).map_err(get_err);
    let int = |name: &str| row.try_get::<i64, _>(name).map_err(get_err);
    Ok(ChannelRecord {
        id: int("id")?,
        user: user(text("user_id")?)?,
        name: text("name")?,
        target: serde_json::from_str(&text("target")?).map_err(|e| corrupt("target", e))?,
        state: text("state")?.parse().map_err(|e| corrupt("state", e))?,
        disabled_reason: row
            .try_get::<Option<String>, _>("disabled_reason")
            .map_err(get_err)?,
        disabled_at: opt_from_micros(
            row.try_get::<Option<i64>, _>("disabled_at")
                .map_err(get_err)?,
        )?,
        created_at: from_micros(int("created_at")?)?,
        updated_at: from_micros(int("updated_at")?)?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<DeliveryRecord, StoreError> {
    let get_err = |e: sqlx::Error| corrupt("deliveries row", e);
    let text = |name: &str| row.try_get::<String, _>(name).map_err(get_err);
    let int = |name: &str| row.try_get::<i64, _>(name).map_err(get_err);
    let opt_int = |name: &str| row.try_get::<Option<i64>, _>(name).map_err(get_err);
    let uuid = |text: String| text.parse::<Uuid>().map_err(|e| corrupt("uuid", e));
    Ok(DeliveryRecord {
        id: int("id")?,
        alert_id: opt_int("alert_id")?,
        event_id: uuid(text("event_id")?)?,
        user: user(text("user_id")?)?,
        channel_id: int("channel_id")?,
        kind: text("kind")?.parse().map_err(|e| corrupt("kind", e))?,
        status: text("status")?.parse().map_err(|e| corrupt("status", e))?,
        attempts: u32::try_from(int("attempts")?).map_err(|e| corrupt("attempts", e))?,
        next_attempt_at: from_micros(int("next_attempt_at")?)?,
        message_id: row
            .try_get::<Option<String>, _>("message_id")
            .map_err(get_err)?
            .map(uuid)
            .transpose()?,
        last_error: row
            .try_get::<Option<String>, _>("last_error")
            .map_err(get_err)?,
        last_status: opt_int("last_status")?
            .map(|s| u16::try_from(s).map_err(|e| corrupt("last_status", e)))
            .transpose()?,
        created_at: from_micros(int("created_at")?)?,
        delivered_at: opt_from_micros(opt_int("delivered_at")?)?,
        latency_ms: opt_int("latency_ms")?,
    })
}

fn attempt_from_row(row: &AnyRow) -> Result<DeliveryAttempt, StoreError> {
    let get_err = |e: sqlx::Error| corrupt("delivery_attempts row", e);
    let int = |name: &str| row.try_get::<i64, _>(name).map_err(get_err);
    Ok(DeliveryAttempt {
        at: from_micros(int("at")?)?,
        ok: int("ok")? != 0,
        status: row
            .try_get::<Option<i64>, _>("status")
            .map_err(get_err)?
            .map(|s| u16::try_from(s).map_err(|e| corrupt("status", e)))
            .transpose()?,
        error: row.try_get::<Option<String>, _>("error").map_err(get_err)?,
        duration_ms: int("duration_ms")?,
    })
}

fn target_json(channel_target: &signal_ports::ChannelTarget) -> Result<String, StoreError> {
    serde_json::to_string(channel_target).map_err(|e| corrupt("target", e))
}

async fn insert_attempt(
    tx: &mut Transaction<'static, Any>,
    delivery_id: i64,
    attempt: &DeliveryAttempt,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, at, ok, status, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(delivery_id)
    .bind(micros(attempt.at))
    .bind(i64::from(attempt.ok))
    .bind(attempt.status.map(i64::from))
    .bind(attempt.error.clone())
    .bind(attempt.duration_ms)
    .execute(&mut **tx)
    .await
    .map_err(store_error)?;
    Ok(())
}

#[async_trait]
impl ChannelStore for SqlAlertStore {
    async fn create_channel(
        &self,
        channel: &NewChannel,
        at: Timestamp,
    ) -> Result<ChannelRecord, StoreError> {
        let sql = format!(
            "INSERT INTO channels (user_id, kind, name, target, state, pending_code_hash, \
             pending_until, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             RETURNING {CHANNEL_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(channel.user.as_str())
            .bind(channel.target.kind().as_str())
            .bind(channel.name.clone())
            .bind(target_json(&channel.target)?)
            .bind(channel.state.as_str())
            .bind(channel.pending_code.as_ref().map(|c| c.hash.clone()))
            .bind(channel.pending_code.as_ref().map(|c| micros(c.expires_at)))
            .bind(micros(at))
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        channel_from_row(&row)
    }

    async fn channels(&self, user: &UserId) -> Result<Vec<ChannelRecord>, StoreError> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE user_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(channel_from_row).collect()
    }

    async fn channel(&self, user: &UserId, id: i64) -> Result<Option<ChannelRecord>, StoreError> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1 AND user_id = $2");
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(channel_from_row).transpose()
    }

    async fn channel_by_id(&self, id: i64) -> Result<Option<ChannelRecord>, StoreError> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(channel_from_row).transpose()
    }

    async fn update_channel(
        &self,
        channel: &ChannelRecord,
        at: Timestamp,
    ) -> Result<Option<ChannelRecord>, StoreError> {
        let sql = format!(
            "UPDATE channels SET name = $1, target = $2, state = $3, disabled_reason = $4, \
             disabled_at = $5, updated_at = $6 WHERE id = $7 AND user_id = $8 \
             RETURNING {CHANNEL_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(channel.name.clone())
            .bind(target_json(&channel.target)?)
            .bind(channel.state.as_str())
            .bind(channel.disabled_reason.clone())
            .bind(channel.disabled_at.map(micros))
            .bind(micros(at))
            .bind(channel.id)
            .bind(channel.user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(channel_from_row).transpose()
    }

    async fn set_pending_code(
        &self,
        user: &UserId,
        id: i64,
        code: &PendingCode,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE channels SET pending_code_hash = $1, pending_until = $2 \
             WHERE id = $3 AND user_id = $4 AND state = 'pending'",
        )
        .bind(code.hash.clone())
        .bind(micros(code.expires_at))
        .bind(id)
        .bind(user.as_str())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_channel(&self, user: &UserId, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let result = sqlx::query("DELETE FROM channels WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "DELETE FROM delivery_attempts WHERE delivery_id IN \
             (SELECT id FROM deliveries WHERE channel_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query("DELETE FROM deliveries WHERE channel_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }

    async fn take_pending(
        &self,
        kind: ChannelKind,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<Option<ChannelRecord>, StoreError> {
        let sql = format!(
            "UPDATE channels SET pending_code_hash = NULL, pending_until = NULL \
             WHERE kind = $1 AND pending_code_hash = $2 AND pending_until > $3 \
             AND state = 'pending' RETURNING {CHANNEL_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(kind.as_str())
            .bind(code_hash.to_string())
            .bind(micros(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(channel_from_row).transpose()
    }

    async fn disable_channel(
        &self,
        id: i64,
        reason: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(
            "UPDATE channels SET state = $1, disabled_reason = $2, disabled_at = $3, \
             updated_at = $3 WHERE id = $4",
        )
        .bind(ChannelState::Disabled.as_str())
        .bind(reason.to_string())
        .bind(micros(at))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query(
            "UPDATE deliveries SET status = 'skipped', last_error = $1 \
             WHERE channel_id = $2 AND status = 'pending'",
        )
        .bind(format!("not sent: the channel was disabled ({reason})"))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn settings(&self, user: &UserId) -> Result<Option<UserSettings>, StoreError> {
        let row = sqlx::query("SELECT settings FROM user_settings WHERE user_id = $1")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.map(|row| {
            let text: String = row
                .try_get("settings")
                .map_err(|e| corrupt("user_settings row", e))?;
            serde_json::from_str(&text).map_err(|e| corrupt("settings", e))
        })
        .transpose()
    }

    async fn put_settings(
        &self,
        user: &UserId,
        settings: &UserSettings,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(settings).map_err(|e| corrupt("settings", e))?;
        sqlx::query(
            "INSERT INTO user_settings (user_id, settings, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET settings = $2, updated_at = $3",
        )
        .bind(user.as_str())
        .bind(json)
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl DeliveryStore for SqlAlertStore {
    async fn claim_due(
        &self,
        kind: ChannelKind,
        now: Timestamp,
        claimed_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            // One writer at a time: the UPDATE is exclusive by itself.
            Backend::Sqlite => "",
        };
        // Channels with the longest-waiting due deliveries first.
        let claim = format!(
            "UPDATE channels SET claimed_until = $1 WHERE id IN \
             (SELECT id FROM channels WHERE kind = $2 AND state = 'active' \
             AND (claimed_until IS NULL OR claimed_until <= $3) \
             AND id IN (SELECT channel_id FROM deliveries WHERE status = 'pending' \
             AND kind = $2 AND next_attempt_at <= $3) \
             ORDER BY (SELECT MIN(next_attempt_at) FROM deliveries d \
             WHERE d.channel_id = channels.id AND d.status = 'pending'), id \
             LIMIT $4{lock}) RETURNING id"
        );
        let channel_ids: Vec<i64> = sqlx::query(&claim)
            .bind(micros(claimed_until))
            .bind(kind.as_str())
            .bind(micros(now))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .iter()
            .map(|row| {
                row.try_get::<i64, _>("id")
                    .map_err(|e| corrupt("channels row", e))
            })
            .collect::<Result<_, _>>()?;
        if channel_ids.is_empty() {
            return Ok(Vec::new());
        }
        let due = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' \
             AND next_attempt_at <= $1 AND channel_id IN ({}) ORDER BY id",
            placeholders(2, channel_ids.len())
        );
        let mut query = sqlx::query(&due).bind(micros(now));
        for id in &channel_ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(store_error)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn extend_claim(&self, channel_ids: &[i64], until: Timestamp) -> Result<(), StoreError> {
        let head = "UPDATE channels SET claimed_until = $1 WHERE";
        update_ids(
            &self.pool,
            head,
            Some(Lead::Int(micros(until))),
            channel_ids,
        )
        .await
    }

    async fn release_claim(&self, channel_ids: &[i64]) -> Result<(), StoreError> {
        let head = "UPDATE channels SET claimed_until = NULL WHERE";
        update_ids(&self.pool, head, None, channel_ids).await
    }

    async fn release_waiting(&self, user: &UserId, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET next_attempt_at = $1 WHERE user_id = $2 \
             AND status = 'pending' AND attempts = 0 AND next_attempt_at > $1",
        )
        .bind(micros(now))
        .bind(user.as_str())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn assign_message(&self, ids: &[i64], message_id: Uuid) -> Result<(), StoreError> {
        let head = "UPDATE deliveries SET message_id = $1 WHERE";
        update_ids(
            &self.pool,
            head,
            Some(Lead::Text(message_id.to_string())),
            ids,
        )
        .await
    }

    async fn defer(&self, ids: &[i64], until: Timestamp) -> Result<(), StoreError> {
        let head = "UPDATE deliveries SET next_attempt_at = $1 WHERE status = 'pending' AND";
        update_ids(&self.pool, head, Some(Lead::Int(micros(until))), ids).await
    }

    async fn record_attempt(
        &self,
        ids: &[i64],
        attempt: &DeliveryAttempt,
        outcome: &DeliveryOutcome,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let status = attempt.status.map(i64::from);
        for id in ids {
            insert_attempt(&mut tx, *id, attempt).await?;
            let statement = match outcome {
                DeliveryOutcome::Delivered { at } => sqlx::query(
                    "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, \
                     delivered_at = $1, last_error = NULL, last_status = $2, \
                     latency_ms = ($1 - COALESCE((SELECT triggered_at FROM alert_history \
                     WHERE alert_history.id = deliveries.alert_id), created_at)) / 1000 \
                     WHERE id = $3 AND status = 'pending'",
                )
                .bind(micros(*at))
                .bind(status)
                .bind(*id),
                DeliveryOutcome::Retry { at } => sqlx::query(
                    "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, \
                     last_error = $2, last_status = $3 WHERE id = $4 AND status = 'pending'",
                )
                .bind(micros(*at))
                .bind(attempt.error.clone())
                .bind(status)
                .bind(*id),
                DeliveryOutcome::Failed => sqlx::query(
                    "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, \
                     last_error = $1, last_status = $2 WHERE id = $3 AND status = 'pending'",
                )
                .bind(attempt.error.clone())
                .bind(status)
                .bind(*id),
            };
            statement.execute(&mut *tx).await.map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn skip(&self, ids: &[i64], reason: &str) -> Result<(), StoreError> {
        let head = "UPDATE deliveries SET status = 'skipped', last_error = $1 \
                    WHERE status = 'pending' AND";
        update_ids(&self.pool, head, Some(Lead::Text(reason.to_string())), ids).await
    }

    async fn sent_since(
        &self,
        channel_id: i64,
        since: Timestamp,
    ) -> Result<Vec<Timestamp>, StoreError> {
        let rows = sqlx::query(
            "SELECT MIN(delivered_at) AS sent_at FROM deliveries \
             WHERE channel_id = $1 AND delivered_at >= $2 AND alert_id IS NOT NULL \
             GROUP BY message_id ORDER BY sent_at",
        )
        .bind(channel_id)
        .bind(micros(since))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                from_micros(
                    row.try_get::<i64, _>("sent_at")
                        .map_err(|e| corrupt("deliveries row", e))?,
                )
            })
            .collect()
    }

    async fn record_test(
        &self,
        channel: &ChannelRecord,
        message_id: Uuid,
        attempt: &DeliveryAttempt,
    ) -> Result<DeliveryRecord, StoreError> {
        let (status, delivered_at) = if attempt.ok {
            (DeliveryStatus::Delivered, Some(micros(attempt.at)))
        } else {
            (DeliveryStatus::Failed, None)
        };
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let sql = format!(
            "INSERT INTO deliveries (alert_id, event_id, user_id, channel_id, kind, status, \
             attempts, next_attempt_at, message_id, last_error, last_status, created_at, \
             delivered_at, latency_ms) \
             VALUES (NULL, $1, $2, $3, $4, $5, 1, $6, $1, $7, $8, $6, $9, $10) \
             RETURNING {DELIVERY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(message_id.to_string())
            .bind(channel.user.as_str())
            .bind(channel.id)
            .bind(channel.kind().as_str())
            .bind(status.as_str())
            .bind(micros(attempt.at))
            .bind(attempt.error.clone())
            .bind(attempt.status.map(i64::from))
            .bind(delivered_at)
            .bind(attempt.ok.then_some(attempt.duration_ms))
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let delivery = delivery_from_row(&row)?;
        insert_attempt(&mut tx, delivery.id, attempt).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(delivery)
    }

    async fn deliveries(
        &self,
        user: &UserId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut filters = String::new();
        let mut next = 2;
        let mut placeholder = || {
            let p = format!("${next}");
            next += 1;
            p
        };
        if query.channel_id.is_some() {
            filters.push_str(&format!(" AND channel_id = {}", placeholder()));
        }
        if query.alert_id.is_some() {
            filters.push_str(&format!(" AND alert_id = {}", placeholder()));
        }
        if query.before_id.is_some() {
            filters.push_str(&format!(" AND id < {}", placeholder()));
        }
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE user_id = $1{filters} \
             ORDER BY id DESC LIMIT {}",
            placeholder()
        );
        let mut statement = sqlx::query(&sql).bind(user.as_str());
        for value in [query.channel_id, query.alert_id, query.before_id]
            .into_iter()
            .flatten()
        {
            statement = statement.bind(value);
        }
        let rows = statement
            .bind(i64::try_from(query.limit.max(1)).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn delivery(&self, user: &UserId, id: i64) -> Result<Option<DeliveryRecord>, StoreError> {
        let sql =
            format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1 AND user_id = $2");
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    async fn attempts(&self, delivery_id: i64) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, ok, status, error, duration_ms FROM delivery_attempts \
             WHERE delivery_id = $1 ORDER BY id",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(attempt_from_row).collect()
    }
}
