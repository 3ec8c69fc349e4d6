//! Idle connections kept for reuse (`-keep-conn`), per Apache child process
//! and shared by its worker threads. Bounded in count and age: an idle
//! connection pins an application process that serves one connection at a
//! time, so few are kept, briefly.

use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::balance;
use crate::config::Server;
use crate::metrics::Tracker;
use crate::transport::{Conn, Endpoint};

/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 8;
/// How long an idle connection is kept.
const MAX_AGE: Duration = Duration::from_secs(10);

/// Idle connections by endpoint, each with the time it went idle: a list,
/// searched in order (a child talks to a handful of endpoints; a hash of
/// the endpoint would cost more than comparing a few).
type Idle = Vec<(Endpoint, Vec<(Conn, Instant)>)>;

static IDLE: Mutex<Idle> = Mutex::new(Vec::new());

/// An idle connection to `endpoint` that still looks alive (nothing to read:
/// a closed peer or stray bytes would show as readable), newest first; and
/// how many connections left the pool (the one returned and the dead or
/// expired ones dropped), for the scoreboard's gauge.
fn checkout_counted(endpoint: &Endpoint) -> (Option<Conn>, usize) {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    let Some((_, list)) = idle.iter_mut().find(|(e, _)| e == endpoint) else { return (None, 0) };
    let mut left = 0;
    while let Some((conn, since)) = list.pop() {
        left += 1;
        let quiet = conn.wait(false, Duration::ZERO).is_ok_and(|r| !r.readable);
        if quiet && since.elapsed() < MAX_AGE {
            return (Some(conn), left);
        }
    }
    (None, left)
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
    let before = list.len();
    let now = Instant::now();
    list.retain(|(_, since)| now.duration_since(*since) < MAX_AGE);
    if list.len() >= MAX_IDLE {
        list.remove(0);
    }
    let dropped = before - list.len();
    list.push((conn, now));
    dropped
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
        let (conn, left) = checkout_counted(&first.endpoint);
        metrics.left_pool(first.order, left);
        let conn = conn?;
        metrics.reused(first.order);
        return Some((conn, first.endpoint));
    }
    // Not balanced: the server's one endpoint.
    let (conn, left) = checkout_counted(&server.endpoint);
    metrics.left_pool(0, left);
    let conn = conn?;
    metrics.reused(0);
    Some((conn, Cow::Borrowed(&server.endpoint)))
}

/// Whether a connection that ended its request cleanly may wait in the
/// pool. With reuse on by default (`keep_conn_safe`) only when the
/// endpoint serves several connections at once (FCGI_MAX_CONNS, learned
/// by the manager) and one stays free for a new connection from any
/// child after this one goes idle: an idle connection pins a worker.
pub fn may_pool(server: &Server, metrics: Option<&Tracker>) -> bool {
    if !server.options.keep_conn_safe {
        return true;
    }
    let Some((board, ep)) = metrics.and_then(Tracker::current_endpoint) else { return false };
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
        let dir = std::env::temp_dir().join(format!("fcgi-pool-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let ep = Endpoint::Unix(path.clone());
        assert!(checkout_counted(&ep).0.is_none());
        let a = crate::transport::connect(&ep, None).unwrap();
        let (peer_a, _) = listener.accept().unwrap();
        let b = crate::transport::connect(&ep, None).unwrap();
        let (_peer_b, _) = listener.accept().unwrap();
        checkin(&ep, a);
        checkin(&ep, b);
        // b is newest and alive.
        assert!(checkout_counted(&ep).0.is_some());
        // a's peer closed: it is readable (EOF) and dropped.
        drop(peer_a);
        assert!(checkout_counted(&ep).0.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
