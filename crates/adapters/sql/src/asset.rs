//! The Asset Service's tables: watchlists, alert rules and the transactional outbox.

use async_trait::async_trait;
use signal_domain::{
    AlertRule, Condition, ConditionParams, ConjunctParams, InstrumentId, Repeat, RuleId, RuleSpec,
    RuleState, Timestamp, TriggeredAlert, UserId,
};
use signal_ports::{
    Capped, RuleChange, RuleHold, RuleStore, RulesChanged, StoreError, WatchlistStore,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Connection, Row};
use std::collections::HashMap;

use crate::codec::{
    corrupt, decimal, from_micros, instrument, micros, opt_from_micros, placeholders, store_error,
    user, UnexpectedValue,
};

const RULE_COLUMNS: &str = "id, user_id, instrument, condition, value, params, repeat_mode, \
     cooldown_ms, rearm_band, expires_at, note, state, rearmed, cooling_until, trigger_count, \
     last_triggered_at, created_at, updated_at, channels, paused_at, snoozed_until, message, \
     and_condition";

const ACTIVE: &str = "state IN ('armed', 'cooling')";
/// The active rules an engine evaluates: a paused one waits for its resumption.
const EVALUATED: &str = "state IN ('armed', 'cooling') AND paused_at IS NULL";

/// The per-bar repeat modes, stored with their interval: `once_per_bar:1m`.
const ONCE_PER_BAR: &str = "once_per_bar:";
const ONCE_PER_BAR_CLOSE: &str = "once_per_bar_close:";

#[derive(Clone)]
pub struct SqlAssetStore {
    pool: AnyPool,
}

