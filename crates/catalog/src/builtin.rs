//! The listings compiled into the binary, so a fresh install can resolve and search instruments (and
//! run the simulated market) before any live feed has connected.

use crate::CatalogEntry;
use rust_decimal::Decimal;
use serde::Deserialize;
use signal_domain::{Instrument, InstrumentId, InstrumentIdError, Market, Price, PriceError};
use std::str::FromStr;

/// (file name for error messages, contents), in catalog order.
const FILES: [(&str, &str); 3] = [
    ("krx.csv", include_str!("../data/krx.csv")),
    ("us.csv", include_str!("../data/us.csv")),
    ("upbit_krw.csv", include_str!("../data/upbit_krw.csv")),
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum DataError {
    #[error("{file} is not readable CSV")]
    Csv {
        file: &'static str,
        #[source]
        source: csv::Error,
    },
    #[error("{file} line {line}")]
    Row {
        file: &'static str,
        line: u64,
        #[source]
        source: RowError,
    },
}

/// What is wrong with one row.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RowError {
    #[error("the row does not have the listing's columns")]
    Columns(#[source] csv::Error),
    #[error("unknown market")]
    Market(#[source] <Market as FromStr>::Err),
    #[error("invalid symbol")]
    Symbol(#[source] InstrumentIdError),
    #[error("{0} needs both a Korean and an English name")]
    Unnamed(InstrumentId),
    #[error("reference_price `{text}` is not a number")]
    NotANumber {
        text: String,
        #[source]
        source: rust_decimal::Error,
    },
    #[error("reference_price `{text}` is not a price")]
    NotAPrice {
        text: String,
        #[source]
        source: PriceError,
    },
}

/// One CSV row as written; every field is checked by [`Row::into_entry`].
#[derive(Debug, Deserialize)]
struct Row {
    market: String,
    symbol: String,
    korean_name: String,
    english_name: String,
    reference_price: String,
}

impl Row {
    fn into_entry(self) -> Result<CatalogEntry, RowError> {
        let market = Market::from_str(&self.market).map_err(RowError::Market)?;
        let id = InstrumentId::new(market, &self.symbol).map_err(RowError::Symbol)?;
        if self.korean_name.is_empty() || self.english_name.is_empty() {
            return Err(RowError::Unnamed(id));
        }
        let raw =
            Decimal::from_str(&self.reference_price).map_err(|source| RowError::NotANumber {
                text: self.reference_price.clone(),
                source,
            })?;
        // Rounded so that a sloppy seed can never put the simulated market off its grid.
        let reference_price =
            Price::new(market.round_to_unit(raw)).map_err(|source| RowError::NotAPrice {
                text: self.reference_price.clone(),
                source,
            })?;
        Ok(CatalogEntry {
            instrument: Instrument {
                id,
                korean_name: self.korean_name,
                english_name: self.english_name,
                warning: false,
            },
            reference_price: Some(reference_price),
        })
    }
}

fn parse(file: &'static str, text: &str) -> Result<Vec<CatalogEntry>, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|source| DataError::Csv { file, source })?
        .clone();
    reader
        .records()
        .map(|record| {
            let record = record.map_err(|source| DataError::Csv { file, source })?;
            let line = record.position().map_or(0, |p| p.line());
            record
                .deserialize::<Row>(Some(&headers))
                .map_err(RowError::Columns)
                .and_then(Row::into_entry)
                .map_err(|source| DataError::Row { file, line, source })
        })
        .collect()
}

/// Every embedded entry, in catalog order.
pub(crate) fn entries() -> impl Iterator<Item = CatalogEntry> {
    FILES.into_iter().flat_map(|(file, text)| {
        parse(file, text).unwrap_or_else(|err| {
            panic!(
                "embedded catalog data is invalid, which the builtin tests rule out: {}",
                signal_domain::ErrorChain(&err)
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn parsed(file: &'static str) -> Vec<CatalogEntry> {
        let (_, text) = FILES
            .into_iter()
            .find(|(name, _)| *name == file)
            .expect("file is embedded");
        parse(file, text).unwrap_or_else(|err| panic!("{err}"))
    }

    fn markets(entries: &[CatalogEntry]) -> HashSet<Market> {
        entries.iter().map(|e| e.instrument.id.market()).collect()
    }

    #[test]
    fn every_file_parses_with_enough_rows_of_its_markets() {
        let krx = parsed("krx.csv");
        assert!(krx.len() >= 100, "{} KRX rows", krx.len());
        assert_eq!(markets(&krx), HashSet::from([Market::Krx]));

        let us = parsed("us.csv");
        assert!(us.len() >= 100, "{} US rows", us.len());
        assert_eq!(
            markets(&us),
            HashSet::from([Market::Nasdaq, Market::Nyse, Market::Amex])
        );

        let upbit = parsed("upbit_krw.csv");
        assert!(upbit.len() >= 100, "{} Upbit rows", upbit.len());
        assert_eq!(markets(&upbit), HashSet::from([Market::Upbit]));
        assert!(upbit
            .iter()
            .all(|e| e.instrument.id.symbol().starts_with("KRW-")));
    }

    #[test]
    fn no_instrument_is_listed_twice() {
        let all: Vec<_> = entries().collect();
        let ids: HashSet<_> = all.iter().map(|e| e.instrument.id.clone()).collect();
        assert_eq!(ids.len(), all.len());
        assert_eq!(crate::Catalog::builtin().len(), all.len());
    }

    #[test]
    fn seed_prices_are_written_on_the_grid() {
        // Loading rounds anyway; this keeps the files themselves honest.
        for (file, text) in FILES {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            for row in reader.deserialize::<Row>() {
                let row = row.unwrap_or_else(|err| panic!("{file}: {err}"));
                let market = Market::from_str(&row.market).expect("market parses");
                let raw = Decimal::from_str(&row.reference_price).expect("price parses");
                assert_eq!(
                    market.round_to_unit(raw),
                    raw.normalize(),
                    "{file}: {} {raw} is off the grid",
                    row.symbol
                );
            }
        }
    }

    #[test]
    fn bad_rows_are_reported_with_file_and_line() {
        let text = "market,symbol,korean_name,english_name,reference_price\n\
                    KRX,005930,삼성전자,Samsung Electronics,71000\n\
                    KRX,AAPL,애플,Apple,230\n";
        let err = signal_domain::ErrorChain(&parse("test.csv", text).unwrap_err()).to_string();
        assert!(err.starts_with("test.csv line 3:"), "{err}");

        let text = "market,symbol,korean_name,english_name,reference_price\n\
                    UPBIT,KRW-BTC,비트코인,Bitcoin,-5\n";
        let err = signal_domain::ErrorChain(&parse("test.csv", text).unwrap_err()).to_string();
        assert!(err.contains("reference_price `-5`"), "{err}");
    }

    #[test]
    fn sloppy_seed_prices_are_rounded_onto_the_grid() {
        let text = "market,symbol,korean_name,english_name,reference_price\n\
                    KRX,005930,삼성전자,Samsung Electronics,71949\n";
        let entries = parse("test.csv", text).expect("row is valid");
        assert_eq!(entries[0].reference_price.unwrap().to_string(), "71900");
    }
}
