//! The endpoint state balancing needs, shared by every child and the
//! process manager (issue 12): health flipped by compare-and-swap (so the
//! one process that flips it logs the change), the back-off before a down
//! endpoint is tried again, the start of its slow start, the capacity the
//! manager learned with FCGI_GET_VALUES, and the address set the manager
//! resolved (a sequence word per slot so a reader never sees half an
//! address). Atomics only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering::*;

use super::layout::{app, endpoint};
use super::Board;

/// The first wait before a down endpoint is tried again; doubled per
/// failed try up to [`BACKOFF_MAX_MS`].
pub const BACKOFF_MIN_MS: u64 = 1_000;
pub const BACKOFF_MAX_MS: u64 = 60_000;
/// How long an endpoint that came back gets a growing share of requests.
pub const SLOW_START_MS: u64 = 5_000;

/// Wall-clock milliseconds: the same clock in every process. Read from
/// the coarse clock (the kernel's last tick, a few milliseconds behind at
/// most, without reading the time-stamp counter): every use compares it at
/// the scale of seconds, and the pool reads it for each connection it
/// keeps.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a live timespec that clock_gettime fills in.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0).saturating_mul(1000) + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000_000
}

/// The back-off after `failures` failed tries in a row (1 s, 2 s, ... 60 s).
pub fn backoff_ms(failures: u64) -> u64 {
    BACKOFF_MIN_MS.saturating_mul(1u64 << failures.min(16)).min(BACKOFF_MAX_MS)
}

/// One endpoint slot of an application, as a request sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Its place among the application's slots (the tracker's `order`).
    pub order: usize,
    /// The address the manager published; None for Unix sockets (the
    /// configuration's endpoint of that order applies).
    pub addr: Option<SocketAddr>,
    pub down: bool,
    /// While down: not before this time (ms).
    pub retry_at: u64,
    pub in_flight: u64,
    /// When it came back (ms), 0 if never down.
    pub up_at: u64,
}

fn encode(addr: SocketAddr) -> (u64, u64, u64) {
    match addr.ip() {
        IpAddr::V4(v4) => (4 << 16 | u64::from(addr.port()), 0, u64::from(u32::from(v4))),
        IpAddr::V6(v6) => {
            let n = u128::from(v6);
            (6 << 16 | u64::from(addr.port()), (n >> 64) as u64, n as u64)
        }
    }
}

fn decode(meta: u64, hi: u64, lo: u64) -> Option<SocketAddr> {
    let port = (meta & 0xffff) as u16;
    match meta >> 16 {
        4 => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(lo as u32)), port)),
        6 => Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(u128::from(hi) << 64 | u128::from(lo))), port)),
        _ => None,
    }
}

impl Board {
    /// The first endpoint slot of the application in `slot`, and how many it has.
    pub fn endpoint_range(&self, slot: usize) -> (usize, usize) {
        let first = self.app_word(slot, app::EP_FIRST).load(Relaxed) as usize;
        let count = self.app_word(slot, app::EP_COUNT).load(Relaxed) as usize;
        let count = count.min(self.endpoint_slots.saturating_sub(first));
        (first, count)
    }

    /// The address in endpoint slot `ep`, read consistently.
    pub fn endpoint_addr(&self, ep: usize) -> Option<SocketAddr> {
        let w = |f| self.ep_word(ep, f);
        for _ in 0..64 {
            let seq = w(endpoint::ADDR_SEQ).load(Acquire);
            if seq % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let (meta, hi, lo) = (
                w(endpoint::ADDR_META).load(Acquire),
                w(endpoint::ADDR_HI).load(Acquire),
                w(endpoint::ADDR_LO).load(Acquire),
            );
            if w(endpoint::ADDR_SEQ).load(Acquire) == seq {
                return decode(meta, hi, lo);
            }
        }
        None
    }

    pub(super) fn write_addr(&self, ep: usize, addr: SocketAddr) {
        let (meta, hi, lo) = encode(addr);
        let seq = self.ep_word(ep, endpoint::ADDR_SEQ);
        seq.fetch_add(1, AcqRel);
        self.ep_word(ep, endpoint::ADDR_META).store(meta, Release);
        self.ep_word(ep, endpoint::ADDR_HI).store(hi, Release);
        self.ep_word(ep, endpoint::ADDR_LO).store(lo, Release);
        seq.fetch_add(1, Release);
        self.write_name(
            self.endpoints_base + ep * endpoint::WORDS + endpoint::NAME_LEN,
            &addr.to_string(),
            super::layout::ENDPOINT_NAME_BYTES,
        );
    }

