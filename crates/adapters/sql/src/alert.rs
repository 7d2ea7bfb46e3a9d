//! The Alert Service's table: each user's alert history, unique on the event id.

use async_trait::async_trait;
use signal_domain::{Percent, RuleId, Timestamp, TriggeredAlert, UserId};
use signal_ports::{
    AlertHistoryStore, AlertMessage, AlertRecord, HistoryPage, HistoryQuery, StoreError,
};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::connect::Backend;

use crate::codec::{
    corrupt, decimal, from_micros, instrument, micros, opt_from_micros, price, store_error, user,
};

const COLUMNS: &str = "id, event_id, user_id, rule_id, instrument, condition, level, percent, \
     price, exchange_time, triggered_at, stored_at, note, simulated, read_at, acknowledged_at, \
     message";

#[derive(Clone)]
pub struct SqlAlertStore {
    pub(crate) pool: AnyPool,
    /// Decides how deliveries are claimed (PostgreSQL skips rows another claim holds).
    pub(crate) backend: Backend,
}

impl SqlAlertStore {
    pub fn new(pool: AnyPool) -> Self {
        // The pool was opened from a URL `connect` accepted, so its scheme is one of the two.
        let backend = Backend::of_url(pool.connect_options().database_url.as_str())
            .unwrap_or(Backend::Sqlite);
        Self { pool, backend }
    }
}

fn record_from_row(row: &AnyRow) -> Result<AlertRecord, StoreError> {
    let get_err = |e: sqlx::Error| corrupt("alert_history row", e);
    let text = |name: &str| row.try_get::<String, _>(name).map_err(get_err);
    let int = |name: &str| row.try_get::<i64, _>(name).map_err(get_err);
    let opt_int = |name: &str| row.try_get::<Option<i64>, _>(name).map_err(get_err);
    let percent = row
        .try_get::<Option<String>, _>("percent")
        .map_err(get_err)?
        .map(|p| decimal(&p).map(Percent::new))
        .transpose()?;
    Ok(AlertRecord {
        id: int("id")?,
        event_id: text("event_id")?
            .parse()
            .map_err(|e| corrupt("event_id", e))?,
        user: user(text("user_id")?)?,
        rule_id: RuleId(int("rule_id")?),
        instrument: instrument(&text("instrument")?)?,
        condition: text("condition")?
            .parse()
            .map_err(|e| corrupt("condition", e))?,
        level: price(&text("level")?)?,
        percent,
        price: price(&text("price")?)?,
        exchange_time: from_micros(int("exchange_time")?)?,
        triggered_at: from_micros(int("triggered_at")?)?,
        stored_at: from_micros(int("stored_at")?)?,
        note: row.try_get::<Option<String>, _>("note").map_err(get_err)?,
        simulated: int("simulated")? != 0,
        message: row
            .try_get::<Option<String>, _>("message")
            .map_err(get_err)?,
        read_at: opt_from_micros(opt_int("read_at")?)?,
        acknowledged_at: opt_from_micros(opt_int("acknowledged_at")?)?,
    })
}

#[async_trait]
impl AlertHistoryStore for SqlAlertStore {
    async fn insert_if_absent(
        &self,
        event: &TriggeredAlert,
        message: &AlertMessage,
        at: Timestamp,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let sql = format!(
            "INSERT INTO alert_history (event_id, user_id, rule_id, instrument, condition, level, \
             percent, price, exchange_time, triggered_at, stored_at, note, simulated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (event_id) DO NOTHING RETURNING {COLUMNS}"
        );
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let row = sqlx::query(&sql)
            .bind(event.event_id.to_string())
            .bind(event.user_id.as_str())
            .bind(event.rule_id.0)
            .bind(event.instrument.to_string())
            .bind(event.condition.as_str())
            .bind(event.level.to_string())
            .bind(event.percent.map(|p| p.to_string()))
            .bind(event.price.to_string())
            .bind(micros(event.exchange_time))
            .bind(micros(event.triggered_at))
            .bind(micros(at))
            .bind(event.note.clone())
            .bind(i64::from(event.simulated))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            // A redelivery: its deliveries were created with it the first time.
            return Ok(None);
        };
        let mut record = record_from_row(&row)?;
        // Rendered from the stored row, whose id is one of a message's placeholders.
        if let Some(text) = message(&record) {
            sqlx::query("UPDATE alert_history SET message = $1 WHERE id = $2")
                .bind(text.as_str())
                .bind(record.id)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            record.message = Some(text);
        }
        crate::channels::create_deliveries(&mut tx, &record, event.channels.as_deref(), at).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(record))
    }

    async fn list(&self, user: &UserId, query: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        // Placeholders are numbered by hand: `$n` is understood by both backends.
        let mut filters = String::new();
        let mut next = 2;
        let mut placeholder = || {
            let p = format!("${next}");
            next += 1;
            p
        };
        if query.instrument.is_some() {
            filters.push_str(&format!(" AND instrument = {}", placeholder()));
        }
        match query.read {
            Some(true) => filters.push_str(" AND read_at IS NOT NULL"),
            Some(false) => filters.push_str(" AND read_at IS NULL"),
            None => {}
        }
        if query.before_id.is_some() {
            filters.push_str(&format!(" AND id < {}", placeholder()));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM alert_history WHERE user_id = $1{filters} \
             ORDER BY id DESC LIMIT {}",
            placeholder()
        );
        let mut statement = sqlx::query(&sql).bind(user.as_str());
        if let Some(instrument) = &query.instrument {
            statement = statement.bind(instrument.to_string());
        }
        if let Some(before) = query.before_id {
            statement = statement.bind(before);
        }
        // One row more than asked tells whether another page exists.
        let limit = query.limit.max(1);
        let rows = statement
            .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let mut items = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_before_id = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|r| r.id)
        } else {
            None
        };
        Ok(HistoryPage {
            items,
            next_before_id,
        })
    }

    async fn get(&self, user: &UserId, id: i64) -> Result<Option<AlertRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM alert_history WHERE id = $1 AND user_id = $2");
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(record_from_row).transpose()
    }

    async fn mark_read(&self, user: &UserId, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE alert_history SET read_at = COALESCE(read_at, $1), \
             acknowledged_at = COALESCE(acknowledged_at, $1) WHERE id = $2 AND user_id = $3",
        )
        .bind(micros(at))
        .bind(id)
        .bind(user.as_str())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn mark_all_read(&self, user: &UserId, at: Timestamp) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE alert_history SET read_at = $1, acknowledged_at = COALESCE(acknowledged_at, $1) \
             WHERE user_id = $2 AND read_at IS NULL",
        )
        .bind(micros(at))
        .bind(user.as_str())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected())
    }

    async fn acknowledge(&self, user: &UserId, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE alert_history SET acknowledged_at = COALESCE(acknowledged_at, $1) \
             WHERE id = $2 AND user_id = $3",
        )
        .bind(micros(at))
        .bind(id)
        .bind(user.as_str())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn unacknowledged(
        &self,
        user: &UserId,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM alert_history WHERE user_id = $1 AND acknowledged_at IS NULL \
             ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(user.as_str())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(record_from_row).collect()
    }

    async fn delete(&self, user: &UserId, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM alert_history WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_all(&self, user: &UserId) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM alert_history WHERE user_id = $1")
            .bind(user.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected())
    }
}
