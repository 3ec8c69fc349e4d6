//! The original's policy for dynamic applications, pure: instances start on
//! demand and when requests wait (`-startDelay`), within the per-class and
//! global caps; load is smoothed every `-updateInterval`; every
//! `-killInterval` (or when close to `-maxProcesses`) the youngest instance
//! of an under-used application is stopped, down to `-minProcesses`.
//! Time comes in as arguments; the manager makes the system calls.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::DynamicOptions;

/// Failed runs tolerated before starts are refused for [`BACKOFF`].
const MAX_FAILED_STARTS: u32 = 3;
/// How long starts are refused after too many failed runs.
const BACKOFF: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Instance {
    pid: i32,
    started: Instant,
    /// The kill policy sent it SIGTERM.
    dying: bool,
}

/// One dynamic application (a path).
#[derive(Debug, Default)]
struct App {
    instances: Vec<Instance>,
    last_start: Option<Instant>,
    /// A start was decided but not yet made (waiting for its delay).
    pending: Option<Instant>,
    failures: u32,
    backoff_until: Option<Instant>,
    /// How the last instance that failed ended ("exit status 3"), for the
    /// requests refused while it waits to be started again.
    last_exit: Option<String>,
    /// Request time (µs) reported since the last smoothing.
    conn_micros: u64,
    smooth: f64,
}

impl App {
    /// An application whose last instance failed waits for -restart-delay
    /// before it is started again (`at`): a request does not wait with it,
    /// it is refused now with how the instance ended (503 at once).
    fn refused_while_failed(&self, at: Instant, now: Instant) -> Option<StartAnswer> {
        self.why_failed(Some(at), now).map(StartAnswer::Refused)
    }

    /// How its last instance ended when it failed, and when it is started
    /// again (`at`).
    fn why_failed(&self, at: Option<Instant>, now: Instant) -> Option<String> {
        let why = self.last_exit.as_ref().filter(|_| self.failures > 0)?;
        Some(match at {
            Some(at) => format!(
                "it {why} when it was started; it is started again in {} s",
                at.saturating_duration_since(now).as_secs().max(1)
            ),
            None => format!("it {why} when it was started"),
        })
    }

    /// Starts are refused until `until` after too many failed runs.
    fn backed_off(&self, until: Instant, now: Instant) -> String {
        format!(
            "it failed to start {} times; starts are refused for {} more seconds",
            self.failures,
            until.saturating_duration_since(now).as_secs()
        )
    }

    fn live(&self) -> usize {
        self.instances.iter().filter(|i| !i.dying).count()
    }
}

/// What the manager should do after a call.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// Start one instance of these paths now.
    pub start: Vec<Vec<u8>>,
    /// SIGTERM these instances.
    pub kill: Vec<i32>,
    /// Close the listening socket of these paths (no instance left).
    pub close: Vec<Vec<u8>>,
    /// Warn-level log lines.
    pub log: Vec<String>,
}

/// One dynamic application as the status page shows it.
#[derive(Debug)]
pub struct Snapshot {
    /// Its key (path, and identity after a NUL).
    pub key: Vec<u8>,
    /// Running instances: pid and start.
    pub instances: Vec<(i32, Instant)>,
    /// Failed runs counted toward the back-off.
    pub failures: u32,
    /// Whether starts are refused now.
    pub backed_off: bool,
}

/// The answer to a worker's Start.
#[derive(Debug, PartialEq, Eq)]
pub enum StartAnswer {
    /// An instance is running or has just been started.
    Ready,
    /// A start is scheduled at this time; answer then.
    Later(Instant),
    /// No instance will come; tell the worker why.
    Refused(String),
}

/// All dynamic applications.
#[derive(Debug)]
pub struct Dynamic {
    opts: DynamicOptions,
    apps: HashMap<Vec<u8>, App>,
    /// When the kill policy last ran.
    epoch: Instant,
    last_update: Instant,
}

/// The path of an application key (which may carry an identity after a NUL).
fn show(key: &[u8]) -> String {
    let path = key.split(|&b| b == 0).next().unwrap_or(key);
    String::from_utf8_lossy(path).into_owned()
}

impl Dynamic {
    /// No applications yet.
    pub fn new(opts: DynamicOptions, now: Instant) -> Self {
        Dynamic { opts, apps: HashMap::new(), epoch: now, last_update: now }
    }

    fn total(&self) -> usize {
        self.apps.values().map(|a| a.instances.len()).sum()
    }

    fn secs(n: u32) -> Duration {
        Duration::from_secs(n.into())
    }