    /// The slots of the application in `slot` that take new requests
    /// (in the current address set), into `out`.
    pub fn active_endpoints(&self, slot: usize, out: &mut Vec<Slot>) {
        let (first, count) = self.endpoint_range(slot);
        for order in 0..count {
            let ep = first + order;
            if self.ep_word(ep, endpoint::ACTIVE).load(Acquire) != 1 {
                continue;
            }
            out.push(Slot {
                order,
                addr: self.endpoint_addr(ep),
                down: self.ep_word(ep, endpoint::STATE).load(Acquire) == 1,
                retry_at: self.ep_word(ep, endpoint::RETRY_AT).load(Relaxed),
                in_flight: self.ep_word(ep, endpoint::IN_FLIGHT).load(Relaxed),
                up_at: self.ep_word(ep, endpoint::UP_AT).load(Relaxed),
            });
        }
    }

    /// The application's turn counter, advanced.
    pub fn next_turn(&self, slot: usize) -> u64 {
        self.app_word(slot, app::TURN).fetch_add(1, Relaxed)
    }

    /// The application's turn counter, as it is.
    pub fn turn(&self, slot: usize) -> u64 {
        self.app_word(slot, app::TURN).load(Relaxed)
    }

    /// A down endpoint may be tried at `now`: true for the one process
    /// that claims the try (it pushes the next try one back-off away).
    pub fn claim_retry(&self, ep: usize, seen: u64, now: u64) -> bool {
        if now < seen {
            return false;
        }
        let failures = self.ep_word(ep, endpoint::BACKOFF).load(Relaxed);
        self.ep_word(ep, endpoint::RETRY_AT)
            .compare_exchange(seen, now + backoff_ms(failures + 1), AcqRel, Relaxed)
            .is_ok()
    }

    /// The endpoint failed (refused, timed out, did not answer): down,
    /// with the next try one back-off away. True when this call took it
    /// down (the caller logs it).
    /// Only a try (`retry`: a probe after the back-off, or the manager's
    /// check) lengthens the back-off: requests that were already on their
    /// way when it went down do not.
    pub fn endpoint_failed(&self, ep: usize, now: u64, reason: u64, retry: bool) -> bool {
        let state = self.ep_word(ep, endpoint::STATE);
        if state.compare_exchange(0, 1, AcqRel, Acquire).is_ok() {
            self.ep_word(ep, endpoint::REASON).store(reason, Relaxed);
            self.ep_word(ep, endpoint::BACKOFF).store(0, Relaxed);
            self.ep_word(ep, endpoint::RETRY_AT).store(now + backoff_ms(0), Release);
            return true;
        }
        if !retry {
            return false;
        }
        self.ep_word(ep, endpoint::REASON).store(reason, Relaxed);
        let failures = self.ep_word(ep, endpoint::BACKOFF).fetch_add(1, Relaxed) + 1;
        self.ep_word(ep, endpoint::RETRY_AT).store(now + backoff_ms(failures), Release);
        false
    }

    /// The endpoint answered: up. True when this call brought it back (the
    /// caller logs it); its slow start begins.
    pub fn endpoint_ok(&self, ep: usize, now: u64) -> bool {
        let state = self.ep_word(ep, endpoint::STATE);
        if state.load(Relaxed) == 0 {
            return false;
        }
        if state.compare_exchange(1, 0, AcqRel, Relaxed).is_ok() {
            self.ep_word(ep, endpoint::UP_AT).store(now.max(1), Relaxed);
            self.ep_word(ep, endpoint::BACKOFF).store(0, Relaxed);
            self.ep_word(ep, endpoint::DOWN_SINCE).store(0, Relaxed);
            return true;
        }
        false
    }

    /// Why endpoint slot `ep` went down (`endpoint::DOWN_*`).
    pub fn down_reason(&self, ep: usize) -> u64 {
        self.ep_word(ep, endpoint::REASON).load(Relaxed)
    }

    /// Whether endpoint slot `ep` is down.
    pub fn endpoint_down(&self, ep: usize) -> bool {
        self.ep_word(ep, endpoint::STATE).load(Acquire) == 1
    }

    /// FCGI_MAX_CONNS of endpoint slot `ep` (0: unknown,
    /// [`endpoint::CAPACITY_NONE`]: it did not answer).
    pub fn capacity(&self, ep: usize) -> u64 {
        self.ep_word(ep, endpoint::CAPACITY).load(Relaxed)
    }