impl SqlAssetStore {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// The columns a rule's spec occupies, in the order the statements below bind them.
struct SpecColumns {
    instrument: String,
    condition: &'static str,
    value: String,
    /// Every parameter of the condition, as JSON ([`ConditionParams`]); `value` is its first
    /// number, kept for readers of the table.
    params: String,
    repeat_mode: String,
    cooldown_ms: i64,
    rearm_band: String,
    expires_at: Option<i64>,
    note: Option<String>,
    /// The channel ids as a JSON array; NULL for all the user's channels.
    channels: Option<String>,
    message: Option<String>,
    /// The second condition, as JSON ([`ConjunctParams`]).
    and_condition: Option<String>,
}

impl SpecColumns {
    fn of(spec: &RuleSpec) -> Result<Self, StoreError> {
        let (repeat_mode, cooldown_ms, rearm_band) = match spec.repeat {
            Repeat::Once => ("once".to_string(), 0, "0".to_string()),
            Repeat::Every {
                cooldown,
                rearm_band,
            } => (
                "every".to_string(),
                cooldown.num_milliseconds(),
                rearm_band.to_string(),
            ),
            Repeat::OncePerBar(interval) => (format!("{ONCE_PER_BAR}{interval}"), 0, "0".into()),
            Repeat::OncePerBarClose(interval) => {
                (format!("{ONCE_PER_BAR_CLOSE}{interval}"), 0, "0".into())
            }
        };
        let failed = |e: serde_json::Error| StoreError::Failed(Box::new(e));
        let params = serde_json::to_string(&ConditionParams::of(spec.condition)).map_err(failed)?;
        let channels = spec
            .channels
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(failed)?;
        let and_condition = spec
            .and
            .map(|and| serde_json::to_string(&ConjunctParams::of(and)).map_err(failed))
            .transpose()?;
        Ok(Self {
            instrument: spec.instrument.to_string(),
            condition: spec.condition.kind().as_str(),
            value: spec.condition.value().to_string(),
            params,
            repeat_mode,
            cooldown_ms,
            rearm_band,
            expires_at: spec.expires_at.map(micros),
            note: spec.note.clone(),
            channels,
            message: spec.message.clone(),
            and_condition,
        })
    }
}

/// (state, rearmed, cooling_until) as stored.
fn state_columns(state: RuleState) -> (&'static str, i64, Option<i64>) {
    match state {
        RuleState::Cooling { rearmed, until } => {
            ("cooling", i64::from(rearmed), Some(micros(until)))
        }
        other => (other.name(), 0, None),
    }
}

fn rule_from_row(row: &AnyRow) -> Result<AlertRule, StoreError> {
    let get_err = |e: sqlx::Error| corrupt("alert_rule row", e);
    let text = |name: &str| row.try_get::<String, _>(name).map_err(get_err);
    let int = |name: &str| row.try_get::<i64, _>(name).map_err(get_err);
    let opt_int = |name: &str| row.try_get::<Option<i64>, _>(name).map_err(get_err);

    let kind = text("condition")?
        .parse()
        .map_err(|e| corrupt("condition", e))?;
    // Rules stored before the parameters had their own column have one number.
    let condition = match row
        .try_get::<Option<String>, _>("params")
        .map_err(get_err)?
    {
        Some(params) => serde_json::from_str::<ConditionParams>(&params)
            .map_err(|e| corrupt("params", e))?
            .condition(kind),
        None => Condition::from_parts(kind, decimal(&text("value")?)?),
    }
    .map_err(|e| corrupt("rule", e))?;
    let mode = text("repeat_mode")?;
    let interval = |text: &str| {
        text.parse::<signal_domain::Interval>()
            .map_err(|e| corrupt("repeat_mode", e))
    };
    let repeat = match mode.as_str() {
        "once" => Repeat::Once,
        "every" => Repeat::Every {
            cooldown: chrono::Duration::milliseconds(int("cooldown_ms")?),
            rearm_band: decimal(&text("rearm_band")?)?,
        },
        other => match (
            other.strip_prefix(ONCE_PER_BAR_CLOSE),
            other.strip_prefix(ONCE_PER_BAR),
        ) {
            (Some(close), _) => Repeat::OncePerBarClose(interval(close)?),
            (None, Some(bar)) => Repeat::OncePerBar(interval(bar)?),
            (None, None) => return Err(corrupt("repeat_mode", UnexpectedValue(other.into()))),
        },
    };
    let state = match text("state")?.as_str() {
        "armed" => RuleState::Armed,
        "cooling" => RuleState::Cooling {
            rearmed: int("rearmed")? != 0,
            until: from_micros(
                opt_int("cooling_until")?
                    .ok_or_else(|| corrupt("cooling_until", UnexpectedValue("NULL".into())))?,
            )?,
        },
        "triggered" => RuleState::Triggered,
        "expired" => RuleState::Expired,
        other => return Err(corrupt("state", UnexpectedValue(other.into()))),
    };
    let opt_text = |name: &str| row.try_get::<Option<String>, _>(name).map_err(get_err);
    let and = opt_text("and_condition")?
        .map(|json| {
            serde_json::from_str::<ConjunctParams>(&json)
                .map_err(|e| corrupt("and_condition", e))?
                .conjunct()
                .map_err(|e| corrupt("and_condition", e))
        })
        .transpose()?;
    Ok(AlertRule {
        id: RuleId(int("id")?),
        user: user(text("user_id")?)?,
        spec: RuleSpec {
            instrument: instrument(&text("instrument")?)?,
            condition,
            and,
            repeat,
            expires_at: opt_from_micros(opt_int("expires_at")?)?,
            note: opt_text("note")?,
            message: opt_text("message")?,
            channels: opt_text("channels")?
                .map(|ids| serde_json::from_str(&ids).map_err(|e| corrupt("channels", e)))
                .transpose()?,
        },
        state,
        paused_at: opt_from_micros(opt_int("paused_at")?)?,
        snoozed_until: opt_from_micros(opt_int("snoozed_until")?)?,
        trigger_count: u32::try_from(int("trigger_count")?).unwrap_or(u32::MAX),
        last_triggered_at: opt_from_micros(opt_int("last_triggered_at")?)?,
        created_at: from_micros(int("created_at")?)?,
        updated_at: from_micros(int("updated_at")?)?,
    })
}

/// How long a deleted rule's tombstone is kept for engines catching up (every 30 seconds).
const TOMBSTONE_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Inserts armed rules of `user`, in order.
async fn insert_rows(
    tx: &mut AnyConnection,
    user: &UserId,
    specs: &[RuleSpec],
    at: Timestamp,
) -> Result<Vec<AlertRule>, StoreError> {
    let sql = format!(
        "INSERT INTO alert_rule (user_id, instrument, condition, value, repeat_mode, \
         cooldown_ms, rearm_band, expires_at, note, state, rearmed, trigger_count, \
         created_at, updated_at, params, channels, message, and_condition) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'armed', 0, 0, $10, $10, $11, $12, $13, $14) \
         RETURNING {RULE_COLUMNS}"
    );
    let mut created = Vec::with_capacity(specs.len());
    for spec in specs {
        let cols = SpecColumns::of(spec)?;
        let row = sqlx::query(&sql)
            .bind(user.as_str())
            .bind(cols.instrument)
            .bind(cols.condition)
            .bind(cols.value)
            .bind(cols.repeat_mode)
            .bind(cols.cooldown_ms)
            .bind(cols.rearm_band)
            .bind(cols.expires_at)
            .bind(cols.note)
            .bind(micros(at))
            .bind(cols.params)
            .bind(cols.channels)
            .bind(cols.message)
            .bind(cols.and_condition)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        created.push(rule_from_row(&row)?);
    }
    Ok(created)
}

/// How many active rules the user has.
async fn active_count(tx: &mut AnyConnection, user: &UserId) -> Result<usize, StoreError> {
    let active: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM alert_rule WHERE user_id = $1 AND {ACTIVE}"
    ))
    .bind(user.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(store_error)?;
    Ok(usize::try_from(active).unwrap_or(usize::MAX))
}

