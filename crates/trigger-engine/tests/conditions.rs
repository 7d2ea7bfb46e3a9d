//! The conditions beyond a level, as a trader would check them, on both engines: crossings and
//! their edge cases, channels, moves within a window, volume, indicators before and after their
//! warm-up, two conditions within a time, and the per-bar frequencies and snoozing.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

use chrono::{Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use signal_domain::{
    Average, AverageKind, Bar, ChannelEdge, Condition, Conjunct, Crossing, Direction, InstrumentId,
    Interval, MoveSize, Percent, Price, Repeat, RuleId, RuleState, Timestamp,
};
use signal_trigger_engine::{
    EngineRule, InstrumentKey, NaiveEngine, RuleEngine, Trade, Transition, TransitionKind,
    TriggerEngine,
};

fn on_both_engines(scenario: impl Fn(&mut Market)) {
    scenario(&mut Market::new(Box::new(TriggerEngine::default())));
    scenario(&mut Market::new(Box::new(NaiveEngine::default())));
}

/// One instrument's trades and bars, fed to an engine.
struct Market {
    engine: Box<dyn RuleEngine>,
    btc: InstrumentKey,
    /// The time of the last trade or bar close: rules are added then.
    now: Timestamp,
}

fn btc() -> InstrumentId {
    "UPBIT:KRW-BTC".parse().unwrap()
}

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap()
}

fn secs(seconds: i64) -> Timestamp {
    t0() + Duration::seconds(seconds)
}

fn price(text: &str) -> Price {
    text.parse().unwrap()
}

impl Market {
    fn new(mut engine: Box<dyn RuleEngine>) -> Self {
        let btc = engine.key(&btc());
        Self {
            engine,
            btc,
            now: t0(),
        }
    }

    fn add(&mut self, condition: Condition, repeat: Repeat) -> Vec<Transition> {
        self.add_rule(EngineRule {
            id: RuleId(1),
            instrument: btc(),
            condition,
            and: None,
            repeat,
            expires_at: None,
            snoozed_until: None,
            state: RuleState::Armed,
        })
    }

    /// Adds the rule; returns what it did at once.
    fn add_rule(&mut self, rule: EngineRule) -> Vec<Transition> {
        let mut out = Vec::new();
        self.engine.upsert(rule, self.now, &mut out);
        out
    }

    fn trade_with(&mut self, traded: &str, at: i64, volume: Decimal) -> Vec<Transition> {
        let mut out = Vec::new();
        self.now = secs(at);
        let trade = Trade {
            price: price(traded),
            volume,
            at: self.now,
        };
        self.engine.on_trade(self.btc, trade, &mut out);
        out
    }

    fn trade(&mut self, traded: &str, at: i64) -> Vec<Transition> {
        self.trade_with(traded, at, Decimal::ZERO)
    }

    fn close(
        &mut self,
        interval: Interval,
        start: i64,
        close: &str,
        volume: Decimal,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let bar = bar(secs(start), close, volume);
        self.now = interval.bar_end(btc().market(), bar.start);
        self.engine.on_bar_close(self.btc, interval, &bar, &mut out);
        out
    }

    /// Stored minute bars closing at `closes`, the last one ending at t0.
    fn warm_up(&mut self, closes: &[&str]) {
        let bars: Vec<Bar> = closes
            .iter()
            .enumerate()
            .map(|(i, close)| {
                let start = t0() - Duration::minutes((closes.len() - i) as i64);
                bar(start, close, Decimal::ZERO)
            })
            .collect();
        self.engine.warm_up(self.btc, Interval::M1, &bars);
    }
}

fn bar(start: Timestamp, close: &str, volume: Decimal) -> Bar {
    let close = price(close);
    Bar {
        start,
        open: close,
        high: close,
        low: close,
        close,
        volume,
    }
}

/// The firing of rule 1 at `level`, with what the condition measured.
fn fired(level: Decimal, traded: &str, measured: Option<Decimal>, next: RuleState) -> Transition {
    Transition {
        rule: RuleId(1),
        kind: TransitionKind::Fired {
            level,
            price: price(traded),
            measured,
            next,
        },
    }
}

