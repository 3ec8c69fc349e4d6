//! Reading the scoreboard for the status page, the Prometheus output and
//! mod_status: a snapshot copied out of the shared words (each number read
//! atomically; numbers of different fields may be a request apart).

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use super::layout::{app, endpoint, header, process, BOUNDS_US, BUCKETS};
use super::track::{unix_now, FAILED_RECENTLY_SECS};
use super::{Board, Kind, Outcome, Refusal};

/// One latency histogram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Per bucket (not cumulative); the bounds are [`BOUNDS_US`], the last
    /// bucket unbounded.
    pub buckets: Vec<u64>,
    pub sum_us: u64,
}

impl Histogram {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The `q` quantile (0..1) in seconds, interpolated linearly inside
    /// its bucket; None without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        percentile(&self.buckets, q)
    }
}

/// The `q` quantile of per-bucket counts over [`BOUNDS_US`], in seconds.
pub fn percentile(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let lower = if i == 0 { 0 } else { BOUNDS_US[i - 1] } as f64;
            let Some(&upper) = BOUNDS_US.get(i) else { return Some(lower / 1e6) };
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some((lower + (upper as f64 - lower) * within) / 1e6);
        }
        below += n;
    }
    Some(BOUNDS_US[BOUNDS_US.len() - 1] as f64 / 1e6)
}

/// An endpoint's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointView {
    pub name: String,
    pub requests: u64,
    pub in_flight: u64,
    pub connect_failures: u64,
    pub connect_timeouts: u64,
    pub failovers: u64,
    /// Unix time of the first failure since the last success (0: up).
    pub down_since: u64,
    pub last_failure: u64,
    pub pool_idle: u64,
    pub pool_reused: u64,
    /// FCGI_MAX_CONNS as the process manager learned it (None: not known).
    pub capacity: Option<u64>,
    /// "up", "slow-start" (back up within the last 5 s), "failed" (a
    /// connect failed within the last 10 s), "down" (marked down for all
    /// children, or failing for longer) or "removed" (no longer in the
    /// address set: finishing its requests).
    pub health: &'static str,
    /// The endpoint a new connection tries first.
    pub next: bool,
}

/// An application process, as the process manager wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessView {
    pub pid: u32,
    pub started: u64,
}

/// An application's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppView {
    pub path: String,
    pub kind: Kind,
    pub identity: Option<(u32, u32)>,
    pub requests: u64,
    pub in_flight: u64,
    /// Per [`Outcome::ALL`].
    pub outcomes: Vec<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Responses that waited for a slow client, their bytes that waited,
    /// those in a temporary file, and responses paced at the maximum.
    pub held: u64,
    pub held_bytes: u64,
    pub held_file_bytes: u64,
    pub paced: u64,
    /// Request bodies received whole before the application was asked,
    /// their bytes, and those that went to a temporary file.
    pub received: u64,
    pub received_bytes: u64,
    pub received_file_bytes: u64,
    pub ttfb: Histogram,
    pub total: Histogram,
    pub processes: u64,
    pub failures: u64,
    pub backed_off: bool,
    pub starts: u64,
    pub endpoints: Vec<EndpointView>,
    pub process_list: Vec<ProcessView>,
    pub places: Places,
}

/// An application's places under `-max-in-flight` (all 0 without one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Places {
    /// Requests holding a place now, and waiting for one.
    pub taken: u64,
    pub waiting: u64,
    /// Requests that got a place after waiting, and their waits.
    pub waited: u64,
    pub waited_us: u64,
    /// Per [`Refusal::ALL`].
    pub refusals: Vec<u64>,
    /// Places given back for children that died holding them.
    pub reclaimed: u64,
}

impl Places {
    pub fn refused(&self, why: Refusal) -> u64 {
        Refusal::ALL.iter().position(|&r| r == why).map_or(0, |i| self.refusals[i])
    }
}

impl AppView {
    pub fn outcome(&self, o: Outcome) -> u64 {
        self.outcomes[o as usize]
    }

    /// Requests that ended in an error ([`Outcome::is_error`]).
    pub fn errors(&self) -> u64 {
        Outcome::ALL.iter().filter(|o| o.is_error()).map(|&o| self.outcome(o)).sum()
    }
}

