//! How many sign-in attempts an account, and a client address, may make: a guessing attack on one
//! account, and one address trying many accounts, both run out of attempts.
//!
//! Each limit is a GCRA bucket (the `governor` crate): `attempts` at once, then one more every
//! `window / attempts`. An attempt is counted before its password is checked, so a client that is
//! out of attempts costs no hashing at all; counting the few successful sign-ins a person makes
//! as well leaves them far from the limit. Limits are per process: with several Alert Service
//! instances an attacker gets the allowance once per instance, still bounded, and each guess
//! still costs an argon2 hash.

use crate::email::Email;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// `attempts` within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimit {
    pub attempts: u32,
    pub window: Duration,
}

impl SignInLimit {
    fn quota(self) -> Quota {
        let attempts = NonZeroU32::new(self.attempts).unwrap_or(NonZeroU32::MIN);
        let replenish = (self.window / attempts.get()).max(Duration::from_millis(1));
        Quota::with_period(replenish)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(attempts)
    }
}

pub struct SignInLimits {
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl SignInLimits {
    pub fn new(per_account: SignInLimit, per_address: SignInLimit) -> Self {
        Self {
            per_account: DefaultKeyedRateLimiter::keyed(per_account.quota()),
            per_address: DefaultKeyedRateLimiter::keyed(per_address.quota()),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one attempt against both limits; `Err(wait)` when either is used up, with how long
    /// until the next attempt is allowed.
    pub fn attempt(&self, email: &Email, address: IpAddr) -> Result<(), Duration> {
        let now = self.clock.now();
        let by_address = self.per_address.check_key(&address_key(address));
        let by_account = self.per_account.check_key(&email.as_str().to_string());
        let wait = [by_address.err(), by_account.err()]
            .into_iter()
            .flatten()
            .map(|not_until| not_until.wait_time_from(now))
            .max();
        match wait {
            // A wait rounds up to whole seconds, as Retry-After counts them.
            Some(wait) => Err(Duration::from_secs(wait.as_secs() + 1)),
            None => Ok(()),
        }
    }

    /// Forgets keys whose buckets are full again, so memory follows recent attempts only.
    pub fn forget_idle(&self) {
        self.per_account.retain_recent();
        self.per_account.shrink_to_fit();
        self.per_address.retain_recent();
        self.per_address.shrink_to_fit();
    }
}

/// IPv6 clients usually hold a whole /64, so one is one key; IPv4 addresses (also when mapped
/// into IPv6) are keys of their own.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(text: &str) -> Email {
        Email::parse(text).unwrap()
    }

    fn limit(attempts: u32) -> SignInLimit {
        SignInLimit {
            attempts,
            window: Duration::from_secs(300),
        }
    }

    #[test]
    fn an_account_runs_out_of_attempts_from_any_address() {
        let limits = SignInLimits::new(limit(3), limit(100));
        let alice = email("alice@example.com");
        for n in 0..3u8 {
            let address = IpAddr::from([10, 0, 0, n]);
            assert_eq!(limits.attempt(&alice, address), Ok(()));
        }
        let wait = limits
            .attempt(&alice, IpAddr::from([10, 0, 0, 9]))
            .unwrap_err();
        assert!(wait > Duration::from_secs(90) && wait <= Duration::from_secs(101));
        assert_eq!(
            limits.attempt(&email("bob@example.com"), IpAddr::from([10, 0, 0, 9])),
            Ok(())
        );
    }

    #[test]
    fn an_address_runs_out_of_attempts_across_accounts() {
        let limits = SignInLimits::new(limit(100), limit(2));
        let address: IpAddr = "2001:db8::1".parse().unwrap();
        let same_network: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert_eq!(limits.attempt(&email("a@example.com"), address), Ok(()));
        assert_eq!(
            limits.attempt(&email("b@example.com"), same_network),
            Ok(())
        );
        assert!(limits.attempt(&email("c@example.com"), address).is_err());
        let elsewhere: IpAddr = "2001:db8:1::1".parse().unwrap();
        assert_eq!(limits.attempt(&email("c@example.com"), elsewhere), Ok(()));
    }

    #[test]
    fn mapped_ipv4_is_the_same_client() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(v4), address_key(mapped));
    }
}