    /// A worker found no instance listening for `path`.
    pub fn start(&mut self, path: &[u8], now: Instant, actions: &mut Actions) -> StartAnswer {
        let total = self.total();
        let restart_delay = Self::secs(self.opts.spawn.restart_delay);
        let app = self.apps.entry(path.to_vec()).or_default();
        if app.live() > 0 {
            return StartAnswer::Ready;
        }
        if let Some(until) = app.backoff_until {
            if now < until {
                return StartAnswer::Refused(app.backed_off(until, now));
            }
            app.backoff_until = None;
            app.failures = MAX_FAILED_STARTS;
        }
        if let Some(at) = app.pending {
            return app.refused_while_failed(at, now).unwrap_or(StartAnswer::Later(at));
        }
        if total + 1 > self.opts.max_processes as usize {
            let msg = format!(
                "FastCGI: can't schedule the start of another (dynamic) server \"{}\" process: exceeded dynamicMaxProcs ({})",
                show(path),
                self.opts.max_processes
            );
            actions.log.push(msg);
            return StartAnswer::Refused(format!("exceeded dynamicMaxProcs ({})", self.opts.max_processes));
        }
        // A failed application is restarted no sooner than -restart-delay.
        let due = match app.last_start {
            Some(t) if app.failures > 0 => (t + restart_delay).max(now),
            _ => now,
        };
        if due <= now {
            actions.start.push(path.to_vec());
            StartAnswer::Ready
        } else {
            app.pending = Some(due);
            app.refused_while_failed(due, now).unwrap_or(StartAnswer::Later(due))
        }
    }

    /// Why a request to `path` is refused now, changing nothing: no
    /// instance runs and the last one failed (how it ended, and when it is
    /// started again), or starts are backed off. None otherwise. Asked when
    /// an instance went away without answering a request.
    pub fn refusal(&self, path: &[u8], now: Instant) -> Option<String> {
        let app = self.apps.get(path).filter(|a| a.live() == 0 && a.failures > 0)?;
        if let Some(until) = app.backoff_until.filter(|&until| now < until) {
            return Some(app.backed_off(until, now));
        }
        let restart_delay = Self::secs(self.opts.spawn.restart_delay);
        let due = app.pending.or_else(|| app.last_start.map(|t| t + restart_delay));
        app.why_failed(due.filter(|&at| at > now), now)
    }

    /// How the last failed instance of `path` ended, when one did.
    pub fn last_exit(&self, path: &[u8]) -> Option<&str> {
        self.apps.get(path).and_then(|a| a.last_exit.as_deref())
    }

    /// Records how an instance of `path` that failed ended.
    pub fn set_last_exit(&mut self, path: &[u8], how: String) {
        if let Some(app) = self.apps.get_mut(path) {
            app.last_exit = Some(how);
        }
    }

    /// A request waited `-startDelay` for `path`: another instance, if the
    /// caps allow.
    pub fn more(&mut self, path: &[u8], now: Instant, actions: &mut Actions) {
        let total = self.total();
        let init_delay = Self::secs(self.opts.spawn.init_start_delay);
        let (max_class, max_total) = (self.opts.max_class_processes as usize, self.opts.max_processes as usize);
        let Some(app) = self.apps.get_mut(path) else { return };
        if app.pending.is_some() || app.instances.len() >= max_class {
            return;
        }
        if total + 1 > max_total {
            actions.log.push(format!(
                "FastCGI: can't schedule the start of another (dynamic) server \"{}\" process: exceeded dynamicMaxProcs ({max_total})",
                show(path)
            ));
            return;
        }
        if app.instances.len() + 1 == max_class {
            actions.log.push(format!(
                "FastCGI: scheduled the start of the last (dynamic) server \"{}\" process: reached dynamicMaxClassProcs ({max_class})",
                show(path)
            ));
        }
        let due = app.last_start.map_or(now, |t| (t + init_delay).max(now));
        if due <= now {
            actions.start.push(path.to_vec());
        } else {
            app.pending = Some(due);
        }
    }

    /// A request to `path` took `micros`.
    pub fn done(&mut self, path: &[u8], micros: u64) {
        if let Some(app) = self.apps.get_mut(path) {
            app.conn_micros = app.conn_micros.saturating_add(micros);
        }
    }

    /// The manager started `pid` for `path`.
    pub fn started(&mut self, path: &[u8], pid: i32, now: Instant) {
        let app = self.apps.entry(path.to_vec()).or_default();
        app.instances.push(Instance { pid, started: now, dying: false });
        app.last_start = Some(now);
        app.pending = None;
    }

