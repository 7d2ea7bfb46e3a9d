//! The instrument master. People and the original API name instruments loosely — a bare code
//! (`005930`, `AAPL`, `KRW-BTC`) or a name (`삼성전자`, `apple`) — while everything downstream is keyed
//! by [`InstrumentId`]. This crate owns that translation: a catalog seeded from embedded listings
//! (see `data/README.md`), refreshed by live feeds through [`Catalog::upsert`], with exact
//! resolution ([`Catalog::resolve`]) and ranked search ([`Catalog::search`]).

mod builtin;
mod search;

use search::SearchKeys;
use signal_domain::{Instrument, InstrumentId, InstrumentIdError, Price};
use std::collections::HashMap;
use std::fmt;

/// One instrument of the master, with a price to start from before any feed has spoken.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    pub instrument: Instrument,
    /// An approximate recent price on the market's grid, from the embedded listings; seeds the
    /// simulated market. None for an instrument a live feed listed that they do not hold.
    pub reference_price: Option<Price>,
}

/// Why some text does not name exactly one catalogued instrument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "no instrument given: expected MARKET:SYMBOL (KRX:005930, NASDAQ:AAPL, UPBIT:KRW-BTC) or a symbol"
    )]
    Empty,
    #[error("`{}` is not a valid instrument", signal_domain::abbreviate(.text))]
    Malformed {
        text: String,
        #[source]
        source: InstrumentIdError,
    },
    #[error("`{}` is not in the instrument catalog", signal_domain::abbreviate(.text))]
    Unknown { text: String },
    #[error(
        "`{}` is listed on several markets ({}); write it as MARKET:SYMBOL",
        signal_domain::abbreviate(.text),
        IdList(.candidates)
    )]
    Ambiguous {
        text: String,
        candidates: Vec<InstrumentId>,
    },
}

/// Formats ids as `NASDAQ:AAPL, NYSE:AAPL` inside error messages.
struct IdList<'a>(&'a [InstrumentId]);

impl fmt::Display for IdList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Slot {
    entry: CatalogEntry,
    keys: SearchKeys,
}

/// The instrument master: every instrument the system knows, in a stable order (the order the
/// listings were loaded, then the order live feeds added instruments), which search uses to break
/// ties.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    slots: Vec<Slot>,
    by_id: HashMap<InstrumentId, usize>,
    /// Venue symbol (upper case) to positions: a bare US ticker could in principle be listed on
    /// more than one venue, and resolution must say so rather than pick one.
    by_symbol: HashMap<String, Vec<usize>>,
}

impl Catalog {
    /// The catalog of the embedded listings: KRX, then US, then Upbit KRW, each in file order.
    pub fn builtin() -> Catalog {
        let mut catalog = Catalog::default();
        for entry in builtin::entries() {
            catalog.upsert(entry);
        }
        catalog
    }

    pub fn get(&self, id: &InstrumentId) -> Option<&CatalogEntry> {
        self.by_id.get(id).map(|&pos| &self.slots[pos].entry)
    }

