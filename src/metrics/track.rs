//! One request's accounting: in flight from [`Tracker::begin`] to
//! [`Tracker::finish`] (or its drop), a handful of atomic increments and
//! three clock reads in all.

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::admission::Standing;
use super::layout::{app, endpoint, BOUNDS_US, BUCKETS};
use super::{board, first_since, Board, Outcome, Refusal};

/// How long an endpoint that failed counts as "failed recently" (the
/// failover order's own delay, `transport::health`).
pub const FAILED_RECENTLY_SECS: u64 = 10;

/// A request's times with its application, from the start of the connect.
#[derive(Clone, Copy, Debug)]
pub struct Times {
    pub connect: Option<std::time::Duration>,
    pub header: Option<std::time::Duration>,
    pub response: std::time::Duration,
}

/// The accounting of one request; inert when there is no scoreboard.
#[derive(Debug)]
pub struct Tracker {
    on: Option<(&'static Board, usize)>,
    start: Option<Instant>,
    first_byte: Cell<Option<Instant>>,
    cause: Cell<Option<Outcome>>,
    /// The endpoint slot the request is connected to (in flight there).
    endpoint: Cell<Option<usize>>,
    /// That endpoint was down when the request chose it.
    chose_down: Cell<bool>,
    /// Its place under the application's `-max-in-flight`, if it has one.
    standing: Cell<Standing>,
    /// When it began to connect (after any wait for a place), and when the
    /// application was done with it: the access log's times.
    connecting: Cell<Option<Instant>>,
    connected_at: Cell<Option<Instant>>,
    done: Cell<Option<Instant>>,
    finished: bool,
}

impl Tracker {
    /// A request for `path` (`dynamic`: run as `identity`; `defined`: the
    /// index of its server in the configuration) begins: counted and in
    /// flight.
    pub fn begin(path: &str, identity: Option<(u32, u32)>, dynamic: bool, defined: Option<usize>) -> Tracker {
        let on = board().map(|b| {
            let slot = defined.and_then(|i| b.defined_slot(i, path));
            (b, slot.unwrap_or_else(|| b.app_slot(path, identity, dynamic)))
        });
        if let Some((b, slot)) = on {
            b.app_word(slot, app::REQUESTS).fetch_add(1, Relaxed);
            b.app_word(slot, app::IN_FLIGHT).fetch_add(1, Relaxed);
        }
        Tracker::with(on, on.map(|_| Instant::now()), false)
    }

    /// A request already counted in `slot` of `board` (tests).
    #[cfg(test)]
    pub(super) fn on_board(board: &'static Board, slot: usize) -> Tracker {
        Tracker::with(Some((board, slot)), Some(Instant::now()), false)
    }

    /// No accounting at all (authorizer phases).
    pub fn off() -> Tracker {
        Tracker::with(None, None, true)
    }

