//! The failed-request limit: how many refused requests a client may make in a minute
//! before it is answered 429 without being looked at.
//!
//! Memory is bounded and each failure costs the same however many clients are tracked:
//! the counts live in a fixed-capacity LRU map (`hashlink`'s, O(1) per lookup, insert
//! and eviction, SipHash-keyed so addresses cannot be chosen to collide). A client is
//! forgotten only when its window has passed or when the map is full and it is the one
//! that failed least recently; nothing ever scans the map. IPv6 clients are counted per
//! /64, the block one host or home is usually given, so rotating through a prefix's
//! addresses does not reset the count.

use std::net::IpAddr;
use std::sync::Mutex;

use hashlink::LruCache;
use provisioner_core::UnixTime;

/// The window failures are counted in, seconds.
const WINDOW_SECS: i64 = 60;

/// Clients tracked at most. About 100 bytes each: some 10 MB when full.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Failed requests per client in a minute, in memory: a factory line may sit behind one
/// address, so the default limit is generous.
///
/// Each client's window opens at its first failure and lasts a minute; at
/// `per_minute` failures in it, the client is blocked until the window closes. (A client
/// can thus fail up to twice the limit across the boundary of two windows: the price of
/// keeping two numbers per client instead of every failure's time.)
#[derive(Debug)]
pub struct FailureLimiter {
    per_minute: u32,
    clients: Mutex<LruCache<ClientKey, Window>>,
}

/// Who a failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    /// An IPv4 address (an IPv4-mapped IPv6 address counts as its IPv4 address).
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
    /// Anything that does not parse as an IP address, as given.
    Other(Box<str>),
}

impl ClientKey {
    fn of(address: &str) -> Self {
        match address.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => Self::V4(v4.octets()),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let mut prefix = [0; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    Self::V6Prefix(prefix)
                }
            },
            Err(_) => Self::Other(address.into()),
        }
    }
}

/// One client's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    opened: UnixTime,
    failures: u32,
}

impl Window {
    fn is_over(&self, now: UnixTime) -> bool {
        now - self.opened >= WINDOW_SECS
    }
}

impl FailureLimiter {
    /// A limiter allowing `per_minute` failures per client (0 = no limit), tracking at
    /// most [`DEFAULT_CAPACITY`] clients.
    pub fn new(per_minute: u32) -> Self {
        Self::with_capacity(per_minute, DEFAULT_CAPACITY)
    }

    /// A limiter tracking at most `capacity` clients (at least one).
    pub fn with_capacity(per_minute: u32, capacity: usize) -> Self {
        Self {
            per_minute,
            clients: Mutex::new(LruCache::new(capacity.max(1))),
        }
    }

    /// Seconds to wait, if the client at `address` is over its limit.
    pub fn blocked(&self, address: &str, now: UnixTime) -> Option<u64> {
        if self.per_minute == 0 {
            return None;
        }
        let key = ClientKey::of(address);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let window = *clients.peek(&key)?;
        if window.is_over(now) {
            clients.remove(&key);
            return None;
        }
        (window.failures >= self.per_minute)
            .then(|| (window.opened + WINDOW_SECS - now).max(1) as u64)
    }

