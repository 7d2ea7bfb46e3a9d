//! What one evaluation's transitions come to, decided without I/O: each rule's new state to store,
//! the events of the rules that fired, and the rules that ended. The run loop stores the first two
//! in one transaction and then applies the rest to its own facts.

use rust_decimal::Decimal;
use signal_domain::{
    AlsoCondition, Condition, ConditionParams, Price, Quote, QuoteSource, RuleId, RuleState,
    Timestamp, TriggeredAlert, TRIGGERED_ALERT_SCHEMA_VERSION,
};
use signal_ports::RuleChange;
use signal_trigger_engine::{Transition, TransitionKind};
use std::collections::HashMap;

use super::RuleFacts;

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Firing {
    /// Every rule's new state, a firing with its new count.
    pub changes: Vec<RuleChange>,
    /// One event per rule that fired on a quote (an expiry raises none).
    pub events: Vec<TriggeredAlert>,
    /// Rules that are done: fired for good or expired.
    pub ended: Vec<RuleId>,
}

/// The consequences of `transitions`, which `quote` caused (`None` for expiries) at `now`.
/// Transitions of rules `rules` does not hold (let go meanwhile) are moot.
pub(crate) fn fire(
    transitions: &[Transition],
    rules: &HashMap<RuleId, RuleFacts>,
    quote: Option<&Quote>,
    now: Timestamp,
) -> Firing {
    let mut firing = Firing::default();
    for transition in transitions {
        let Some(facts) = rules.get(&transition.rule) else {
            continue;
        };
        let (state, trigger_count, fired_at) = match transition.kind {
            TransitionKind::Fired {
                level, price, next, ..
            } => {
                let count = facts.trigger_count.saturating_add(1);
                if let Some(quote) = quote {
                    firing.events.push(event(
                        transition.rule,
                        facts,
                        count,
                        quote,
                        level,
                        price,
                        now,
                    ));
                }
                (next, count, Some(now))
            }
            TransitionKind::Rearmed { next } => (next, facts.trigger_count, None),
            TransitionKind::Expired => (RuleState::Expired, facts.trigger_count, None),
        };
        if !state.is_active() {
            firing.ended.push(transition.rule);
        }
        firing.changes.push(RuleChange {
            rule: transition.rule,
            state,
            fired_at,
            trigger_count,
        });
    }
    firing
}

