//! The process manager's endpoint upkeep (issue 12), in a process of its
//! own (forked by the manager, which stays single-threaded and never
//! blocks on DNS or a silent host): re-resolves `-host` names every
//! `-resolve-interval` and publishes the address set in the scoreboard,
//! learns each endpoint's capacity with FCGI_GET_VALUES (FCGI_MAX_CONNS),
//! and with `-health-check n` probes every endpoint every n seconds,
//! marking those that do not answer within a second down for all children.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{Config, Server};
use crate::log::Level;
use crate::metrics::layout::endpoint::{CAPACITY_NONE, DOWN_SILENT, DOWN_UNREACHABLE};
use crate::metrics::{now_ms, Board};
use crate::protocol::{encode_get_values, ResponseDecoder, ResponseEvent};
use crate::transport::{self, Endpoint};

/// How long a probe waits for the connection and for the answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The capacity assumed for an application that answers FCGI_GET_VALUES
/// without FCGI_MAX_CONNS (php-fpm 8 answers FCGI_MPXS_CONNS only).
pub const ANSWERED_CAPACITY: u64 = 4;
/// How long the capacity question waits for its answer: a single-threaded
/// application that does not answer GET_VALUES (libfcgi does not while it
/// waits for a request) is held no longer than this, once.
const CAPACITY_TIMEOUT: Duration = Duration::from_millis(200);
/// How often an endpoint that could not be reached is asked again.
const CAPACITY_RETRY: Duration = Duration::from_secs(10);

/// Forks the upkeep process when some server needs it; its pid.
pub fn start(config: &Config, log: &dyn Fn(Level, &str)) -> Option<libc::pid_t> {
    let board = crate::metrics::board()?;
    let needed = config.servers.iter().any(|s| {
        s.options.health_check > 0
            || s.options.keep_conn_safe
            || (s.options.resolve_interval > 0 && !s.hosts.is_empty())
    });
    if !needed {
        return None;
    }
    // SAFETY: the manager is single-threaded; the child runs Rust code of
    // this process only and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        return (pid > 0).then_some(pid);
    }
    // SAFETY: process-wide settings in the new child.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(config, board, log)));
    // SAFETY: leaving the forked child without running the parent's exit handlers.
    unsafe { libc::_exit(0) }
}

/// Stops the upkeep process `pid`.
pub fn stop(pid: libc::pid_t) {
    // SAFETY: pid is our own child; kill and waitpid on it.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}

struct Watched<'c> {
    server: &'c Server,
    slot: usize,
    /// The last good addresses of each `-host`.
    known: HashMap<String, Vec<SocketAddr>>,
    /// Lookups that failed (logged once until they work again).
    failing: HashMap<String, bool>,
    next_resolve: Instant,
    next_check: Instant,
    /// When each endpoint slot's capacity was last asked.
    asked: HashMap<usize, Instant>,
}

