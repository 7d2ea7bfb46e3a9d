//! Anti-storm rules, decided before anything is sent: quiet hours hold a channel's alerts until
//! they end; the per-minute cap lets a few messages out and gathers the rest into one digest
//! rather than dropping them. Pure functions of the deliveries, the settings and the clock.

use chrono::{Duration, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;
use signal_domain::Timestamp;
use signal_ports::{DeliveryRecord, QuietHours};
use uuid::Uuid;

/// The cap counts messages over this window (operators may shorten it, e.g. in tests).
pub const WINDOW: Duration = Duration::minutes(1);

/// When the quiet hours holding at `now` end, or None when `now` is outside them.
pub fn quiet_until(quiet: &QuietHours, zone: Tz, now: Timestamp) -> Option<Timestamp> {
    if quiet.start == quiet.end {
        return None;
    }
    let local = now.with_timezone(&zone);
    let (date, time) = (local.date_naive(), local.time());
    let end_date = if quiet.start < quiet.end {
        // Within one day: 13:00-14:00.
        (time >= quiet.start && time < quiet.end).then_some(date)?
    } else if time >= quiet.start {
        // Across midnight, evening side: 22:00-07:00 at 23:00 ends tomorrow.
        date.succ_opt()?
    } else if time < quiet.end {
        date
    } else {
        return None;
    };
    Some(local_instant(zone, end_date, quiet.end))
}

/// The instant of a wall-clock time; in a daylight-saving gap, the first instant after it.
fn local_instant(zone: Tz, date: NaiveDate, time: NaiveTime) -> Timestamp {
    let mut naive = date.and_time(time);
    for _ in 0..4 {
        if let Some(instant) = zone.from_local_datetime(&naive).earliest() {
            return instant.with_timezone(&chrono::Utc);
        }
        naive += Duration::minutes(30);
    }
    zone.from_utc_datetime(&naive).with_timezone(&chrono::Utc)
}

/// How many more messages may go at `now` under `cap` per `window`, given when the window's
/// messages went out (oldest first), and when the next one may go if none may now.
pub fn room(cap: u32, window: Duration, sent: &[Timestamp], now: Timestamp) -> (usize, Timestamp) {
    let cap = usize::try_from(cap.max(1)).unwrap_or(usize::MAX);
    let recent: Vec<&Timestamp> = sent.iter().filter(|at| **at > now - window).collect();
    if recent.len() < cap {
        return (cap - recent.len(), now);
    }
    // The slot frees when the oldest message that keeps the window full leaves it.
    let frees_at = *recent[recent.len() - cap] + window;
    (0, frees_at.max(now))
}

/// One message to send: a single alert (its message id is the alert's event id) or a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMessage {
    pub message_id: Uuid,
    pub deliveries: Vec<DeliveryRecord>,
    /// The message id is new and must be stored before the first attempt.
    pub assign: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub messages: Vec<PlannedMessage>,
    /// Held back for room under the cap, until `until`.
    pub deferred: Vec<i64>,
    pub until: Option<Timestamp>,
}