fn fired_once(level: Decimal, traded: &str) -> Transition {
    fired(level, traded, None, RuleState::Triggered)
}

fn cross(crossing: Crossing, level: &str) -> Condition {
    Condition::Cross {
        crossing,
        level: price(level),
    }
}

fn every(cooldown_secs: i64, band: Decimal) -> Repeat {
    Repeat::Every {
        cooldown: Duration::seconds(cooldown_secs),
        rearm_band: band,
    }
}

#[test]
fn a_crossing_needs_a_trade_on_the_other_side_first() {
    on_both_engines(|market| {
        market.add(cross(Crossing::Up, "100"), Repeat::Once);
        // No trade before this one: the price is past the level, it did not cross it.
        assert_eq!(market.trade("105", 0), []);
        assert_eq!(market.trade("101", 1), []);
        assert_eq!(market.trade("99", 2), []);
        // Exactly at the level counts as reaching it.
        assert_eq!(market.trade("100", 3), [fired_once(dec!(100), "100")]);
    });
}

#[test]
fn a_crossing_created_past_its_level_waits_for_the_price_to_come_back() {
    on_both_engines(|market| {
        market.trade("105", 0);
        assert_eq!(market.add(cross(Crossing::Up, "100"), Repeat::Once), []);
        assert_eq!(market.trade("106", 1), []);
        assert_eq!(market.trade("99.5", 2), []);
        assert_eq!(market.trade("101", 3), [fired_once(dec!(100), "101")]);
    });
}

#[test]
fn a_gap_over_the_level_is_a_crossing() {
    on_both_engines(|market| {
        market.trade("95", 0);
        market.add(cross(Crossing::Up, "100"), Repeat::Once);
        assert_eq!(market.trade("110", 1), [fired_once(dec!(100), "110")]);
    });
}

#[test]
fn crossing_down_and_either_way() {
    on_both_engines(|market| {
        market.trade("105", 0);
        market.add(cross(Crossing::Down, "100"), Repeat::Once);
        assert_eq!(market.trade("100", 1), [fired_once(dec!(100), "100")]);
    });
    on_both_engines(|market| {
        market.trade("95", 0);
        market.add(cross(Crossing::Either, "100"), every(0, Decimal::ZERO));
        let cooling = |at| RuleState::Cooling {
            rearmed: false,
            until: secs(at),
        };
        // Touching the level from below crosses it; moving on above it does not cross again.
        assert_eq!(
            market.trade("100", 1),
            [fired(dec!(100), "100", None, cooling(1))]
        );
        let rearmed = Transition {
            rule: RuleId(1),
            kind: TransitionKind::Rearmed {
                next: RuleState::Armed,
            },
        };
        assert_eq!(market.trade("101", 2), [rearmed]);
        assert_eq!(
            market.trade("99", 3),
            [fired(dec!(100), "99", None, cooling(3))]
        );
    });
}

#[test]
fn a_channel_fires_on_the_way_in_or_out() {
    let channel = |edge| Condition::Channel {
        edge,
        low: price("100"),
        high: price("110"),
    };
    on_both_engines(|market| {
        market.trade("95", 0);
        market.add(channel(ChannelEdge::Enter), Repeat::Once);
        // Jumping over the band does not enter it.
        assert_eq!(market.trade("115", 1), []);
        assert_eq!(market.trade("110", 2), [fired_once(dec!(110), "110")]);
    });
    on_both_engines(|market| {
        market.trade("105", 0);
        market.add(channel(ChannelEdge::Exit), Repeat::Once);
        assert_eq!(market.trade("100", 1), []);
        assert_eq!(market.trade("99.99", 2), [fired_once(dec!(100), "99.99")]);
    });
}

fn falls(percent: Decimal, minutes: i64) -> Condition {
    Condition::Move {
        direction: Direction::Down,
        size: MoveSize::Percent(Percent::new(percent)),
        window: Duration::minutes(minutes),
    }
}

