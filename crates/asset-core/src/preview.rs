//! How often a rule would have fired: the rule replayed, in a trigger engine of its own, over the
//! instrument's stored minute candles of the last 30 days.
//!
//! A candle is four trades, one share each but the last, which carries the minute's volume: the
//! open, then the extreme nearer the open, then the other extreme, then the close. Trades inside a
//! minute that the candle does not show are not seen, so a rule can fire more often on the live
//! feed than here (a price that crosses a level and back twice within one minute is one crossing
//! here). A rule that fires once is replayed as one that fires every time its condition is newly
//! met (no cooldown, no re-arm band): how often, not whether, is the question.

use chrono::TimeDelta;
use rust_decimal::Decimal;
use signal_domain::{
    Bar, InstrumentId, Interval, Price, Repeat, RuleId, RuleSpec, RuleState, Timestamp,
};
use signal_ports::Candle;
use signal_trigger_engine::{EngineRule, RuleEngine, Trade, TransitionKind, TriggerEngine};

use crate::assets::Assets;
use crate::engine::bars::BarClock;
use crate::error::CoreError;

/// The spans the preview counts firings over, in days; the longest is the history replayed.
pub const PREVIEW_DAYS: [i64; 3] = [1, 7, 30];
/// Candles read per page.
const PAGE: usize = 5_000;
/// Firings listed, the most recent ones.
pub const MAX_LISTED: usize = 200;
/// What the replay cannot see, for the client to show beside the counts.
pub const APPROXIMATION: &str =
    "Replayed on the stored 1-minute candles of the last 30 days: each \
     minute is its open, its high and low (the one nearer the open first) and its close, so moves \
     within a minute that the candle does not show are not seen, and the live rule can fire more \
     often. A rule that fires once is counted every time its condition is newly met.";

/// One firing the replay saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewFiring {
    pub at: Timestamp,
    pub price: Price,
}

/// What the replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// Firings within each of [`PREVIEW_DAYS`] before now.
    pub counts: [(i64, usize); 3],
    /// The most recent firings, oldest first, at most [`MAX_LISTED`].
    pub firings: Vec<PreviewFiring>,
    /// Candles replayed, and the first one's minute.
    pub candles: usize,
    pub since: Option<Timestamp>,
}

impl Assets {
    /// Replays `spec` over the last 30 days of its instrument's stored minute candles.
    pub async fn preview(&self, spec: &RuleSpec, now: Timestamp) -> Result<Preview, CoreError> {
        let longest = PREVIEW_DAYS[PREVIEW_DAYS.len() - 1];
        let mut from = now - TimeDelta::days(longest);
        let mut candles = Vec::new();
        loop {
            let page = self
                .candles
                .candles(&spec.instrument, from, now, PAGE)
                .await?;
            let full = page.len() == PAGE;
            if let Some(last) = page.last() {
                from = last.minute + TimeDelta::minutes(1);
            }
            candles.extend(page);
            if !full {
                break;
            }
        }
        let fired = replay(spec, &candles);
        let counts = PREVIEW_DAYS.map(|days| {
            let since = now - TimeDelta::days(days);
            (days, fired.iter().filter(|f| f.at >= since).count())
        });
        let listed = fired.len().saturating_sub(MAX_LISTED);
        Ok(Preview {
            counts,
            firings: fired[listed..].to_vec(),
            candles: candles.len(),
            since: candles.first().map(|candle| candle.minute),
        })
    }
}

/// The firings of `spec` over `candles` (one instrument's, oldest first).
pub(crate) fn replay(spec: &RuleSpec, candles: &[Candle]) -> Vec<PreviewFiring> {
    let instrument = &spec.instrument;
    let mut engine = TriggerEngine::default();
    let key = engine.key(instrument);
    let repeat = match spec.repeat {
        Repeat::Once => Repeat::Every {
            cooldown: TimeDelta::zero(),
            rearm_band: Decimal::ZERO,
        },
        other => other,
    };
    // Before the first replayed trade: there is nothing to evaluate it on yet.
    engine.hold(EngineRule {
        id: RuleId(0),
        instrument: instrument.clone(),
        condition: spec.condition,
        and: spec.and,
        repeat,
        expires_at: None,
        snoozed_until: None,
        state: RuleState::Armed,
    });
    let mut clock = BarClock::default();
    clock.follow(instrument);
    let mut day = PreviousClose::default();
    let mut fired = Vec::new();
    let mut transitions = Vec::new();
    let mut closed: Vec<(Interval, Bar)> = Vec::new();
    for candle in candles {
        if let Some(close) = day.on_minute(instrument, candle) {
            engine.set_reference(key, close);
        }
        for (offset, price, volume) in trades_of(candle) {
            let at = candle.minute + TimeDelta::seconds(offset);
            clock.fold_trade(instrument, price, volume, at, &mut closed);
            for (interval, bar) in closed.drain(..) {
                engine.on_bar_close(key, interval, &bar, &mut transitions);
            }
            engine.on_trade(key, Trade { price, volume, at }, &mut transitions);
            for transition in transitions.drain(..) {
                if let TransitionKind::Fired { price, .. } = transition.kind {
                    fired.push(PreviewFiring { at, price });
                }
            }
        }
    }
    fired
}

