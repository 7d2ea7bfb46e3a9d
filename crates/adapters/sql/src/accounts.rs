//! The accounts' tables, in the Alert Service's database: accounts (unique on the email) and
//! their sign-in sessions.

use async_trait::async_trait;
use signal_accounts::{AccountStore, Email, EndedSession, NewSession, SessionId, SessionRecord};
use signal_domain::Timestamp;
use signal_ports::StoreError;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::codec::{corrupt, from_micros, micros, store_error};

#[derive(Clone)]
pub struct SqlAccountStore {
    pool: AnyPool,
}

impl SqlAccountStore {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }
}

fn session_id(row: &AnyRow) -> Result<SessionId, StoreError> {
    let text: String = row
        .try_get("id")
        .map_err(|e| corrupt("account_sessions row", e))?;
    text.parse().map_err(|e| corrupt("session id", e))
}

fn micros_column(row: &AnyRow, name: &str) -> Result<Timestamp, StoreError> {
    from_micros(
        row.try_get::<i64, _>(name)
            .map_err(|e| corrupt("account_sessions row", e))?,
    )
}

fn ended_from_row(row: &AnyRow) -> Result<EndedSession, StoreError> {
    Ok(EndedSession {
        id: session_id(row)?,
        expires_at: micros_column(row, "expires_at")?,
    })
}

async fn insert_session(
    tx: &mut Transaction<'_, Any>,
    account_id: i64,
    session: &NewSession,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO account_sessions (id, account_id, created_at, expires_at, user_agent) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(session.id.to_string())
    .bind(account_id)
    .bind(micros(session.created_at))
    .bind(micros(session.expires_at))
    .bind(session.user_agent.clone())
    .execute(&mut **tx)
    .await
    .map_err(store_error)?;
    Ok(())
}

async fn account_id(
    tx: &mut Transaction<'_, Any>,
    email: &Email,
) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query("SELECT id FROM accounts WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(store_error)?;
    row.map(|row| row.try_get::<i64, _>("id"))
        .transpose()
        .map_err(|e| corrupt("accounts row", e))
}

#[async_trait]
impl AccountStore for SqlAccountStore {
    async fn create_account(
        &self,
        email: &Email,
        password_hash: &str,
        session: &NewSession,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let row = sqlx::query(
            "INSERT INTO accounts (email, password_hash, created_at, password_changed_at) \
             VALUES ($1, $2, $3, $3) ON CONFLICT (email) DO NOTHING RETURNING id",
        )
        .bind(email.as_str())
        .bind(password_hash)
        .bind(micros(session.created_at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: i64 = row.try_get("id").map_err(|e| corrupt("accounts row", e))?;
        insert_session(&mut tx, id, session).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }

    async fn password_hash(&self, email: &Email) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM accounts WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.map(|row| row.try_get::<String, _>("password_hash"))
            .transpose()
            .map_err(|e| corrupt("accounts row", e))
    }

    async fn start_session(&self, email: &Email, session: &NewSession) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let Some(id) = account_id(&mut tx, email).await? else {
            return Ok(false);
        };
        insert_session(&mut tx, id, session).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }

    async fn end_session(
        &self,
        email: &Email,
        id: SessionId,
        at: Timestamp,
    ) -> Result<Option<EndedSession>, StoreError> {
        let row = sqlx::query(
            "UPDATE account_sessions SET ended_at = $1 \
             WHERE id = $2 AND ended_at IS NULL AND expires_at > $1 \
             AND account_id = (SELECT id FROM accounts WHERE email = $3) \
             RETURNING id, expires_at",
        )
        .bind(micros(at))
        .bind(id.to_string())
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.as_ref().map(ended_from_row).transpose()
    }

    async fn replace_password(
        &self,
        email: &Email,
        password_hash: &str,
        session: &NewSession,
        at: Timestamp,
    ) -> Result<Option<Vec<EndedSession>>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let Some(id) = account_id(&mut tx, email).await? else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE accounts SET password_hash = $1, password_changed_at = $2 WHERE id = $3",
        )
        .bind(password_hash)
        .bind(micros(at))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let ended = sqlx::query(
            "UPDATE account_sessions SET ended_at = $1 \
             WHERE account_id = $2 AND ended_at IS NULL AND expires_at > $1 \
             RETURNING id, expires_at",
        )
        .bind(micros(at))
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?
        .iter()
        .map(ended_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        insert_session(&mut tx, id, session).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(ended))
    }

    async fn active_sessions(
        &self,
        email: &Email,
        at: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.created_at, s.expires_at, s.user_agent \
             FROM account_sessions s JOIN accounts a ON a.id = s.account_id \
             WHERE a.email = $1 AND s.ended_at IS NULL AND s.expires_at > $2 \
             ORDER BY s.created_at DESC, s.id",
        )
        .bind(email.as_str())
        .bind(micros(at))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(SessionRecord {
                    id: session_id(row)?,
                    created_at: micros_column(row, "created_at")?,
                    expires_at: micros_column(row, "expires_at")?,
                    user_agent: row
                        .try_get("user_agent")
                        .map_err(|e| corrupt("account_sessions row", e))?,
                })
            })
            .collect()
    }

    async fn ended_unexpired_sessions(
        &self,
        at: Timestamp,
    ) -> Result<Vec<EndedSession>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, expires_at FROM account_sessions \
             WHERE ended_at IS NOT NULL AND expires_at > $1",
        )
        .bind(micros(at))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(ended_from_row).collect()
    }

    async fn delete_sessions_expired_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM account_sessions WHERE expires_at < $1")
            .bind(micros(before))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected())
    }
}
