//! The manager's main loop: starting static instances when due, the
//! dynamic policy's decisions, workers' requests on the control socket,
//! reaping, the scoreboard's process table, and how it stops or retires.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::dynamic::{Actions, Dynamic, StartAnswer};
use super::policy::{Exit, StaticApp};
use super::{admissible, control, dirs, stderr, unix, START_WAIT, STOP_GRACE, TICK};
use crate::config::{Config, DynamicOptions, Server};
use crate::log::Level;
use crate::transport::Endpoint;

/// One static application under management.
pub(super) struct StaticEntry<'c> {
    pub(super) server: &'c Server,
    pub(super) schedule: StaticApp,
    pub(super) spec: unix::SpawnSpec,
    pub(super) listener: Option<OwnedFd>,
    /// The inode of its socket's name when it was bound (Unix sockets).
    pub(super) name_ino: Option<u64>,
}

/// A dynamic application's path and the uid/gid it runs as.
pub(super) type Class = (String, Option<(u32, u32)>);

/// Dynamic applications: the policy, their sockets, and workers waiting for
/// a start.
pub(super) struct OnDemand {
    pub(super) policy: Dynamic,
    pub(super) opts: DynamicOptions,
    pub(super) dir: dirs::Dir,
    pub(super) wrapper: Option<PathBuf>,
    /// Path and identity of each application key ([`control::class_key`]).
    pub(super) classes: HashMap<Vec<u8>, Class>,
    pub(super) control: OwnedFd,
    /// The inode of the control socket's name when it was bound.
    pub(super) control_ino: u64,
    pub(super) listeners: HashMap<Vec<u8>, OwnedFd>,
    /// The inode of each listener's name when it was bound.
    pub(super) name_inos: HashMap<Vec<u8>, u64>,
    pub(super) waiters: Vec<(OwnedFd, Vec<u8>, Instant)>,
    /// A newer generation owns the socket names now: this manager starts
    /// nothing and removes no socket (the name may be the new one's).
    pub(super) retiring: bool,
}

/// Refused control requests, logged at most once a second.
#[derive(Default)]
pub(super) struct Refusals {
    pub(super) last: Option<Instant>,
    pub(super) quiet: u64,
}

/// Whether Apache's parent is gone (we were re-parented).
pub(super) fn orphaned(parent: libc::pid_t) -> bool {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() != parent }
}

/// Counts a process start of the application `path` on the scoreboard.
fn count_start(path: &str, identity: Option<(u32, u32)>, dynamic: bool) {
    if let Some(board) = crate::metrics::board() {
        board.process_started(board.app_slot(path, identity, dynamic));
    }
}

fn exit_line(kind: &str, path: &str, pid: i32, how: Exit) -> String {
    match how {
        Exit::Code(code) => {
            format!("FastCGI:{kind} server \"{path}\" (pid {pid}) terminated by calling exit with status '{code}'")
        }
        Exit::Signal { signal, core } => format!(
            "FastCGI:{kind} server \"{path}\" (pid {pid}) terminated due to uncaught signal '{signal}' ({}){}",
            unix::signal_name(signal),
            if core { ", a core file may have been generated" } else { "" }
        ),
    }
}

pub(super) struct Manager<'c, 'l> {
    pub(super) config: &'c Config,
    pub(super) statics: Vec<StaticEntry<'c>>,
    pub(super) on_demand: Option<OnDemand>,
    pub(super) signals: OwnedFd,
    pub(super) log: &'l dyn Fn(Level, &str),
    /// Apache's workers' uid: the only caller (besides root) the control
    /// socket answers.
    pub(super) apache_uid: libc::uid_t,
    pub(super) refusals: Refusals,
    /// The stderr of every process it started that has not exited.
    pub(super) stderr: stderr::Pipes,
}

/// What the main loop was told to do.
enum Next {
    Serve,
    Stop,
    Retire,
}

