//! The scoreboard: traffic counters shared by every Apache child and the
//! process manager, in one shared-memory segment the parent creates at
//! post-config (`apache::scoreboard`). This room only lays numbers out over
//! a region of 64-bit words and updates them with atomics: no lock, no
//! allocation, no system call on the request path, and no `unsafe` beyond
//! viewing the region ([`Board::view`]).
//!
//! Per application (defined ones at fixed slots, dynamic ones claimed by a
//! compare-and-swap on the hash of their path on first use): requests by
//! [`Outcome`], in flight, bytes, and two latency histograms. Per endpoint
//! of a defined application: requests, in flight, connect failures,
//! failovers, health, pooled connections. Per application process (from
//! the process manager): pid and start time.

mod admission;
mod balance;
mod budget;
pub mod layout;
mod read;
mod track;

use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};

pub use admission::{reclaim_dead, DEFAULT_LEASE_SLOTS};
pub use balance::{backoff_ms, now_ms, Slot, BACKOFF_MAX_MS, BACKOFF_MIN_MS, SLOW_START_MS};
pub use budget::{spool_refusal_to_log, spool_release, spool_reserve};
pub use read::{percentile, AppView, EndpointView, Histogram, Places, ProcessView, Snapshot};
pub use track::{Times, Tracker};

use crate::config::Config;
use layout::{app, endpoint, header, process};

/// Dynamic application slots when `FastCgiScoreboard` does not say.
pub const DEFAULT_DYNAMIC_SLOTS: u32 = 64;

/// How a request ended: the application's status class, or why the
/// gateway answered itself (whatever the status it chose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    App2xx,
    App3xx,
    App4xx,
    App5xx,
    /// 503: connect() refused (or no socket, or a dynamic one could not start).
    ConnectRefused,
    /// 503: `-appConnTimeout` passed.
    ConnectTimeout,
    /// 504: `-idle-timeout` passed.
    IdleTimeout,
    /// 500: the output ended inside the header block.
    IncompleteHeaders,
    /// 500: a header block httpd cannot take.
    BadHeaders,
    /// 502 (503 for an overloaded application): records that break
    /// FastCGI, a connection that failed mid-response.
    ProtocolError,
    /// The client went away (or its request body broke off).
    ClientGone,
    /// Anything else the gateway answered itself (411, 413, a temporary
    /// file that failed: 500).
    GatewayError,
    /// 503: the application was at its `-max-in-flight` limit.
    Refused,
}

impl Outcome {
    /// Every outcome, in the order of their counters.
    pub const ALL: [Outcome; 13] = [
        Outcome::App2xx,
        Outcome::App3xx,
        Outcome::App4xx,
        Outcome::App5xx,
        Outcome::ConnectRefused,
        Outcome::ConnectTimeout,
        Outcome::IdleTimeout,
        Outcome::IncompleteHeaders,
        Outcome::BadHeaders,
        Outcome::ProtocolError,
        Outcome::ClientGone,
        Outcome::GatewayError,
        Outcome::Refused,
    ];

    /// The `outcome` label.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::App2xx => "2xx",
            Outcome::App3xx => "3xx",
            Outcome::App4xx => "4xx",
            Outcome::App5xx => "5xx",
            Outcome::ConnectRefused => "connect_refused",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::IdleTimeout => "idle_timeout",
            Outcome::IncompleteHeaders => "incomplete_headers",
            Outcome::BadHeaders => "bad_headers",
            Outcome::ProtocolError => "protocol_error",
            Outcome::ClientGone => "client_gone",
            Outcome::GatewayError => "gateway_error",
            Outcome::Refused => "refused",
        }
    }

    /// The application's answer, by status class.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            300..=399 => Outcome::App3xx,
            400..=499 => Outcome::App4xx,
            500..=599 => Outcome::App5xx,
            _ => Outcome::App2xx,
        }
    }

    /// Whether it counts as an error (the application's 5xx and the
    /// gateway's own answers, but not a client that left).
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::App2xx | Outcome::App3xx | Outcome::App4xx | Outcome::ClientGone)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a request over `-max-in-flight` got no place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// As many requests waited as `-max-queued` allows (or none may wait).
    QueueFull,
    /// No place came free within `-queue-timeout`.
    Timeout,
    /// The client left while it waited.
    ClientGone,
}

