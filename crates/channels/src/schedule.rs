//! When a failed delivery is tried again: the Standard Webhooks schedule (immediately, then 5 s,
//! 5 min, 30 min, 2 h, 5 h, 10 h and 10 h: about a day and a half in all), each delay jittered so
//! that deliveries failing together do not retry together, and never sooner than the receiver's
//! `Retry-After` asks.

use rand::Rng;
use std::time::Duration;

/// The delays before the second, third, ... attempt.
pub const STANDARD_WEBHOOKS_DELAYS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(5 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
];

/// A receiver's `Retry-After` is honoured up to this; longer asks wait this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Each delay is moved by up to this fraction of itself, either way.
const JITTER: f64 = 0.2;

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            delays: STANDARD_WEBHOOKS_DELAYS.to_vec(),
        }
    }
}

impl RetrySchedule {
    /// A schedule of these delays (tests use short ones).
    pub fn new(delays: Vec<Duration>) -> Self {
        Self { delays }
    }

    /// How many attempts a delivery gets in all.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.delays.len() + 1).unwrap_or(u32::MAX)
    }

    /// How long to wait after the `failed`-th failed attempt (1 for the first), or None when it
    /// was the last one. `retry_after`, the receiver's wish, is a floor.
    pub fn delay_after(&self, failed: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let index = usize::try_from(failed.checked_sub(1)?).ok()?;
        let base = *self.delays.get(index)?;
        let factor = rand::thread_rng().gen_range(1.0 - JITTER..=1.0 + JITTER);
        let jittered = base.mul_f64(factor);
        Some(match retry_after {
            Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
            None => jittered,
        })
    }
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_standard_webhooks_schedule_within_the_jitter() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 8);
        for (failed, base) in (1..).zip(STANDARD_WEBHOOKS_DELAYS) {
            let delay = schedule.delay_after(failed, None).unwrap();
            assert!(delay >= base.mul_f64(0.8) && delay <= base.mul_f64(1.2));
        }
        assert_eq!(schedule.delay_after(8, None), None);
        assert_eq!(schedule.delay_after(0, None), None);
    }

    #[test]
    fn retry_after_is_a_floor_with_a_ceiling() {
        let schedule = RetrySchedule::default();
        let asked = Duration::from_secs(120);
        assert!(schedule.delay_after(1, Some(asked)).unwrap() >= asked);
        let absurd = Duration::from_secs(10 * 24 * 60 * 60);
        assert_eq!(
            schedule.delay_after(1, Some(absurd)).unwrap(),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn reads_both_forms_of_retry_after() {
        let now = "2026-12-02T10:00:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 02 Dec 2026 10:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
