//! Places under `-max-in-flight`, counted on the scoreboard with atomics so
//! that the limit holds across every Apache child. Each request that holds
//! or waits for a place also writes a lease word naming its process: what a
//! child killed in the middle of a request held comes back through
//! [`reclaim_leases`], which the process manager runs every second. A
//! waiter sleeps on a futex in the shared segment and a release wakes one.
//!
//! Every change is made in an order such that a process killed between two
//! steps can only leave a count one too low (one request more than the
//! limit for a while), never a place lost for good.

use std::cell::Cell;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use super::layout::{app, header};
use super::{board, first_since, now_ms, subtract, Board};

/// Lease words of a scoreboard with limits: room for 4096 requests holding
/// or waiting for a place at once, across both generations of children
/// during a graceful restart. Past that, requests are still counted, only
/// without the lease that would give their place back if their child died.
pub const DEFAULT_LEASE_SLOTS: u32 = 4096;

/// Lease word bits: the request holds a place, waits for one (both while a
/// waiter tries), the application slot above the pid.
const HOLDS: u64 = 1 << 63;
const WAITS: u64 = 1 << 62;
const SLOT_SHIFT: u32 = 32;
const SLOT_MASK: u64 = (1 << 30) - 1;
const PID_MASK: u64 = 0xffff_ffff;

/// The request has no lease word.
const NO_LEASE: usize = usize::MAX;

/// A request's standing towards its application's limit.
#[derive(Clone, Copy, Debug)]
pub(super) struct Standing {
    lease: usize,
    pub(super) holds: bool,
    pub(super) waits: bool,
}

impl Default for Standing {
    fn default() -> Self {
        Standing { lease: NO_LEASE, holds: false, waits: false }
    }
}

thread_local! {
    /// Where this thread's last lease word was: free again, and found at
    /// the first try next time.
    static HINT: Cell<usize> = const { Cell::new(usize::MAX) };
}

impl Board {
    fn lease_word(&self, i: usize) -> &AtomicU64 {
        &self.words[self.leases_base + i]
    }

    /// The futex word of the application in `slot`.
    fn wake_word(&self, slot: usize) -> &AtomicU32 {
        let word: *const AtomicU64 = self.app_word(slot, app::WAKE);
        // SAFETY: the word is 8-aligned (so 4-aligned), lives in the
        // 'static segment, and is only ever accessed as this AtomicU32 (its
        // first half), never as the AtomicU64 it is laid out as.
        unsafe { &*word.cast::<AtomicU32>() }
    }

    /// Writes `state` into the request's lease word (0 frees it), taking a
    /// free word first if the request has none.
    fn mark(&self, st: &mut Standing, slot: usize, state: u64) {
        let value = if state == 0 {
            0
        } else {
            u64::from(std::process::id()) & PID_MASK | (slot as u64 & SLOT_MASK) << SLOT_SHIFT | state
        };
        if st.lease != NO_LEASE {
            self.lease_word(st.lease).store(value, SeqCst);
            if value == 0 {
                HINT.set(st.lease);
                st.lease = NO_LEASE;
            }
            return;
        }
        if value == 0 || self.lease_slots == 0 {
            return;
        }
        let n = self.lease_slots;
        let start = match HINT.get() {
            usize::MAX => std::process::id() as usize % n,
            hint => hint % n,
        };
        for k in 0..n {
            let i = (start + k) % n;
            if self.lease_word(i).compare_exchange(0, value, SeqCst, Relaxed).is_ok() {
                st.lease = i;
                return;
            }
        }
        self.words[header::LEASELESS].fetch_add(1, Relaxed);
    }