impl Refusal {
    /// Every reason, in the order of their counters.
    pub const ALL: [Refusal; 3] = [Refusal::QueueFull, Refusal::Timeout, Refusal::ClientGone];

    /// The `reason` label.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::QueueFull => "queue_full",
            Refusal::Timeout => "queue_timeout",
            Refusal::ClientGone => "client_gone",
        }
    }
}

/// What kind of application a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Static = 1,
    External = 2,
    Dynamic = 3,
    /// Dynamic applications that found every slot taken.
    Overflow = 4,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Static => "static",
            Kind::External => "external",
            Kind::Dynamic => "dynamic",
            Kind::Overflow => "overflow",
        }
    }

    fn from_word(w: u64) -> Kind {
        match w {
            1 => Kind::Static,
            2 => Kind::External,
            4 => Kind::Overflow,
            _ => Kind::Dynamic,
        }
    }
}

/// The name the overflow slot shows.
pub const OVERFLOW_NAME: &str = "(other dynamic applications)";

/// The slot key of the application `path` run as `identity` (never 0).
pub fn app_key(path: &[u8], identity: Option<(u32, u32)>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let id = identity.map_or(u64::MAX, |(u, g)| u64::from(u) << 32 | u64::from(g));
    for &b in path.iter().chain(&id.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// A defined application, as the scoreboard lays it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedApp {
    pub path: String,
    pub kind: Kind,
    /// Endpoint names, in failover order.
    pub endpoints: Vec<String>,
    /// Endpoint slots reserved (at least `endpoints.len()`): room for the
    /// addresses the process manager finds when it re-resolves `-host` names.
    pub slots: usize,
}

/// Endpoint slots of a server whose `-host` names are re-resolved: its
/// configured endpoints or this many, whichever is more.
pub const RESOLVED_ENDPOINT_SLOTS: usize = 16;

impl PlannedApp {
    fn slot_count(&self) -> usize {
        self.slots.max(self.endpoints.len())
    }
}

/// The scoreboard's shape, derived from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub defined: Vec<PlannedApp>,
    pub dynamic_slots: u32,
    pub process_slots: u32,
    /// Lease words for admission under `-max-in-flight` (0 when no
    /// application has a limit): one per request that holds or waits for
    /// a place, so at least the workers of two generations of children.
    pub lease_slots: u32,
}

impl Plan {
    /// The plan for `config`; None when `FastCgiScoreboard Off`.
    pub fn for_config(config: &Config) -> Option<Plan> {
        let dynamic_slots = config.scoreboard?;
        let defined: Vec<PlannedApp> = config
            .servers
            .iter()
            .map(|s| PlannedApp {
                path: s.path.clone(),
                kind: if s.spawn.is_some() { Kind::Static } else { Kind::External },
                endpoints: s.endpoints().map(|e| e.to_string()).collect(),
                slots: if s.options.resolve_interval > 0 && s.hosts.iter().any(|h| !crate::transport::is_literal(h)) {
                    RESOLVED_ENDPOINT_SLOTS
                } else {
                    0
                },
            })
            .collect();
        let statics: u32 = config.servers.iter().filter_map(|s| s.spawn.as_ref()).map(|s| s.processes).sum();
        let process_slots = statics.saturating_add(config.dynamic.max_processes).saturating_add(8);
        let limited =
            config.servers.iter().any(|s| s.options.max_in_flight > 0) || config.dynamic.app.max_in_flight > 0;
        let lease_slots = if limited { DEFAULT_LEASE_SLOTS } else { 0 };
        Some(Plan { defined, dynamic_slots, process_slots, lease_slots })
    }

    fn app_slots(&self) -> usize {
        // Room for every defined application and dynamic slot, one for the
        // overflow, and some slack so that probing stays short.
        let n = self.defined.len() + self.dynamic_slots as usize;
        n + n / 4 + 2
    }