    /// Every entry, in catalog order.
    pub fn entries(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.slots.iter().map(|slot| &slot.entry)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds an instrument, or refreshes one already known while keeping its place in the order
    /// (so a feed renaming an instrument does not reshuffle search results).
    pub fn upsert(&mut self, entry: CatalogEntry) {
        let keys = SearchKeys::new(&entry.instrument);
        let id = entry.instrument.id.clone();
        match self.by_id.get(&id) {
            Some(&pos) => self.slots[pos] = Slot { entry, keys },
            None => {
                let pos = self.slots.len();
                self.by_symbol
                    .entry(id.symbol().to_string())
                    .or_default()
                    .push(pos);
                self.by_id.insert(id, pos);
                self.slots.push(Slot { entry, keys });
            }
        }
    }

    /// Takes in what a live feed lists now (Upbit's markets): instruments already known are
    /// refreshed in place (names, warnings) and keep their reference price; new listings are
    /// added. Nothing is removed: a market the feed no longer lists may still have rules and
    /// history. Returns the instruments added.
    pub fn merge_listing(&mut self, listed: Vec<Instrument>) -> Vec<InstrumentId> {
        let mut added = Vec::new();
        for instrument in listed {
            let reference_price = match self.get(&instrument.id) {
                Some(known) if known.instrument == instrument => continue,
                Some(known) => known.reference_price,
                None => {
                    added.push(instrument.id.clone());
                    None
                }
            };
            self.upsert(CatalogEntry {
                instrument,
                reference_price,
            });
        }
        added
    }

    /// Resolves what a client sent to a catalogued instrument.
    ///
    /// Accepts `MARKET:SYMBOL` (`KRX:005930`) or, as the original API did, the venue symbol alone
    /// (`005930`, `AAPL`, `KRW-BTC`), case-insensitively. Names are not accepted: use
    /// [`Catalog::search`] to turn a name into candidates.
    pub fn resolve(&self, text: &str) -> Result<InstrumentId, ResolveError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ResolveError::Empty);
        }
        let unknown = || ResolveError::Unknown {
            text: text.to_string(),
        };
        if text.contains(':') {
            let id: InstrumentId = text.parse().map_err(|source| ResolveError::Malformed {
                text: text.to_string(),
                source,
            })?;
            return if self.by_id.contains_key(&id) {
                Ok(id)
            } else {
                Err(unknown())
            };
        }
        match self
            .by_symbol
            .get(&text.to_ascii_uppercase())
            .map(Vec::as_slice)
        {
            None | Some([]) => Err(unknown()),
            Some([only]) => Ok(self.slots[*only].entry.instrument.id.clone()),
            Some(several) => Err(ResolveError::Ambiguous {
                text: text.to_string(),
                candidates: several
                    .iter()
                    .map(|&pos| self.slots[pos].entry.instrument.id.clone())
                    .collect(),
            }),
        }
    }

    /// Instruments whose symbol, Korean name or English name contains `query`, best first, at most
    /// `limit` of them.
    ///
    /// Matching ignores case and spaces (`sk 하이닉스` finds `SK하이닉스`); an Upbit market also
    /// matches by its coin alone (`btc` is an exact symbol match for `KRW-BTC`). Ranking: exact
    /// symbol, exact name, symbol prefix, name prefix, then any substring. Ties go to KRX, then US,
    /// then Upbit (stocks first: the original product was a stock-alert app), then to catalog order,
    /// which lists the largest companies and busiest coins first — so `삼성` puts 삼성전자 ahead of
    /// 삼성E&A, which plain name order would not. A blank query finds nothing.
    pub fn search(&self, query: &str, limit: usize) -> Vec<&CatalogEntry> {
        let query = search::normalize(query);
        if query.is_empty() || limit == 0 {
            return Vec::new();
        }
        let mut hits: Vec<_> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(pos, slot)| {
                let rank = slot.keys.rank(&query)?;
                let region = search::region_order(slot.entry.instrument.id.market());
                Some((rank, region, pos))
            })
            .collect();
        hits.sort_unstable();
        hits.into_iter()
            .take(limit)
            .map(|(_, _, pos)| &self.slots[pos].entry)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_domain::Market;

    fn id(text: &str) -> InstrumentId {
        text.parse().expect("test ids are valid")
    }

    fn first_hit(catalog: &Catalog, query: &str) -> InstrumentId {
        catalog
            .search(query, 10)
            .first()
            .map(|entry| entry.instrument.id.clone())
            .unwrap_or_else(|| panic!("`{query}` found nothing"))
    }

    fn entry(id_text: &str, korean: &str, english: &str, price: &str) -> CatalogEntry {
        CatalogEntry {
            instrument: Instrument {
                id: id(id_text),
                korean_name: korean.to_string(),
                english_name: english.to_string(),
                warning: false,
            },
            reference_price: Some(price.parse().expect("test prices are valid")),
        }
    }

    #[test]
    fn resolves_bare_symbols_to_their_venue() {
        let catalog = Catalog::builtin();
        assert_eq!(catalog.resolve("005930"), Ok(id("KRX:005930")));
        assert_eq!(catalog.resolve("krw-btc"), Ok(id("UPBIT:KRW-BTC")));
        assert_eq!(catalog.resolve(" aapl "), Ok(id("NASDAQ:AAPL")));
        assert_eq!(catalog.resolve("brk.b"), Ok(id("NYSE:BRK.B")));
        assert_eq!(catalog.resolve("IMO"), Ok(id("AMEX:IMO")));
    }

    #[test]
    fn resolves_qualified_ids_only_when_catalogued() {
        let catalog = Catalog::builtin();
        assert_eq!(catalog.resolve("krx:005930"), Ok(id("KRX:005930")));
        assert_eq!(catalog.resolve("UPBIT:KRW-ETH"), Ok(id("UPBIT:KRW-ETH")));
        let err = catalog.resolve("NYSE:AAPL").unwrap_err();
        assert_eq!(
            err,
            ResolveError::Unknown {
                text: "NYSE:AAPL".into()
            }
        );
        assert!(err.to_string().contains("NYSE:AAPL"));
    }

    #[test]
    fn errors_name_the_offending_text() {
        let catalog = Catalog::builtin();
        let unknown = catalog.resolve("ZZZZZ").unwrap_err();
        assert!(matches!(unknown, ResolveError::Unknown { .. }));
        assert!(unknown.to_string().contains("`ZZZZZ`"), "{unknown}");

        let malformed = catalog.resolve("KRX:AAPL").unwrap_err();
        assert!(matches!(malformed, ResolveError::Malformed { .. }));
        assert!(malformed.to_string().contains("`KRX:AAPL`"), "{malformed}");

        let bad_market = catalog.resolve("LSE:VOD").unwrap_err();
        assert!(bad_market.to_string().contains("`LSE:VOD`"), "{bad_market}");

        assert_eq!(catalog.resolve("   "), Err(ResolveError::Empty));
        assert!(matches!(
            catalog.resolve("삼성전자"),
            Err(ResolveError::Unknown { .. })
        ));
    }

    #[test]
    fn a_symbol_on_two_venues_is_ambiguous() {
        let mut catalog = Catalog::builtin();
        catalog.upsert(entry("NYSE:AAPL", "애플", "Apple", "230"));
        let err = catalog.resolve("AAPL").unwrap_err();
        assert_eq!(
            err,
            ResolveError::Ambiguous {
                text: "AAPL".into(),
                candidates: vec![id("NASDAQ:AAPL"), id("NYSE:AAPL")],
            }
        );
        assert!(err.to_string().contains("NASDAQ:AAPL, NYSE:AAPL"), "{err}");
        assert_eq!(catalog.resolve("NYSE:AAPL"), Ok(id("NYSE:AAPL")));
    }

    #[test]
    fn upsert_refreshes_in_place_and_appends_new_instruments() {
        let mut catalog = Catalog::builtin();
        let before = catalog.len();
        catalog.upsert(entry("KRX:005930", "삼성전자", "Samsung Elec", "72000"));
        assert_eq!(catalog.len(), before);
        let first = catalog.entries().next().expect("catalog is not empty");
        assert_eq!(first.instrument.english_name, "Samsung Elec");
        assert_eq!(first.reference_price.unwrap().to_string(), "72000");

        catalog.upsert(entry("UPBIT:KRW-NEWCOIN", "뉴코인", "New Coin", "12.5"));
        assert_eq!(catalog.len(), before + 1);
        assert_eq!(catalog.resolve("krw-newcoin"), Ok(id("UPBIT:KRW-NEWCOIN")));
        assert_eq!(first_hit(&catalog, "뉴코"), id("UPBIT:KRW-NEWCOIN"));
        assert!(catalog.get(&id("UPBIT:KRW-NEWCOIN")).is_some());
    }

    #[test]
    fn a_listing_adds_new_markets_and_refreshes_known_ones_keeping_their_price() {
        let mut catalog = Catalog::builtin();
        let before = catalog.len();
        let btc = catalog.get(&id("UPBIT:KRW-BTC")).unwrap().clone();
        let mut flagged = btc.instrument.clone();
        flagged.warning = true;
        let new = Instrument {
            id: id("UPBIT:KRW-NEWCOIN"),
            korean_name: "뉴코인".into(),
            english_name: "New Coin".into(),
            warning: false,
        };
        let added = catalog.merge_listing(vec![flagged, new.clone()]);
        assert_eq!(added, [id("UPBIT:KRW-NEWCOIN")]);
        assert_eq!(catalog.len(), before + 1);
        let refreshed = catalog.get(&id("UPBIT:KRW-BTC")).unwrap();
        assert!(refreshed.instrument.warning);
        assert_eq!(refreshed.reference_price, btc.reference_price);
        assert_eq!(first_hit(&catalog, "뉴코인"), id("UPBIT:KRW-NEWCOIN"));
        assert_eq!(catalog.get(&new.id).unwrap().reference_price, None);

        assert!(
            catalog.merge_listing(vec![new]).is_empty(),
            "listed twice, added once"
        );
        assert_eq!(catalog.len(), before + 1);
    }

    #[test]
    fn samsung_electronics_leads_the_samsung_names() {
        let catalog = Catalog::builtin();
        let hits = catalog.search("삼성", 20);
        assert_eq!(hits[0].instrument.id, id("KRX:005930"));
        assert!(hits.len() > 5);
        assert!(hits
            .iter()
            .all(|hit| hit.instrument.korean_name.contains("삼성")));
    }

    #[test]
    fn symbols_and_english_names_find_their_instrument_first() {
        let catalog = Catalog::builtin();
        assert_eq!(first_hit(&catalog, "aapl"), id("NASDAQ:AAPL"));
        assert_eq!(first_hit(&catalog, "apple"), id("NASDAQ:AAPL"));
        assert_eq!(first_hit(&catalog, "btc"), id("UPBIT:KRW-BTC"));
        assert_eq!(first_hit(&catalog, "KRW-BTC"), id("UPBIT:KRW-BTC"));
        assert_eq!(first_hit(&catalog, "005930"), id("KRX:005930"));
    }

    #[test]
    fn bitcoin_leads_the_bit_names() {
        let catalog = Catalog::builtin();
        let hits = catalog.search("비트", 10);
        assert_eq!(hits[0].instrument.id, id("UPBIT:KRW-BTC"));
        assert!(hits
            .iter()
            .any(|hit| hit.instrument.id == id("UPBIT:KRW-BCH")));
    }

    #[test]
    fn spaces_and_case_in_names_do_not_matter() {
        let catalog = Catalog::builtin();
        assert_eq!(first_hit(&catalog, "sk 하이닉스"), id("KRX:000660"));
        assert_eq!(first_hit(&catalog, "SK하이닉스"), id("KRX:000660"));
        assert_eq!(first_hit(&catalog, "버크셔해서웨이"), id("NYSE:BRK.B"));
        assert_eq!(first_hit(&catalog, "SAMSUNG ELECTRONICS"), id("KRX:005930"));
    }

    #[test]
    fn ranking_prefers_exact_then_prefix_then_substring() {
        let catalog = Catalog::builtin();
        // Exact symbol on two markets: the region order puts the US stock before the coin.
        let meta: Vec<_> = catalog
            .search("meta", 3)
            .iter()
            .map(|hit| hit.instrument.id.clone())
            .collect();
        assert_eq!(meta[..2], [id("NASDAQ:META"), id("UPBIT:KRW-META")]);
        // An exact name beats a longer name that merely starts with it.
        assert_eq!(first_hit(&catalog, "카카오"), id("KRX:035720"));
        // An exact symbol beats a symbol that merely starts with it.
        let hits = catalog.search("goog", 5);
        assert_eq!(hits[0].instrument.id, id("NASDAQ:GOOG"));
        assert_eq!(hits[1].instrument.id, id("NASDAQ:GOOGL"));
        // A name prefix beats a name that merely contains the text.
        let hits = catalog.search("현대", 50);
        let first_inner = hits
            .iter()
            .position(|hit| !hit.instrument.korean_name.starts_with("현대"))
            .expect("some names contain 현대 further in");
        assert!(hits[first_inner..]
            .iter()
            .all(|hit| !hit.instrument.korean_name.starts_with("현대")));
    }

    #[test]
    fn search_respects_the_limit_and_ignores_blank_queries() {
        let catalog = Catalog::builtin();
        assert_eq!(catalog.search("삼성", 3).len(), 3);
        assert!(catalog.search("", 10).is_empty());
        assert!(catalog.search("  \t ", 10).is_empty());
        assert!(catalog.search("삼성", 0).is_empty());
        assert!(catalog.search("없는종목이름", 10).is_empty());
    }

    #[test]
    fn builtin_covers_every_market() {
        let catalog = Catalog::builtin();
        for market in Market::ALL {
            assert!(
                catalog
                    .entries()
                    .any(|entry| entry.instrument.id.market() == market),
                "no {market} instrument"
            );
        }
    }
}