/// Inserts armed rules, in order; `LimitReached` when the user then has more than `limit` active
/// rules, and the caller rolls the transaction back. The rules are counted after they are
/// inserted: the transaction has written first and holds the write lock, so no concurrent
/// create can come between the count and the inserts.
async fn insert_armed(
    tx: &mut AnyConnection,
    user: &UserId,
    specs: &[RuleSpec],
    limit: usize,
    at: Timestamp,
) -> Result<Capped<Vec<AlertRule>>, StoreError> {
    let created = insert_rows(tx, user, specs, at).await?;
    if active_count(tx, user).await? <= limit {
        Ok(Capped::Stored(created))
    } else {
        Ok(Capped::LimitReached)
    }
}

/// Deletes those of `ids` that are the user's, leaving each a tombstone, and drops tombstones
/// older than [`TOMBSTONE_KEPT`]; returns the ones deleted.
async fn delete_rules(
    tx: &mut AnyConnection,
    user: &UserId,
    ids: &[RuleId],
) -> Result<Vec<RuleId>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "DELETE FROM alert_rule WHERE user_id = $1 AND id IN ({}) RETURNING id",
        placeholders(2, ids.len())
    );
    let mut statement = sqlx::query(&sql).bind(user.as_str());
    for id in ids {
        statement = statement.bind(id.0);
    }
    let rows = statement.fetch_all(&mut *tx).await.map_err(store_error)?;
    let deleted = rows
        .iter()
        .map(|row| Ok(RuleId(row.try_get("id").map_err(store_error)?)))
        .collect::<Result<Vec<RuleId>, StoreError>>()?;
    if deleted.is_empty() {
        return Ok(deleted);
    }
    let now = chrono::Utc::now();
    let sql = format!(
        "INSERT INTO alert_rule_deleted (id, deleted_at) VALUES {}",
        (0..deleted.len())
            .map(|i| format!("(${}, $1)", i + 2))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut statement = sqlx::query(&sql).bind(micros(now));
    for id in &deleted {
        statement = statement.bind(id.0);
    }
    statement.execute(&mut *tx).await.map_err(store_error)?;
    sqlx::query("DELETE FROM alert_rule_deleted WHERE deleted_at < $1")
        .bind(micros(now - TOMBSTONE_KEPT))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    Ok(deleted)
}

impl SqlAssetStore {
    /// In one transaction: deletes those of `replaced` that are the user's and creates armed
    /// rules of `specs`, unless that would take the user past `limit`; then nothing changes.
    async fn replace_with(
        &self,
        user: &UserId,
        replaced: &[RuleId],
        specs: &[RuleSpec],
        limit: usize,
        at: Timestamp,
    ) -> Result<Capped<Vec<AlertRule>>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        delete_rules(&mut tx, user, replaced).await?;
        let created = insert_armed(&mut tx, user, specs, limit, at).await?;
        if matches!(created, Capped::LimitReached) {
            tx.rollback().await.map_err(store_error)?;
        } else {
            tx.commit().await.map_err(store_error)?;
        }
        Ok(created)
    }
}

/// The one rule of a write that created one.
fn the_one(created: Capped<Vec<AlertRule>>) -> Result<Capped<AlertRule>, StoreError> {
    match created {
        Capped::Stored(rules) => rules
            .into_iter()
            .next()
            .map(Capped::Stored)
            .ok_or_else(|| corrupt("alert_rule insert", UnexpectedValue("no row".into()))),
        Capped::LimitReached => Ok(Capped::LimitReached),
    }
}