    fn endpoint_slots(&self) -> usize {
        self.defined.iter().map(PlannedApp::slot_count).sum()
    }

    /// The words the segment needs.
    pub fn words(&self) -> usize {
        layout::words(self.app_slots(), self.endpoint_slots(), self.process_slots as usize, self.lease_slots as usize)
    }

    /// Bytes the segment needs.
    pub fn bytes(&self) -> usize {
        self.words() * 8
    }

    /// Equal for plans with the same layout and applications: a segment
    /// made for one can be kept for the other.
    pub fn fingerprint(&self) -> u64 {
        let mut text = format!("v6 {} {} {}\n", self.dynamic_slots, self.process_slots, self.lease_slots);
        for a in &self.defined {
            text.push_str(&format!("{} {:?} {:?} {}\n", a.path, a.kind, a.endpoints, a.slot_count()));
        }
        app_key(text.as_bytes(), None)
    }
}

/// The scoreboard over a shared region, with this process's index of it.
#[derive(Debug)]
pub struct Board {
    words: &'static [AtomicU64],
    app_slots: usize,
    endpoint_slots: usize,
    process_slots: usize,
    lease_slots: usize,
    /// Slots of the defined applications, by key (read-only after setup).
    defined: HashMap<u64, usize>,
    /// The defined applications' paths and slots, in configuration order.
    defined_order: Vec<String>,
    defined_slots: Vec<usize>,
    /// Endpoint slots by name, for the connection pool's gauges.
    endpoints: HashMap<String, usize>,
    /// The slot that counts for dynamic applications when all are taken.
    overflow: usize,
    apps_base: usize,
    endpoints_base: usize,
    processes_base: usize,
    leases_base: usize,
    spool_rows_base: usize,
}

static INSTALLED: AtomicPtr<Board> = AtomicPtr::new(std::ptr::null_mut());

/// The scoreboard of the current generation, if there is one.
#[inline]
pub fn board() -> Option<&'static Board> {
    // SAFETY: INSTALLED is null or a Board leaked by `install`, never freed.
    unsafe { INSTALLED.load(Acquire).as_ref() }
}

/// Makes `board` the one requests update (a previous one stays allocated:
/// a request that began before may still hold it).
pub fn install(board: Option<Board>) {
    let ptr = board.map_or(std::ptr::null_mut(), |b| Box::into_raw(Box::new(b)));
    INSTALLED.store(ptr, Release);
}

