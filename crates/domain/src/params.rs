//! A condition's parameters as the API and the store spell them: one flat record of named,
//! optional fields, of which each kind takes its own. Building a [`Condition`] from it checks that
//! every field the kind needs is there, that no other field is, and every value's range, naming
//! the field at fault.

use crate::bar::Interval;
use crate::price::{optional_decimal, Percent, Price};
use crate::rule::{
    Average, AverageKind, ChannelEdge, Condition, ConditionKind, Conjunct, Crossing, Direction,
    MoveSize, Problem, RuleError,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One moving average of a golden or dead cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AverageParams {
    /// SMA (the default) or EMA.
    #[serde(default = "simple")]
    pub average: AverageKind,
    pub bars: u16,
}

fn simple() -> AverageKind {
    AverageKind::Sma
}

impl From<Average> for AverageParams {
    fn from(average: Average) -> Self {
        Self {
            average: average.kind,
            bars: average.bars,
        }
    }
}

impl From<AverageParams> for Average {
    fn from(params: AverageParams) -> Self {
        Self {
            kind: params.average,
            bars: params.bars,
        }
    }
}

/// The parameters of every kind of condition; a kind uses some of them:
///
/// | kind | fields |
/// |---|---|
/// | ABOVE, BELOW, CROSS_UP, CROSS_DOWN, CROSSING | `level` (a price) |
/// | CHANGE_UP, CHANGE_DOWN | `percent` against the previous close |
/// | CHANNEL_ENTER, CHANNEL_EXIT | `low`, `high` |
/// | MOVE_UP, MOVE_DOWN | `percent` or `amount`, `windowSeconds` |
/// | VOLUME_SPIKE | `interval`, `bars`, `factor` |
/// | DAY_VOLUME | `volume` |
/// | MA_CROSS_UP, MA_CROSS_DOWN | `interval`, `bars`, `average` (SMA or EMA, default SMA) |
/// | RSI_ABOVE, RSI_BELOW | `interval`, `bars`, `level` (0 to 100) |
/// | GOLDEN_CROSS, DEAD_CROSS | `interval`, `fast`, `slow` (each `{average, bars}`) |
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionParams {
    #[serde(
        default,
        deserialize_with = "optional_decimal",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::price::DecimalInput>)]
    pub level: Option<Decimal>,
    #[serde(
        default,
        deserialize_with = "optional_decimal",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::price::DecimalInput>)]
    pub percent: Option<Decimal>,
    #[serde(
        default,
        deserialize_with = "optional_decimal",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::price::DecimalInput>)]
    pub amount: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u32>,
    #[serde(
        default,
        deserialize_with = "optional_decimal",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::price::DecimalInput>)]
    pub low: Option<Decimal>,
    #[serde(
        default,
        deserialize_with = "optional_decimal",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::price::DecimalInput>)]
    pub high: Option<Decimal>,
    /// The bar interval, as text, so that an unsupported one is refused naming this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Interval>)]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bars: Option<u16>,
    #[serde(
        default,
        deserialize_with = "optional_decimal",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::price::DecimalInput>)]
    pub factor: Option<Decimal>,
    #[serde(
        default,
        deserialize_with = "optional_decimal",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<crate::price::DecimalInput>)]
    pub volume: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average: Option<AverageKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast: Option<AverageParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow: Option<AverageParams>,
}

/// Takes a field the kind needs out of the record.
fn need<T>(slot: &mut Option<T>, field: &'static str) -> Result<T, RuleError> {
    slot.take().ok_or(RuleError::Parameter {
        field,
        problem: Problem::Missing,
    })
}

fn price(slot: &mut Option<Decimal>, field: &'static str) -> Result<Price, RuleError> {
    Price::new(need(slot, field)?).map_err(|e| RuleError::Parameter {
        field,
        problem: Problem::Amount(e),
    })
}

fn up_or_down(kind: ConditionKind, up: ConditionKind) -> Direction {
    if kind == up {
        Direction::Up
    } else {
        Direction::Down
    }
}

