//! Idle connections kept for reuse (`-keep-conn`), per Apache child process
//! and shared by its worker threads. Bounded in count and age: an idle
//! connection pins an application process that serves one connection at a
//! time, so few are kept, briefly; within the application's capacity unless
//! `-keep-conn always`; and a request that waits on a fresh connection
//! while others sit idle has them closed, in every child ([`starving`]).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire};
use std::sync::OnceLock;
use std::time::Duration;

use super::balance;
use crate::config::Server;
use crate::metrics::{now_ms, Tracker};
use crate::transport::{Conn, Endpoint};

/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 8;
/// How long an idle connection is kept, in milliseconds.
const MAX_AGE_MS: u64 = 10_000;
/// How long after a request waited behind idle connections to an endpoint
/// no connection to it is pooled (in milliseconds): the pool gives way
/// while the application is short of free processes.
const STARVED_PAUSE_MS: u64 = 10_000;
/// Endpoints a child keeps connections to (one shelf each, never freed);
/// connections to more are closed after their request.
const MAX_SHELVES: usize = 256;

/// One endpoint's idle connections, each slot a word ([`Slot`]).
///
/// No lock: a worker thread takes or leaves a connection with one
/// compare-and-swap. With a lock, a thread preempted while holding it
/// stalled every other thread of the child that wanted the pool until
/// the scheduler ran it again: 16 keep-alive clients saw their 99th
/// percentile at 1.2-2.4 ms against 0.7 ms without reuse (docs/benchmarks.md).
struct Shelf {
    endpoint: Endpoint,
    slots: [AtomicU64; MAX_IDLE],
}

static SHELVES: [OnceLock<Shelf>; MAX_SHELVES] = [const { OnceLock::new() }; MAX_SHELVES];

/// The shelf of `endpoint`, made (once) with `add`. Shelves are filled in
/// order and never emptied, so the first unused one ends the search.
fn shelf(endpoint: &Endpoint, add: bool) -> Option<&'static Shelf> {
    for cell in &SHELVES {
        let found = match cell.get() {
            Some(shelf) => shelf,
            None if !add => return None,
            None => cell.get_or_init(|| Shelf { endpoint: endpoint.clone(), slots: Default::default() }),
        };
        // Another thread may have filled this one first, for another endpoint.
        if found.endpoint == *endpoint {
            return Some(found);
        }
    }
    None
}

/// An idle connection in one word (0: an empty slot): the descriptor + 1
/// in the top 20 bits, the receive timeout set on it in whole seconds in
/// the next 12 (0: none, or not whole seconds: set again when used), and
/// the Unix time it went idle in milliseconds, its low 32 bits.
struct Slot;

impl Slot {
    const FD_LIMIT: i32 = (1 << 20) - 1;

    /// `conn` as a word, or the connection back when it cannot be one
    /// (its descriptor does not fit, or [`Conn::into_raw`] refused).
    fn pack(conn: Conn, now: u64) -> Result<u64, Conn> {
        let (fd, timeout) = conn.into_raw()?;
        if !(0..Self::FD_LIMIT).contains(&fd) {
            // SAFETY: fd came from into_raw just above and is ours alone.
            return Err(unsafe { Conn::from_raw(fd, timeout) });
        }
        let secs = if timeout.subsec_nanos() == 0 && timeout.as_secs() < 4096 { timeout.as_secs() } else { 0 };
        Ok((fd as u64 + 1) << 44 | secs << 32 | (now & 0xffff_ffff))
    }

    /// The connection in `word`, taken out of its slot by the caller.
    ///
    /// # Safety
    /// SAFETY: the caller guarantees `word` is a nonzero slot word it
    /// swapped out of its slot (so that it owns the descriptor alone).
    unsafe fn unpack(word: u64) -> Conn {
        let fd = ((word >> 44) - 1) as i32;
        let timeout = Duration::from_secs(word >> 32 & 0xfff);
        // SAFETY: the descriptor was given up by `pack` and is owned by the
        // caller alone (see above).
        unsafe { Conn::from_raw(fd, timeout) }
    }

    /// How long ago (ms) the connection in `word` went idle, at `now`.
    fn age(word: u64, now: u64) -> u64 {
        u64::from((now as u32).wrapping_sub(word as u32))
    }
}

