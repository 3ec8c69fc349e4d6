//! Idle connections kept for reuse (`-keep-conn`), per Apache child process
//! and shared by its worker threads. Bounded in count and age: an idle
//! connection pins an application process that serves one connection at a
//! time, so few are kept, briefly.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Conn, Endpoint};

/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 8;
/// How long an idle connection is kept.
const MAX_AGE: Duration = Duration::from_secs(10);

/// Idle connections by endpoint, each with the time it went idle.
type Idle = HashMap<Endpoint, Vec<(Conn, Instant)>>;

static IDLE: Mutex<Option<Idle>> = Mutex::new(None);

/// An idle connection to `endpoint` that still looks alive (nothing to read:
/// a closed peer or stray bytes would show as readable), newest first.
pub fn checkout(endpoint: &Endpoint) -> Option<Conn> {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    let list = idle.as_mut()?.get_mut(endpoint)?;
    while let Some((conn, since)) = list.pop() {
        let quiet = conn.wait(false, Duration::ZERO).is_ok_and(|r| !r.readable);
        if quiet && since.elapsed() < MAX_AGE {
            return Some(conn);
        }
    }
    None
}

/// Keeps `conn` for the next request to `endpoint` (dropping the oldest
/// and the expired ones).
pub fn checkin(endpoint: &Endpoint, conn: Conn) {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    let list = idle.get_or_insert_with(HashMap::new).entry(endpoint.clone()).or_default();
    list.retain(|(_, since)| since.elapsed() < MAX_AGE);
    if list.len() >= MAX_IDLE {
        list.remove(0);
    }
    list.push((conn, Instant::now()));
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
        assert!(checkout(&ep).is_none());
        let a = super::super::connect(&ep, None).unwrap();
        let (peer_a, _) = listener.accept().unwrap();
        let b = super::super::connect(&ep, None).unwrap();
        let (_peer_b, _) = listener.accept().unwrap();
        checkin(&ep, a);
        checkin(&ep, b);
        // b is newest and alive.
        assert!(checkout(&ep).is_some());
        // a's peer closed: it is readable (EOF) and dropped.
        drop(peer_a);
        assert!(checkout(&ep).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