impl ConditionParams {
    /// The parameters of `condition`, as its kind reads them back.
    pub fn of(condition: Condition) -> Self {
        let mut params = Self::default();
        match condition {
            Condition::Above(level) | Condition::Below(level) | Condition::Cross { level, .. } => {
                params.level = Some(level.value());
            }
            Condition::ChangeUp(pct) | Condition::ChangeDown(pct) => {
                params.percent = Some(pct.value());
            }
            Condition::Channel { low, high, .. } => {
                params.low = Some(low.value());
                params.high = Some(high.value());
            }
            Condition::Move { size, window, .. } => {
                match size {
                    MoveSize::Amount(amount) => params.amount = Some(amount),
                    MoveSize::Percent(pct) => params.percent = Some(pct.value()),
                }
                params.window_seconds = u32::try_from(window.num_seconds()).ok();
            }
            Condition::VolumeSpike {
                interval,
                bars,
                factor,
            } => {
                params.interval = Some(interval.to_string());
                params.bars = Some(bars);
                params.factor = Some(factor);
            }
            Condition::DayVolume { volume } => params.volume = Some(volume),
            Condition::PriceCrossesAverage {
                average, interval, ..
            } => {
                params.interval = Some(interval.to_string());
                params.bars = Some(average.bars);
                params.average = Some(average.kind);
            }
            Condition::Rsi {
                bars,
                level,
                interval,
                ..
            } => {
                params.interval = Some(interval.to_string());
                params.bars = Some(bars);
                params.level = Some(level);
            }
            Condition::AveragesCross {
                fast,
                slow,
                interval,
                ..
            } => {
                params.interval = Some(interval.to_string());
                params.fast = Some(fast.into());
                params.slow = Some(slow.into());
            }
        }
        params
    }

    /// The condition of `kind` these parameters describe, checked: every field the kind needs is
    /// given, no other is, and each is in range.
    pub fn condition(&self, kind: ConditionKind) -> Result<Condition, RuleError> {
        use ConditionKind as K;
        let mut p = self.clone();
        let condition = match kind {
            K::Above => Condition::Above(price(&mut p.level, "level")?),
            K::Below => Condition::Below(price(&mut p.level, "level")?),
            K::ChangeUp | K::ChangeDown => {
                Condition::from_parts(kind, need(&mut p.percent, "percent")?)?
            }
            K::CrossUp | K::CrossDown | K::Crossing => Condition::Cross {
                crossing: match kind {
                    K::CrossUp => Crossing::Up,
                    K::CrossDown => Crossing::Down,
                    _ => Crossing::Either,
                },
                level: price(&mut p.level, "level")?,
            },
            K::ChannelEnter | K::ChannelExit => Condition::Channel {
                edge: if kind == K::ChannelEnter {
                    ChannelEdge::Enter
                } else {
                    ChannelEdge::Exit
                },
                low: price(&mut p.low, "low")?,
                high: price(&mut p.high, "high")?,
            },
            K::MoveUp | K::MoveDown => {
                let size = match (p.percent.take(), p.amount.take()) {
                    (Some(pct), None) => MoveSize::Percent(Percent::new(pct)),
                    (None, Some(amount)) => MoveSize::Amount(amount),
                    (Some(_), Some(_)) => {
                        return Err(RuleError::Parameter {
                            field: "amount",
                            problem: Problem::NotApplicable("a move given in percent"),
                        })
                    }
                    (None, None) => {
                        return Err(RuleError::Parameter {
                            field: "percent",
                            problem: Problem::Missing,
                        })
                    }
                };
                Condition::Move {
                    direction: up_or_down(kind, K::MoveUp),
                    size,
                    window: chrono::Duration::seconds(i64::from(need(
                        &mut p.window_seconds,
                        "windowSeconds",
                    )?)),
                }
            }
            K::VolumeSpike => Condition::VolumeSpike {
                interval: p.needed_interval()?,
                bars: need(&mut p.bars, "bars")?,
                factor: need(&mut p.factor, "factor")?,
            },
            K::DayVolume => Condition::DayVolume {
                volume: need(&mut p.volume, "volume")?,
            },
            K::MaCrossUp | K::MaCrossDown => Condition::PriceCrossesAverage {
                direction: up_or_down(kind, K::MaCrossUp),
                average: Average {
                    kind: p.average.take().unwrap_or(AverageKind::Sma),
                    bars: need(&mut p.bars, "bars")?,
                },
                interval: p.needed_interval()?,
            },
            K::RsiAbove | K::RsiBelow => Condition::Rsi {
                direction: up_or_down(kind, K::RsiAbove),
                bars: need(&mut p.bars, "bars")?,
                level: need(&mut p.level, "level")?,
                interval: p.needed_interval()?,
            },
            K::GoldenCross | K::DeadCross => Condition::AveragesCross {
                direction: up_or_down(kind, K::GoldenCross),
                fast: need(&mut p.fast, "fast")?.into(),
                slow: need(&mut p.slow, "slow")?.into(),
                interval: p.needed_interval()?,
            },
        };
        if let Some(field) = p.first_given() {
            return Err(RuleError::Parameter {
                field,
                problem: Problem::NotApplicable(kind.as_str()),
            });
        }
        condition.validate()?;
        Ok(condition)
    }