    /// The one place a tracker is put together.
    fn with(on: Option<(&'static Board, usize)>, start: Option<Instant>, finished: bool) -> Tracker {
        Tracker {
            on,
            start,
            first_byte: Cell::new(None),
            cause: Cell::new(None),
            endpoint: Cell::new(None),
            chose_down: Cell::new(false),
            standing: Cell::new(Standing::default()),
            connecting: Cell::new(None),
            connected_at: Cell::new(None),
            done: Cell::new(None),
            finished,
        }
    }

    /// The first byte of the application's answer arrived at `at`.
    #[inline]
    pub fn first_byte(&self, at: Instant) {
        if self.first_byte.get().is_none() {
            self.first_byte.set(Some(at));
        }
    }

    /// The response waited for a slow client: `bytes` in a backlog,
    /// `in_file` of them in a temporary file; `paced` when the backlog
    /// reached its maximum.
    pub fn held(&self, bytes: u64, in_file: u64, paced: bool) {
        let Some((b, slot)) = self.on else { return };
        b.app_word(slot, app::HELD).fetch_add(1, Relaxed);
        b.app_word(slot, app::HELD_BYTES).fetch_add(bytes, Relaxed);
        if in_file > 0 {
            b.app_word(slot, app::HELD_FILE_BYTES).fetch_add(in_file, Relaxed);
        }
        if paced {
            b.app_word(slot, app::PACED).fetch_add(1, Relaxed);
        }
    }

    /// The request body was received whole before the application was
    /// asked: `bytes`, `in_file` of them in a temporary file.
    pub fn received(&self, bytes: u64, in_file: u64) {
        let Some((b, slot)) = self.on else { return };
        b.app_word(slot, app::RECEIVED).fetch_add(1, Relaxed);
        b.app_word(slot, app::RECEIVED_BYTES).fetch_add(bytes, Relaxed);
        if in_file > 0 {
            b.app_word(slot, app::RECEIVED_FILE_BYTES).fetch_add(in_file, Relaxed);
        }
    }

    /// The gateway answers itself, because of `cause` (the first cause
    /// given counts).
    #[inline]
    pub fn cause(&self, cause: Outcome) {
        if self.cause.get().is_none() {
            self.cause.set(Some(cause));
        }
    }

    /// Takes one of the application's `limit` places if one is free (a
    /// waiting request leaves the queue with it). Always true without a
    /// scoreboard (the configuration check requires one for limits).
    pub fn try_admit(&self, limit: u32) -> bool {
        let Some((b, slot)) = self.on else { return true };
        let mut st = self.standing.get();
        let admitted = st.holds || b.try_hold(&mut st, slot, u64::from(limit));
        self.standing.set(st);
        admitted
    }

    /// Joins the application's queue if fewer than `bound` requests wait.
    pub fn enqueue(&self, bound: u32) -> bool {
        let Some((b, slot)) = self.on else { return false };
        let mut st = self.standing.get();
        let queued = b.enqueue(&mut st, slot, u64::from(bound));
        self.standing.set(st);
        queued
    }

    /// The wake-up count to pass to [`Tracker::sleep`], read before a try.
    pub fn turn(&self) -> u32 {
        self.on.map_or(0, |(b, slot)| b.wake_count(slot))
    }

    /// Sleeps until a place may have come free since `seen`, at most
    /// `timeout`; dead children's places are reclaimed first when due.
    pub fn sleep(&self, seen: u32, timeout: std::time::Duration) {
        if let Some((b, slot)) = self.on {
            if b.reclaim_if_due() == 0 {
                b.sleep(slot, seen, timeout);
            }
        }
    }

    /// The request got a place after waiting `waited`.
    pub fn waited(&self, waited: std::time::Duration) {
        let Some((b, slot)) = self.on else { return };
        b.app_word(slot, app::WAITED).fetch_add(1, Relaxed);
        b.app_word(slot, app::WAITED_US).fetch_add(waited.as_micros() as u64, Relaxed);
    }

    /// The request gets no place (it leaves the queue): counted, and the
    /// answer is the gateway's. Returns the application's places taken,
    /// waiters and refusals so far when this refusal is the first of its
    /// second for the application (the one to log), else None.
    pub fn refused(&self, why: Refusal) -> Option<(u64, u64, u64)> {
        self.cause(Outcome::Refused);
        let (b, slot) = self.on?;
        let mut st = self.standing.get();
        b.dequeue(&mut st, slot);
        self.standing.set(st);
        let index = Refusal::ALL.iter().position(|&r| r == why).unwrap_or(0);
        b.app_word(slot, app::REFUSALS + index).fetch_add(1, Relaxed);
        if !first_since(b.app_word(slot, app::REFUSAL_LOGGED), unix_now(), 1) {
            return None;
        }
        let total = (0..Refusal::ALL.len()).map(|i| b.app_word(slot, app::REFUSALS + i).load(Relaxed)).sum();
        Some((b.app_word(slot, app::ADMITTED).load(Relaxed), b.app_word(slot, app::WAITING).load(Relaxed), total))
    }

    /// The request begins to connect (its first attempt).
    pub fn connecting(&self) {
        if self.start.is_some() && self.connecting.get().is_none() {
            self.connecting.set(Some(Instant::now()));
        }
    }

    /// The times the access log shows, from the start of the connect (as
    /// nginx's `$upstream_*_time`): to the connection, to the first byte of
    /// the answer and to the application's end; None before a connect (or
    /// without a board).
    pub fn times(&self) -> Option<Times> {
        let from = self.connecting.get()?;
        let since = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(from));
        Some(Times {
            connect: since(self.connected_at.get()),
            header: since(self.first_byte.get()),
            response: self.done.get().unwrap_or_else(Instant::now).saturating_duration_since(from),
        })
    }

