//! Minute candles: many rows per statement on the way in, because the aggregator writes every
//! active instrument every few seconds and a row per round trip would not keep up.

use async_trait::async_trait;
use signal_domain::{InstrumentId, Timestamp};
use signal_ports::{Candle, CandleStore, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use std::collections::HashMap;

use crate::codec::{corrupt, decimal, from_micros, instrument, micros, price, store_error};

/// Bind parameters per candle row.
const COLUMNS: usize = 8;

/// Rows per statement: SQLite allows 32,766 bind parameters and PostgreSQL 65,535, so one size
/// under the smaller fits both.
const ROWS_PER_STATEMENT: usize = 32_766 / COLUMNS;

#[derive(Clone)]
pub struct SqlCandleStore {
    pool: AnyPool,
}

impl SqlCandleStore {
    /// Over a pool of the Asset Service database.
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }
}

/// `INSERT ... VALUES ($1, ..., $8), ($9, ...)` for `rows` rows, replacing existing minutes.
fn upsert_statement(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let first = row * COLUMNS + 1;
            let params: Vec<String> = (first..first + COLUMNS).map(|n| format!("${n}")).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO candle_1m (instrument, minute, open, high, low, close, volume, trades) \
         VALUES {} ON CONFLICT (instrument, minute) DO UPDATE SET open = excluded.open, \
         high = excluded.high, low = excluded.low, close = excluded.close, \
         volume = excluded.volume, trades = excluded.trades",
        values.join(", ")
    )
}

/// The candles with each (instrument, minute) once, the last of each kept: PostgreSQL refuses a
/// statement that would update one row twice.
fn last_of_each_minute(candles: &[Candle]) -> Vec<&Candle> {
    let mut position: HashMap<(&InstrumentId, Timestamp), usize> = HashMap::new();
    let mut unique: Vec<&Candle> = Vec::with_capacity(candles.len());
    for candle in candles {
        match position.get(&(&candle.instrument, candle.minute)) {
            Some(&at) => unique[at] = candle,
            None => {
                position.insert((&candle.instrument, candle.minute), unique.len());
                unique.push(candle);
            }
        }
    }
    unique
}

fn candle_from_row(row: &AnyRow) -> Result<Candle, StoreError> {
    let get_err = |e: sqlx::Error| corrupt("candle_1m row", e);
    let text = |name: &str| row.try_get::<String, _>(name).map_err(get_err);
    let trades = row.try_get::<i64, _>("trades").map_err(get_err)?;
    Ok(Candle {
        instrument: instrument(&text("instrument")?)?,
        minute: from_micros(row.try_get::<i64, _>("minute").map_err(get_err)?)?,
        open: price(&text("open")?)?,
        high: price(&text("high")?)?,
        low: price(&text("low")?)?,
        close: price(&text("close")?)?,
        volume: decimal(&text("volume")?)?,
        trades: u32::try_from(trades).map_err(|e| corrupt("trades", e))?,
    })
}

#[async_trait]
impl CandleStore for SqlCandleStore {
    async fn upsert_candles(&self, candles: &[Candle]) -> Result<(), StoreError> {
        let unique = last_of_each_minute(candles);
        if unique.is_empty() {
            return Ok(());
        }
        // A batch larger than one statement still lands whole or not at all.
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        for chunk in unique.chunks(ROWS_PER_STATEMENT) {
            let sql = upsert_statement(chunk.len());
            let mut query = sqlx::query(&sql);
            for candle in chunk {
                query = query
                    .bind(candle.instrument.to_string())
                    .bind(micros(candle.minute))
                    .bind(candle.open.to_string())
                    .bind(candle.high.to_string())
                    .bind(candle.low.to_string())
                    .bind(candle.close.to_string())
                    .bind(candle.volume.to_string())
                    .bind(i64::from(candle.trades));
            }
            query.execute(&mut *tx).await.map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn candles(
        &self,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<Candle>, StoreError> {
        let rows = sqlx::query(
            "SELECT instrument, minute, open, high, low, close, volume, trades FROM candle_1m \
             WHERE instrument = $1 AND minute >= $2 AND minute < $3 ORDER BY minute LIMIT $4",
        )
        .bind(instrument.to_string())
        .bind(micros(from))
        .bind(micros(to))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(candle_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order_of_appearance() {
        let sql = upsert_statement(2);
        assert!(
            sql.contains("VALUES ($1, $2, $3, $4, $5, $6, $7, $8), ($9, $10, $11, $12, $13, $14, $15, $16) ON"),
            "{sql}"
        );
    }
}