    /// Takes the `interval` out of the record, when given.
    pub fn take_interval(&mut self) -> Result<Option<Interval>, RuleError> {
        self.interval
            .take()
            .map(|text| text.parse())
            .transpose()
            .map_err(|e| RuleError::Parameter {
                field: "interval",
                problem: Problem::Unsupported(e),
            })
    }

    fn needed_interval(&mut self) -> Result<Interval, RuleError> {
        let mut interval = self.take_interval()?;
        need(&mut interval, "interval")
    }

    /// The name of the first field that is given.
    fn first_given(&self) -> Option<&'static str> {
        [
            ("level", self.level.is_some()),
            ("percent", self.percent.is_some()),
            ("amount", self.amount.is_some()),
            ("windowSeconds", self.window_seconds.is_some()),
            ("low", self.low.is_some()),
            ("high", self.high.is_some()),
            ("interval", self.interval.is_some()),
            ("bars", self.bars.is_some()),
            ("factor", self.factor.is_some()),
            ("volume", self.volume.is_some()),
            ("average", self.average.is_some()),
            ("fast", self.fast.is_some()),
            ("slow", self.slow.is_some()),
        ]
        .into_iter()
        .find_map(|(name, given)| given.then_some(name))
    }
}

/// A rule's second condition as the API and the store spell it: its kind, the kind's parameters
/// beside it, and within how many seconds of the first it must be met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConjunctParams {
    pub condition: ConditionKind,
    #[serde(flatten)]
    pub params: ConditionParams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_seconds: Option<u32>,
}

impl ConjunctParams {
    pub fn of(conjunct: Conjunct) -> Self {
        Self {
            condition: conjunct.condition.kind(),
            params: ConditionParams::of(conjunct.condition),
            within_seconds: u32::try_from(conjunct.within.num_seconds()).ok(),
        }
    }

