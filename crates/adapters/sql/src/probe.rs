//! The database's readiness probe: one `SELECT 1` through the store's own pool, so a pool that
//! cannot hand out a connection is seen too.

use async_trait::async_trait;
use signal_ports::{Probe, ProbeError};
use sqlx::AnyPool;

use crate::codec::store_error;
use crate::{SqlAlertStore, SqlAssetStore};

async fn select_one(pool: &AnyPool) -> Result<(), ProbeError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(drop)
        .map_err(|error| ProbeError::Store(store_error(error)))
}

#[async_trait]
impl Probe for SqlAssetStore {
    async fn probe(&self) -> Result<(), ProbeError> {
        select_one(self.pool()).await
    }
}

#[async_trait]
impl Probe for SqlAlertStore {
    async fn probe(&self) -> Result<(), ProbeError> {
        select_one(&self.pool).await
    }
}