/// Everything on the scoreboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub created: u64,
    pub restarts: u64,
    pub manager_pid: u32,
    pub overflow: u64,
    pub dynamic_slots_used: usize,
    pub app_slots: usize,
    pub apps: Vec<AppView>,
    /// The budget of temporary files, what they hold now, the most they
    /// held, and writes that found the budget used up.
    pub spool_budget: u64,
    pub spool_used: u64,
    pub spool_peak: u64,
    pub spool_refused: u64,
}

impl Board {
    /// Copies the scoreboard out: defined applications first, in
    /// configuration order, then dynamic ones by path.
    pub fn snapshot(&self) -> Snapshot {
        let now = unix_now();
        let processes = self.read_processes();
        let mut apps = Vec::new();
        for slot in 0..self.app_slots {
            if self.app_word(slot, app::KEY).load(Acquire) == 0 || self.app_word(slot, app::READY).load(Acquire) == 0 {
                continue;
            }
            let kind = Kind::from_word(self.app_word(slot, app::KIND).load(Relaxed));
            let id = self.app_word(slot, app::IDENTITY).load(Relaxed);
            let read_hist = |field: usize| Histogram {
                buckets: (0..BUCKETS).map(|i| self.app_word(slot, field + i).load(Relaxed)).collect(),
                sum_us: self.app_word(slot, field + BUCKETS).load(Relaxed),
            };
            let first = self.app_word(slot, app::EP_FIRST).load(Relaxed) as usize;
            let count = self.app_word(slot, app::EP_COUNT).load(Relaxed) as usize;
            let mut endpoints: Vec<EndpointView> = (first..first + count)
                .filter(|&ep| ep < self.endpoint_slots && self.ep_word(ep, endpoint::ACTIVE).load(Relaxed) != 0)
                .map(|ep| self.endpoint_view(ep, now))
                .collect();
            // The one tried first: the first healthy one, else the first.
            let next = endpoints.iter().position(|e| e.health == "up" || e.health == "slow-start").unwrap_or(0);
            if let Some(e) = endpoints.get_mut(next) {
                e.next = true;
            }
            apps.push(AppView {
                path: self.read_name(self.apps_base + slot * app::WORDS + app::NAME_LEN, super::layout::APP_NAME_BYTES),
                kind,
                identity: (id != u64::MAX && kind == Kind::Dynamic).then_some(((id >> 32) as u32, id as u32)),
                requests: self.app_word(slot, app::REQUESTS).load(Relaxed),
                in_flight: self.app_word(slot, app::IN_FLIGHT).load(Relaxed),
                outcomes: (0..Outcome::ALL.len())
                    .map(|i| self.app_word(slot, app::OUTCOMES + i).load(Relaxed))
                    .collect(),
                bytes_in: self.app_word(slot, app::BYTES_IN).load(Relaxed),
                bytes_out: self.app_word(slot, app::BYTES_OUT).load(Relaxed),
                held: self.app_word(slot, app::HELD).load(Relaxed),
                held_bytes: self.app_word(slot, app::HELD_BYTES).load(Relaxed),
                held_file_bytes: self.app_word(slot, app::HELD_FILE_BYTES).load(Relaxed),
                paced: self.app_word(slot, app::PACED).load(Relaxed),
                received: self.app_word(slot, app::RECEIVED).load(Relaxed),
                received_bytes: self.app_word(slot, app::RECEIVED_BYTES).load(Relaxed),
                received_file_bytes: self.app_word(slot, app::RECEIVED_FILE_BYTES).load(Relaxed),
                ttfb: read_hist(app::TTFB),
                total: read_hist(app::TOTAL),
                processes: self.app_word(slot, app::PROCESSES).load(Relaxed),
                failures: self.app_word(slot, app::FAILURES).load(Relaxed),
                backed_off: self.app_word(slot, app::BACKED_OFF).load(Relaxed) != 0,
                starts: self.app_word(slot, app::STARTS).load(Relaxed),
                endpoints,
                process_list: processes.iter().filter(|(s, _)| *s == slot).map(|(_, p)| p.clone()).collect(),
                places: Places {
                    taken: self.app_word(slot, app::ADMITTED).load(Relaxed),
                    waiting: self.app_word(slot, app::WAITING).load(Relaxed),
                    waited: self.app_word(slot, app::WAITED).load(Relaxed),
                    waited_us: self.app_word(slot, app::WAITED_US).load(Relaxed),
                    refusals: (0..Refusal::ALL.len())
                        .map(|i| self.app_word(slot, app::REFUSALS + i).load(Relaxed))
                        .collect(),
                    reclaimed: self.app_word(slot, app::RECLAIMED).load(Relaxed),
                },
            });
        }
        // Defined applications keep the configuration's order; the others
        // follow by path, the overflow last.
        let order = |a: &AppView| match a.kind {
            Kind::Static | Kind::External => 0,
            Kind::Dynamic => 1,
            Kind::Overflow => 2,
        };
        let pos = |a: &AppView| self.defined_order.iter().position(|p| *p == a.path).unwrap_or(usize::MAX);
        apps.sort_by(|a, b| (order(a), pos(a), &a.path).cmp(&(order(b), pos(b), &b.path)));
        // The overflow slot shows only once used.
        apps.retain(|a| a.kind != Kind::Overflow || a.requests > 0);
        Snapshot {
            created: self.words[header::CREATED].load(Relaxed),
            restarts: self.words[header::RESTARTS].load(Relaxed),
            manager_pid: self.words[header::MANAGER_PID].load(Relaxed) as u32,
            overflow: self.words[header::OVERFLOW].load(Relaxed),
            dynamic_slots_used: apps.iter().filter(|a| a.kind == Kind::Dynamic).count(),
            app_slots: self.app_slots,
            apps,
            spool_budget: self.spool_state().0,
            spool_used: self.spool_state().1,
            spool_peak: self.spool_state().2,
            spool_refused: self.spool_state().3,
        }
    }