    /// Starting `path` failed (fork or socket): counts as a failed run.
    pub fn start_failed(&mut self, path: &[u8], now: Instant, actions: &mut Actions) {
        let min_life = Self::secs(self.opts.spawn.min_server_life);
        let app = self.apps.entry(path.to_vec()).or_default();
        app.pending = None;
        app.last_start = Some(now);
        Self::failed(app, path, min_life, now, actions);
    }

    fn failed(app: &mut App, path: &[u8], min_life: Duration, now: Instant, actions: &mut Actions) {
        app.failures += 1;
        if app.failures > MAX_FAILED_STARTS && app.backoff_until.is_none() {
            app.backoff_until = Some(now + BACKOFF);
            actions.log.push(format!(
                "FastCGI: (dynamic) server \"{}\" has failed to remain running for {} seconds given {} attempts, its restart interval has been backed off to {} seconds",
                show(path),
                min_life.as_secs(),
                app.failures,
                BACKOFF.as_secs()
            ));
        }
    }

    /// `pid` exited; returns its path if it was ours. Instances the policy
    /// stopped are simply gone; others count as failures when they die
    /// young or with a non-zero status, and are restarted with `-restart`.
    /// When no instance is left, the socket closes, so waiting requests
    /// fail at once and the next request starts a fresh one.
    pub fn exited(&mut self, pid: i32, clean: bool, now: Instant, actions: &mut Actions) -> Option<Vec<u8>> {
        let min_life = Self::secs(self.opts.spawn.min_server_life);
        let restart = self.opts.restart;
        let (path, app) = self.apps.iter_mut().find(|(_, a)| a.instances.iter().any(|i| i.pid == pid))?;
        let pos = app.instances.iter().position(|i| i.pid == pid)?;
        let inst = app.instances.remove(pos);
        if !inst.dying {
            let lived = now.saturating_duration_since(inst.started);
            if !clean || lived < min_life {
                if lived >= min_life {
                    app.failures = 0;
                }
                Self::failed(app, path, min_life, now, actions);
            } else {
                app.failures = 0;
            }
            if restart && app.backoff_until.is_none() && app.pending.is_none() {
                let due = (inst.started + Self::secs(self.opts.spawn.restart_delay)).max(now);
                if due <= now {
                    actions.start.push(path.clone());
                } else {
                    app.pending = Some(due);
                }
            }
        }
        // No instance left: the socket closes, so requests queued on it
        // fail now instead of waiting for the next instance (one after a
        // failure comes only after -restart-delay, and may fail too); the
        // next start makes a new one.
        let failed = !inst.dying && app.failures > 0;
        if app.instances.is_empty() && (app.pending.is_none() || failed) && !actions.start.contains(path) {
            actions.close.push(path.clone());
        }
        Some(path.clone())
    }

    /// Periodic work: due starts, load smoothing, the kill policy. Returns
    /// when it wants to be called again.
    pub fn tick(&mut self, now: Instant, actions: &mut Actions) -> Instant {
        for (path, app) in &mut self.apps {
            if app.pending.is_some_and(|at| at <= now) {
                app.pending = None;
                actions.start.push(path.clone());
            }
        }
        let update = Self::secs(self.opts.update_interval);
        if now.saturating_duration_since(self.last_update) >= update {
            let gain = self.opts.gain;
            for app in self.apps.values_mut() {
                app.smooth = (1.0 - gain) * app.smooth + gain * app.conn_micros as f64;
                app.conn_micros = 0;
            }
            self.last_update = now;
        }
        let kill_interval = Self::secs(self.opts.kill_interval);
        let crowded = self.total() + self.opts.process_slack as usize >= self.opts.max_processes as usize;
        if now.saturating_duration_since(self.epoch) >= kill_interval || crowded {
            self.kill_policy(now, actions);
        }
        let mut next = (self.last_update + update).min(self.epoch + kill_interval);
        for at in self.apps.values().filter_map(|a| a.pending) {
            next = next.min(at);
        }
        next
    }

    fn kill_policy(&mut self, now: Instant, actions: &mut Actions) {
        let elapsed = now.saturating_duration_since(self.epoch).as_micros() as f64;
        let min = self.opts.min_processes as usize;
        let mut remaining = self.total();
        let (single, multi) = (f64::from(self.opts.single_threshold), f64::from(self.opts.multi_threshold));
        for (path, app) in &mut self.apps {
            let running = app.live();
            if running == 0 || remaining <= min {
                continue;
            }
            let conn = if app.smooth > 0.0 { app.smooth } else { app.conn_micros as f64 };
            let load = 100.0 * conn / (running as f64 * elapsed + 1.0);
            let keep = if running == 1 {
                load >= single
            } else {
                // The original's factor uses integer division: 2 for two instances, else 1.
                ((running / (running - 1)) as f64) * load >= multi
            };
            if keep {
                continue;
            }
            if app.pending.take().is_some() {
                continue;
            }
            if let Some(victim) = app.instances.iter_mut().filter(|i| !i.dying).max_by_key(|i| i.started) {
                victim.dying = true;
                actions.kill.push(victim.pid);
                actions.log.push(format!(
                    "FastCGI: (dynamic) server \"{}\" (pid {}) termination signaled",
                    show(path),
                    victim.pid
                ));
                remaining -= 1;
            }
        }
        self.epoch = now;
    }