#[test]
fn a_fall_within_a_window_is_measured_from_the_window_s_high() {
    on_both_engines(|market| {
        market.add(falls(dec!(3), 15), Repeat::Once);
        assert_eq!(market.trade("100", 0), []);
        assert_eq!(market.trade("101", 300), []);
        // 2.48 % below the high of 101, and only 1.5 % below the window's first trade.
        assert_eq!(market.trade("98.5", 600), []);
        // 3.07 % below the high: the level is 97 % of 101.
        assert_eq!(
            market.trade("97.9", 720),
            [fired(
                dec!(97.97),
                "97.9",
                Some(dec!(3.0693)),
                RuleState::Triggered
            )]
        );
    });
}

#[test]
fn a_fall_slower_than_the_window_does_not_fire() {
    on_both_engines(|market| {
        market.add(falls(dec!(3), 15), Repeat::Once);
        assert_eq!(market.trade("101", 0), []);
        assert_eq!(market.trade("99.5", 480), []);
        // 3.07 % below 101, but that was 16 minutes ago; 1.6 % below the high since.
        assert_eq!(market.trade("97.9", 960), []);
    });
}

#[test]
fn a_repeating_move_re_arms_when_the_move_shrinks_by_its_band_in_percentage_points() {
    on_both_engines(|market| {
        let rises = Condition::Move {
            direction: Direction::Up,
            size: MoveSize::Percent(Percent::new(dec!(2))),
            window: Duration::seconds(60),
        };
        market.add(rises, every(0, dec!(1)));
        let cooling = |at| RuleState::Cooling {
            rearmed: false,
            until: secs(at),
        };
        assert_eq!(market.trade("100", 0), []);
        assert_eq!(
            market.trade("102", 1),
            [fired(dec!(102), "102", Some(dec!(2)), cooling(1))]
        );
        assert_eq!(market.trade("102.5", 2), []);
        let rearmed = Transition {
            rule: RuleId(1),
            kind: TransitionKind::Rearmed {
                next: RuleState::Armed,
            },
        };
        // 0.9 % above the low: less than 2 - 1 points.
        assert_eq!(market.trade("100.9", 3), [rearmed]);
        assert_eq!(
            market.trade("102", 4),
            [fired(dec!(102), "102", Some(dec!(2)), cooling(4))]
        );
    });
}

#[test]
fn a_volume_spike_compares_the_forming_bar_with_the_average_of_the_bars_before() {
    on_both_engines(|market| {
        let spike = Condition::VolumeSpike {
            interval: Interval::M1,
            bars: 3,
            factor: dec!(2),
        };
        market.add(spike, Repeat::Once);
        // No finished bars yet: no average to compare with, however large the volume.
        assert_eq!(market.trade_with("100", 0, dec!(1000)), []);
        for (minute, volume) in [(0, dec!(10)), (1, dec!(20)), (2, dec!(30))] {
            assert_eq!(market.close(Interval::M1, minute * 60, "100", volume), []);
        }
        // Twice the average of 20 is 40.
        assert_eq!(market.trade_with("100", 181, dec!(15)), []);
        assert_eq!(market.trade_with("100", 182, dec!(20)), []);
        assert_eq!(
            market.trade_with("100", 183, dec!(10)),
            [fired(
                dec!(40),
                "100",
                Some(dec!(2.25)),
                RuleState::Triggered
            )]
        );
    });
}

#[test]
fn the_day_s_volume_passing_a_level() {
    on_both_engines(|market| {
        market.add(Condition::DayVolume { volume: dec!(1000) }, Repeat::Once);
        assert_eq!(market.trade_with("100", 0, dec!(600)), []);
        assert_eq!(market.trade_with("100", 1, dec!(300)), []);
        assert_eq!(
            market.trade_with("100", 2, dec!(200)),
            [fired(
                dec!(1000),
                "100",
                Some(dec!(1100)),
                RuleState::Triggered
            )]
        );
    });
}