/// An idle connection to `endpoint` that still looks alive (nothing to read:
/// a closed peer or stray bytes would show as readable) and was pooled
/// after `starved_at` (Unix ms: a request waited behind idle ones then);
/// and how many connections left the pool (the one returned and the dead
/// or starving ones closed), for the scoreboard's gauge. The liveness
/// check is a poll. Age is not looked at (nor the clock read, unless a
/// request starved): a live connection is as good after 10 s as before,
/// and [`checkin`] closes the expired ones.
fn checkout_counted(endpoint: &Endpoint, starved_at: u64) -> (Option<Conn>, usize) {
    let Some(shelf) = shelf(endpoint, false) else { return (None, 0) };
    // Connections idle for longer than this were pooled before the starve.
    let starve = (starved_at != 0).then(|| {
        let now = now_ms();
        (now, now.saturating_sub(starved_at))
    });
    let mut left = 0;
    loop {
        let found = shelf.slots.iter().map(|slot| (slot, slot.load(Acquire))).find(|&(_, word)| word != 0);
        let Some((slot, word)) = found else { return (None, left) };
        if slot.compare_exchange(word, 0, AcqRel, Acquire).is_err() {
            continue;
        }
        left += 1;
        // SAFETY: the word was swapped out of its slot just above.
        let conn = unsafe { Slot::unpack(word) };
        let starving = starve.is_some_and(|(now, starved_age)| Slot::age(word, now) >= starved_age);
        if !starving && conn.quiet() {
            return (Some(conn), left);
        }
    }
}

/// Closes this child's idle connections to `endpoint`; how many.
fn evict(endpoint: &Endpoint) -> usize {
    let Some(shelf) = shelf(endpoint, false) else { return 0 };
    let mut closed = 0;
    for slot in &shelf.slots {
        let word = slot.swap(0, AcqRel);
        if word != 0 {
            // SAFETY: the word was swapped out of its slot just above.
            drop(unsafe { Slot::unpack(word) });
            closed += 1;
        }
    }
    closed
}

/// A request on a fresh connection to `endpoint` of `server` has had no
/// answer for [`starve_wait`]. When every application process is held by a
/// kept connection (they serve one connection at a time), idle in a pool
/// or going from request to request of the child that keeps it, the new
/// connection waits in the application's backlog until its idle timeout.
/// Under `-keep-conn always` that is assumed (nothing says how many
/// processes there are); within the capacity, only when connections sit
/// idle. Closes this child's idle connections to the endpoint at once,
/// and notes the time on the scoreboard, so that every child closes those
/// it pooled before as soon as it uses its pool and, for a while, closes
/// every connection when its request ends: the processes they held take
/// the waiting connections; within the capacity, the capacity is counted
/// again. Returns how many were closed here, None when
/// nothing points at kept connections (the application is just slow).
pub fn starving(server: &Server, metrics: &Tracker, endpoint: &Endpoint) -> Option<usize> {
    let (board, ep) = metrics.current_endpoint()?;
    if server.options.keep_conn_safe && board.idle_and_busy(ep).0 == 0 {
        return None;
    }
    board.set_starved_at(ep, now_ms());
    if server.options.keep_conn_safe {
        // Fewer processes are free than were counted (the application
        // was restarted smaller, or long requests hold some): the manager
        // counts them again, and until then nothing is kept.
        board.set_capacity(ep, 0);
    }
    let closed = evict(endpoint);
    board.pool_closed(ep, closed);
    Some(closed)
}

/// How long a request on a fresh connection waits for its first byte
/// before [`starving`] is checked: `-appConnTimeout` when set, else a
/// second (what a connect may take when the application accepts at once).
pub fn starve_wait(server: &Server) -> Duration {
    match server.options.app_conn_timeout {
        0 => Duration::from_secs(1),
        n => Duration::from_secs(n.into()),
    }
}

/// Keeps `conn` for the next request to `endpoint`, in an empty slot or
/// one whose connection expired, else in place of the oldest. Returns
/// whether it was kept (it is closed when not: a slot taken by another
/// thread meanwhile, no shelf left, an out-of-range descriptor) and how
/// many idle ones it closed.
pub fn checkin(endpoint: &Endpoint, conn: Conn) -> (bool, usize) {
    let Some(shelf) = shelf(endpoint, true) else { return (false, 0) };
    let now = now_ms();
    let Ok(word) = Slot::pack(conn, now) else { return (false, 0) };
    let mut closed = 0;
    let mut oldest: Option<(&AtomicU64, u64)> = None;
    for slot in &shelf.slots {
        let mut seen = slot.load(Acquire);
        if seen != 0 && Slot::age(seen, now) >= MAX_AGE_MS && slot.compare_exchange(seen, 0, AcqRel, Acquire).is_ok() {
            // SAFETY: the word was swapped out of its slot just above.
            drop(unsafe { Slot::unpack(seen) });
            closed += 1;
            seen = 0;
        }
        if seen == 0 {
            if slot.compare_exchange(0, word, AcqRel, Acquire).is_ok() {
                return (true, closed);
            }
            continue;
        }
        if oldest.is_none_or(|(_, w)| Slot::age(seen, now) > Slot::age(w, now)) {
            oldest = Some((slot, seen));
        }
    }
    // Every slot holds a younger connection: the oldest goes.
    if let Some((slot, old)) = oldest {
        if slot.compare_exchange(old, word, AcqRel, Acquire).is_ok() {
            // SAFETY: the word was swapped out of its slot just above.
            drop(unsafe { Slot::unpack(old) });
            return (true, closed + 1);
        }
    }
    // SAFETY: `word` is ours: no slot took it.
    drop(unsafe { Slot::unpack(word) });
    (false, closed)
}

