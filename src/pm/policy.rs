//! When to start a static application's instances: staggered first starts,
//! restart delay, and the original's three-strike back-off tied to
//! `-min-server-life`. Pure: time comes in as arguments, decisions and log
//! lines go out; the manager does the system calls.

use std::time::{Duration, Instant};

use crate::config::SpawnOptions;

/// Failed runs tolerated before the back-off (the original's MAX_FAILED_STARTS).
const MAX_FAILED_STARTS: u32 = 3;
/// The back-off once an application keeps dying (FAILED_STARTS_DELAY).
pub const FAILED_STARTS_DELAY: Duration = Duration::from_secs(600);

/// One instance slot of a static application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Not running; `last_run` is how long its previous process lived.
    Waiting { respawn: bool, last_run: Option<Duration> },
    /// Running since `since`.
    Running { pid: i32, since: Instant },
}

/// The schedule of one static application (`-processes` slots).
#[derive(Debug)]
pub struct StaticApp {
    slots: Vec<Slot>,
    /// When any instance last started: starts are spaced from it.
    last_start: Option<Instant>,
    /// Runs that ended badly since the last reset.
    failures: u32,
    /// Set while backed off: no start before it.
    backoff_until: Option<Instant>,
    init_start_delay: Duration,
    restart_delay: Duration,
    min_server_life: Duration,
}

/// What [`StaticApp::poll`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Start this slot now (call [`StaticApp::started`] with the pid).
    pub start: Option<usize>,
    /// Call `poll` again at this time (a start is due then).
    pub wake: Option<Instant>,
    /// Lines to log at warn level (the original's back-off texts).
    pub log: Vec<String>,
}

/// How a process ended, for the failure count and the log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `exit(status)`.
    Code(i32),
    /// Killed by a signal.
    Signal { signal: i32, core: bool },
}

impl Exit {
    /// How the process ended, as a worker's log line says it: "exited with
    /// status 3", "was killed by signal 11".
    pub fn describe(self) -> String {
        match self {
            Exit::Code(code) => format!("exited with status {code}"),
            Exit::Signal { signal, .. } => format!("was killed by signal {signal}"),
        }
    }
}

impl StaticApp {
    /// A schedule with every slot waiting for its first start.
    pub fn new(opts: &SpawnOptions) -> Self {
        let slots = vec![Slot::Waiting { respawn: false, last_run: None }; opts.processes.max(1) as usize];
        StaticApp {
            slots,
            last_start: None,
            failures: 0,
            backoff_until: None,
            init_start_delay: secs(opts.init_start_delay),
            restart_delay: secs(opts.restart_delay),
            min_server_life: secs(opts.min_server_life),
        }
    }

    /// Decides whether a slot should start now; `name` is the server path
    /// for log lines.
    pub fn poll(&mut self, now: Instant, name: &str) -> Decision {
        let mut decision = Decision::default();
        let Some((index, respawn, last_run)) = self.slots.iter().enumerate().find_map(|(i, s)| match *s {
            Slot::Waiting { respawn, last_run } => Some((i, respawn, last_run)),
            Slot::Running { .. } => None,
        }) else {
            return decision;
        };
        if self.failures > MAX_FAILED_STARTS && self.backoff_until.is_none() {
            let lived = |d: Duration| d > self.min_server_life;
            let survivor = self.slots.iter().any(|s| matches!(*s, Slot::Running { since, .. } if lived(now - since)));
            if last_run.is_some_and(lived) || survivor {
                self.failures = 0;
                decision.log.push(format!(
                    "FastCGI: server \"{name}\" has remained running for more than {} seconds, its restart interval has been restored to {} seconds",
                    self.min_server_life.as_secs(),
                    self.restart_delay.as_secs()
                ));
            } else {
                let from = self.last_start.unwrap_or(now);
                self.backoff_until = Some(from + FAILED_STARTS_DELAY);
                decision.log.push(format!(
                    "FastCGI: server \"{name}\" has failed to remain running for {} seconds given {} attempts, its restart interval has been backed off to {} seconds",
                    self.min_server_life.as_secs(),
                    self.failures,
                    FAILED_STARTS_DELAY.as_secs()
                ));
            }
        }
        let delay = if respawn { self.restart_delay } else { self.init_start_delay };
        let mut due = self.last_start.map_or(now, |t| t + delay);
        if let Some(until) = self.backoff_until {
            due = due.max(until);
        }
        if now >= due {
            if self.backoff_until.take().is_some() {
                // One more failure backs off again.
                self.failures = MAX_FAILED_STARTS;
            }
            decision.start = Some(index);
        } else {
            decision.wake = Some(due);
        }
        decision
    }

