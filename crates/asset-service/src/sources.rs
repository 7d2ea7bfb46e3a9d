//! Where each market's prices come from, so an instrument without a quote can say why in words a
//! person understands ("KIS is not configured") rather than "no price".

use serde::Serialize;
use signal_domain::{Market, MarketCalendar, SessionState, Timestamp};
use std::collections::HashMap;

/// How the service gets one market's prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceSource {
    /// A feed serves the market (its name: "upbit", "kis", "simulated").
    Feed(&'static str),
    /// The feed that would serve it lacks its credentials; `setting` is what to set.
    NotConfigured {
        feed: &'static str,
        setting: &'static str,
    },
    /// The feed that would serve it is turned off by `setting`.
    SwitchedOff {
        feed: &'static str,
        setting: &'static str,
    },
}

/// The price source of every market; a market not named has no source at all.
#[derive(Debug, Clone, Default)]
pub struct PriceSources {
    by_market: HashMap<Market, PriceSource>,
    demo: bool,
}

/// Why an instrument has no quote, as a code a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    NotConfigured,
    SwitchedOff,
    MarketClosed,
    WaitingForFirstPrice,
}

impl PriceSources {
    /// `demo` says the feeds are the simulated market, which runs with the demo flag.
    pub fn new(sources: impl IntoIterator<Item = (Market, PriceSource)>, demo: bool) -> Self {
        Self {
            by_market: sources.into_iter().collect(),
            demo,
        }
    }

    /// Whether prices (and the history built from them) come from the simulated market.
    pub fn simulated(&self) -> bool {
        self.demo
    }

    /// Why an instrument of `market` has no quote at `now`.
    pub fn why_no_quote(
        &self,
        market: Market,
        calendar: &MarketCalendar,
        now: Timestamp,
    ) -> NoQuote {
        let demo_hint = if self.demo {
            ""
        } else {
            ", or run with --demo for the simulated market"
        };
        let no_quote = |reason, sentence| NoQuote {
            reason,
            sentence,
            resumes_at: None,
        };
        match self.by_market.get(&market) {
            None => no_quote(
                Unavailable::NotConfigured,
                format!("no feed is configured for {market}{demo_hint}"),
            ),
            Some(PriceSource::NotConfigured { feed, setting }) => no_quote(
                Unavailable::NotConfigured,
                format!("{feed} is not configured: set {setting} for {market} prices{demo_hint}"),
            ),
            Some(PriceSource::SwitchedOff { feed, setting }) => no_quote(
                Unavailable::SwitchedOff,
                format!("{feed} is switched off ({setting}){demo_hint}"),
            ),
            Some(PriceSource::Feed(feed)) => match calendar.session(market, now) {
                SessionState::Closed { next_open } => NoQuote {
                    reason: Unavailable::MarketClosed,
                    sentence: match next_open {
                        Some(at) => format!(
                            "{market} is closed; prices from {feed} resume when it opens at {}",
                            at.format("%Y-%m-%d %H:%M UTC")
                        ),
                        None => format!("{market} is closed"),
                    },
                    resumes_at: next_open,
                },
                SessionState::Open => no_quote(
                    Unavailable::WaitingForFirstPrice,
                    format!("waiting for the first price from {feed}"),
                ),
            },
        }
    }
}

/// Why an instrument has no quote: the code, the sentence, and when a closed market reopens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoQuote {
    pub reason: Unavailable,
    pub sentence: String,
    pub resumes_at: Option<Timestamp>,
}