    /// The application is done with the request (the client may still be
    /// reading a backlog): its place, if any, goes to the next request.
    pub fn app_done(&self) {
        let Some((b, slot)) = self.on else { return };
        if self.done.get().is_none() && self.connecting.get().is_some() {
            self.done.set(Some(Instant::now()));
        }
        let mut st = self.standing.get();
        if st.holds || st.waits {
            b.release(&mut st, slot);
            b.dequeue(&mut st, slot);
            self.standing.set(st);
        }
    }

    /// The board and the endpoint slot of the `order`-th endpoint.
    fn ep(&self, order: usize) -> Option<(&'static Board, usize)> {
        let (b, slot) = self.on?;
        Some((b, b.endpoint_slot(slot, order)?))
    }

    /// The endpoint connected to was down when chosen (`was_down`).
    pub fn chose_down(&self, was_down: bool) {
        self.chose_down.set(was_down);
    }

    /// Whether the endpoint connected to was down when chosen.
    pub fn was_down(&self) -> bool {
        self.chose_down.get()
    }

    /// The board and application slot, when the request is counted.
    pub fn board_slot(&self) -> Option<(&'static Board, usize)> {
        self.on
    }

    /// The board and endpoint slot of the application's `order`-th endpoint.
    pub fn endpoint_of(&self, order: usize) -> Option<(&'static Board, usize)> {
        self.ep(order)
    }

    /// The board and endpoint slot the request is connected to.
    pub fn current_endpoint(&self) -> Option<(&'static Board, usize)> {
        Some((self.on?.0, self.endpoint.get()?))
    }

    /// Connected to the application's `order`-th endpoint, after `failed`
    /// others could not be reached.
    pub fn connected(&self, order: usize, failed: usize) {
        if let Some((b, ep)) = self.ep(order) {
            self.connected_to(b, ep, failed);
        }
    }

    fn connected_to(&self, b: &Board, ep: usize, failed: usize) {
        if self.connected_at.get().is_none() && self.connecting.get().is_some() {
            self.connected_at.set(Some(Instant::now()));
        }
        // A pooled connection that turned out closed: the request moves on.
        if let Some(before) = self.endpoint.take() {
            b.ep_word(before, endpoint::IN_FLIGHT).fetch_sub(1, Relaxed);
        }
        b.ep_word(ep, endpoint::REQUESTS).fetch_add(1, Relaxed);
        b.ep_word(ep, endpoint::IN_FLIGHT).fetch_add(1, Relaxed);
        if failed > 0 {
            b.ep_word(ep, endpoint::FAILOVERS).fetch_add(1, Relaxed);
        }
        let down = b.ep_word(ep, endpoint::DOWN_SINCE);
        if down.load(Relaxed) != 0 {
            down.store(0, Relaxed);
        }
        self.endpoint.set(Some(ep));
    }