/// The child is exiting: tells `each` how many idle connections each
/// endpoint had, and forgets them without closing or freeing anything
/// (the kernel closes the descriptors a moment later). Under prefork this
/// runs in a signal handler (httpd's `just_die`) that may have interrupted
/// a request inside `malloc`: so nothing is allocated, freed or locked.
pub fn forget_at_exit(mut each: impl FnMut(&Endpoint, usize)) {
    for shelf in SHELVES.iter().map_while(OnceLock::get) {
        let n = shelf.slots.iter().filter(|slot| slot.swap(0, AcqRel) != 0).count();
        each(&shelf.endpoint, n);
    }
}

/// A pooled connection to one of `server`'s endpoints, healthy ones first;
/// for a balanced server only to the endpoint the balancer picks next.
pub fn checkout<'s>(server: &'s Server, metrics: &Tracker) -> Option<(Conn, Cow<'s, Endpoint>)> {
    if balance::balanced(server, Some(metrics)) {
        let first = balance::candidates(server, Some(metrics), false).into_iter().next()?;
        let starved_at = metrics.endpoint_of(first.order).map_or(0, |(b, ep)| b.starved_at(ep));
        let (conn, left) = checkout_counted(&first.endpoint, starved_at);
        metrics.took_from_pool(first.order, left, conn.is_some());
        return Some((conn?, first.endpoint));
    }
    // Not balanced: the server's one endpoint.
    let starved_at = metrics.endpoint_of(0).map_or(0, |(b, ep)| b.starved_at(ep));
    let (conn, left) = checkout_counted(&server.endpoint, starved_at);
    metrics.took_from_pool(0, left, conn.is_some());
    Some((conn?, Cow::Borrowed(&server.endpoint)))
}

/// Whether a request to `server` asks the application to keep its
/// connection (FCGI_KEEP_CONN) and looks for one in the pool. With the
/// capacity rule (`keep_conn_safe`) and one endpoint, only once the
/// endpoint has reported a capacity of 2 or more: an application that
/// serves one connection at a time (libfcgi) closes its connection after
/// each request, as without reuse, and the request costs no pool look-up.
pub fn may_keep(server: &Server, metrics: &Tracker) -> bool {
    if !server.options.keep_conn {
        return false;
    }
    if !server.options.keep_conn_safe {
        return true;
    }
    // The counted capacity first: mostly there, and then the balancing
    // question (which gives the same answer) is not asked.
    let counted = metrics.endpoint_of(0).is_some_and(|(board, ep)| {
        let capacity = board.capacity(ep);
        capacity >= 2 && capacity != crate::metrics::layout::endpoint::CAPACITY_NONE
    });
    counted || balance::balanced(server, Some(metrics))
}

