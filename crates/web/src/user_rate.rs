//! The request rate of one user (governor's GCRA, one state per user), beside the per-address
//! limit of the server edge: many users may share one address (an office, a carrier's NAT), and
//! one user may spread requests over many addresses.

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use signal_domain::{Failure, FailureKind, UserId};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often users back at a full burst are forgotten, so the limiter's memory follows the
/// users of the last minute, not of all time.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// A user sent more requests than their rate allows.
#[derive(Debug, thiserror::Error)]
#[error("too many requests from your account; retry in {} s", whole_seconds(.wait))]
pub struct UserRateLimited {
    pub wait: Duration,
}

impl Failure for UserRateLimited {
    fn kind(&self) -> FailureKind {
        FailureKind::RateLimited
    }

    fn retry_after(&self) -> Option<Duration> {
        Some(self.wait)
    }
}

fn whole_seconds(wait: &Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

pub struct UserRateLimit {
    limiter: DefaultKeyedRateLimiter<UserId>,
    last_sweep: Mutex<Instant>,
}

impl UserRateLimit {
    /// `per_second` requests sustained, `burst` at once; None when `per_second` is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        Some(Self {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            ),
            last_sweep: Mutex::new(Instant::now()),
        })
    }

    /// Counts a request of `user`; refused when it is over their rate.
    pub fn check(&self, user: &UserId) -> Result<(), UserRateLimited> {
        self.sweep();
        self.limiter
            .check_key(user)
            .map_err(|not_until| UserRateLimited {
                wait: not_until.wait_time_from(self.limiter.clock().now()),
            })
    }

    fn sweep(&self) {
        // A request that finds another one sweeping does not wait for it.
        let Ok(mut last) = self.last_sweep.try_lock() else {
            return;
        };
        if last.elapsed() >= FORGET_EVERY {
            *last = Instant::now();
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_a_rate_of_their_own() {
        let limit = UserRateLimit::new(1, 2).unwrap();
        let alice = UserId::new("alice").unwrap();
        let bob = UserId::new("bob").unwrap();
        assert!(limit.check(&alice).is_ok());
        assert!(limit.check(&alice).is_ok());
        let refused = limit.check(&alice).unwrap_err();
        assert!(refused.wait > Duration::ZERO && refused.wait <= Duration::from_secs(1));
        assert_eq!(refused.retry_after(), Some(refused.wait));
        assert!(limit.check(&bob).is_ok());
        assert!(UserRateLimit::new(0, 10).is_none());
    }
}
