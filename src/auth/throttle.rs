//! Rate limits by key: sign-in attempts per account and per client address, and (in the HTTP
//! layer) requests per client address and per user. Each key has a token bucket (GCRA, from
//! `governor`): a burst, then a steady rate; a refusal says when to retry.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::{AppError, AppResult};
use crate::limits::{Limits, log_refusal};
use crate::metrics::metrics;

/// The address of the client making a request, as the HTTP layer determined it (the TCP
/// peer, or a trusted proxy's header). Absent for requests that did not come over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

/// A token bucket per key, or nothing when the limit is turned off.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for KeyedLimit<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("enabled", &self.limiter.is_some())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `burst` attempts at once, then one every `period`; off when `burst` is zero.
    pub fn new(burst: u32, period: std::time::Duration) -> Self {
        let quota = NonZeroU32::new(burst)
            .zip(Quota::with_period(period))
            .map(|(burst, quota)| quota.allow_burst(burst));
        Self {
            limiter: quota.map(DefaultKeyedRateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    /// `burst` at once, then `per_minute` a minute; off when either is zero.
    pub fn per_minute(burst: u32, per_minute: u32) -> Self {
        match per_minute {
            0 => Self::new(0, std::time::Duration::ZERO),
            n => Self::new(burst, std::time::Duration::from_secs(60) / n),
        }
    }

    /// Takes one attempt from `key`'s bucket; when it is empty, the seconds until it is not.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets keys whose buckets are full again, so that memory follows recent activity only.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The key under which a client address is counted: an IPv4 address itself, an IPv6 address
/// by its /64 prefix (the block one subscriber is usually given, so that one holder of a /64
/// does not get 2^64 budgets).
pub fn counted_as(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}

/// Sign-in attempts, per account (the email as given, ignoring case) and per client address.
#[derive(Debug)]
pub struct SignInThrottle {
    accounts: KeyedLimit<String>,
    addresses: KeyedLimit<IpAddr>,
}

impl SignInThrottle {
    /// The throttles the limits configure.
    pub fn new(limits: &Limits) -> Self {
        Self {
            accounts: KeyedLimit::per_minute(
                limits.sign_in_account_burst,
                limits.sign_in_account_per_minute,
            ),
            addresses: KeyedLimit::per_minute(
                limits.sign_in_address_burst,
                limits.sign_in_address_per_minute,
            ),
        }
    }

    /// Counts an attempt from `address` (sign-in or session renewal).
    pub fn attempt_from(&self, address: ClientAddress) -> AppResult<()> {
        let Some(address) = address.0.map(counted_as) else {
            return Ok(());
        };
        self.addresses.check(&address).map_err(|retry_after| {
            log_refusal("sign_in_address", &address.to_string());
            metrics().throttled("address");
            AppError::RateLimited {
                message: format!(
                    "too many sign-in attempts from this address; retry in {retry_after} s"
                ),
                retry_after,
            }
        })
    }

    /// Counts an attempt on the account with `email`, whether or not it exists.
    pub fn attempt_on(&self, email: &str) -> AppResult<()> {
        let key = email.trim().to_lowercase();
        self.accounts.check(&key).map_err(|retry_after| {
            log_refusal("sign_in_account", "");
            metrics().throttled("account");
            AppError::RateLimited {
                message: format!(
                    "too many sign-in attempts for this account; retry in {retry_after} s"
                ),
                retry_after,
            }
        })
    }

    /// See [`KeyedLimit::forget_idle`].
    pub fn forget_idle(&self) {
        self.accounts.forget_idle();
        self.addresses.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_after_its_burst_and_says_when_to_retry() {
        let limit = KeyedLimit::per_minute(3, 1);
        for _ in 0..3 {
            assert_eq!(limit.check(&"a"), Ok(()));
        }
        let wait = limit.check(&"a").unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(limit.check(&"b"), Ok(()), "keys are independent");
        let off = KeyedLimit::per_minute(0, 1);
        for _ in 0..100 {
            assert_eq!(off.check(&"a"), Ok(()));
        }
    }

    #[test]
    fn ipv6_addresses_are_counted_by_their_slash_64() {
        let limits = Limits {
            sign_in_address_burst: 2,
            sign_in_address_per_minute: 1,
            ..Limits::default()
        };
        let throttle = SignInThrottle::new(&limits);
        let from = |text: &str| ClientAddress(Some(text.parse().unwrap()));
        assert!(throttle.attempt_from(from("2001:db8:1:2::1")).is_ok());
        assert!(throttle.attempt_from(from("2001:db8:1:2:ffff::9")).is_ok());
        assert!(throttle.attempt_from(from("2001:db8:1:2:abcd::7")).is_err());
        assert!(throttle.attempt_from(from("2001:db8:1:3::1")).is_ok());
        assert_eq!(
            counted_as("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            counted_as("192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