fn sma(bars: u16) -> Average {
    Average {
        kind: AverageKind::Sma,
        bars,
    }
}

#[test]
fn a_price_crossing_its_average_waits_for_the_warm_up() {
    on_both_engines(|market| {
        let crossing = Condition::PriceCrossesAverage {
            direction: Direction::Up,
            average: sma(3),
            interval: Interval::M1,
        };
        market.add(crossing, Repeat::Once);
        // Not warmed up: no average, whatever the price does.
        assert_eq!(market.trade("50", 0), []);
        assert_eq!(market.trade("200", 1), []);
        // With the forming bar, SMA(3) is (100 + 110 + p) / 3, crossed at 105.
        market.warm_up(&["100", "110"]);
        assert_eq!(market.trade("104", 2), []);
        assert_eq!(
            market.trade("106", 3),
            [fired(
                dec!(105),
                "106",
                Some(dec!(105.333333333333)),
                RuleState::Triggered
            )]
        );
    });
}

#[test]
fn rsi_above_a_level() {
    on_both_engines(|market| {
        let rsi = Condition::Rsi {
            direction: Direction::Up,
            bars: 2,
            level: dec!(70),
            interval: Interval::M1,
        };
        market.add(rsi, Repeat::Once);
        assert_eq!(market.trade("20", 0), []);
        // Changes +2 and -1: gains average 1, losses 0.5; RSI reaches 70 at 11 1/6.
        market.warm_up(&["10", "12", "11"]);
        assert_eq!(market.trade("11.1", 1), []);
        assert_eq!(
            market.trade("11.2", 2),
            [fired(
                dec!(11.166666666667),
                "11.2",
                Some(dec!(70.5882)),
                RuleState::Triggered
            )]
        );
    });
}

#[test]
fn a_golden_cross_of_two_averages() {
    on_both_engines(|market| {
        let golden = Condition::AveragesCross {
            direction: Direction::Up,
            fast: sma(2),
            slow: sma(3),
            interval: Interval::M1,
        };
        market.add(golden, Repeat::Once);
        // Falling closes: the fast average is below the slow one until the price reaches 30.
        market.warm_up(&["30", "20", "10"]);
        assert_eq!(market.trade("25", 0), []);
        assert_eq!(
            market.trade("31", 1),
            [fired(
                dec!(30),
                "31",
                Some(dec!(20.5)),
                RuleState::Triggered
            )]
        );
    });
}

fn crossing_with_volume(within: i64) -> EngineRule {
    EngineRule {
        id: RuleId(1),
        instrument: btc(),
        condition: cross(Crossing::Up, "100"),
        and: Some(Conjunct {
            condition: Condition::DayVolume { volume: dec!(1000) },
            within: Duration::seconds(within),
        }),
        repeat: Repeat::Once,
        expires_at: None,
        snoozed_until: None,
        state: RuleState::Armed,
    }
}

#[test]
fn two_conditions_met_within_the_time_fire() {
    on_both_engines(|market| {
        market.add_rule(crossing_with_volume(60));
        assert_eq!(market.trade_with("95", 0, Decimal::ZERO), []);
        // The crossing, without the volume yet.
        assert_eq!(market.trade_with("101", 10, dec!(100)), []);
        // The volume, 40 seconds after the crossing.
        assert_eq!(
            market.trade_with("102", 50, dec!(1000)),
            [fired_once(dec!(100), "102")]
        );
    });
    on_both_engines(|market| {
        market.add_rule(crossing_with_volume(60));
        market.trade_with("95", 0, Decimal::ZERO);
        market.trade_with("101", 10, dec!(100));
        // 90 seconds after the crossing: too late.
        assert_eq!(market.trade_with("102", 100, dec!(1000)), []);
    });
}