    pub fn set_capacity(&self, ep: usize, n: u64) {
        self.ep_word(ep, endpoint::CAPACITY).store(n, Relaxed);
    }

    /// When a request last waited behind idle connections to endpoint
    /// slot `ep` ([`endpoint::STARVED_AT`]; 0: never).
    pub fn starved_at(&self, ep: usize) -> u64 {
        self.ep_word(ep, endpoint::STARVED_AT).load(Relaxed)
    }

    pub fn set_starved_at(&self, ep: usize, now: u64) {
        self.ep_word(ep, endpoint::STARVED_AT).store(now.max(1), Relaxed);
    }

    /// `n` pooled connections to endpoint slot `ep` were closed.
    pub fn pool_closed(&self, ep: usize, n: usize) {
        if n > 0 {
            self.ep_word(ep, endpoint::POOL_IDLE).fetch_sub(n as u64, Relaxed);
        }
    }

    /// Idle pooled connections to `ep` in all children, and requests in flight there.
    pub fn idle_and_busy(&self, ep: usize) -> (u64, u64) {
        let idle = (self.ep_word(ep, endpoint::POOL_IDLE).load(Relaxed) as i64).max(0) as u64;
        (idle, self.ep_word(ep, endpoint::IN_FLIGHT).load(Relaxed))
    }

    /// The process manager: the addresses of the application in `slot` are
    /// now `addrs`. Known addresses keep their slot (and counters), new
    /// ones take a free slot (else a removed one with nothing in flight),
    /// the others are removed: no new requests, those in flight finish.
    /// Returns the addresses added and removed (those that found no slot
    /// are left out).
    pub fn publish_addrs(&self, slot: usize, addrs: &[SocketAddr]) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let (first, count) = self.endpoint_range(slot);
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        let current: Vec<(usize, Option<SocketAddr>, u64)> = (first..first + count)
            .map(|ep| (ep, self.endpoint_addr(ep), self.ep_word(ep, endpoint::ACTIVE).load(Acquire)))
            .collect();
        for &(ep, addr, active) in &current {
            if active == 1 && addr.is_some_and(|a| !addrs.contains(&a)) {
                self.ep_word(ep, endpoint::ACTIVE).store(2, Release);
                removed.extend(addr);
            }
        }
        for &a in addrs {
            if let Some(&(ep, _, active)) = current.iter().find(|(_, addr, _)| *addr == Some(a)) {
                if active != 1 {
                    self.ep_word(ep, endpoint::ACTIVE).store(1, Release);
                    added.push(a);
                }
                continue;
            }
            let free = current
                .iter()
                .find(|(ep, _, _)| self.ep_word(*ep, endpoint::ACTIVE).load(Acquire) == 0)
                .or_else(|| {
                    current.iter().find(|(ep, _, _)| {
                        self.ep_word(*ep, endpoint::ACTIVE).load(Acquire) == 2
                            && self.ep_word(*ep, endpoint::IN_FLIGHT).load(Relaxed) == 0
                    })
                });
            let Some(&(ep, _, _)) = free else { continue };
            self.write_addr(ep, a);
            for f in [endpoint::STATE, endpoint::RETRY_AT, endpoint::BACKOFF, endpoint::UP_AT, endpoint::CAPACITY] {
                self.ep_word(ep, f).store(0, Relaxed);
            }
            self.ep_word(ep, endpoint::APP).store(slot as u64 + 1, Relaxed);
            self.ep_word(ep, endpoint::ORDER).store((ep - first) as u64, Relaxed);
            self.ep_word(ep, endpoint::ACTIVE).store(1, Release);
            added.push(a);
        }
        if !added.is_empty() || !removed.is_empty() {
            self.app_word(slot, app::ADDR_GEN).fetch_add(1, Release);
        }
        (added, removed)
    }

    /// Whether endpoint slot `ep` is unused (0), in the address set (1) or removed (2).
    pub fn ep_active(&self, ep: usize) -> u64 {
        self.ep_word(ep, endpoint::ACTIVE).load(Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_backoff_grows() {
        for a in ["198.18.1.2:9000", "[2001:db8::1]:80", "127.0.0.1:1"] {
            let a: SocketAddr = a.parse().unwrap();
            let (m, h, l) = encode(a);
            assert_eq!(decode(m, h, l), Some(a));
        }
        assert_eq!(decode(0, 0, 0), None);
        assert_eq!([0, 1, 2, 5, 6, 40].map(backoff_ms), [1_000, 2_000, 4_000, 32_000, 60_000, 60_000]);
    }
}
