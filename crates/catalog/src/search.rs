//! How typed text is matched against instruments. Kept apart from the catalog so the matching rules
//! (what counts as the same text, which kind of match beats which) live in one place.

use signal_domain::{Instrument, Market};

/// How well an instrument matches a query; earlier variants rank first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum MatchRank {
    ExactSymbol,
    ExactName,
    SymbolPrefix,
    NamePrefix,
    Substring,
}

/// An instrument's symbols and names, normalized once when it enters the catalog so a search only
/// compares strings.
#[derive(Debug, Clone)]
pub(crate) struct SearchKeys {
    /// The venue symbol and, for Upbit, the coin alone: people type `btc`, not `krw-btc`.
    symbols: Vec<String>,
    names: [String; 2],
}

impl SearchKeys {
    pub(crate) fn new(instrument: &Instrument) -> Self {
        let id = &instrument.id;
        let mut symbols = vec![normalize(id.symbol())];
        if id.market() == Market::Upbit {
            if let Some((_, coin)) = id.symbol().split_once('-') {
                symbols.push(normalize(coin));
            }
        }
        Self {
            symbols,
            names: [
                normalize(&instrument.korean_name),
                normalize(&instrument.english_name),
            ],
        }
    }

    /// The best way this instrument matches a normalized query, if it matches at all.
    pub(crate) fn rank(&self, query: &str) -> Option<MatchRank> {
        let symbols = || self.symbols.iter();
        let names = || self.names.iter();
        if symbols().any(|s| s == query) {
            Some(MatchRank::ExactSymbol)
        } else if names().any(|n| n == query) {
            Some(MatchRank::ExactName)
        } else if symbols().any(|s| s.starts_with(query)) {
            Some(MatchRank::SymbolPrefix)
        } else if names().any(|n| n.starts_with(query)) {
            Some(MatchRank::NamePrefix)
        } else if symbols().chain(names()).any(|k| k.contains(query)) {
            Some(MatchRank::Substring)
        } else {
            None
        }
    }
}

/// Lower case without whitespace, so `SK 하이닉스`, `sk하이닉스` and `SK하이닉스` are one text.
pub(crate) fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Tie-break between equally good matches: Korean stocks, then US stocks, then crypto.
pub(crate) fn region_order(market: Market) -> u8 {
    match market {
        Market::Krx => 0,
        Market::Nasdaq | Market::Nyse | Market::Amex => 1,
        Market::Upbit => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(id: &str, korean: &str, english: &str) -> SearchKeys {
        SearchKeys::new(&Instrument {
            id: id.parse().expect("test ids are valid"),
            korean_name: korean.to_string(),
            english_name: english.to_string(),
            warning: false,
        })
    }

    #[test]
    fn each_kind_of_match_is_recognised() {
        let btc = keys("UPBIT:KRW-BTC", "비트코인", "Bitcoin");
        assert_eq!(btc.rank("btc"), Some(MatchRank::ExactSymbol));
        assert_eq!(btc.rank("krw-btc"), Some(MatchRank::ExactSymbol));
        assert_eq!(btc.rank("비트코인"), Some(MatchRank::ExactName));
        assert_eq!(btc.rank("krw-b"), Some(MatchRank::SymbolPrefix));
        assert_eq!(btc.rank("bitc"), Some(MatchRank::NamePrefix));
        assert_eq!(btc.rank("코인"), Some(MatchRank::Substring));
        assert_eq!(btc.rank("eth"), None);
    }

    #[test]
    fn normalization_drops_spaces_and_case() {
        assert_eq!(normalize(" SK 하이닉스\t"), "sk하이닉스");
        assert_eq!(normalize("Alphabet Class A"), "alphabetclassa");
    }
}