#[test]
fn once_per_bar_fires_again_in_the_next_bar() {
    on_both_engines(|market| {
        market.add(
            Condition::Above(price("100")),
            Repeat::OncePerBar(Interval::M1),
        );
        let cooling = |until| RuleState::Cooling {
            rearmed: true,
            until: secs(until),
        };
        assert_eq!(
            market.trade("101", 10),
            [fired(dec!(100), "101", None, cooling(60))]
        );
        assert_eq!(market.trade("102", 30), []);
        assert_eq!(
            market.trade("103", 65),
            [fired(dec!(100), "103", None, cooling(120))]
        );
    });
}

#[test]
fn once_per_bar_close_looks_at_closes_only() {
    on_both_engines(|market| {
        market.add(
            Condition::Above(price("100")),
            Repeat::OncePerBarClose(Interval::M1),
        );
        assert_eq!(market.trade("150", 10), []);
        assert_eq!(
            market.close(Interval::M1, 0, "101", Decimal::ZERO),
            [fired(dec!(100), "101", None, RuleState::Armed)]
        );
        assert_eq!(market.close(Interval::M1, 60, "99", Decimal::ZERO), []);
        assert_eq!(
            market.close(Interval::M1, 120, "102", Decimal::ZERO),
            [fired(dec!(100), "102", None, RuleState::Armed)]
        );
    });
}

#[test]
fn a_snoozed_rule_fires_only_after_its_snooze() {
    on_both_engines(|market| {
        market.add_rule(EngineRule {
            id: RuleId(1),
            instrument: btc(),
            condition: Condition::Above(price("100")),
            and: None,
            repeat: Repeat::Once,
            expires_at: None,
            snoozed_until: Some(secs(60)),
            state: RuleState::Armed,
        });
        assert_eq!(market.trade("101", 10), []);
        assert_eq!(market.trade("101", 59), []);
        assert_eq!(market.trade("101", 61), [fired_once(dec!(100), "101")]);
    });
}

#[test]
fn holding_conditions_already_met_fire_when_added_and_crossings_do_not() {
    on_both_engines(|market| {
        market.trade("105", 0);
        for crossing in [Crossing::Up, Crossing::Either] {
            assert_eq!(market.add(cross(crossing, "100"), Repeat::Once), []);
        }
        let channel = Condition::Channel {
            edge: ChannelEdge::Enter,
            low: price("100"),
            high: price("110"),
        };
        assert_eq!(market.add(channel, Repeat::Once), []);
        assert_eq!(
            market.add(Condition::Above(price("100")), Repeat::Once),
            [fired_once(dec!(100), "105")]
        );
    });
}

#[test]
fn a_move_already_made_fires_when_added_to_a_window_already_followed() {
    on_both_engines(|market| {
        // A window that starts with the rule has seen no trade: nothing to measure yet.
        market.trade("100", 0);
        assert_eq!(market.add(falls(dec!(3), 15), Repeat::Once), []);
        market.trade("100", 1);
        market.trade("97.5", 2);
        // A second rule on the same window sees the 4 % fall from its high at once.
        let mut second = market.add_rule(EngineRule {
            id: RuleId(2),
            instrument: btc(),
            condition: falls(dec!(2), 15),
            and: None,
            repeat: Repeat::Once,
            expires_at: None,
            snoozed_until: None,
            state: RuleState::Armed,
        });
        assert_eq!(second.len(), 1);
        let TransitionKind::Fired { measured, .. } = second.remove(0).kind else {
            panic!("fired");
        };
        assert_eq!(measured, Some(dec!(2.5)));
    });
}

#[test]
fn a_once_per_bar_close_rule_added_past_its_level_waits_for_the_next_close() {
    on_both_engines(|market| {
        market.close(Interval::M1, 0, "150", Decimal::ZERO);
        market.trade("150", 61);
        assert_eq!(
            market.add(
                Condition::Above(price("100")),
                Repeat::OncePerBarClose(Interval::M1)
            ),
            []
        );
        assert_eq!(
            market.close(Interval::M1, 60, "101", Decimal::ZERO),
            [fired(dec!(100), "101", None, RuleState::Armed)]
        );
    });
}
