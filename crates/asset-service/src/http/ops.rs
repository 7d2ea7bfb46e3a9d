//! The operations behind both HTTP shapes. Every write goes to the store first and then to the
//! engine, and returns only once the engine has it: a confirmed rule is watching.

use chrono::Utc;
use signal_catalog::CatalogEntry;
use signal_domain::{
    AlertRule, AssetClass, Condition, InstrumentId, Quote, Repeat, RuleId, RuleSpec, UserId,
};
use signal_web::ApiError;
use tokio::sync::oneshot;

use super::AssetState;
use crate::pipeline::EngineCommand;
use crate::quote_book::{latest_known, newest};

/// An instrument with its latest quote.
pub struct Listing {
    pub entry: CatalogEntry,
    pub quote: Option<Quote>,
}

impl AssetState {
    /// Accepts `MARKET:SYMBOL` or a bare symbol as the original API did.
    pub fn resolve(&self, text: &str) -> Result<InstrumentId, ApiError> {
        self.catalog()
            .resolve(text)
            .map_err(|e| ApiError::NotFound(e.to_string()))
    }

    fn entry(&self, id: &InstrumentId) -> Result<CatalogEntry, ApiError> {
        self.catalog()
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("unknown instrument `{id}`")))
    }

    pub async fn listing(&self, id: &InstrumentId) -> Result<Listing, ApiError> {
        let entry = self.entry(id)?;
        Ok(self.with_quotes(vec![entry]).await.remove(0))
    }

    /// The instruments of `ids` that the catalog knows, in order.
    pub async fn listings(&self, ids: &[InstrumentId]) -> Vec<Listing> {
        let entries: Vec<CatalogEntry> = {
            let catalog = self.catalog();
            ids.iter()
                .filter_map(|id| catalog.get(id).cloned())
                .collect()
        };
        self.with_quotes(entries).await
    }

    pub async fn search(&self, query: &str, limit: usize) -> Vec<Listing> {
        let entries: Vec<CatalogEntry> = self
            .catalog()
            .search(query, limit)
            .into_iter()
            .cloned()
            .collect();
        self.with_quotes(entries).await
    }

    /// The `per_class` instruments of `class` with the largest absolute change, largest first.
    pub async fn top_movers(&self, class: AssetClass, per_class: usize) -> Vec<Listing> {
        let shared = self.quote_cache.all().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the shared quotes; movers from this instance's only");
            Vec::new()
        });
        let mut quotes = newest(self.book.all(), shared);
        quotes.retain(|_, q| q.instrument.asset_class() == class && q.change_percent.is_some());
        let mut quotes: Vec<Quote> = quotes.into_values().collect();
        quotes.sort_by(|a, b| {
            let magnitude = |q: &Quote| q.change_percent.map(|p| p.value().abs());
            magnitude(b)
                .cmp(&magnitude(a))
                .then_with(|| a.instrument.cmp(&b.instrument))
        });
        let catalog = self.catalog();
        quotes
            .into_iter()
            .filter_map(|quote| {
                let entry = catalog.get(&quote.instrument)?.clone();
                Some(Listing {
                    entry,
                    quote: Some(quote),
                })
            })
            .take(per_class)
            .collect()
    }

    /// Each entry with its newest known quote.
    async fn with_quotes(&self, entries: Vec<CatalogEntry>) -> Vec<Listing> {
        let ids: Vec<InstrumentId> = entries.iter().map(|e| e.instrument.id.clone()).collect();
        let mut quotes = latest_known(&self.book, self.quote_cache.as_ref(), &ids).await;
        entries
            .into_iter()
            .map(|entry| Listing {
                quote: quotes.remove(&entry.instrument.id),
                entry,
            })
            .collect()
    }

    pub async fn watch(&self, user: &UserId, id: &InstrumentId) -> Result<(), ApiError> {
        self.entry(id)?;
        self.watchlist
            .add(user, id, Utc::now())
            .await
            .map_err(|e| match e {
                signal_ports::StoreError::Conflict => {
                    ApiError::Conflict(format!("{id} is already on your watchlist"))
                }
                other => other.into(),
            })?;
        self.refresh_watched().await
    }

    async fn refresh_watched(&self) -> Result<(), ApiError> {
        let watched = self.watchlist.watched_instruments().await?;
        self.interest.set_watched(watched);
        Ok(())
    }

    pub async fn unwatch(&self, user: &UserId, id: &InstrumentId) -> Result<(), ApiError> {
        if self.watchlist.remove(user, id).await? {
            self.refresh_watched().await
        } else {
            Err(ApiError::NotFound(format!("{id} is not on your watchlist")))
        }
    }

    pub async fn watchlist(&self, user: &UserId) -> Result<Vec<InstrumentId>, ApiError> {
        Ok(self
            .watchlist
            .list(user)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    pub fn rule_spec(
        &self,
        instrument: InstrumentId,
        condition: Condition,
        repeat: Repeat,
        expires_at: Option<signal_domain::Timestamp>,
        note: Option<String>,
    ) -> Result<RuleSpec, ApiError> {
        self.entry(&instrument)?;
        RuleSpec::new(instrument, condition, repeat, expires_at, note, Utc::now())
            .map_err(|e| ApiError::Unprocessable(e.to_string()))
    }

    pub async fn create_rule(&self, user: &UserId, spec: &RuleSpec) -> Result<AlertRule, ApiError> {
        let rule = self
            .rules
            .create(user, spec, self.max_active_rules, Utc::now())
            .await?;
        self.engine_upsert(rule.clone()).await?;
        self.announcer.announce(user, rule.id).await;
        Ok(rule)
    }

    pub async fn update_rule(
        &self,
        user: &UserId,
        id: RuleId,
        spec: &RuleSpec,
    ) -> Result<AlertRule, ApiError> {
        let rule = self
            .rules
            .update(user, id, spec, self.max_active_rules, Utc::now())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("you have no rule {id}")))?;
        self.engine_upsert(rule.clone()).await?;
        self.announcer.announce(user, rule.id).await;
        Ok(rule)
    }

    pub async fn rule(&self, user: &UserId, id: RuleId) -> Result<AlertRule, ApiError> {
        self.rules
            .get(user, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("you have no rule {id}")))
    }

    pub async fn delete_rule(&self, user: &UserId, id: RuleId) -> Result<(), ApiError> {
        if !self.rules.delete(user, id).await? {
            return Err(ApiError::NotFound(format!("you have no rule {id}")));
        }
        self.engine_remove(vec![id]).await?;
        self.announcer.announce(user, id).await;
        Ok(())
    }

    /// Deletes the user's rules on `id` that `matches` accepts; returns how many went.
    pub async fn delete_rules_where(
        &self,
        user: &UserId,
        id: &InstrumentId,
        matches: impl Fn(&AlertRule) -> bool,
    ) -> Result<usize, ApiError> {
        let doomed: Vec<RuleId> = self
            .rules
            .list(user, false)
            .await?
            .into_iter()
            .filter(|r| &r.spec.instrument == id && matches(r))
            .map(|r| r.id)
            .collect();
        for rule in &doomed {
            self.rules.delete(user, *rule).await?;
        }
        self.engine_remove(doomed.clone()).await?;
        for rule in &doomed {
            self.announcer.announce(user, *rule).await;
        }
        Ok(doomed.len())
    }

    async fn engine_upsert(&self, rule: AlertRule) -> Result<(), ApiError> {
        let (done, applied) = oneshot::channel();
        self.send(EngineCommand::Upsert(rule, done), applied).await
    }

    async fn engine_remove(&self, ids: Vec<RuleId>) -> Result<(), ApiError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (done, applied) = oneshot::channel();
        self.send(EngineCommand::Remove(ids, done), applied).await
    }

    async fn send(
        &self,
        command: EngineCommand,
        applied: oneshot::Receiver<()>,
    ) -> Result<(), ApiError> {
        let unavailable = || ApiError::Unavailable("the trigger engine is shutting down".into());
        self.engine.send(command).await.map_err(|_| unavailable())?;
        applied.await.map_err(|_| unavailable())
    }

    fn catalog(&self) -> std::sync::RwLockReadGuard<'_, signal_catalog::Catalog> {
        // Catalog updates replace entries whole, so a poisoned lock holds a consistent catalog.
        self.catalog.read().unwrap_or_else(|p| p.into_inner())
    }
}