#[async_trait]
impl WatchlistStore for SqlAssetStore {
    async fn add(
        &self,
        user: &UserId,
        instrument: &InstrumentId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO watchlist (user_id, instrument, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, instrument) DO NOTHING",
        )
        .bind(user.as_str())
        .bind(instrument.to_string())
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn remove(&self, user: &UserId, instrument: &InstrumentId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM watchlist WHERE user_id = $1 AND instrument = $2")
            .bind(user.as_str())
            .bind(instrument.to_string())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn list(&self, user: &UserId) -> Result<Vec<(InstrumentId, Timestamp)>, StoreError> {
        let rows = sqlx::query(
            "SELECT instrument, added_at FROM watchlist WHERE user_id = $1 \
             ORDER BY added_at, instrument",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("instrument").map_err(store_error)?;
                let at: i64 = row.try_get("added_at").map_err(store_error)?;
                Ok((instrument(&id)?, from_micros(at)?))
            })
            .collect()
    }

    async fn watched_instruments(&self) -> Result<Vec<InstrumentId>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT instrument FROM watchlist")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                instrument(
                    &row.try_get::<String, _>("instrument")
                        .map_err(store_error)?,
                )
            })
            .collect()
    }
}

#[async_trait]
impl RuleStore for SqlAssetStore {
    async fn create(
        &self,
        user: &UserId,
        spec: &RuleSpec,
        limit: usize,
        at: Timestamp,
    ) -> Result<Capped<AlertRule>, StoreError> {
        the_one(
            self.replace_with(user, &[], std::slice::from_ref(spec), limit, at)
                .await?,
        )
    }

    async fn create_many(
        &self,
        user: &UserId,
        specs: &[RuleSpec],
        limit: usize,
        at: Timestamp,
    ) -> Result<Capped<Vec<AlertRule>>, StoreError> {
        self.replace_with(user, &[], specs, limit, at).await
    }