impl Manager<'_, '_> {
    pub(super) fn serve(&mut self, parent: libc::pid_t) -> i32 {
        loop {
            let now = Instant::now();
            let mut wake = self.start_statics(now);
            if let Some(w) = self.tick_dynamic(now) {
                wake = Some(wake.map_or(w, |x| x.min(w)));
            }
            let timeout = wake.map_or(TICK, |w| w.saturating_duration_since(Instant::now()).min(TICK));
            let (signalled, control) = self.wait(true, timeout);
            let mut next = Next::Serve;
            if signalled {
                for sig in unix::take_signals(&self.signals) {
                    match sig {
                        libc::SIGUSR1 => next = Next::Retire,
                        libc::SIGTERM | libc::SIGINT | libc::SIGHUP => next = Next::Stop,
                        _ => {}
                    }
                }
            }
            self.reap_all();
            if control {
                self.serve_control();
            }
            self.publish();
            crate::metrics::reclaim_dead();
            match next {
                Next::Retire => return self.retire(parent),
                Next::Stop => return self.stop(true),
                Next::Serve if orphaned(parent) => {
                    (self.log)(
                        Level::Alert,
                        "FastCGI: the PM is shutting down, Apache seems to have disappeared - bye",
                    );
                    return self.stop(true);
                }
                Next::Serve => {}
            }
        }
    }

    /// Starts every static instance that is due; returns when the next one is.
    fn start_statics(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for app in &mut self.statics {
            let Some(listener) = &app.listener else { continue };
            loop {
                let decision = app.schedule.poll(now, &app.server.path);
                for line in &decision.log {
                    (self.log)(Level::Warn, line);
                }
                if let Some(wake) = decision.wake {
                    next = Some(next.map_or(wake, |n| n.min(wake)));
                }
                let Some(slot) = decision.start else { break };
                match unix::spawn(&app.spec, listener.as_raw_fd()) {
                    Ok((pid, stderr)) => {
                        self.stderr.add(pid, &app.server.path, stderr);
                        count_start(&app.server.path, None, false);
                        let again = if app.schedule.started(slot, pid, now) { "re" } else { "" };
                        (self.log)(
                            Level::Warn,
                            &format!("FastCGI: server \"{}\" {again}started (pid {pid})", app.server.path),
                        );
                    }
                    Err(e) => {
                        app.schedule.start_failed(slot, now);
                        let msg = format!(
                            "FastCGI: can't start server \"{}\": spawn_fs_process() failed: {e}",
                            app.server.path
                        );
                        (self.log)(Level::Crit, &msg);
                    }
                }
            }
        }
        next
    }

    /// Due dynamic starts, smoothing and the kill policy; answers waiting
    /// workers.
    fn tick_dynamic(&mut self, now: Instant) -> Option<Instant> {
        let od = self.on_demand.as_mut()?;
        let mut actions = Actions::default();
        let wake = od.policy.tick(now, &mut actions);
        self.apply(actions);
        self.answer_waiters(now);
        Some(wake)
    }

    /// Carries out the dynamic policy's decisions.
    fn apply(&mut self, actions: Actions) {
        let log = self.log;
        for line in &actions.log {
            log(Level::Warn, line);
        }
        let Some(od) = self.on_demand.as_mut() else { return };
        for pid in actions.kill {
            unix::signal_group(pid, libc::SIGTERM);
        }
        for path in actions.close {
            od.listeners.remove(&path);
            od.name_inos.remove(&path);
            if !od.retiring {
                od.dir.remove_socket(control::socket_name(&path).as_ref());
            }
        }
        if od.retiring {
            return;
        }
        for path in actions.start {
            let now = Instant::now();
            let shown =
                od.classes.get(&path).map_or_else(|| String::from_utf8_lossy(&path).into_owned(), |c| c.0.clone());
            let started =
                od.start(&path).map_err(|e| format!("FastCGI: can't start (dynamic) server \"{shown}\": {e}"));
            match started {
                Ok((pid, stderr)) => {
                    self.stderr.add(pid, &shown, stderr);
                    od.policy.started(&path, pid, now);
                    if let Some((p, identity)) = od.classes.get(&path) {
                        count_start(p, *identity, true);
                    }
                    log(Level::Warn, &format!("FastCGI: (dynamic) server \"{shown}\" started (pid {pid})"));
                }
                Err(msg) => {
                    log(Level::Crit, &msg);
                    let mut more = Actions::default();
                    od.policy.start_failed(&path, now, &mut more);
                    for line in &more.log {
                        log(Level::Warn, line);
                    }
                }
            }
        }
    }