    /// `left` connections to the `order`-th endpoint left this child's
    /// pool (the dead and expired ones, and with `reused` the one the
    /// request goes on: it is connected). One look-up of the endpoint for
    /// the pool's whole share of a request.
    pub fn took_from_pool(&self, order: usize, left: usize, reused: bool) {
        let Some((b, ep)) = self.ep(order).filter(|_| left > 0 || reused) else { return };
        if left > 0 {
            b.ep_word(ep, endpoint::POOL_IDLE).fetch_sub(left as u64, Relaxed);
        }
        if reused {
            b.ep_word(ep, endpoint::POOL_REUSED).fetch_add(1, Relaxed);
            self.connected_to(b, ep, 0);
        }
    }

    /// The request's connection went back to the pool (`kept`; else it was
    /// closed), which closed `dropped` older ones.
    pub fn pooled(&self, kept: bool, dropped: usize) {
        if let (Some((b, _)), Some(ep)) = (self.on, self.endpoint.get()) {
            let idle = b.ep_word(ep, endpoint::POOL_IDLE);
            if kept {
                idle.fetch_add(1, Relaxed);
            }
            if dropped > 0 {
                idle.fetch_sub(dropped as u64, Relaxed);
            }
        }
    }

    /// The `order`-th endpoint did not accept the connection.
    pub fn connect_failed(&self, order: usize, timed_out: bool) {
        let Some((b, ep)) = self.ep(order) else { return };
        b.ep_word(ep, endpoint::CONNECT_FAILURES).fetch_add(1, Relaxed);
        if timed_out {
            b.ep_word(ep, endpoint::CONNECT_TIMEOUTS).fetch_add(1, Relaxed);
        }
        let now = unix_now();
        b.ep_word(ep, endpoint::LAST_FAILURE).store(now, Relaxed);
        let _ = b.ep_word(ep, endpoint::DOWN_SINCE).compare_exchange(0, now, Relaxed, Relaxed);
    }

    /// The request ended: the application's `status` (or the gateway's,
    /// when a cause was given), request body bytes read and response
    /// bytes sent.
    pub fn finish(mut self, status: u16, bytes_in: u64, bytes_out: u64) {
        self.record(status, bytes_in, bytes_out);
    }

    fn record(&mut self, status: u16, bytes_in: u64, bytes_out: u64) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let (Some((b, slot)), Some(start)) = (self.on, self.start) else { return };
        let end = Instant::now();
        let outcome = self.cause.get().unwrap_or_else(|| Outcome::of_status(status));
        b.app_word(slot, app::OUTCOMES + outcome.index()).fetch_add(1, Relaxed);
        if bytes_in > 0 {
            b.app_word(slot, app::BYTES_IN).fetch_add(bytes_in, Relaxed);
        }
        if bytes_out > 0 {
            b.app_word(slot, app::BYTES_OUT).fetch_add(bytes_out, Relaxed);
        }
        if let Some(first) = self.first_byte.get() {
            observe(b, slot, app::TTFB, first.saturating_duration_since(start).as_micros() as u64);
        }
        observe(b, slot, app::TOTAL, end.saturating_duration_since(start).as_micros() as u64);
        b.app_word(slot, app::IN_FLIGHT).fetch_sub(1, Relaxed);
        self.app_done();
        if let Some(ep) = self.endpoint.get() {
            b.ep_word(ep, endpoint::IN_FLIGHT).fetch_sub(1, Relaxed);
        }
    }
}

impl Drop for Tracker {
    /// A request that never reached `finish` (a panic): a gateway error,
    /// and no longer in flight.
    fn drop(&mut self) {
        if !self.finished {
            self.cause(Outcome::GatewayError);
            self.record(500, 0, 0);
        }
    }
}

/// Adds one observation of `micros` to the histogram at `field`.
#[inline]
fn observe(b: &Board, slot: usize, field: usize, micros: u64) {
    let bucket = BOUNDS_US.partition_point(|&bound| bound < micros).min(BUCKETS - 1);
    b.app_word(slot, field + bucket).fetch_add(1, Relaxed);
    b.app_word(slot, field + BUCKETS).fetch_add(micros, Relaxed);
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
