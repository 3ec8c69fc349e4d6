//! Idle connections kept for reuse (`-keep-conn`), per Apache child process
//! and shared by its worker threads. Bounded in count and age: an idle
//! connection pins an application process that serves one connection at a
//! time, so few are kept, briefly; within the application's capacity unless
//! `-keep-conn always`; and a request that waits on a fresh connection
//! while others sit idle has them closed, in every child ([`starving`]).

use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};
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

/// Idle connections by endpoint, each with the time it went idle in Unix
/// milliseconds (as the scoreboard's
/// [`Board::starved_at`](crate::metrics::Board::starved_at)): a list,
/// searched in order (a child talks to a handful of endpoints; a hash of
/// the endpoint would cost more than comparing a few).
type Idle = Vec<(Endpoint, Vec<(Conn, u64)>)>;

static IDLE: Mutex<Idle> = Mutex::new(Vec::new());

/// An idle connection to `endpoint` that still looks alive (nothing to read:
/// a closed peer or stray bytes would show as readable), newest first, and
/// pooled after `starved_at` (Unix ms: a request waited behind idle ones
/// then); and how many connections left the pool (the one returned and the
/// dead or starving ones dropped), for the scoreboard's gauge. Age is not
/// looked at: a live connection is as good after 10 s as before, and
/// [`checkin`] drops the expired ones without a clock read here.
///
/// The lock is held only to take a connection out: the liveness check (a
/// poll) and closing dead ones happen outside it, so that the worker
/// threads of a child do not queue on it (each wait on a held lock costs a
/// futex sleep and wake-up).
fn checkout_counted(endpoint: &Endpoint, starved_at: u64) -> (Option<Conn>, usize) {
    let mut left = 0;
    loop {
        let conn = {
            let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
            let Some((_, list)) = idle.iter_mut().find(|(e, _)| e == endpoint) else { return (None, left) };
            match list.pop() {
                None => return (None, left),
                // Pooled before a request waited behind it: the newest of
                // them, so the older ones go too (closed once unlocked).
                Some((_, at)) if at <= starved_at => {
                    let stale = std::mem::take(list);
                    drop(idle);
                    return (None, left + 1 + stale.len());
                }
                Some((conn, _)) => conn,
            }
        };
        left += 1;
        if conn.quiet() {
            return (Some(conn), left);
        }
    }
}

/// Closes this child's idle connections to `endpoint`; how many.
fn evict(endpoint: &Endpoint) -> usize {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    let Some((_, list)) = idle.iter_mut().find(|(e, _)| e == endpoint) else { return 0 };
    let gone = std::mem::take(list);
    drop(idle);
    gone.len()
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

/// Keeps `conn` for the next request to `endpoint` (dropping the oldest
/// and the expired ones); returns how many were dropped.
pub fn checkin(endpoint: &Endpoint, conn: Conn) -> usize {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    let at = match idle.iter().position(|(e, _)| e == endpoint) {
        Some(at) => at,
        None => {
            idle.push((endpoint.clone(), Vec::new()));
            idle.len() - 1
        }
    };
    let list = &mut idle[at].1;
    let now = now_ms();
    // The expired and the oldest beyond the bound, closed once unlocked.
    let expired = list.iter().take_while(|(_, since)| now.saturating_sub(*since) >= MAX_AGE_MS).count();
    let excess = (list.len() - expired + 1).saturating_sub(MAX_IDLE);
    // Mostly nothing: then no vector is made.
    let gone: Vec<_> = if expired + excess > 0 { list.drain(..expired + excess).collect() } else { Vec::new() };
    list.push((conn, now));
    drop(idle);
    gone.len()
}

/// The child is exiting: tells `each` how many idle connections each
/// endpoint had, and empties the pool without closing or freeing anything
/// (the kernel closes the descriptors a moment later). Under prefork this
/// runs in a signal handler (httpd's `just_die`) that may have interrupted
/// a request holding the pool or inside `malloc`: so the lock is only
/// tried, and nothing is allocated or freed.
pub fn forget_at_exit(mut each: impl FnMut(&Endpoint, usize)) {
    let mut idle = match IDLE.try_lock() {
        Ok(idle) => idle,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    let taken = std::mem::take(&mut *idle);
    for (endpoint, list) in &taken {
        each(endpoint, list.len());
    }
    std::mem::forget(taken);
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
    use std::os::unix::net::UnixListener;

    #[test]
    fn pooled_connections_are_checked_for_life() {
        let dir = crate::transport::fresh_test_dir("pool");
        let path = dir.join("s");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let ep = Endpoint::Unix(path.clone());
        assert!(checkout_counted(&ep, 0).0.is_none());
        let a = crate::transport::connect(&ep, None).unwrap();
        let (peer_a, _) = listener.accept().unwrap();
        let b = crate::transport::connect(&ep, None).unwrap();
        let (_peer_b, _) = listener.accept().unwrap();
        checkin(&ep, a);
        checkin(&ep, b);
        // b is newest and alive.
        assert!(checkout_counted(&ep, 0).0.is_some());
        // a's peer closed: it is readable (EOF) and dropped.
        drop(peer_a);
        assert!(checkout_counted(&ep, 0).0.is_none());
        // Pooled before a request starved: closed, whatever their state.
        let c = crate::transport::connect(&ep, None).unwrap();
        let (_peer_c, _) = listener.accept().unwrap();
        checkin(&ep, c);
        let (found, left) = checkout_counted(&ep, now_ms() + 1);
        assert!(found.is_none());
        assert_eq!(left, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