    fn endpoint_view(&self, ep: usize, now: u64) -> EndpointView {
        let w = |f: usize| self.ep_word(ep, f).load(Relaxed);
        let down_since = w(endpoint::DOWN_SINCE);
        let last_failure = w(endpoint::LAST_FAILURE);
        let health = if w(endpoint::ACTIVE) == 2 {
            "removed"
        } else if w(endpoint::STATE) == 1 {
            "down"
        } else if down_since == 0 {
            let up_at = w(endpoint::UP_AT);
            if up_at != 0 && super::balance::now_ms().saturating_sub(up_at) < super::balance::SLOW_START_MS {
                "slow-start"
            } else {
                "up"
            }
        } else if now.saturating_sub(last_failure) < FAILED_RECENTLY_SECS {
            "failed"
        } else {
            "down"
        };
        EndpointView {
            name: self.read_name(
                self.endpoints_base + ep * endpoint::WORDS + endpoint::NAME_LEN,
                super::layout::ENDPOINT_NAME_BYTES,
            ),
            requests: w(endpoint::REQUESTS),
            in_flight: w(endpoint::IN_FLIGHT),
            connect_failures: w(endpoint::CONNECT_FAILURES),
            connect_timeouts: w(endpoint::CONNECT_TIMEOUTS),
            failovers: w(endpoint::FAILOVERS),
            down_since,
            last_failure,
            // A gauge of +1/-1 from every child: never shown below 0.
            pool_idle: (w(endpoint::POOL_IDLE) as i64).max(0) as u64,
            pool_reused: w(endpoint::POOL_REUSED),
            capacity: Some(w(endpoint::CAPACITY)).filter(|&c| c != 0 && c != endpoint::CAPACITY_NONE),
            health,
            next: false,
        }
    }

    /// The process table, (application slot, process), read consistently
    /// (the manager's sequence number did not move), or as it is after a
    /// few tries.
    fn read_processes(&self) -> Vec<(usize, ProcessView)> {
        let seq = &self.words[header::PROC_SEQ];
        let mut out = Vec::new();
        for _ in 0..100 {
            let before = seq.load(Acquire);
            out.clear();
            for p in 0..self.process_slots {
                let pid = self.proc_word(p, process::PID).load(Relaxed);
                let slot = self.proc_word(p, process::APP).load(Relaxed);
                if pid == 0 || slot == 0 {
                    continue;
                }
                let started = self.proc_word(p, process::STARTED).load(Relaxed);
                out.push((slot as usize - 1, ProcessView { pid: pid as u32, started }));
            }
            std::sync::atomic::fence(Acquire);
            if before.is_multiple_of(2) && seq.load(Relaxed) == before {
                break;
            }
            std::thread::yield_now();
        }
        out
    }
}
