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
use crate::transport::{self, Conn, Endpoint};

/// How long a probe waits for the connection and for the answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The capacity assumed for an application that answers FCGI_GET_VALUES
/// without FCGI_MAX_CONNS (php-fpm 8 answers FCGI_MPXS_CONNS only).
pub const ANSWERED_CAPACITY: u64 = 4;
/// How long the capacity question waits for its first answer: an
/// application that does not answer GET_VALUES is held no longer than
/// this, once.
const CAPACITY_TIMEOUT: Duration = Duration::from_millis(200);
/// The least wait for each further answer of [`count_capacity`].
const COUNT_STEP: Duration = Duration::from_millis(20);
/// The most connections [`count_capacity`] holds at once.
const COUNT_MAX: usize = 64;
/// How often an endpoint that could not be reached is asked again.
const CAPACITY_RETRY: Duration = Duration::from_secs(10);
/// How often one that did not answer is asked again: it may have been
/// busy with requests in every process (each time one of its processes
/// is held for up to [`CAPACITY_TIMEOUT`]).
const SILENT_RETRY: Duration = Duration::from_secs(300);

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
        let retry = match board.capacity(ep) {
            0 => CAPACITY_RETRY,
            CAPACITY_NONE => SILENT_RETRY,
            _ => continue,
        };
        if w.asked.get(&ep).is_some_and(|t| t.elapsed() < retry) {
            continue;
        }
        w.asked.insert(ep, Instant::now());
        match count_capacity(&e) {
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
        match probe(&e) {
            Ok(answer) => {
                // Where reuse follows the capacity, learn_capacity counts
                // it: one process's answer does not speak for its pool.
                if let Some(n) = answer.filter(|_| !answered_before && !w.server.options.keep_conn_safe) {
                    board.set_capacity(ep, n);
                }
                if board.endpoint_down(ep) && board.endpoint_ok(ep, now) {
                    log(Level::Warn, &format!("FastCGI: server \"{path}\" endpoint {e} is up again"));
                }
            }
            // Connected but silent: down if it answered before; an
            // application that never answered GET_VALUES is only known to
            // accept: back up if it was down as unreachable.
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

/// What one FCGI_GET_VALUES question on a connection of its own got.
enum Answer {
    /// An answer with FCGI_MAX_CONNS = n (n > 0).
    Stated(u64),
    /// An answer without it (php-fpm 8 answers FCGI_MPXS_CONNS only).
    Unstated,
    /// The connection closed, or the application does not know the record.
    Refused,
    /// Nothing within the wait.
    Silent,
}

/// Connects to `endpoint` and asks it FCGI_GET_VALUES, waiting `wait` for
/// the answer; the connection is returned open, so that the application
/// process that answered stays held by it ([`count_capacity`]). Err when
/// the connection or its I/O fails.
fn ask(endpoint: &Endpoint, wait: Duration) -> Result<(Conn, Answer), String> {
    let conn = transport::connect(endpoint, Some(PROBE_TIMEOUT)).map_err(|e| format!("connect() failed: {e}"))?;
    let mut out = Vec::new();
    encode_get_values(&mut out, &[b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]);
    let deadline = Instant::now() + wait;
    let mut written = 0;
    let mut decoder = ResponseDecoder::new(1);
    let mut buf = vec![0u8; 8192];
    let answer = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Answer::Silent;
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
            Ok(0) => break Answer::Refused,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // Closed on us after the question: it is there, just mute.
            Err(_) => break Answer::Refused,
        };
        if let Some(answer) = decode_answer(&mut decoder, &buf[..n]) {
            break answer;
        }
    };
    Ok((conn, answer))
}

/// Feeds `bytes` to `decoder`; the answer once they complete one.
fn decode_answer(decoder: &mut ResponseDecoder, mut bytes: &[u8]) -> Option<Answer> {
    while !bytes.is_empty() {
        let Ok((used, event)) = decoder.decode(bytes) else { return Some(Answer::Refused) };
        bytes = &bytes[used..];
        match event {
            Some(ResponseEvent::GetValuesResult(pairs)) => {
                let stated = pairs.flatten().find(|(name, _)| *name == b"FCGI_MAX_CONNS").and_then(|(_, value)| {
                    std::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|&n| n > 0)
                });
                return Some(stated.map_or(Answer::Unstated, Answer::Stated));
            }
            Some(ResponseEvent::UnknownType(_)) => return Some(Answer::Refused),
            _ => {}
        }
        if used == 0 {
            break;
        }
    }
    None
}

/// The health check's question: Ok(Some(n)) it answered, with
/// FCGI_MAX_CONNS n (or [`ANSWERED_CAPACITY`] without it), Ok(None) it
/// closed the connection or did not know the question, Err why it is
/// unreachable or silent.
fn probe(endpoint: &Endpoint) -> Result<Option<u64>, String> {
    match ask(endpoint, PROBE_TIMEOUT)?.1 {
        Answer::Stated(n) => Ok(Some(n)),
        Answer::Unstated => Ok(Some(ANSWERED_CAPACITY)),
        Answer::Refused => Ok(None),
        Answer::Silent => Err(format!("no answer to FCGI_GET_VALUES within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// How many connections `endpoint` serves at once: Ok(None) when it does
/// not answer FCGI_GET_VALUES, Err when it cannot be reached.
///
/// An application that states FCGI_MAX_CONNS of 2 or more is taken at its
/// word (the specification's number is for the whole application). One
/// that states 1 speaks for the process that answered: libfcgi programs
/// say 1, and a pool of them shares one listening socket. So are php-fpm
/// workers, which do not state it (they count as at least
/// [`ANSWERED_CAPACITY`]). For those the connections are counted: each
/// answered question is held open, which holds the process that answered
/// it, and another is asked, until one goes unanswered (every process is
/// held) or [`COUNT_MAX`] answered. A process busy with a request does not
/// answer in time, so the count never exceeds what the application can
/// serve. Each wait after the first is a few times the first answer's
/// time, at least [`COUNT_STEP`]; requests wait that long once for a free
/// process while the count holds them all.
fn count_capacity(endpoint: &Endpoint) -> Result<Option<u64>, String> {
    let started = Instant::now();
    let (first, answer) = ask(endpoint, CAPACITY_TIMEOUT)?;
    let floor = match answer {
        Answer::Stated(n) if n >= 2 => return Ok(Some(n)),
        Answer::Stated(_) => 1,
        Answer::Unstated => ANSWERED_CAPACITY,
        Answer::Refused | Answer::Silent => return Ok(None),
    };
    let step = (started.elapsed() * 4).clamp(COUNT_STEP, CAPACITY_TIMEOUT);
    let mut held = vec![first];
    while held.len() < COUNT_MAX {
        match ask(endpoint, step) {
            Ok((conn, Answer::Stated(_) | Answer::Unstated)) => held.push(conn),
            _ => break,
        }
    }
    Ok(Some(floor.max(held.len() as u64)))
}