fn run(config: &Config, board: &'static Board, log: &dyn Fn(Level, &str)) {
    let now = Instant::now();
    let mut watched: Vec<Watched> = config
        .servers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let slot = board.defined_slot(i, &s.path)?;
            Some(Watched {
                server: s,
                slot,
                known: HashMap::new(),
                failing: HashMap::new(),
                next_resolve: now + Duration::from_secs(s.options.resolve_interval.into()),
                next_check: now,
                asked: HashMap::new(),
            })
        })
        .collect();
    loop {
        let now = Instant::now();
        for w in &mut watched {
            let opts = &w.server.options;
            if opts.resolve_interval > 0 && !w.server.hosts.is_empty() && now >= w.next_resolve {
                w.next_resolve = now + Duration::from_secs(opts.resolve_interval.into());
                resolve(w, board, log);
            }
            if opts.keep_conn_safe {
                learn_capacity(w, board);
            }
            if opts.health_check > 0 && now >= w.next_check {
                w.next_check = now + Duration::from_secs(opts.health_check.into());
                check(w, board, log);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn resolve(w: &mut Watched, board: &Board, log: &dyn Fn(Level, &str)) {
    let path = &w.server.path;
    if w.server.hosts.iter().all(|h| transport::is_literal(h)) {
        return;
    }
    let mut all: Vec<SocketAddr> = Vec::new();
    for h in &w.server.hosts {
        match transport::resolve(h) {
            Ok(addrs) => {
                if w.failing.remove(h).is_some() {
                    log(Level::Warn, &format!("FastCGI: server \"{path}\": \"{h}\" resolves again"));
                }
                w.known.insert(h.clone(), addrs);
            }
            Err(e) => {
                if w.failing.insert(h.clone(), true).is_none() {
                    log(
                        Level::Error,
                        &format!("FastCGI: server \"{path}\": re-resolving \"{h}\" failed ({e}); keeping its last good addresses"),
                    );
                }
                if !w.known.contains_key(h) {
                    // Never resolved here: what the configuration found.
                    let (first, count) = board.endpoint_range(w.slot);
                    let current: Vec<SocketAddr> = (first..first + count)
                        .filter(|&ep| board.ep_active(ep) == 1)
                        .filter_map(|ep| board.endpoint_addr(ep))
                        .collect();
                    w.known.insert(h.clone(), current);
                }
            }
        }
        for a in w.known.get(h).into_iter().flatten() {
            if !all.contains(a) {
                all.push(*a);
            }
        }
    }
    let (added, removed) = board.publish_addrs(w.slot, &all);
    for a in added {
        log(Level::Warn, &format!("FastCGI: server \"{path}\" endpoint {a} added (DNS)"));
    }
    for a in removed {
        log(Level::Warn, &format!("FastCGI: server \"{path}\" endpoint {a} removed (DNS): it finishes its requests"));
    }
}

/// The active endpoint slots of `w` with their addresses.
fn active(w: &Watched, board: &Board) -> Vec<(usize, Endpoint)> {
    let (first, count) = board.endpoint_range(w.slot);
    let configured: Vec<&Endpoint> = w.server.endpoints().collect();
    (first..first + count)
        .filter(|&ep| board.ep_active(ep) == 1)
        .filter_map(|ep| {
            let e = match board.endpoint_addr(ep) {
                Some(a) => Endpoint::at(a),
                None => (*configured.get(ep - first)?).clone(),
            };
            Some((ep, e))
        })
        .collect()
}

fn learn_capacity(w: &mut Watched, board: &Board) {
    for (ep, e) in active(w, board) {
        let cap = board.capacity(ep);
        if cap != 0 {
            continue;
        }
        if w.asked.get(&ep).is_some_and(|t| t.elapsed() < CAPACITY_RETRY) {
            continue;
        }
        w.asked.insert(ep, Instant::now());
        match probe(&e, CAPACITY_TIMEOUT) {
            Ok(Some(n)) => board.set_capacity(ep, n),
            Ok(None) => board.set_capacity(ep, CAPACITY_NONE),
            Err(_) => {}
        }
    }
}

fn check(w: &mut Watched, board: &Board, log: &dyn Fn(Level, &str)) {
    let path = &w.server.path;
    for (ep, e) in active(w, board) {
        let now = now_ms();
        let answered_before = !matches!(board.capacity(ep), 0 | CAPACITY_NONE);
        match probe(&e, PROBE_TIMEOUT) {
            Ok(answer) => {
                if let Some(n) = answer {
                    board.set_capacity(ep, n);
                }
                if board.endpoint_down(ep) && board.endpoint_ok(ep, now) {
                    log(Level::Warn, &format!("FastCGI: server \"{path}\" endpoint {e} is up again"));
                }
            }
            // Connected but silent: down if it answered before; an
            // application that never answers GET_VALUES (libfcgi) is only
            // known to accept: back up if it was down as unreachable.
            Err(why) if why.starts_with("no answer") && !answered_before => {
                if board.endpoint_down(ep) && board.down_reason(ep) == DOWN_UNREACHABLE && board.endpoint_ok(ep, now) {
                    log(Level::Warn, &format!("FastCGI: server \"{path}\" endpoint {e} is up again"));
                }
            }
            Err(why) => {
                let reason = if why.starts_with("no answer") { DOWN_SILENT } else { DOWN_UNREACHABLE };
                if board.endpoint_failed(ep, now, reason, true) {
                    log(Level::Error, &format!("FastCGI: server \"{path}\" endpoint {e} is down ({why})"));
                }
            }
        }
    }
}

/// Asks `endpoint` for FCGI_MAX_CONNS: Ok(Some(n)) it answered with n,
/// Ok(None) it answered without it (or closed the connection), Err why
/// it is unreachable or silent.
fn probe(endpoint: &Endpoint, wait: Duration) -> Result<Option<u64>, String> {
    let conn = transport::connect(endpoint, Some(PROBE_TIMEOUT)).map_err(|e| format!("connect() failed: {e}"))?;
    let mut out = Vec::new();
    encode_get_values(&mut out, &[b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]);
    let deadline = Instant::now() + wait;
    let mut written = 0;
    let silent = || format!("no answer to FCGI_GET_VALUES within {} s", PROBE_TIMEOUT.as_secs());
    let mut decoder = ResponseDecoder::new(1);
    let mut buf = vec![0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // A capacity question unanswered: no capacity known, but alive.
            return if wait < PROBE_TIMEOUT { Ok(None) } else { Err(silent()) };
        }
        let ready = conn.wait(written < out.len(), left).map_err(|e| format!("poll() failed: {e}"))?;
        if ready.writable && written < out.len() {
            match conn.write(&out[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("write failed: {e}")),
            }
        }
        if !ready.readable {
            continue;
        }
        let n = match conn.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // Closed on us after the question: it is there, just mute.
            Err(_) => return Ok(None),
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, event) = match decoder.decode(rest) {
                Ok(r) => r,
                Err(_) => return Ok(None),
            };
            rest = &rest[used..];
            match event {
                Some(ResponseEvent::GetValuesResult(pairs)) => {
                    for (name, value) in pairs.flatten() {
                        if name == b"FCGI_MAX_CONNS" {
                            let n = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u64>().ok());
                            if let Some(n) = n.filter(|&n| n > 0) {
                                return Ok(Some(n));
                            }
                        }
                    }
                    // php-fpm answers with FCGI_MPXS_CONNS only: an
                    // application that answers management records while
                    // idle serves several connections.
                    return Ok(Some(ANSWERED_CAPACITY));
                }
                Some(ResponseEvent::UnknownType(_)) => return Ok(None),
                _ => {}
            }
            if used == 0 {
                break;
            }
        }
    }
}
