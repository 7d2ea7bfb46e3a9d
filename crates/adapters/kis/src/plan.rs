//! KIS allows a limited number of real-time registrations per session (41), so interest beyond
//! that must be polled. This decides which instruments get a stream and which are polled, by
//! importance, so an alert rule never waits on a poll while a casual viewer holds a stream.

use crate::venue::venue_of;
use signal_domain::{InstrumentId, MarketCalendar, Timestamp};
use signal_ports::Interest;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub streamed: Vec<InstrumentId>,
    pub polled: Vec<InstrumentId>,
}

/// Streams the `capacity` most important KIS instruments that KIS has not refused, polls the
/// rest; instruments of other sources are not this feed's business.
pub(crate) fn plan(interest: &Interest, capacity: usize, refused: &BTreeSet<InstrumentId>) -> Plan {
    let mut plan = Plan::default();
    let ours = interest
        .by_priority()
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| venue_of(id.market()).is_some());
    for id in ours {
        if plan.streamed.len() < capacity && !refused.contains(id) {
            plan.streamed.push(id.clone());
        } else {
            plan.polled.push(id.clone());
        }
    }
    plan
}

/// The polled instruments to fetch this round. A closed market's price cannot move, so one
/// quote is enough until it opens; `fetched` holds those that have one since they entered the
/// plan, and forgets what left it so a return is fetched again.
pub(crate) fn due(
    polled: &[InstrumentId],
    fetched: &mut BTreeSet<InstrumentId>,
    calendar: &MarketCalendar,
    now: Timestamp,
) -> Vec<InstrumentId> {
    let planned: BTreeSet<&InstrumentId> = polled.iter().collect();
    fetched.retain(|id| planned.contains(id));
    polled
        .iter()
        .filter(|id| !fetched.contains(*id) || calendar.session(id.market(), now).is_open())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_ports::Need;

    fn id(text: &str) -> InstrumentId {
        text.parse().unwrap()
    }

    #[test]
    fn the_most_important_instruments_are_streamed_and_the_rest_polled() {
        let mut interest = Interest::default();
        interest.add(id("KRX:000660"), Need::ViewedLive);
        interest.add(id("NASDAQ:AAPL"), Need::ActiveRule);
        interest.add(id("KRX:005930"), Need::Watched);
        interest.add(id("UPBIT:KRW-BTC"), Need::ActiveRule);
        let plan = plan(&interest, 2, &BTreeSet::new());
        assert_eq!(plan.streamed, vec![id("NASDAQ:AAPL"), id("KRX:005930")]);
        assert_eq!(plan.polled, vec![id("KRX:000660")]);
    }

    #[test]
    fn a_refused_instrument_is_polled_without_taking_a_stream() {
        let mut interest = Interest::default();
        interest.add(id("KRX:005930"), Need::ActiveRule);
        interest.add(id("KRX:000660"), Need::ActiveRule);
        let refused = BTreeSet::from([id("KRX:000660")]);
        let plan = plan(&interest, 1, &refused);
        assert_eq!(plan.streamed, vec![id("KRX:005930")]);
        assert_eq!(plan.polled, vec![id("KRX:000660")]);
    }

    #[test]
    fn a_closed_market_is_due_until_it_has_a_quote_and_again_once_open() {
        let calendar = MarketCalendar::default();
        // Tuesday 10:00 in Seoul, Monday 20:00 in New York.
        let krx_session: Timestamp = "2026-11-24T01:00:00Z".parse().unwrap();
        let polled = [id("KRX:005930"), id("NASDAQ:AAPL")];
        let mut fetched = BTreeSet::new();
        assert_eq!(due(&polled, &mut fetched, &calendar, krx_session), polled);

        fetched.extend(polled.iter().cloned());
        assert_eq!(
            due(&polled, &mut fetched, &calendar, krx_session),
            [id("KRX:005930")]
        );
        // 09:30 in New York.
        let us_session: Timestamp = "2026-11-24T14:30:00Z".parse().unwrap();
        assert_eq!(
            due(&polled, &mut fetched, &calendar, us_session),
            [id("NASDAQ:AAPL")]
        );
    }

    #[test]
    fn an_instrument_that_leaves_the_plan_is_fetched_again_when_it_returns() {
        let calendar = MarketCalendar::default();
        let closed: Timestamp = "2026-11-28T01:00:00Z".parse().unwrap();
        let mut fetched = BTreeSet::from([id("KRX:005930")]);
        assert!(due(&[], &mut fetched, &calendar, closed).is_empty());
        assert_eq!(
            due(&[id("KRX:005930")], &mut fetched, &calendar, closed),
            [id("KRX:005930")]
        );
    }
}