    /// Whether `path` has an instance that is not being stopped.
    pub fn is_running(&self, path: &[u8]) -> bool {
        self.apps.get(path).is_some_and(|a| a.live() > 0)
    }

    /// Whether `path` has no instance and none coming (its last start
    /// failed or it is backed off), or only one after -restart-delay
    /// following a failure.
    pub fn is_failed(&self, path: &[u8]) -> bool {
        self.apps
            .get(path)
            .is_some_and(|a| a.live() == 0 && a.failures > 0 && (a.pending.is_none() || a.last_exit.is_some()))
    }

    /// For the status page, every application, sorted by key.
    pub fn snapshot(&self) -> Vec<Snapshot> {
        let now = Instant::now();
        let mut out: Vec<_> = self
            .apps
            .iter()
            .map(|(key, a)| Snapshot {
                key: key.clone(),
                instances: a.instances.iter().filter(|i| !i.dying).map(|i| (i.pid, i.started)).collect(),
                failures: a.failures,
                backed_off: a.backoff_until.is_some_and(|t| t > now),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Pids of every instance.
    pub fn pids(&self) -> Vec<i32> {
        self.apps.values().flat_map(|a| a.instances.iter().map(|i| i.pid)).collect()
    }

    /// Started before `mtime` (`-autoUpdate`): these instances run an old
    /// version of `path`; they are marked dying and returned.
    pub fn outdated(&mut self, path: &[u8], mtime: std::time::SystemTime, now: Instant) -> Vec<i32> {
        let Some(app) = self.apps.get_mut(path) else { return Vec::new() };
        let age = std::time::SystemTime::now().duration_since(mtime).unwrap_or_default();
        let changed_at = now.checked_sub(age).unwrap_or(now);
        let mut old = Vec::new();
        for i in app.instances.iter_mut().filter(|i| !i.dying && i.started <= changed_at) {
            i.dying = true;
            old.push(i.pid);
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DynamicOptions {
        DynamicOptions {
            min_processes: 0,
            max_class_processes: 3,
            max_processes: 4,
            process_slack: 1,
            ..DynamicOptions::default()
        }
    }

    #[test]
    fn start_on_demand_then_ready() {
        let t = Instant::now();
        let mut d = Dynamic::new(opts(), t);
        let mut a = Actions::default();
        assert_eq!(d.start(b"/a", t, &mut a), StartAnswer::Ready);
        assert_eq!(a.start, [b"/a".to_vec()]);
        d.started(b"/a", 10, t);
        let mut a = Actions::default();
        assert_eq!(d.start(b"/a", t, &mut a), StartAnswer::Ready);
        assert!(a.start.is_empty());
    }

    #[test]
    fn more_respects_class_and_global_caps() {
        let t = Instant::now();
        let mut d = Dynamic::new(
            DynamicOptions {
                spawn: crate::config::SpawnOptions { init_start_delay: 0, ..Default::default() },
                ..opts()
            },
            t,
        );
        let mut a = Actions::default();
        d.start(b"/a", t, &mut a);
        d.started(b"/a", 1, t);
        for pid in 2..10 {
            let mut a = Actions::default();
            d.more(b"/a", t, &mut a);
            for _ in a.start {
                d.started(b"/a", pid, t);
            }
        }
        assert_eq!(d.pids().len(), 3, "never above -maxClassProcesses");
        let mut a = Actions::default();
        d.start(b"/b", t, &mut a);
        d.started(b"/b", 20, t);
        let mut a = Actions::default();
        assert!(matches!(d.start(b"/c", t, &mut a), StartAnswer::Refused(_)));
        assert!(a.log[0].contains("exceeded dynamicMaxProcs (4)"));
    }

    #[test]
    fn idle_instances_are_killed_youngest_first_down_to_one() {
        let t = Instant::now();
        let o =
            DynamicOptions { kill_interval: 10, update_interval: 10, process_slack: 1, max_processes: 50, ..opts() };
        let mut d = Dynamic::new(o, t);
        for (pid, age) in [(1, 0), (2, 1), (3, 2)] {
            d.started(b"/a", pid, t + Duration::from_secs(age));
        }
        let mut a = Actions::default();
        d.tick(t + Duration::from_secs(10), &mut a);
        assert_eq!(a.kill, [3], "youngest first");
        assert!(a.log[0].contains("(pid 3) termination signaled"));
        let mut a = Actions::default();
        assert_eq!(d.exited(3, false, t + Duration::from_secs(11), &mut a), Some(b"/a".to_vec()));
        assert!(a.start.is_empty() && a.close.is_empty());
        let mut a = Actions::default();
        d.tick(t + Duration::from_secs(20), &mut a);
        assert_eq!(a.kill, [2]);
        d.exited(2, false, t + Duration::from_secs(21), &mut Actions::default());
        let mut a = Actions::default();
        d.tick(t + Duration::from_secs(30), &mut a);
        assert!(a.kill.is_empty(), "singleThreshold 0 keeps the last instance");
    }

    #[test]
    fn busy_instances_are_kept() {
        let t = Instant::now();
        let o = DynamicOptions { kill_interval: 10, update_interval: 100, ..opts() };
        let mut d = Dynamic::new(o, t);
        d.started(b"/a", 1, t);
        d.started(b"/a", 2, t);
        d.done(b"/a", 15_000_000);
        let mut a = Actions::default();
        d.tick(t + Duration::from_secs(10), &mut a);
        assert!(a.kill.is_empty(), "{a:?}");
    }

    #[test]
    fn crashing_app_closes_its_socket_and_is_backed_off() {
        let mut t = Instant::now();
        let o =
            DynamicOptions { spawn: crate::config::SpawnOptions { restart_delay: 0, ..Default::default() }, ..opts() };
        let mut d = Dynamic::new(o, t);
        for pid in 1..=4 {
            let mut a = Actions::default();
            assert_eq!(d.start(b"/x", t, &mut a), StartAnswer::Ready);
            d.started(b"/x", pid, t);
            t += Duration::from_millis(100);
            let mut a = Actions::default();
            d.exited(pid, false, t, &mut a);
            assert_eq!(a.close, [b"/x".to_vec()]);
            if pid == 4 {
                assert!(a.log[0].contains("backed off to 600 seconds"), "{a:?}");
            }
        }
        assert!(
            matches!(d.start(b"/x", t, &mut Actions::default()), StartAnswer::Refused(r) if r.contains("failed to start 4 times"))
        );
    }

    #[test]
    fn a_failed_app_says_why_without_being_started_and_closes_its_socket() {
        let t = Instant::now();
        for restart in [false, true] {
            let spawn = crate::config::SpawnOptions { restart_delay: 2, ..Default::default() };
            let mut d = Dynamic::new(DynamicOptions { spawn, restart, ..opts() }, t);
            assert_eq!(d.refusal(b"/x", t), None, "unknown");
            d.start(b"/x", t, &mut Actions::default());
            d.started(b"/x", 1, t);
            assert_eq!(d.refusal(b"/x", t), None, "running");
            let died = t + Duration::from_millis(10);
            let mut a = Actions::default();
            d.exited(1, false, died, &mut a);
            d.set_last_exit(b"/x", "exited with status 3".into());
            // Requests queued on its socket fail now, with -restart too.
            assert_eq!(a.close, [b"/x".to_vec()], "restart {restart}");
            assert!(a.start.is_empty());
            let why = d.refusal(b"/x", died).expect("a refusal");
            assert_eq!(why, "it exited with status 3 when it was started; it is started again in 1 s");
            // Asking changed nothing: no start, and Start refuses the same way.
            let mut a = Actions::default();
            assert_eq!(d.start(b"/x", died, &mut a), StartAnswer::Refused(why));
            assert!(a.start.is_empty());
            // After -restart-delay it is started again: no wait to tell.
            let later = t + Duration::from_secs(3);
            assert_eq!(d.refusal(b"/x", later).as_deref(), Some("it exited with status 3 when it was started"));
        }
    }

    #[test]
    fn a_clean_exit_with_restart_keeps_the_socket() {
        let t = Instant::now();
        let o = DynamicOptions { restart: true, ..opts() };
        let mut d = Dynamic::new(o, t);
        d.started(b"/x", 1, t);
        let mut a = Actions::default();
        d.exited(1, true, t + Duration::from_secs(100), &mut a);
        assert_eq!(a.start, [b"/x".to_vec()]);
        assert!(a.close.is_empty());
        assert_eq!(d.refusal(b"/x", t + Duration::from_secs(100)), None);
    }
}