/// The event of the `ordinal`-th firing of `rule`.
fn event(
    rule: RuleId,
    facts: &RuleFacts,
    ordinal: u32,
    quote: &Quote,
    level: Decimal,
    price: Price,
    now: Timestamp,
) -> TriggeredAlert {
    // A compiled percent level can carry long fractions; eight places is finer than any venue.
    let level = Price::new(level.round_dp(8)).unwrap_or(price);
    let percent = match facts.condition {
        Condition::ChangeUp(p) | Condition::ChangeDown(p) => Some(p),
        _ => None,
    };
    let extras = facts.extras.as_deref();
    TriggeredAlert {
        event_id: signal_domain::firing_id(rule, ordinal),
        schema_version: TRIGGERED_ALERT_SCHEMA_VERSION,
        user_id: facts.user.clone(),
        rule_id: rule,
        instrument: quote.instrument.clone(),
        symbol: quote.instrument.symbol().to_string(),
        condition: facts.condition.kind(),
        level,
        percent,
        price,
        exchange_time: quote.exchange_time,
        triggered_at: now,
        note: extras.and_then(|extras| extras.note.clone()),
        simulated: quote.source == QuoteSource::Simulated,
        params: Some(ConditionParams::of(facts.condition)),
        also: extras
            .and_then(|extras| extras.and)
            .map(|and| AlsoCondition {
                condition: and.condition.kind(),
                params: ConditionParams::of(and.condition),
                within_seconds: u32::try_from(and.within.num_seconds()).unwrap_or(u32::MAX),
            }),
        channels: extras.and_then(|extras| extras.channels.clone()),
        message: extras.and_then(|extras| extras.message.clone()),
        change_percent: quote.change_percent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RuleExtras;
    use signal_domain::{ConditionKind, Percent, Tick, UserId};

    fn facts(condition: Condition, trigger_count: u32) -> RuleFacts {
        RuleFacts {
            user: UserId::new("alice").unwrap(),
            instrument: "KRX:005930".parse().unwrap(),
            condition,
            trigger_count,
            updated_at: chrono::Utc::now(),
            extras: Some(Box::new(RuleExtras {
                note: Some("take profit".into()),
                channels: Some(vec![3]),
                and: None,
                message: Some("{{name}} at {{price}}".into()),
            })),
        }
    }

    fn quote(price: &str) -> Quote {
        let now = chrono::Utc::now();
        Quote::after(
            &Tick {
                instrument: "KRX:005930".parse().unwrap(),
                price: price.parse().unwrap(),
                trade_volume: None,
                cumulative_volume: None,
                prev_close: None,
                exchange_time: now,
                received_at: now,
                source: QuoteSource::Kis,
            },
            None,
        )
    }

    #[test]
    fn a_firing_counts_names_its_event_and_ends_a_one_shot_rule() {
        let above = Condition::from_parts(ConditionKind::Above, 71900.into()).unwrap();
        let rules = HashMap::from([(RuleId(7), facts(above, 2))]);
        let now = chrono::Utc::now();
        let fired = Transition {
            rule: RuleId(7),
            kind: TransitionKind::Fired {
                level: 71900.into(),
                price: "71900".parse().unwrap(),
                measured: None,
                next: RuleState::Triggered,
            },
        };
        let firing = fire(&[fired], &rules, Some(&quote("71900")), now);
        assert_eq!(
            firing.changes,
            vec![RuleChange {
                rule: RuleId(7),
                state: RuleState::Triggered,
                fired_at: Some(now),
                trigger_count: 3,
            }]
        );
        let event = &firing.events[0];
        assert_eq!(event.event_id, signal_domain::firing_id(RuleId(7), 3));
        assert_eq!(event.level.to_string(), "71900");
        assert_eq!(event.note.as_deref(), Some("take profit"));
        assert_eq!(event.params, Some(ConditionParams::of(above)));
        assert_eq!(event.channels, Some(vec![3]));
        assert_eq!(event.message.as_deref(), Some("{{name}} at {{price}}"));
        assert!(!event.simulated);
        assert_eq!(firing.ended, vec![RuleId(7)]);
    }

    #[test]
    fn a_percent_level_is_rounded_and_expiries_and_rearms_raise_no_event() {
        let down = Condition::ChangeDown(Percent::new(3.into()));
        let rules = HashMap::from([(RuleId(1), facts(down, 0)), (RuleId(2), facts(down, 4))]);
        let level: Decimal = "60431.123456789123".parse().unwrap();
        let transitions = [
            Transition {
                rule: RuleId(1),
                kind: TransitionKind::Fired {
                    level,
                    price: "60400".parse().unwrap(),
                    measured: None,
                    next: RuleState::Armed,
                },
            },
            Transition {
                rule: RuleId(2),
                kind: TransitionKind::Expired,
            },
            Transition {
                rule: RuleId(3),
                kind: TransitionKind::Expired,
            },
        ];
        let firing = fire(
            &transitions,
            &rules,
            Some(&quote("60400")),
            chrono::Utc::now(),
        );
        assert_eq!(firing.events.len(), 1);
        assert_eq!(firing.events[0].level.to_string(), "60431.12345679");
        assert_eq!(firing.events[0].percent, Some(Percent::new(3.into())));
        assert_eq!(firing.changes.len(), 2, "rule 3 is not held: moot");
        assert_eq!(firing.changes[1].state, RuleState::Expired);
        assert_eq!(firing.changes[1].trigger_count, 4);
        assert_eq!(firing.ended, vec![RuleId(2)]);

        let on_expiry = fire(&transitions[..1], &rules, None, chrono::Utc::now());
        assert!(on_expiry.events.is_empty(), "no quote, no event");
        assert_eq!(on_expiry.changes[0].trigger_count, 1);
    }
}