    /// Reads and handles the requests of workers that connected.
    fn serve_control(&mut self) {
        while let Some(conn) = self.on_demand.as_ref().and_then(|od| unix::accept(&od.control)) {
            let peer = unix::peer(&conn);
            if !peer.is_some_and(|(_, uid)| uid == 0 || uid == self.apache_uid) {
                self.refuse(&conn, peer, "only Apache's user may use the control socket");
                continue;
            }
            let Some(packet) = unix::recv_packet(&conn, control::MAX_MESSAGE, Duration::from_millis(200)) else {
                continue;
            };
            let Some(req) = control::Request::decode(&packet) else {
                self.refuse(&conn, peer, "a malformed message");
                continue;
            };
            if req.op == control::Op::Status {
                let doc = control::encode_status(std::process::id(), &self.status());
                unix::send_packet(&conn, &control::encode_reply(Ok(&doc)));
                continue;
            }
            if let Err(why) = admissible(self.config, &req) {
                self.refuse(&conn, peer, &why);
                continue;
            }
            if req.op == control::Op::Why {
                // An instance that just went away is counted first.
                self.reap_all();
                let key = control::class_key(&req.path, req.identity);
                let od = self.on_demand.as_ref();
                let why = od.and_then(|od| od.policy.refusal(&key, Instant::now())).unwrap_or_default();
                unix::send_packet(&conn, &control::encode_reply(Ok(why.as_bytes())));
                continue;
            }
            let now = Instant::now();
            let mut actions = Actions::default();
            let Some(od) = self.on_demand.as_mut() else { return };
            let key = control::class_key(&req.path, req.identity);
            let path = String::from_utf8_lossy(&req.path).into_owned();
            od.classes.entry(key.clone()).or_insert_with(|| (path.clone(), req.identity));
            let answer = match req.op {
                control::Op::More => {
                    od.policy.more(&key, now, &mut actions);
                    None
                }
                control::Op::Done => {
                    od.policy.done(&key, req.micros);
                    None
                }
                control::Op::Start => {
                    // Its socket is gone (removed by hand, or by anyone who
                    // can write the directory): the instances listening on
                    // the old one are unreachable, so they are replaced.
                    let name = control::socket_name(&key);
                    if od.listeners.contains_key(&key) && !od.dir.path().join(&name).exists() {
                        actions
                            .log
                            .push(format!("FastCGI: (dynamic) server \"{path}\" lost its socket, starting it again"));
                        actions.kill.extend(od.policy.outdated(&key, std::time::SystemTime::now(), now));
                        od.listeners.remove(&key);
                        od.name_inos.remove(&key);
                    }
                    Some(od.policy.start(&key, now, &mut actions))
                }
                // Answered above.
                control::Op::Status | control::Op::Why => None,
                control::Op::Restart => {
                    let mtime = std::fs::metadata(&path).and_then(|m| m.modified());
                    if let Ok(mtime) = mtime {
                        let old = od.policy.outdated(&key, mtime, now);
                        if !old.is_empty() {
                            actions.log.push(format!(
                                "FastCGI: restarting old server \"{path}\" processes, newer version found"
                            ));
                            actions.kill.extend(old);
                            // The new version gets a socket of its own: a
                            // request must not reach an old instance that is
                            // about to exit.
                            od.listeners.remove(&key);
                            od.name_inos.remove(&key);
                            od.dir.remove_socket(control::socket_name(&key).as_ref());
                        }
                    }
                    Some(od.policy.start(&key, now, &mut actions))
                }
            };
            self.apply(actions);
            let Some(od) = self.on_demand.as_mut() else { return };
            if req.op == control::Op::Restart {
                unix::touch(&od.dir.path().join(control::socket_name(&key)));
            }
            match answer {
                None => {}
                Some(StartAnswer::Refused(why)) => unix::send_packet(&conn, &control::encode_reply(Err(&why))),
                Some(_) => od.waiters.push((conn, key, now + START_WAIT)),
            }
        }
        self.answer_waiters(Instant::now());
    }

