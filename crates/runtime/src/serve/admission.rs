//! How many connections may be open at once, in all and from one address. A client that opens
//! thousands of connections and sends nothing holds only its share; the rest of its connections
//! are answered with a JSON error and closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::settings::HttpSettings;

pub(crate) struct Admission {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<AddressKey, usize>,
}

/// An IPv6 client usually holds a whole /64, so an IPv6 address counts by that prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AddressKey {
    V4(u32),
    V6Network(u64),
}

impl AddressKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(u32::from(v4)),
                None => Self::V6Network((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The address already has this many connections open.
    PerAddress(usize),
    /// The server already has this many connections open.
    Total(usize),
}

/// A taken connection; it counts as open until dropped.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    key: Option<AddressKey>,
}

impl Admission {
    pub(crate) fn new(http: &HttpSettings) -> Self {
        Self {
            max_total: http.max_connections,
            max_per_address: http.max_connections_per_address,
            open: Mutex::new(Open::default()),
        }
    }

    /// Takes a connection from `ip`, unless a limit is reached. Trusted proxies carry many
    /// clients' connections, so only the total limit applies to them.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        trusted_proxy: bool,
    ) -> Result<Ticket, Refusal> {
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Refusal::Total(self.max_total));
        }
        let key = (!trusted_proxy).then(|| AddressKey::of(ip));
        if let Some(key) = key {
            let count = open.by_address.entry(key).or_default();
            if *count >= self.max_per_address {
                return Err(Refusal::PerAddress(self.max_per_address));
            }
            *count += 1;
        }
        open.total += 1;
        Ok(Ticket {
            admission: self.clone(),
            key,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // Counting never panics while holding the lock; a poisoned map is still consistent.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
        open.total -= 1;
        if let Some(key) = self.key {
            if let Some(count) = open.by_address.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    open.by_address.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(total: usize, per_address: usize) -> Arc<Admission> {
        Arc::new(Admission::new(&HttpSettings {
            max_connections: total,
            max_connections_per_address: per_address,
            ..HttpSettings::default()
        }))
    }

    #[test]
    fn each_address_gets_its_share_and_gets_it_back_on_close() {
        let admission = admission(10, 2);
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        let first = admission.admit(a, false).unwrap();
        let _second = admission.admit(a, false).unwrap();
        assert_eq!(
            admission.admit(a, false).err(),
            Some(Refusal::PerAddress(2))
        );
        assert!(admission.admit(b, false).is_ok());
        drop(first);
        assert!(admission.admit(a, false).is_ok());
    }

    #[test]
    fn one_ipv6_network_counts_as_one_address_and_proxies_only_count_in_all() {
        let admission = admission(3, 1);
        let one: IpAddr = "2001:db8::1".parse().unwrap();
        let same_network: IpAddr = "2001:db8::ffff".parse().unwrap();
        let _held = admission.admit(one, false).unwrap();
        assert!(admission.admit(same_network, false).is_err());
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let _p1 = admission.admit(proxy, true).unwrap();
        let _p2 = admission.admit(proxy, true).unwrap();
        assert_eq!(admission.admit(proxy, true).err(), Some(Refusal::Total(3)));
    }
}