/// Divides one channel's due deliveries into messages within `room`. Deliveries already given a
/// message (retries) keep it, so a retry is the same message; new ones go alone while there is
/// room and are gathered into one digest when there is not.
pub fn plan(deliveries: Vec<DeliveryRecord>, room: usize, frees_at: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let mut fresh = Vec::new();
    let mut retries: Vec<PlannedMessage> = Vec::new();
    for delivery in deliveries {
        match delivery.message_id {
            Some(id) => match retries.iter_mut().find(|m| m.message_id == id) {
                Some(message) => message.deliveries.push(delivery),
                None => retries.push(PlannedMessage {
                    message_id: id,
                    deliveries: vec![delivery],
                    assign: false,
                }),
            },
            None => fresh.push(delivery),
        }
    }
    let mut left = room;
    for message in retries {
        if left == 0 {
            plan.deferred
                .extend(message.deliveries.iter().map(|d| d.id));
        } else {
            left -= 1;
            plan.messages.push(message);
        }
    }
    if left == 0 {
        plan.deferred.extend(fresh.iter().map(|d| d.id));
    } else {
        let alone = if fresh.len() <= left {
            fresh.len()
        } else {
            left - 1
        };
        let gathered = fresh.split_off(alone);
        for delivery in fresh {
            plan.messages.push(PlannedMessage {
                message_id: delivery.event_id,
                deliveries: vec![delivery],
                assign: true,
            });
        }
        if !gathered.is_empty() {
            plan.messages.push(PlannedMessage {
                message_id: Uuid::now_v7(),
                deliveries: gathered,
                assign: true,
            });
        }
    }
    if !plan.deferred.is_empty() {
        plan.until = Some(frees_at);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_domain::UserId;
    use signal_ports::{ChannelKind, DeliveryStatus};

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn hours(start: &str, end: &str) -> QuietHours {
        QuietHours {
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
        }
    }

    #[test]
    fn quiet_hours_across_midnight_end_the_next_morning_in_the_users_zone() {
        let seoul = chrono_tz::Asia::Seoul;
        let night = hours("22:00:00", "07:00:00");
        // 23:30 in Seoul is 14:30 UTC.
        assert_eq!(
            quiet_until(&night, seoul, at("2026-12-02T14:30:00Z")),
            Some(at("2026-12-02T22:00:00Z"))
        );
        // 06:00 in Seoul, the same quiet night.
        assert_eq!(
            quiet_until(&night, seoul, at("2026-12-02T21:00:00Z")),
            Some(at("2026-12-02T22:00:00Z"))
        );
        // 12:00 in Seoul: not quiet.
        assert_eq!(quiet_until(&night, seoul, at("2026-12-02T03:00:00Z")), None);
    }

    #[test]
    fn quiet_hours_within_a_day_and_the_degenerate_case() {
        let utc = chrono_tz::UTC;
        let lunch = hours("12:00:00", "13:00:00");
        assert_eq!(
            quiet_until(&lunch, utc, at("2026-12-02T12:30:00Z")),
            Some(at("2026-12-02T13:00:00Z"))
        );
        assert_eq!(quiet_until(&lunch, utc, at("2026-12-02T13:00:00Z")), None);
        assert_eq!(
            quiet_until(
                &hours("09:00:00", "09:00:00"),
                utc,
                at("2026-12-02T09:00:00Z")
            ),
            None
        );
    }

    #[test]
    fn quiet_hours_ending_in_a_daylight_saving_gap_end_after_it() {
        // New York skipped 02:00-03:00 on 2026-03-08.
        let new_york = chrono_tz::America::New_York;
        let night = hours("23:00:00", "02:30:00");
        let end = quiet_until(&night, new_york, at("2026-03-08T05:00:00Z")).unwrap();
        assert_eq!(end, at("2026-03-08T07:00:00Z"));
    }

    #[test]
    fn the_cap_frees_a_slot_when_the_oldest_message_leaves_the_window() {
        let now = at("2026-12-02T10:00:30Z");
        let sent = [
            at("2026-12-02T09:59:20Z"),
            at("2026-12-02T10:00:00Z"),
            at("2026-12-02T10:00:10Z"),
        ];
        assert_eq!(room(5, WINDOW, &sent, now), (3, now));
        assert_eq!(room(2, WINDOW, &sent, now), (0, at("2026-12-02T10:01:00Z")));
        assert_eq!(room(1, WINDOW, &sent, now), (0, at("2026-12-02T10:01:10Z")));
    }

    fn delivery(id: i64, message: Option<Uuid>) -> DeliveryRecord {
        let now = at("2026-12-02T10:00:00Z");
        DeliveryRecord {
            id,
            alert_id: Some(id),
            event_id: Uuid::from_u128(id as u128),
            user: UserId::new("alice").unwrap(),
            channel_id: 1,
            kind: ChannelKind::Webhook,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            message_id: message,
            last_error: None,
            last_status: None,
            created_at: now,
            delivered_at: None,
            latency_ms: None,
        }
    }

    #[test]
    fn over_the_cap_the_rest_become_one_digest() {
        let now = at("2026-12-02T10:00:00Z");
        let plan = plan((1..=6).map(|i| delivery(i, None)).collect(), 3, now);
        assert_eq!(plan.messages.len(), 3);
        assert_eq!(plan.messages[0].message_id, Uuid::from_u128(1));
        assert_eq!(plan.messages[1].message_id, Uuid::from_u128(2));
        let digest = &plan.messages[2];
        assert_eq!(
            digest.deliveries.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
        assert!(plan.deferred.is_empty());
    }

    #[test]
    fn retries_keep_their_message_and_no_room_defers_everything() {
        let now = at("2026-12-02T10:00:00Z");
        let digest = Uuid::from_u128(99);
        let due = vec![
            delivery(1, Some(digest)),
            delivery(2, Some(digest)),
            delivery(3, None),
        ];
        let plan_with_room = plan(due.clone(), 1, now);
        assert_eq!(plan_with_room.messages.len(), 1);
        assert_eq!(plan_with_room.messages[0].message_id, digest);
        assert!(!plan_with_room.messages[0].assign);
        assert_eq!(plan_with_room.deferred, vec![3]);

        let later = at("2026-12-02T10:00:40Z");
        let full = plan(due, 0, later);
        assert!(full.messages.is_empty());
        assert_eq!(full.deferred, vec![1, 2, 3]);
        assert_eq!(full.until, Some(later));
    }
}