    /// The second condition these describe, checked; a field at fault is named `and.<field>`.
    pub fn conjunct(&self) -> Result<Conjunct, RuleError> {
        let read = || {
            let condition = self.params.condition(self.condition)?;
            let seconds = self.within_seconds.ok_or(RuleError::Parameter {
                field: "withinSeconds",
                problem: Problem::Missing,
            })?;
            let conjunct = Conjunct {
                condition,
                within: chrono::Duration::seconds(i64::from(seconds)),
            };
            conjunct.validate()?;
            Ok(conjunct)
        };
        read().map_err(RuleError::second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    fn params(value: serde_json::Value) -> ConditionParams {
        serde_json::from_value(value).unwrap()
    }

    fn field_of(kind: ConditionKind, value: serde_json::Value) -> Option<&'static str> {
        params(value)
            .condition(kind)
            .err()
            .and_then(|e| e.field_name())
    }

    #[test]
    fn every_kind_reads_back_what_it_wrote() {
        let examples = [
            (ConditionKind::Above, json!({"level": "71900"})),
            (ConditionKind::ChangeDown, json!({"percent": 5})),
            (ConditionKind::Crossing, json!({"level": 100})),
            (
                ConditionKind::ChannelExit,
                json!({"low": "100", "high": "110.5"}),
            ),
            (
                ConditionKind::MoveDown,
                json!({"percent": "3", "windowSeconds": 900}),
            ),
            (
                ConditionKind::MoveUp,
                json!({"amount": "1500", "windowSeconds": 60}),
            ),
            (
                ConditionKind::VolumeSpike,
                json!({"interval": "5m", "bars": 20, "factor": "3"}),
            ),
            (ConditionKind::DayVolume, json!({"volume": "1000000"})),
            (
                ConditionKind::MaCrossDown,
                json!({"interval": "1h", "bars": 20, "average": "EMA"}),
            ),
            (
                ConditionKind::RsiAbove,
                json!({"interval": "1h", "bars": 14, "level": 70}),
            ),
            (
                ConditionKind::GoldenCross,
                json!({"interval": "1d", "fast": {"bars": 50}, "slow": {"average": "EMA", "bars": 200}}),
            ),
        ];
        for (kind, value) in examples {
            let condition = params(value).condition(kind).unwrap();
            assert_eq!(condition.kind(), kind);
            let written = serde_json::to_string(&ConditionParams::of(condition)).unwrap();
            let read: ConditionParams = serde_json::from_str(&written).unwrap();
            assert_eq!(read.condition(kind), Ok(condition), "{written}");
        }
        let ma = params(json!({"interval": "1h", "bars": 20}))
            .condition(ConditionKind::MaCrossUp)
            .unwrap();
        assert_eq!(
            ma,
            Condition::PriceCrossesAverage {
                direction: Direction::Up,
                average: Average {
                    kind: AverageKind::Sma,
                    bars: 20
                },
                interval: Interval::H1,
            },
            "SMA unless said otherwise"
        );
        let rsi = params(json!({"interval": "1h", "bars": 14, "level": "70.5"}))
            .condition(ConditionKind::RsiBelow)
            .unwrap();
        assert_eq!(rsi.value(), dec!(70.5));
    }

    #[test]
    fn a_second_condition_reads_back_and_names_its_fields_under_and() {
        use crate::Failure;
        let written = json!({"condition": "CROSS_UP", "level": "100000000", "withinSeconds": 3600});
        let pair: ConjunctParams = serde_json::from_value(written.clone()).unwrap();
        let conjunct = pair.conjunct().unwrap();
        assert_eq!(conjunct.within, chrono::Duration::hours(1));
        assert_eq!(
            serde_json::to_value(ConjunctParams::of(conjunct)).unwrap(),
            written
        );
        let field = |value: serde_json::Value| {
            let pair: ConjunctParams = serde_json::from_value(value).unwrap();
            pair.conjunct().unwrap_err().field().map(str::to_string)
        };
        assert_eq!(
            field(json!({"condition": "CROSS_UP", "level": "-1", "withinSeconds": 60})),
            Some("and.level".into())
        );
        assert_eq!(
            field(json!({"condition": "CROSS_UP", "level": "1"})),
            Some("and.withinSeconds".into())
        );
        assert_eq!(
            field(json!({"condition": "CROSS_UP", "level": "1", "withinSeconds": 90000})),
            Some("and.withinSeconds".into())
        );
        assert_eq!(
            field(
                json!({"condition": "RSI_ABOVE", "interval": "1h", "bars": 0, "level": 70,
                         "withinSeconds": 60})
            ),
            Some("and.bars".into())
        );
    }

    #[test]
    fn a_missing_an_extra_or_a_bad_field_is_named() {
        use ConditionKind as K;
        assert_eq!(field_of(K::CrossUp, json!({})), Some("level"));
        assert_eq!(
            field_of(K::CrossUp, json!({"level": 1, "low": 1})),
            Some("low")
        );
        assert_eq!(field_of(K::Above, json!({"level": "-1"})), Some("level"));
        assert_eq!(
            field_of(
                K::MoveUp,
                json!({"percent": 1, "amount": 1, "windowSeconds": 60})
            ),
            Some("amount")
        );
        assert_eq!(
            field_of(K::MoveUp, json!({"windowSeconds": 60})),
            Some("percent")
        );
        assert_eq!(
            field_of(K::MoveUp, json!({"percent": 1})),
            Some("windowSeconds")
        );
        assert_eq!(
            field_of(
                K::RsiAbove,
                json!({"interval": "2h", "bars": 14, "level": 70})
            ),
            Some("interval")
        );
        assert_eq!(
            field_of(K::RsiAbove, json!({"bars": 14, "level": 70})),
            Some("interval")
        );
        assert_eq!(
            field_of(
                K::VolumeSpike,
                json!({"interval": "5m", "bars": 0, "factor": 3})
            ),
            Some("bars")
        );
        assert_eq!(
            field_of(K::DayVolume, json!({"volume": 10, "interval": "1d"})),
            Some("interval")
        );
        assert_eq!(
            field_of(
                K::DeadCross,
                json!({"interval": "1d", "fast": {"bars": 50}, "slow": {"bars": 20}})
            ),
            Some("fast.bars")
        );
    }
}
