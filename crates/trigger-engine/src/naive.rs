//! The executable specification: every rule is looked at on every tick, as the original system did.
//! It is short enough to check by reading, so the indexed engine is tested against it and
//! benchmarked beside it.

use crate::lifecycle::{compiled_level, is_expired, step};
use crate::{EngineRule, RuleEngine, Transition, TransitionKind};
use rustc_hash::FxHashMap;
use signal_domain::{InstrumentId, Price, RuleId, Timestamp};
use std::collections::BTreeMap;

/// Rules in id order, scanned whole on every tick.
#[derive(Debug, Default)]
pub struct NaiveEngine {
    rules: BTreeMap<RuleId, EngineRule>,
    references: FxHashMap<InstrumentId, Price>,
}

impl RuleEngine for NaiveEngine {
    fn upsert(&mut self, rule: EngineRule) {
        if rule.state.is_active() {
            self.rules.insert(rule.id, rule);
        } else {
            self.rules.remove(&rule.id);
        }
    }

    fn remove(&mut self, id: RuleId) -> bool {
        self.rules.remove(&id).is_some()
    }

    fn set_reference(&mut self, instrument: &InstrumentId, prev_close: Price) {
        self.references.insert(instrument.clone(), prev_close);
    }

    fn on_tick(
        &mut self,
        instrument: &InstrumentId,
        price: Price,
        at: Timestamp,
        out: &mut Vec<Transition>,
    ) {
        let reference = self.references.get(instrument).copied();
        self.rules.retain(|&id, rule| {
            if rule.instrument != *instrument {
                return true;
            }
            if is_expired(rule.expires_at, at) {
                out.push(Transition {
                    rule: id,
                    kind: TransitionKind::Expired,
                });
                return false;
            }
            let level = compiled_level(rule.condition, reference);
            let Some(kind) = step(rule, level, price, at) else {
                return true;
            };
            rule.state = kind.next_state();
            out.push(Transition { rule: id, kind });
            rule.state.is_active()
        });
    }

    fn expire_due(&mut self, now: Timestamp, out: &mut Vec<Transition>) {
        self.rules.retain(|&id, rule| {
            let expired = is_expired(rule.expires_at, now);
            if expired {
                out.push(Transition {
                    rule: id,
                    kind: TransitionKind::Expired,
                });
            }
            !expired
        });
    }

    fn len(&self) -> usize {
        self.rules.len()
    }
}