    /// Takes one of the `limit` places of the application in `slot` if
    /// one is free (a waiter leaves the queue with it).
    pub(super) fn try_hold(&self, st: &mut Standing, slot: usize, limit: u64) -> bool {
        // The lease says "holds" before the count does: a kill in between
        // gives a place back that was not taken, never the reverse.
        self.mark(st, slot, if st.waits { WAITS | HOLDS } else { HOLDS });
        let count = self.app_word(slot, app::ADMITTED);
        let mut current = count.load(SeqCst);
        loop {
            if current >= limit {
                self.mark(st, slot, if st.waits { WAITS } else { 0 });
                return false;
            }
            match count.compare_exchange_weak(current, current + 1, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        st.holds = true;
        if st.waits {
            st.waits = false;
            decrement(self.app_word(slot, app::WAITING));
            self.mark(st, slot, HOLDS);
        }
        true
    }

    /// Joins the application's queue if fewer than `bound` wait.
    pub(super) fn enqueue(&self, st: &mut Standing, slot: usize, bound: u64) -> bool {
        self.mark(st, slot, WAITS);
        let waiting = self.app_word(slot, app::WAITING);
        let mut current = waiting.load(SeqCst);
        loop {
            if current >= bound {
                self.mark(st, slot, 0);
                return false;
            }
            match waiting.compare_exchange_weak(current, current + 1, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        st.waits = true;
        true
    }

    /// Leaves the queue without a place.
    pub(super) fn dequeue(&self, st: &mut Standing, slot: usize) {
        if std::mem::take(&mut st.waits) {
            decrement(self.app_word(slot, app::WAITING));
            self.mark(st, slot, 0);
        }
    }

    /// Gives the place back and wakes a waiter, if any.
    pub(super) fn release(&self, st: &mut Standing, slot: usize) {
        if std::mem::take(&mut st.holds) {
            decrement(self.app_word(slot, app::ADMITTED));
            self.mark(st, slot, 0);
            if self.app_word(slot, app::WAITING).load(SeqCst) > 0 {
                self.wake(slot);
            }
        }
    }

    /// The application's wake-up count, read before a try: a release after
    /// the read ends [`Board::sleep`] at once.
    pub(super) fn wake_count(&self, slot: usize) -> u32 {
        self.wake_word(slot).load(SeqCst)
    }

    /// Sleeps until a place of the application in `slot` is released after
    /// `seen` was read, at most `timeout`.
    pub(super) fn sleep(&self, slot: usize, seen: u32, timeout: Duration) {
        let word = self.wake_word(slot);
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: FUTEX_WAIT on a live, aligned 32-bit word of shared
        // memory (so not FUTEX_PRIVATE_FLAG) with a valid relative
        // timeout; it only reads the word. Errors (EAGAIN: the word moved,
        // EINTR, ETIMEDOUT) all mean "look again".
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, seen, &ts as *const libc::timespec, 0, 0);
        }
    }

    fn wake(&self, slot: usize) {
        let word = self.wake_word(slot);
        word.fetch_add(1, SeqCst);
        // SAFETY: FUTEX_WAKE of one waiter on a live, aligned word of the
        // shared segment; it touches no memory.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1, 0, 0, 0);
        }
    }

    /// Frees the leases of processes that no longer exist, giving back
    /// their places and queue entries; how many.
    fn reclaim(&self) -> usize {
        let mut freed = 0;
        for i in 0..self.lease_slots {
            let word = self.lease_word(i);
            let value = word.load(SeqCst);
            if value == 0 || alive((value & PID_MASK) as libc::pid_t) {
                continue;
            }
            if word.compare_exchange(value, 0, SeqCst, Relaxed).is_err() {
                continue;
            }
            let slot = ((value >> SLOT_SHIFT) & SLOT_MASK) as usize;
            if slot >= self.app_slots {
                continue;
            }
            if value & WAITS != 0 {
                decrement(self.app_word(slot, app::WAITING));
            }
            if value & HOLDS != 0 {
                decrement(self.app_word(slot, app::ADMITTED));
                self.app_word(slot, app::RECLAIMED).fetch_add(1, Relaxed);
                if self.app_word(slot, app::WAITING).load(SeqCst) > 0 {
                    self.wake(slot);
                }
            }
            freed += 1;
        }
        freed
    }

    /// [`Board::reclaim`] and [`Board::reclaim_spool`], at most once a
    /// second whoever asks (a waiter, the process manager).
    pub(super) fn reclaim_if_due(&self) -> usize {
        if !first_since(&self.words[header::LEASE_SWEEP], now_ms(), 1000) {
            return 0;
        }
        self.reclaim_spool();
        self.reclaim()
    }

    /// After a restart that killed every request: nobody holds or waits.
    pub(super) fn clear_leases(&self) {
        for slot in 0..self.app_slots {
            self.app_word(slot, app::ADMITTED).store(0, SeqCst);
            self.app_word(slot, app::WAITING).store(0, SeqCst);
        }
        for i in 0..self.lease_slots {
            self.lease_word(i).store(0, SeqCst);
        }
    }
}

#[cfg(test)]
impl Board {
    /// Lease words taken now.
    pub(super) fn leases_in_use(&self) -> usize {
        (0..self.lease_slots).filter(|&i| self.lease_word(i).load(SeqCst) != 0).count()
    }

    /// Writes the lease word `i` as process `pid` would.
    pub(super) fn forge_lease(&self, i: usize, pid: u32, slot: usize, holds: bool, waits: bool) {
        let state = if holds { HOLDS } else { 0 } | if waits { WAITS } else { 0 };
        self.lease_word(i).store(u64::from(pid) | (slot as u64) << SLOT_SHIFT | state, SeqCst);
    }
}

/// Gives back what dead processes held (places, queue entries, budget of
/// temporary files), at most once a second: the process manager calls it
/// on every turn of its loop, so a child killed with SIGKILL in the middle
/// of requests frees them within about a second. How many leases it freed.
pub fn reclaim_dead() -> usize {
    board().map_or(0, Board::reclaim_if_due)
}

/// Whether `pid` still exists (a process of another user counts).
pub(super) fn alive(pid: libc::pid_t) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Counts one down, never below zero.
fn decrement(word: &AtomicU64) {
    subtract(word, 1);
}