/// A candle as four trades: (seconds into the minute, price, volume).
fn trades_of(candle: &Candle) -> [(i64, Price, Decimal); 4] {
    let (first, second) = if candle.close >= candle.open {
        (candle.low, candle.high)
    } else {
        (candle.high, candle.low)
    };
    [
        (0, candle.open, Decimal::ZERO),
        (15, first, Decimal::ZERO),
        (30, second, Decimal::ZERO),
        (59, candle.close, candle.volume),
    ]
}

/// The previous day's close, for percent rules, as the replay crosses the market's days.
#[derive(Debug, Default)]
struct PreviousClose {
    day: Option<Timestamp>,
    last: Option<Price>,
}

impl PreviousClose {
    /// The close to measure percent rules against from this candle on, when it changes.
    fn on_minute(&mut self, instrument: &InstrumentId, candle: &Candle) -> Option<Price> {
        let day = Interval::D1.bar_start(instrument.market(), candle.minute);
        let new_day = self.day.is_some_and(|seen| seen != day);
        self.day = Some(day);
        let previous = self.last.replace(candle.close);
        if new_day {
            previous
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_domain::{Condition, ConditionKind};

    fn candle(minute: i64, ohlc: [i64; 4]) -> Candle {
        let price = |value: i64| Price::new(value.into()).unwrap();
        Candle {
            instrument: "UPBIT:KRW-BTC".parse().unwrap(),
            minute: "2026-03-04T00:00:00Z".parse::<Timestamp>().unwrap()
                + TimeDelta::minutes(minute),
            open: price(ohlc[0]),
            high: price(ohlc[1]),
            low: price(ohlc[2]),
            close: price(ohlc[3]),
            volume: Decimal::ONE,
            trades: 4,
        }
    }

    fn spec(condition: Condition, repeat: Repeat) -> RuleSpec {
        RuleSpec::new(
            "UPBIT:KRW-BTC".parse().unwrap(),
            condition,
            repeat,
            None,
            None,
            "2026-01-01T00:00:00Z".parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn each_crossing_of_the_candles_counts_once_and_a_once_rule_counts_every_time() {
        let cross = Condition::from_parts(ConditionKind::CrossUp, 100.into()).unwrap();
        let candles = [
            candle(0, [95, 98, 94, 97]),
            // Through 100 within the minute, closing above: one crossing, at the high.
            candle(1, [97, 103, 96, 102]),
            candle(2, [102, 104, 99, 99]),
            candle(3, [99, 101, 98, 100]),
        ];
        let fired = replay(&spec(cross, Repeat::Once), &candles);
        let seconds: Vec<(i64, String)> = fired
            .iter()
            .map(|f| {
                (
                    (f.at - candles[0].minute).num_seconds(),
                    f.price.to_string(),
                )
            })
            .collect();
        assert_eq!(
            seconds,
            [(60 + 30, "103".into()), (180 + 30, "101".into())],
            "the second crossing is at minute 3's high, and its close at the level is no new one"
        );
        let above = Condition::from_parts(ConditionKind::Above, 100.into()).unwrap();
        let once_per_bar = replay(&spec(above, Repeat::OncePerBar(Interval::M1)), &candles);
        assert_eq!(once_per_bar.len(), 3, "minutes 1, 2 and 3 reach 100");
    }

    #[test]
    fn a_percent_rule_is_measured_against_the_previous_day_s_close() {
        let down = Condition::from_parts(ConditionKind::ChangeDown, 10.into()).unwrap();
        let day = 24 * 60;
        let candles = [
            candle(0, [80, 80, 80, 80]),
            candle(day - 1, [100, 100, 100, 100]),
            // 10 % below the previous day's close of 100 is 90; the day after, 90 * 0.9 = 81.
            candle(day, [95, 95, 91, 91]),
            candle(day + 1, [91, 91, 90, 90]),
            candle(2 * day, [85, 85, 80, 80]),
        ];
        let fired = replay(&spec(down, Repeat::Once), &candles);
        let prices: Vec<String> = fired.iter().map(|f| f.price.to_string()).collect();
        assert_eq!(
            prices,
            ["90", "80"],
            "no level on the first day; 90, then 81"
        );
    }
}