    /// Counts a failed request from `address`; when the map is full, the client that
    /// failed least recently is forgotten.
    pub fn record(&self, address: &str, now: UnixTime) {
        if self.per_minute == 0 {
            return;
        }
        let key = ClientKey::of(address);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        match clients.get_mut(&key) {
            Some(window) if !window.is_over(now) => {
                window.failures = window.failures.saturating_add(1);
            }
            Some(window) => {
                *window = Window {
                    opened: now,
                    failures: 1,
                }
            }
            None => {
                clients.insert(
                    key,
                    Window {
                        opened: now,
                        failures: 1,
                    },
                );
            }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }

    #[cfg(test)]
    fn tracks(&self, address: &str) -> bool {
        self.clients
            .lock()
            .map(|c| c.contains_key(&ClientKey::of(address)))
            .unwrap_or(false)
    }

    /// Clients from the least to the most recently failed.
    #[cfg(test)]
    fn order(&self) -> Vec<ClientKey> {
        self.clients
            .lock()
            .map(|c| c.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_failures_and_freed_after_a_minute() {
        let limiter = FailureLimiter::new(3);
        for t in [100, 110, 120] {
            assert_eq!(limiter.blocked("10.0.0.1", t), None);
            limiter.record("10.0.0.1", t);
        }
        assert_eq!(limiter.blocked("10.0.0.1", 130), Some(30));
        assert_eq!(limiter.blocked("10.0.0.2", 130), None);
        assert_eq!(limiter.blocked("10.0.0.1", 160), None);
        // The expired window is gone, and a new failure opens a new one.
        assert!(!limiter.tracks("10.0.0.1"));
        limiter.record("10.0.0.1", 161);
        assert_eq!(limiter.blocked("10.0.0.1", 161), None);
    }

    #[test]
    fn zero_turns_the_failure_limit_off() {
        let limiter = FailureLimiter::new(0);
        for _ in 0..10 {
            limiter.record("a", 1);
        }
        assert_eq!(limiter.blocked("a", 1), None);
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_ipv4_per_address() {
        // Given a limit of 2 and failures from two addresses of one /64
        let limiter = FailureLimiter::new(2);
        limiter.record("2001:db8:1:2::1", 0);
        limiter.record("2001:db8:1:2:ffff:ffff:ffff:ffff", 1);

        // Then every address in that /64 is blocked, and only there
        assert_eq!(limiter.blocked("2001:db8:1:2:abcd::9", 2), Some(58));
        assert_eq!(limiter.blocked("2001:db8:1:3::1", 2), None);
        assert_eq!(limiter.tracked(), 1);

        // IPv4 addresses are each their own client, and an IPv4-mapped IPv6 address is
        // its IPv4 address
        limiter.record("192.0.2.1", 0);
        limiter.record("::ffff:192.0.2.1", 1);
        assert_eq!(limiter.blocked("192.0.2.1", 2), Some(58));
        assert_eq!(limiter.blocked("192.0.2.2", 2), None);

        // Strings that are no address are counted as they are
        limiter.record("not an address", 0);
        limiter.record("not an address", 1);
        assert_eq!(limiter.blocked("not an address", 2), Some(58));
        assert_eq!(limiter.blocked("not an address ", 2), None);
    }

    #[test]
    fn the_bound_holds_at_200_000_addresses_and_the_latest_stay_tracked() {
        // Given the default capacity and 200,000 distinct addresses failing in one minute
        let limiter = FailureLimiter::new(1);
        let address = |i: u32| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        for i in 0..200_000 {
            limiter.record(&address(i), 0);
        }

        // Then no more than the capacity are tracked: the least recent went
        assert_eq!(limiter.tracked(), DEFAULT_CAPACITY);
        assert!(!limiter.tracks(&address(0)));
        assert!(!limiter.tracks(&address(99_999)));
        // and the latest are still tracked, and blocked
        assert!(limiter.tracks(&address(100_000)));
        assert_eq!(limiter.blocked(&address(199_999), 1), Some(59));
    }

    #[test]
    fn each_failure_evicts_at_most_one_client_the_least_recent() {
        // Given a full map of four clients, the first refreshed by a later failure
        let limiter = FailureLimiter::with_capacity(100, 4);
        for (t, a) in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
            .iter()
            .enumerate()
        {
            limiter.record(a, t as i64);
        }
        limiter.record("10.0.0.1", 5);
        assert_eq!(limiter.order()[0], ClientKey::of("10.0.0.2"));

        // When new clients fail, one after another
        for (step, a) in ["10.0.0.5", "10.0.0.6", "10.0.0.7"].iter().enumerate() {
            let before = limiter.order();
            limiter.record(a, 6);
            let after = limiter.order();

            // Then each failure removes exactly one client, the least recently failed,
            // and keeps the rest in order: the work does not depend on the map's size
            assert_eq!(after.len(), 4, "step {step}");
            assert_eq!(&after[..3], &before[1..], "step {step}");
            assert_eq!(after[3], ClientKey::of(a));
        }
        // and the refreshed client outlived those that failed before its refresh
        assert!(limiter.tracks("10.0.0.1"));
        assert!(!limiter.tracks("10.0.0.4"));
    }

    #[test]
    fn a_failure_of_a_tracked_client_evicts_nothing() {
        let limiter = FailureLimiter::with_capacity(50, 2);
        for t in 0..50 {
            limiter.record("10.0.0.1", t);
            limiter.record("10.0.0.2", t);
        }
        assert_eq!(limiter.tracked(), 2);
        assert_eq!(limiter.blocked("10.0.0.1", 50), Some(10));
        assert_eq!(limiter.blocked("10.0.0.2", 50), Some(10));
    }
}