    async fn create_each(
        &self,
        rules: &[(UserId, RuleSpec)],
        limit: usize,
        at: Timestamp,
    ) -> Result<Vec<Capped<AlertRule>>, StoreError> {
        let mut outcomes: Vec<Capped<AlertRule>> = vec![Capped::LimitReached; rules.len()];
        let mut by_user: HashMap<&UserId, Vec<usize>> = HashMap::new();
        for (index, (user, _)) in rules.iter().enumerate() {
            by_user.entry(user).or_default().push(index);
        }
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        for (user, indexes) in by_user {
            let specs: Vec<RuleSpec> = indexes.iter().map(|&i| rules[i].1.clone()).collect();
            // A user's rules go in together; if they take the user past the limit they are taken
            // back (to the savepoint) and only as many as fit go in again, in order.
            let mut savepoint = tx.begin().await.map_err(store_error)?;
            let mut created = insert_rows(&mut savepoint, user, &specs, at).await?;
            let active = active_count(&mut savepoint, user).await?;
            if active > limit {
                savepoint.rollback().await.map_err(store_error)?;
                let fit = limit.saturating_sub(active - specs.len());
                created = insert_rows(&mut tx, user, &specs[..fit.min(specs.len())], at).await?;
            } else {
                savepoint.commit().await.map_err(store_error)?;
            }
            for (index, rule) in indexes.into_iter().zip(created) {
                outcomes[index] = Capped::Stored(rule);
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(outcomes)
    }

    async fn get(&self, user: &UserId, id: RuleId) -> Result<Option<AlertRule>, StoreError> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rule WHERE id = $1 AND user_id = $2");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(rule_from_row).transpose()
    }

    async fn list(&self, user: &UserId, active_only: bool) -> Result<Vec<AlertRule>, StoreError> {
        let filter = if active_only {
            format!("AND {ACTIVE}")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {RULE_COLUMNS} FROM alert_rule WHERE user_id = $1 {filter} ORDER BY id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn update(
        &self,
        user: &UserId,
        id: RuleId,
        spec: &RuleSpec,
        limit: usize,
        at: Timestamp,
    ) -> Result<Option<Capped<AlertRule>>, StoreError> {
        let cols = SpecColumns::of(spec)?;
        // Re-arming an ended rule makes it active again, so it must fit under the limit; a rule
        // that is already active does not count twice.
        let sql = format!(
            "UPDATE alert_rule SET instrument = $1, condition = $2, value = $3, repeat_mode = $4, \
             cooldown_ms = $5, rearm_band = $6, expires_at = $7, note = $8, state = 'armed', \
             rearmed = 0, cooling_until = NULL, updated_at = $9, params = $13, \
             channels = $14, message = $15, and_condition = $16 \
             WHERE id = $10 AND user_id = $11 AND ({ACTIVE} OR \
             (SELECT COUNT(*) FROM alert_rule WHERE user_id = $11 AND {ACTIVE}) < $12) \
             RETURNING {RULE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(cols.instrument)
            .bind(cols.condition)
            .bind(cols.value)
            .bind(cols.repeat_mode)
            .bind(cols.cooldown_ms)
            .bind(cols.rearm_band)
            .bind(cols.expires_at)
            .bind(cols.note)
            .bind(micros(at))
            .bind(id.0)
            .bind(user.as_str())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(cols.params)
            .bind(cols.channels)
            .bind(cols.message)
            .bind(cols.and_condition)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        match row {
            Some(row) => rule_from_row(&row).map(|rule| Some(Capped::Stored(rule))),
            None if RuleStore::get(self, user, id).await?.is_some() => {
                Ok(Some(Capped::LimitReached))
            }
            None => Ok(None),
        }
    }

    async fn delete_many(&self, user: &UserId, ids: &[RuleId]) -> Result<Vec<RuleId>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let deleted = delete_rules(&mut tx, user, ids).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(deleted)
    }

    async fn replace(
        &self,
        user: &UserId,
        replaced: &[RuleId],
        spec: &RuleSpec,
        limit: usize,
        at: Timestamp,
    ) -> Result<Capped<AlertRule>, StoreError> {
        the_one(
            self.replace_with(user, replaced, std::slice::from_ref(spec), limit, at)
                .await?,
        )
    }

    async fn active_rules(&self) -> Result<Vec<AlertRule>, StoreError> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rule WHERE {EVALUATED} ORDER BY id");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn changed_since(&self, since: Timestamp) -> Result<RulesChanged, StoreError> {
        let sql =
            format!("SELECT {RULE_COLUMNS} FROM alert_rule WHERE updated_at >= $1 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(micros(since))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let written = rows.iter().map(rule_from_row).collect::<Result<_, _>>()?;
        let deleted = sqlx::query_scalar::<_, i64>(
            "SELECT id FROM alert_rule_deleted WHERE deleted_at >= $1 ORDER BY id",
        )
        .bind(micros(since))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(RuleId)
        .collect();
        Ok(RulesChanged { written, deleted })
    }

    async fn hold(
        &self,
        user: &UserId,
        id: RuleId,
        hold: RuleHold,
        at: Timestamp,
    ) -> Result<Option<AlertRule>, StoreError> {
        let sql = format!(
            "UPDATE alert_rule SET paused_at = $1, snoozed_until = $2, updated_at = $3 \
             WHERE id = $4 AND user_id = $5 RETURNING {RULE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(hold.paused_at.map(micros))
            .bind(hold.snoozed_until.map(micros))
            .bind(micros(at))
            .bind(id.0)
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(rule_from_row).transpose()
    }

    async fn apply_changes(
        &self,
        changes: &[RuleChange],
        events: &[TriggeredAlert],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        for change in changes {
            let (state, rearmed, until) = state_columns(change.state);
            let fired = change.fired_at.map(micros);
            // A rule deleted meanwhile simply matches no row: its change is moot.
            sqlx::query(
                "UPDATE alert_rule SET state = $1, rearmed = $2, cooling_until = $3, \
                 trigger_count = CASE WHEN trigger_count < $4 THEN $4 ELSE trigger_count END, \
                 last_triggered_at = COALESCE($5, last_triggered_at), \
                 updated_at = COALESCE($5, updated_at) WHERE id = $6",
            )
            .bind(state)
            .bind(rearmed)
            .bind(until)
            .bind(i64::from(change.trigger_count))
            .bind(fired)
            .bind(change.rule.0)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        for event in events {
            let payload =
                serde_json::to_string(event).map_err(|e| StoreError::Failed(Box::new(e)))?;
            // Another instance may have stored this very firing already.
            sqlx::query(
                "INSERT INTO outbox (event_id, payload, created_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(event.event_id.to_string())
            .bind(payload)
            .bind(micros(event.triggered_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }
}