    /// Answers a control request with a refusal and logs it (once a
    /// second at most, with how many were not logged).
    fn refuse(&mut self, conn: &OwnedFd, peer: Option<(libc::pid_t, libc::uid_t)>, why: &str) {
        unix::send_packet(conn, &control::encode_reply(Err(why)));
        let now = Instant::now();
        if self.refusals.last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            self.refusals.quiet += 1;
            return;
        }
        let who = peer.map_or_else(|| "an unknown process".to_string(), |(pid, uid)| format!("pid {pid} (uid {uid})"));
        let more = match std::mem::take(&mut self.refusals.quiet) {
            0 => String::new(),
            n => format!(" ({n} more refused since the last line)"),
        };
        (self.log)(Level::Error, &format!("FastCGI: process manager refused a request from {who}: {why}{more}"));
        self.refusals.last = Some(now);
    }

    /// Answers workers whose application is now listening (or will not be).
    fn answer_waiters(&mut self, now: Instant) {
        let Some(od) = self.on_demand.as_mut() else { return };
        let waiters = std::mem::take(&mut od.waiters);
        for (conn, path, deadline) in waiters {
            let reply = if od.listeners.contains_key(&path) && od.policy.is_running(&path) {
                Ok(())
            } else if od.policy.is_failed(&path) {
                Err(match od.policy.last_exit(&path) {
                    Some(how) => format!("it {how} as soon as it started"),
                    None => "it exited as soon as it started; see the error log".to_string(),
                })
            } else if now >= deadline {
                Err("timed out waiting for it to start".to_string())
            } else {
                od.waiters.push((conn, path, deadline));
                continue;
            };
            let packet = match &reply {
                Ok(()) => control::encode_reply(Ok(b"")),
                Err(why) => control::encode_reply(Err(why)),
            };
            unix::send_packet(&conn, &packet);
        }
    }

    fn reap_all(&mut self) {
        while let Some((pid, status)) = unix::reap() {
            // What it wrote comes before the line saying how it ended.
            self.stderr.exited(pid, self.log);
            let now = Instant::now();
            let how = if libc::WIFSIGNALED(status) {
                Exit::Signal { signal: libc::WTERMSIG(status), core: libc::WCOREDUMP(status) }
            } else {
                Exit::Code(libc::WEXITSTATUS(status))
            };
            if let Some(app) = self.statics.iter_mut().find_map(|a| a.schedule.exited(pid, now, how).then_some(a)) {
                (self.log)(Level::Warn, &exit_line("", &app.server.path, pid, how));
                continue;
            }
            let Some(od) = self.on_demand.as_mut() else { continue };
            let mut actions = Actions::default();
            if let Some(key) = od.policy.exited(pid, how == Exit::Code(0), now, &mut actions) {
                od.policy.set_last_exit(&key, how.describe());
                let shown =
                    od.classes.get(&key).map_or_else(|| String::from_utf8_lossy(&key).into_owned(), |c| c.0.clone());
                (self.log)(Level::Warn, &exit_line(" (dynamic)", &shown, pid, how));
                self.apply(actions);
            }
        }
    }

    /// Writes what runs into the scoreboard (applications' failures and
    /// back-off, the process table), for every Apache child to show.
    fn publish(&self) {
        let Some(board) = crate::metrics::board() else { return };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut apps = Vec::new();
        let mut processes = Vec::new();
        for a in self.status() {
            let slot = board.app_slot(&a.path, a.identity, a.dynamic);
            apps.push((slot, a.failures, a.backed_off));
            for (pid, up) in a.instances {
                processes.push((slot, u32::try_from(pid).unwrap_or(0), now.saturating_sub(up)));
            }
        }
        board.publish_processes(std::process::id(), &apps, &processes);
    }

    /// What runs, for the status page.
    fn status(&self) -> Vec<control::AppStatus> {
        let now = Instant::now();
        let up = |list: Vec<(i32, Instant)>| -> Vec<(i32, u64)> {
            list.into_iter().map(|(pid, since)| (pid, now.saturating_duration_since(since).as_secs())).collect()
        };
        let mut apps: Vec<control::AppStatus> = self
            .statics
            .iter()
            .map(|app| control::AppStatus {
                path: app.server.path.clone(),
                dynamic: false,
                identity: None,
                listening: app.listener.is_some(),
                failures: app.schedule.failures(),
                backed_off: false,
                instances: up(app.schedule.instances()),
            })
            .collect();
        if let Some(od) = &self.on_demand {
            for snap in od.policy.snapshot() {
                let (path, identity) = od.classes.get(&snap.key).cloned().unwrap_or_default();
                apps.push(control::AppStatus {
                    path,
                    dynamic: true,
                    identity,
                    listening: true,
                    failures: snap.failures,
                    backed_off: snap.backed_off,
                    instances: up(snap.instances),
                });
            }
        }
        apps
    }

    /// Waits up to `timeout` for a signal, (with `control`) a worker on
    /// the control socket, or output of an application, and logs that
    /// output; returns whether a signal and a worker are waiting.
    fn wait(&mut self, control: bool, timeout: Duration) -> (bool, bool) {
        let mut fds = vec![self.signals.as_raw_fd()];
        let control = control.then(|| self.on_demand.as_ref().map(|od| od.control.as_raw_fd())).flatten();
        fds.extend(control);
        let first_pipe = fds.len();
        fds.extend(self.stderr.fds());
        let ready = unix::wait_readable(&fds, timeout);
        let pipes: Vec<usize> = ready.iter().filter_map(|i| i.checked_sub(first_pipe)).collect();
        if !pipes.is_empty() {
            self.stderr.pump(&pipes, self.log);
        }
        (ready.contains(&0), control.is_some() && ready.contains(&1))
    }

    fn running(&self) -> Vec<libc::pid_t> {
        let mut pids: Vec<_> = self.statics.iter().flat_map(|a| a.schedule.pids()).collect();
        if let Some(od) = &self.on_demand {
            pids.extend(od.policy.pids());
        }
        pids
    }

    /// Waits up to `grace` for every application to exit.
    fn wait_exit(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while !self.running().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.wait(false, left.min(Duration::from_millis(100)));
            unix::take_signals(&self.signals);
            self.reap_all();
        }
    }

    /// Stops every application (SIGTERM, then SIGKILL after the grace) and,
    /// when `own_sockets`, removes the socket files.
    fn stop(&mut self, own_sockets: bool) -> i32 {
        if let Some(od) = &mut self.on_demand {
            // Restarting anything now would be wrong.
            od.opts.restart = false;
            od.waiters.clear();
        }
        for pid in self.running() {
            unix::signal_group(pid, libc::SIGTERM);
        }
        self.wait_exit(STOP_GRACE);
        for pid in self.running() {
            unix::signal_group(pid, libc::SIGKILL);
        }
        self.wait_exit(Duration::from_secs(2));
        while unix::reap().is_some() {}
        if own_sockets {
            for app in &self.statics {
                if let (Endpoint::Unix(path), Some(_)) = (&app.server.endpoint, &app.listener) {
                    let _ = std::fs::remove_file(path);
                }
            }
            if let Some(od) = &self.on_demand {
                od.dir.clear();
            }
        }
        0
    }

    /// A newer generation took over: serve what is in flight, then stop.
    fn retire(&mut self, parent: libc::pid_t) -> i32 {
        (self.log)(
            Level::Notice,
            &format!(
                "FastCGI: process manager (pid {}) retiring: its servers finish the requests they have, then stop",
                std::process::id()
            ),
        );
        // Its listening sockets, to be shut down once the new generation's
        // have taken their names (with the path each was bound to).
        let mut draining: Vec<(OwnedFd, Option<(PathBuf, u64)>)> = Vec::new();
        for app in &mut self.statics {
            if let Some(fd) = app.listener.take() {
                let name = match (&app.server.endpoint, app.name_ino) {
                    (Endpoint::Unix(p), Some(ino)) => Some((p.clone(), ino)),
                    _ => None,
                };
                draining.push((fd, name));
            }
        }
        let mut linger = self.statics.iter().map(|a| a.server.options.idle_timeout).max().unwrap_or(0);
        if let Some(od) = &mut self.on_demand {
            od.retiring = true;
            for (key, fd) in od.listeners.drain() {
                let name = od.name_inos.remove(&key).map(|ino| (od.dir.path().join(control::socket_name(&key)), ino));
                draining.push((fd, name));
            }
            od.waiters.clear();
            if !od.policy.pids().is_empty() {
                linger = linger.max(od.opts.app.idle_timeout);
            }
        }
        let start = Instant::now();
        let deadline = start + Duration::from_secs(linger.into());
        while Instant::now() < deadline && !self.running().is_empty() {
            if !draining.is_empty() && drained_names(&draining, start) {
                // An application blocked in accept() now fails it and exits;
                // one serving a request finishes it first. So the generation
                // leaves as soon as it has nothing in flight. A name no new
                // generation took (the module was disabled, or the
                // application is no longer defined) goes with it.
                for (fd, name) in draining.drain(..) {
                    if let Some((path, _)) = name.filter(|(p, ino)| names(p, *ino)) {
                        let _ = std::fs::remove_file(path);
                    }
                    unix::shut_down(&fd);
                }
                if let Some(od) = &self.on_demand {
                    let pm = od.dir.path().join(control::CONTROL_NAME);
                    if names(&pm, od.control_ino) {
                        let _ = std::fs::remove_file(pm);
                    }
                }
            }
            let (signalled, _) = self.wait(false, DRAIN_TICK);
            let stop = signalled
                && unix::take_signals(&self.signals)
                    .iter()
                    .any(|s| matches!(*s, libc::SIGTERM | libc::SIGINT | libc::SIGHUP));
            self.reap_all();
            if stop || orphaned(parent) {
                break;
            }
        }
        self.stop(false)
    }
}

