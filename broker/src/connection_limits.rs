//! Limits on open connections, per client address and in all (Kafka's
//! `max.connections.per.ip` and `max.connections`): a connection past either is closed as it
//! is accepted, before any byte is read, so one client cannot take every file descriptor.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub struct ConnectionLimits {
    per_ip: usize,
    total: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    by_ip: HashMap<IpAddr, usize>,
    all: usize,
}

/// One admitted connection; dropping it frees its place.
pub struct Admitted {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(per_ip: usize, total: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits { per_ip, total, open: Mutex::default() })
    }

    /// A place for a connection from `ip`, or None when a limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let mut open = match self.open.lock() {
            Ok(open) => open,
            Err(poisoned) => poisoned.into_inner(),
        };
        let from_ip = open.by_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.per_ip || open.all >= self.total {
            return None;
        }
        open.by_ip.insert(ip, from_ip + 1);
        open.all += 1;
        Some(Admitted { limits: self.clone(), ip })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = match self.limits.open.lock() {
            Ok(open) => open,
            Err(poisoned) => poisoned.into_inner(),
        };
        open.all = open.all.saturating_sub(1);
        if let Some(n) = open.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_address_and_in_all_and_freed_on_drop() {
        let limits = ConnectionLimits::new(2, 3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        let first = limits.admit(a).expect("first");
        let _second = limits.admit(a).expect("second");
        assert!(limits.admit(a).is_none(), "a third from one address");
        let _other = limits.admit(b).expect("another address");
        assert!(limits.admit(b).is_none(), "past the total");
        drop(first);
        assert!(limits.admit(a).is_some(), "a freed place is reused");
    }
}