impl Board {
    /// Views `len` bytes at `base` as words.
    ///
    /// # Safety
    /// SAFETY: the caller guarantees `base` is 8-byte aligned, `len` bytes
    /// are mapped there for the rest of the process's life, and nothing
    /// touches them but atomics of this module.
    pub unsafe fn view(base: *mut u8, len: usize) -> Option<&'static [AtomicU64]> {
        if base.is_null() || base.align_offset(std::mem::align_of::<AtomicU64>()) != 0 {
            return None;
        }
        // SAFETY: aligned, mapped for 'static and only accessed atomically
        // (this function's contract); AtomicU64 has u64's size.
        Some(unsafe { std::slice::from_raw_parts(base.cast::<AtomicU64>(), len / 8) })
    }

    /// A fresh scoreboard for `plan` over `words` (zeroed here).
    pub fn create(words: &'static [AtomicU64], plan: &Plan, now_unix: u64) -> Option<Board> {
        if words.len() < plan.words() {
            return None;
        }
        for w in words {
            w.store(0, Relaxed);
        }
        let mut board = Board::shape(words, plan);
        let h = |i: usize| &words[i];
        h(header::FINGERPRINT).store(plan.fingerprint(), Relaxed);
        h(header::APP_SLOTS).store(board.app_slots as u64, Relaxed);
        h(header::ENDPOINT_SLOTS).store(board.endpoint_slots as u64, Relaxed);
        h(header::PROCESS_SLOTS).store(board.process_slots as u64, Relaxed);
        h(header::LEASE_SLOTS).store(board.lease_slots as u64, Relaxed);
        h(header::CREATED).store(now_unix, Relaxed);
        let mut next_ep = 0;
        for a in &plan.defined {
            let key = app_key(a.path.as_bytes(), None);
            let slot = board.claim(key, &a.path, a.kind, None)?;
            board.app_word(slot, app::EP_FIRST).store(next_ep as u64, Relaxed);
            board.app_word(slot, app::EP_COUNT).store(a.slot_count() as u64, Relaxed);
            for (order, name) in a.endpoints.iter().enumerate() {
                board.ep_word(next_ep + order, endpoint::APP).store(slot as u64 + 1, Relaxed);
                board.ep_word(next_ep + order, endpoint::ORDER).store(order as u64, Relaxed);
                board.write_name(
                    board.endpoints_base + (next_ep + order) * endpoint::WORDS + endpoint::NAME_LEN,
                    name,
                    layout::ENDPOINT_NAME_BYTES,
                );
                if let Ok(addr) = name.parse::<std::net::SocketAddr>() {
                    board.write_addr(next_ep + order, addr);
                }
                board.ep_word(next_ep + order, endpoint::ACTIVE).store(1, Release);
            }
            next_ep += a.slot_count();
        }
        board.overflow = board.claim(0, OVERFLOW_NAME, Kind::Overflow, None)?;
        board.index(plan);
        h(header::MAGIC).store(layout::MAGIC, Release);
        Some(board)
    }

    /// The scoreboard already in `words`, made for a plan with the same
    /// fingerprint (a restart that changed no application): its counters
    /// go on. `reset_in_flight` after a restart that killed the requests
    /// in flight (and the children's pooled connections).
    pub fn attach(words: &'static [AtomicU64], plan: &Plan, reset_in_flight: bool) -> Option<Board> {
        if words.len() < plan.words()
            || words[header::MAGIC].load(Acquire) != layout::MAGIC
            || words[header::FINGERPRINT].load(Relaxed) != plan.fingerprint()
        {
            return None;
        }
        let mut board = Board::shape(words, plan);
        board.overflow = board.find(0).unwrap_or(0);
        board.index(plan);
        words[header::RESTARTS].fetch_add(1, Relaxed);
        if reset_in_flight {
            for slot in 0..board.app_slots {
                board.app_word(slot, app::IN_FLIGHT).store(0, Relaxed);
            }
            for ep in 0..board.endpoint_slots {
                board.ep_word(ep, endpoint::IN_FLIGHT).store(0, Relaxed);
                board.ep_word(ep, endpoint::POOL_IDLE).store(0, Relaxed);
            }
            board.clear_leases();
        }
        Some(board)
    }

    fn shape(words: &'static [AtomicU64], plan: &Plan) -> Board {
        let (app_slots, endpoint_slots, process_slots, lease_slots) =
            (plan.app_slots(), plan.endpoint_slots(), plan.process_slots as usize, plan.lease_slots as usize);
        let apps_base = header::WORDS;
        let endpoints_base = apps_base + app_slots * app::WORDS;
        let processes_base = endpoints_base + endpoint_slots * endpoint::WORDS;
        let leases_base = processes_base + process_slots * process::WORDS;
        let spool_rows_base = leases_base + lease_slots;
        Board {
            words,
            app_slots,
            endpoint_slots,
            process_slots,
            lease_slots,
            defined: HashMap::new(),
            defined_order: Vec::new(),
            defined_slots: Vec::new(),
            endpoints: HashMap::new(),
            overflow: 0,
            apps_base,
            endpoints_base,
            processes_base,
            leases_base,
            spool_rows_base,
        }
    }

    /// Fills this process's index of the defined applications and endpoints.
    fn index(&mut self, plan: &Plan) {
        let mut ep = 0;
        for a in &plan.defined {
            let key = app_key(a.path.as_bytes(), None);
            let slot = self.find(key).unwrap_or(self.overflow);
            self.defined.insert(key, slot);
            self.defined_order.push(a.path.clone());
            self.defined_slots.push(slot);
            for (order, name) in a.endpoints.iter().enumerate() {
                self.endpoints.entry(name.clone()).or_insert(ep + order);
            }
            ep += a.slot_count();
        }
    }

    #[inline]
    fn app_word(&self, slot: usize, field: usize) -> &AtomicU64 {
        &self.words[self.apps_base + slot * app::WORDS + field]
    }

    #[inline]
    fn ep_word(&self, ep: usize, field: usize) -> &AtomicU64 {
        &self.words[self.endpoints_base + ep * endpoint::WORDS + field]
    }

    fn proc_word(&self, p: usize, field: usize) -> &AtomicU64 {
        &self.words[self.processes_base + p * process::WORDS + field]
    }

    /// Writes `name` (cut to `max` bytes) as a length word and name words.
    fn write_name(&self, at: usize, name: &str, max: usize) {
        let mut bytes = name.as_bytes();
        if bytes.len() > max {
            bytes = &bytes[..max];
        }
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.words[at + 1 + i].store(u64::from_le_bytes(w), Relaxed);
        }
        self.words[at].store(bytes.len() as u64, Relaxed);
    }

    fn read_name(&self, at: usize, max: usize) -> String {
        let len = (self.words[at].load(Relaxed) as usize).min(max);
        let mut bytes = Vec::with_capacity(len + 8);
        for i in 0..len.div_ceil(8) {
            bytes.extend_from_slice(&self.words[at + 1 + i].load(Relaxed).to_le_bytes());
        }
        bytes.truncate(len);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Whether the name at `at` is `name`, compared word by word: no
    /// allocation, so a child that exits (from a signal handler under
    /// prefork) may call it.
    fn name_is(&self, at: usize, max: usize, name: &[u8]) -> bool {
        let len = (self.words[at].load(Relaxed) as usize).min(max);
        len == name.len()
            && name.chunks(8).enumerate().all(|(i, chunk)| {
                let word = self.words[at + 1 + i].load(Relaxed).to_le_bytes();
                word[..chunk.len()] == *chunk
            })
    }

    /// The slot holding `key`, without claiming one.
    fn find(&self, key: u64) -> Option<usize> {
        let start = (key % self.app_slots as u64) as usize;
        for i in 0..self.app_slots {
            let slot = (start + i) % self.app_slots;
            match self.app_word(slot, app::KEY).load(Acquire) {
                k if k == key_word(key) => return Some(slot),
                0 => return None,
                _ => {}
            }
        }
        None
    }

    /// The slot for `key`, claimed (compare-and-swap on its key word) if
    /// the application has none yet; None when every slot is taken.
    fn claim(&self, key: u64, name: &str, kind: Kind, identity: Option<(u32, u32)>) -> Option<usize> {
        let want = key_word(key);
        let start = (key % self.app_slots as u64) as usize;
        for i in 0..self.app_slots {
            let slot = (start + i) % self.app_slots;
            let word = self.app_word(slot, app::KEY);
            let current = match word.compare_exchange(0, want, AcqRel, Acquire) {
                Ok(_) => {
                    self.write_name(self.apps_base + slot * app::WORDS + app::NAME_LEN, name, layout::APP_NAME_BYTES);
                    self.app_word(slot, app::KIND).store(kind as u64, Relaxed);
                    let id = identity.map_or(u64::MAX, |(u, g)| u64::from(u) << 32 | u64::from(g));
                    self.app_word(slot, app::IDENTITY).store(id, Relaxed);
                    self.app_word(slot, app::READY).store(1, Release);
                    return Some(slot);
                }
                Err(current) => current,
            };
            if current == want {
                return Some(slot);
            }
        }
        None
    }

    /// The slot of the defined application `path`, or of the dynamic
    /// application `path` run as `identity` (claimed on first use; the
    /// overflow slot when all are taken). The process manager uses it too.
    pub fn app_slot(&self, path: &str, identity: Option<(u32, u32)>, dynamic: bool) -> usize {
        let key = app_key(path.as_bytes(), identity);
        if !dynamic {
            if let Some(&slot) = self.defined.get(&key) {
                return slot;
            }
        }
        match self.claim(key, path, Kind::Dynamic, identity) {
            Some(slot) => slot,
            None => {
                self.words[header::OVERFLOW].fetch_add(1, Relaxed);
                self.overflow
            }
        }
    }

    /// The slot of the `index`-th defined application, when its path is
    /// `path` (the request's configuration is the board's): no hashing.
    #[inline]
    pub fn defined_slot(&self, index: usize, path: &str) -> Option<usize> {
        (self.defined_order.get(index)? == path).then(|| self.defined_slots[index])
    }

    /// The endpoint slot of the `order`-th endpoint of the application in `slot`.
    #[inline]
    pub fn endpoint_slot(&self, slot: usize, order: usize) -> Option<usize> {
        let first = self.app_word(slot, app::EP_FIRST).load(Relaxed) as usize;
        let count = self.app_word(slot, app::EP_COUNT).load(Relaxed) as usize;
        (order < count).then_some(first + order)
    }

    /// A pooled connection to the endpoint named `name` went idle (+1) or
    /// left the pool (-1: reused, closed or expired).
    pub fn pool_idle(&self, name: &str, delta: i64) {
        let found = self.endpoints.get(name).copied().or_else(|| {
            // An address the manager found later: by its name in the slot.
            (0..self.endpoint_slots).find(|&ep| {
                self.ep_active(ep) != 0
                    && self.name_is(
                        self.endpoints_base + ep * endpoint::WORDS + endpoint::NAME_LEN,
                        layout::ENDPOINT_NAME_BYTES,
                        name.as_bytes(),
                    )
            })
        });
        if let Some(ep) = found {
            self.ep_word(ep, endpoint::POOL_IDLE).fetch_add(delta as u64, Relaxed);
        }
    }

    /// The process manager: the application in `slot` started a process.
    pub fn process_started(&self, slot: usize) {
        self.app_word(slot, app::STARTS).fetch_add(1, Relaxed);
    }

    /// The process manager: what runs now. `apps` gives, per application
    /// slot, its failure count and back-off; `processes` (slot, pid, unix
    /// start time) replaces the process table (cut to its size).
    pub fn publish_processes(&self, manager_pid: u32, apps: &[(usize, u32, bool)], processes: &[(usize, u32, u64)]) {
        let seq = &self.words[header::PROC_SEQ];
        seq.fetch_add(1, AcqRel);
        self.words[header::MANAGER_PID].store(u64::from(manager_pid), Relaxed);
        for slot in 0..self.app_slots {
            let n = processes.iter().filter(|p| p.0 == slot).count() as u64;
            self.app_word(slot, app::PROCESSES).store(n, Relaxed);
        }
        for &(slot, failures, backed_off) in apps {
            self.app_word(slot, app::FAILURES).store(u64::from(failures), Relaxed);
            self.app_word(slot, app::BACKED_OFF).store(u64::from(backed_off), Relaxed);
        }
        for p in 0..self.process_slots {
            let (slot, pid, started) = processes.get(p).map_or((0, 0, 0), |&(s, pid, t)| (s + 1, pid, t));
            self.proc_word(p, process::APP).store(slot as u64, Relaxed);
            self.proc_word(p, process::STARTED).store(started, Relaxed);
            self.proc_word(p, process::PID).store(u64::from(pid), Relaxed);
        }
        seq.fetch_add(1, Release);
    }
}

/// Key words are never 0 (free): the overflow slot's key 0 is stored as 2^64-1.
#[inline]
fn key_word(key: u64) -> u64 {
    if key == 0 {
        u64::MAX
    } else {
        key
    }
}

/// Takes `n` off a counter, never below zero: a count a dead process's
/// reclaim may already have lowered.
fn subtract(word: &AtomicU64, n: u64) {
    let _ = word.fetch_update(SeqCst, SeqCst, |v| Some(v.saturating_sub(n)));
}

/// Whether `now` is the first time of its period for the shared `word`
/// (a time, in any unit): true for exactly one caller per `period`, across
/// all processes. What logs once a second and sweeps at most once a second.
fn first_since(word: &AtomicU64, now: u64, period: u64) -> bool {
    let before = word.load(Relaxed);
    now >= before.saturating_add(period) && word.compare_exchange(before, now, Relaxed, Relaxed).is_ok()
}

#[cfg(test)]
mod tests;