/// How often a retiring manager looks at its sockets and applications.
const DRAIN_TICK: Duration = Duration::from_millis(100);
/// How long connections made just before the new generation took a socket
/// name get to be accepted before the old socket is shut down (one still
/// queued then, behind an instance busy for longer, is reset: the price of
/// not keeping a generation for its whole -idle-timeout).
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// The longest a retiring manager waits for the new generation's sockets.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// Whether the sockets being drained may be shut down: each Unix socket's
/// name now belongs to another socket (the new generation's) or to none,
/// and [`DRAIN_GRACE`] has passed since (at the latest [`DRAIN_WAIT`]).
fn drained_names(draining: &[(OwnedFd, Option<(PathBuf, u64)>)], start: Instant) -> bool {
    let waited = start.elapsed();
    if waited >= DRAIN_WAIT {
        return true;
    }
    waited >= DRAIN_GRACE && draining.iter().all(|(_, name)| name.as_ref().is_none_or(|(path, ino)| !names(path, *ino)))
}

/// Whether `path` still names the socket that had inode `ino` when bound.
fn names(path: &std::path::Path, ino: u64) -> bool {
    unix::name_ino(path) == Some(ino)
}

impl OnDemand {
    /// Starts one instance of the dynamic application `key`, creating its
    /// socket if it has none; through the wrapper when it has an identity.
    fn start(&mut self, key: &[u8]) -> std::io::Result<(libc::pid_t, OwnedFd)> {
        let unknown = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "unknown application");
        let (path, identity) = self.classes.get(key).ok_or_else(unknown)?;
        if !self.listeners.contains_key(key) {
            let backlog = self.opts.spawn.listen_queue_depth.min(libc::c_int::MAX as u32) as libc::c_int;
            let (fd, ino) =
                self.dir.listen(control::socket_name(key).as_ref(), backlog, dirs::SocketKind::Application)?;
            self.name_inos.insert(key.to_vec(), ino);
            self.listeners.insert(key.to_vec(), fd);
        }
        let wrapper = self.wrapper.as_deref().zip(*identity).map(|(w, (uid, gid))| (w, uid, gid));
        let spec = unix::SpawnSpec::new(path, &self.opts.spawn.initial_env, self.opts.spawn.priority, wrapper)?;
        let listener = self.listeners.get(key).map(|fd| fd.as_raw_fd()).unwrap_or(-1);
        unix::spawn(&spec, listener)
    }
}
