//! The budget of temporary-file bytes shared by all children: request
//! bodies received before the application is asked and responses held for
//! slow clients spill to files, and without a bound across requests a few
//! hundred slow clients could fill the disk (or, with a tmpfs `/tmp`, the
//! memory). Each child charges what its files hold to the scoreboard (a
//! total, and a row of its own so that what a killed child held comes
//! back); a write past the budget is refused and the caller falls back:
//! a response paces its application, a request body is streamed.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU64, AtomicUsize};

use super::admission::alive;
use super::layout::{header, SPOOL_ROWS};
use super::{board, first_since, subtract, track::unix_now, Board};

/// Row word: pid above, bytes below.
const PID_SHIFT: u32 = 42;
const BYTES_MASK: u64 = (1 << PID_SHIFT) - 1;

/// This process's row in the installed board, + 1 (0: none claimed yet),
/// and the board it was claimed in.
static ROW: AtomicUsize = AtomicUsize::new(0);
static ROW_BOARD: AtomicUsize = AtomicUsize::new(0);

impl Board {
    fn spool_row(&self, i: usize) -> &AtomicU64 {
        &self.words[self.spool_rows_base + i]
    }

    /// This process's row, claimed on first use.
    fn own_spool_row(&self) -> Option<&AtomicU64> {
        let me = self as *const Board as usize;
        if ROW_BOARD.load(Relaxed) == me {
            return ROW.load(Relaxed).checked_sub(1).map(|i| self.spool_row(i));
        }
        let pid = u64::from(std::process::id());
        let start = (pid as usize) % SPOOL_ROWS;
        for k in 0..SPOOL_ROWS {
            let i = (start + k) % SPOOL_ROWS;
            if self.spool_row(i).compare_exchange(0, pid << PID_SHIFT, SeqCst, Relaxed).is_ok() {
                ROW.store(i + 1, Relaxed);
                ROW_BOARD.store(me, Relaxed);
                return Some(self.spool_row(i));
            }
        }
        None
    }

    /// Sets the budget (the parent, at start-up and on each restart).
    pub fn set_spool_budget(&self, bytes: u64) {
        self.words[header::SPOOL_BUDGET].store(bytes, Relaxed);
    }

    /// Takes `bytes` of the budget ([`spool_reserve`]).
    fn spool_take(&self, bytes: u64) -> Result<(), bool> {
        let budget = self.words[header::SPOOL_BUDGET].load(Relaxed);
        let used = &self.words[header::SPOOL_USED];
        let mut now = used.load(SeqCst);
        loop {
            if now.saturating_add(bytes) > budget {
                return Err(self.spool_refused());
            }
            match used.compare_exchange_weak(now, now + bytes, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(actual) => now = actual,
            }
        }
        self.words[header::SPOOL_PEAK].fetch_max(now + bytes, Relaxed);
        if let Some(row) = self.own_spool_row() {
            row.fetch_add(bytes, SeqCst);
        }
        Ok(())
    }

    fn spool_give(&self, bytes: u64) {
        if let Some(row) = self.own_spool_row() {
            let _ =
                row.fetch_update(SeqCst, SeqCst, |v| Some(v & !BYTES_MASK | (v & BYTES_MASK).saturating_sub(bytes)));
        }
        subtract(&self.words[header::SPOOL_USED], bytes);
    }

    /// Counts a refusal; true for the first of its second.
    fn spool_refused(&self) -> bool {
        self.words[header::SPOOL_REFUSED].fetch_add(1, Relaxed);
        first_since(&self.words[header::SPOOL_LOGGED], unix_now(), 1)
    }

    /// Gives back what the temporary files of dead processes held.
    pub(super) fn reclaim_spool(&self) {
        for i in 0..SPOOL_ROWS {
            let row = self.spool_row(i);
            let value = row.load(SeqCst);
            if value == 0 || alive((value >> PID_SHIFT) as libc::pid_t) {
                continue;
            }
            if row.compare_exchange(value, 0, SeqCst, Relaxed).is_ok() {
                let bytes = value & BYTES_MASK;
                subtract(&self.words[header::SPOOL_USED], bytes);
            }
        }
    }

    /// The budget, what temporary files hold now, the most they held, and
    /// refusals so far.
    pub fn spool_state(&self) -> (u64, u64, u64, u64) {
        let w = |i: usize| self.words[i].load(Relaxed);
        (w(header::SPOOL_BUDGET), w(header::SPOOL_USED), w(header::SPOOL_PEAK), w(header::SPOOL_REFUSED))
    }
}

/// Whether a refusal for want of budget is the first of its second (the
/// one to log), counting it.
pub fn spool_refusal_to_log() -> bool {
    board().is_some_and(Board::spool_refused)
}

/// Takes `bytes` of the server-wide budget before they go to a temporary
/// file. Err when the budget is used up, with true for the first refusal
/// of the second (the one to log). Always Ok without a scoreboard.
pub fn spool_reserve(bytes: u64) -> Result<(), bool> {
    board().map_or(Ok(()), |b| b.spool_take(bytes))
}

/// Gives back `bytes` reserved with [`spool_reserve`] (the file shrank or
/// closed).
pub fn spool_release(bytes: u64) {
    if bytes == 0 {
        return;
    }
    if let Some(b) = board() {
        b.spool_give(bytes);
    }
}