    /// Records that `slot` started as `pid`; true when it is a restart.
    pub fn started(&mut self, slot: usize, pid: i32, now: Instant) -> bool {
        self.last_start = Some(now);
        let restart = matches!(self.slots.get(slot), Some(Slot::Waiting { respawn: true, .. }));
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Slot::Running { pid, since: now };
        }
        restart
    }

    /// Records that the start of `slot` failed (fork failed): it counts as a
    /// failed run and is retried after the restart delay.
    pub fn start_failed(&mut self, slot: usize, now: Instant) {
        self.last_start = Some(now);
        self.failures += 1;
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Slot::Waiting { respawn: true, last_run: Some(Duration::ZERO) };
        }
    }

    /// Records the end of `pid`; false when it is not one of ours. Exit
    /// status 0 is not a failure (as since the original's 2.4.4).
    pub fn exited(&mut self, pid: i32, now: Instant, how: Exit) -> bool {
        let Some(slot) = self.slots.iter_mut().find(|s| matches!(**s, Slot::Running { pid: p, .. } if p == pid)) else {
            return false;
        };
        let Slot::Running { since, .. } = *slot else { return false };
        *slot = Slot::Waiting { respawn: true, last_run: Some(now.saturating_duration_since(since)) };
        if how != Exit::Code(0) {
            self.failures += 1;
        }
        true
    }

    /// The running instances and when they started.
    pub fn instances(&self) -> Vec<(i32, Instant)> {
        self.slots
            .iter()
            .filter_map(|s| match *s {
                Slot::Running { pid, since } => Some((pid, since)),
                Slot::Waiting { .. } => None,
            })
            .collect()
    }

    /// Failed runs counted toward the back-off.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Pids of the running instances.
    pub fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.slots.iter().filter_map(|s| match *s {
            Slot::Running { pid, .. } => Some(pid),
            Slot::Waiting { .. } => None,
        })
    }
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(n.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(processes: u32, restart_delay: u32) -> StaticApp {
        StaticApp::new(&SpawnOptions { processes, restart_delay, ..SpawnOptions::default() })
    }

    #[test]
    fn first_starts_are_staggered_by_init_start_delay() {
        let t0 = Instant::now();
        let mut a = app(3, 5);
        let d = a.poll(t0, "/a");
        assert_eq!(d.start, Some(0));
        assert!(!a.started(0, 100, t0));
        let d = a.poll(t0, "/a");
        assert_eq!((d.start, d.wake), (None, Some(t0 + Duration::from_secs(1))));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(a.poll(t1, "/a").start, Some(1));
        a.started(1, 101, t1);
        assert_eq!(a.poll(t1 + Duration::from_secs(1), "/a").start, Some(2));
        a.started(2, 102, t1 + Duration::from_secs(1));
        assert_eq!(a.poll(t1 + Duration::from_secs(9), "/a"), Decision::default());
        assert_eq!(a.pids().collect::<Vec<_>>(), [100, 101, 102]);
    }

    #[test]
    fn a_dead_instance_restarts_after_restart_delay() {
        let t0 = Instant::now();
        let mut a = app(1, 5);
        a.poll(t0, "/a");
        a.started(0, 7, t0);
        let t1 = t0 + Duration::from_secs(100);
        assert!(a.exited(7, t1, Exit::Signal { signal: 9, core: false }));
        assert!(!a.exited(7, t1, Exit::Code(0)), "already reaped");
        // The delay runs from the last start, long ago: restart at once.
        assert_eq!(a.poll(t1, "/a").start, Some(0));
        assert!(a.started(0, 8, t1));
        assert!(a.exited(8, t1, Exit::Code(1)));
        let d = a.poll(t1, "/a");
        assert_eq!(d.wake, Some(t1 + Duration::from_secs(5)));
    }

    #[test]
    fn three_strikes_back_off_then_one_more_failure_backs_off_again() {
        let mut t = Instant::now();
        let mut a = app(1, 0);
        let mut pid = 1;
        let mut backed_off = None;
        for _ in 0..6 {
            let d = a.poll(t, "/a");
            if !d.log.is_empty() {
                backed_off = Some(d.log[0].clone());
                // Counted from the last start, a second ago, as the original.
                assert_eq!(d.wake, Some(t - Duration::from_secs(1) + FAILED_STARTS_DELAY));
                break;
            }
            assert_eq!(d.start, Some(0));
            a.started(0, pid, t);
            t += Duration::from_secs(1);
            a.exited(pid, t, Exit::Code(1));
            pid += 1;
        }
        assert_eq!(
            backed_off.as_deref(),
            Some("FastCGI: server \"/a\" has failed to remain running for 30 seconds given 4 attempts, its restart interval has been backed off to 600 seconds")
        );
        t += FAILED_STARTS_DELAY;
        assert_eq!(a.poll(t, "/a").start, Some(0));
        a.started(0, pid, t);
        a.exited(pid, t + Duration::from_secs(1), Exit::Code(2));
        let d = a.poll(t + Duration::from_secs(1), "/a");
        assert!(d.log[0].contains("backed off to 600 seconds"), "{:?}", d.log);
    }

    #[test]
    fn clean_exits_do_not_count_and_a_long_run_restores_the_interval() {
        let mut t = Instant::now();
        let mut a = app(1, 0);
        for pid in 1..10 {
            assert_eq!(a.poll(t, "/a").start, Some(0));
            a.started(0, pid, t);
            t += Duration::from_secs(1);
            a.exited(pid, t, Exit::Code(0));
        }
        let mut a = app(1, 0);
        for pid in 1..5 {
            assert_eq!(a.poll(t, "/a").start, Some(0));
            a.started(0, pid, t);
            // The fourth run lives past -min-server-life before it fails.
            if pid == 4 {
                t += Duration::from_secs(31);
            }
            a.exited(pid, t, Exit::Code(1));
        }
        let d = a.poll(t, "/a");
        assert!(d.log[0].contains(
            "has remained running for more than 30 seconds, its restart interval has been restored to 0 seconds"
        ));
        assert_eq!(d.start, Some(0));
    }
}