/// Whether a connection that ended its request cleanly may wait in the
/// pool: not for a while after a request waited behind idle connections to
/// its endpoint ([`starving`]); with reuse within the capacity
/// (`keep_conn_safe`) only when the endpoint serves several connections at
/// once (FCGI_MAX_CONNS, learned by the manager) and one stays free for a
/// new connection from any child after this one goes idle: an idle
/// connection pins a worker.
pub fn may_pool(server: &Server, metrics: Option<&Tracker>) -> bool {
    let current = metrics.and_then(Tracker::current_endpoint);
    if let Some((board, ep)) = current {
        let starved = board.starved_at(ep);
        if starved != 0 && now_ms().saturating_sub(starved) < STARVED_PAUSE_MS {
            return false;
        }
    }
    if !server.options.keep_conn_safe {
        return true;
    }
    let Some((board, ep)) = current else { return false };
    let capacity = board.capacity(ep);
    if capacity < 2 || capacity == crate::metrics::layout::endpoint::CAPACITY_NONE {
        return false;
    }
    let (idle, busy) = board.idle_and_busy(ep);
    // This request still counts as busy: after it, idle + 1 and busy - 1.
    idle + busy < capacity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_connections_are_checked_for_life() {
        let (dir, listener, ep) = crate::transport::test_socket("pool");
        assert!(checkout_counted(&ep, 0).0.is_none());
        let a = crate::transport::connect(&ep, None).unwrap();
        let (peer_a, _) = listener.accept().unwrap();
        let b = crate::transport::connect(&ep, None).unwrap();
        let (_peer_b, _) = listener.accept().unwrap();
        assert_eq!(checkin(&ep, a), (true, 0));
        assert_eq!(checkin(&ep, b), (true, 0));
        // a's peer closed: it is readable (EOF) and dropped; b is alive.
        drop(peer_a);
        let (found, left) = checkout_counted(&ep, 0);
        assert!(found.is_some());
        assert!((1..=2).contains(&left), "{left}");
        let (found, left2) = checkout_counted(&ep, 0);
        assert!(found.is_none());
        assert_eq!(left + left2, 2, "a left the pool once");
        // Pooled before a request starved: closed, whatever their state.
        let c = crate::transport::connect(&ep, None).unwrap();
        let (_peer_c, _) = listener.accept().unwrap();
        checkin(&ep, c);
        let (found, left) = checkout_counted(&ep, now_ms() + 1);
        assert!(found.is_none());
        assert_eq!(left, 1);
        // Full: the oldest of MAX_IDLE makes room for a new one.
        let mut peers = Vec::new();
        for i in 0..=MAX_IDLE {
            let conn = crate::transport::connect(&ep, None).unwrap();
            peers.push(listener.accept().unwrap().0);
            let expect = if i < MAX_IDLE { (true, 0) } else { (true, 1) };
            assert_eq!(checkin(&ep, conn), expect, "connection {i}");
        }
        assert_eq!(evict(&ep), MAX_IDLE);
        assert!(checkout_counted(&ep, 0).0.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A connection pooled after a read waited for a low-water mark reads
    /// as a fresh one: the next request's small answer comes at once, not
    /// when the read's timeout ends.
    #[test]
    fn a_pooled_connection_forgets_its_low_water_mark() {
        use std::io::Write;
        let (dir, listener, ep) = crate::transport::test_socket("pool-lowat");
        let conn = crate::transport::connect(&ep, None).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        conn.set_low_water(65536).unwrap();
        assert_eq!(checkin(&ep, conn), (true, 0));
        let conn = checkout_counted(&ep, 0).0.expect("the pooled connection");
        peer.write_all(b"0123456789").unwrap();
        let began = std::time::Instant::now();
        let mut buf = [0u8; 65536];
        assert_eq!(conn.read_within(&mut buf, Duration::from_secs(5)).unwrap(), 10);
        assert!(began.elapsed() < Duration::from_secs(2), "the read waited {:?}", began.elapsed());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn threads_never_share_a_pooled_connection() {
        let (dir, listener, ep) = crate::transport::test_socket("pool-threads");
        let mut peers = Vec::new();
        for _ in 0..MAX_IDLE {
            let conn = crate::transport::connect(&ep, None).unwrap();
            peers.push(listener.accept().unwrap().0);
            assert!(checkin(&ep, conn).0);
        }
        // Descriptors out of the pool right now: each at most once.
        let out = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (ep, out) = (ep.clone(), out.clone());
                std::thread::spawn(move || {
                    let (mut taken, mut closed) = (0, 0);
                    for _ in 0..2_000 {
                        let Some(conn) = checkout_counted(&ep, 0).0 else { continue };
                        let (fd, timeout) = conn.into_raw().expect("a connection to pool");
                        assert!(out.lock().unwrap().insert(fd), "descriptor {fd} taken twice");
                        taken += 1;
                        std::thread::yield_now();
                        assert!(out.lock().unwrap().remove(&fd));
                        // SAFETY: fd came from into_raw just above and is ours alone.
                        let conn = unsafe { Conn::from_raw(fd, timeout) };
                        // Mostly back in a free slot; when another thread
                        // filled the one this pass found free, the oldest
                        // makes room (closed): counted.
                        let (kept, dropped) = checkin(&ep, conn);
                        closed += dropped + usize::from(!kept);
                    }
                    (taken, closed)
                })
            })
            .collect();
        let (mut taken, mut closed) = (0, 0);
        for t in threads {
            let (t, c) = t.join().unwrap();
            taken += t;
            closed += c;
        }
        assert!(taken > 1_000, "{taken}");
        // Every connection is back or was closed once: none lost.
        assert_eq!(evict(&ep) + closed, MAX_IDLE);
        drop(peers);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
