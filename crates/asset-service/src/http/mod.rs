//! The Asset Service's HTTP surface. The original system's routes (`legacy`) and the cleaner JSON
//! API (`api`) are two thin shapes over the same operations (`ops`).

mod api;
mod candles;
mod legacy;
mod ops;
mod quote_socket;

use axum::extract::FromRef;
use axum::Router;
use signal_catalog::Catalog;
use signal_ports::{CandleStore, QuoteCache, RuleStore, WatchlistStore};
use signal_web::JwtVerifier;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

use crate::interest::InterestTracker;
use crate::metrics::AssetMetrics;
use crate::pipeline::EngineCommand;
use crate::quote_book::QuoteBook;
use crate::rule_sync::RuleAnnouncer;

#[derive(Clone)]
pub struct AssetState {
    pub catalog: Arc<RwLock<Catalog>>,
    pub book: Arc<QuoteBook>,
    /// The latest quotes every instance shares: those of instruments this one does not hear.
    pub quote_cache: Arc<dyn QuoteCache>,
    pub rules: Arc<dyn RuleStore>,
    pub watchlist: Arc<dyn WatchlistStore>,
    pub candles: Arc<dyn CandleStore>,
    pub engine: mpsc::Sender<EngineCommand>,
    pub verifier: Arc<JwtVerifier>,
    pub metrics: AssetMetrics,
    pub max_active_rules: usize,
    /// Shown when an instrument has no quote yet, so a user knows why.
    pub feed_description: Arc<str>,
    pub interest: Arc<InterestTracker>,
    pub announcer: RuleAnnouncer,
}

impl FromRef<AssetState> for Arc<JwtVerifier> {
    fn from_ref(state: &AssetState) -> Self {
        state.verifier.clone()
    }
}

pub fn router(state: AssetState) -> Router {
    Router::new()
        .merge(legacy::routes())
        .merge(api::routes())
        .merge(candles::routes())
        .merge(quote_socket::routes())
        .with_state(state)
}
