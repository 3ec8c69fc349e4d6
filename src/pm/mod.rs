//! The process manager (`fcgi-pm`): a process forked from Apache's parent at
//! post-config that runs the static applications (FastCgiServer) on sockets
//! it creates, starts dynamic applications on demand for Apache's workers
//! (over [`control`]), and stops them all when Apache stops.
//!
//! Lifecycle, better than the original's:
//! - stop (SIGTERM from Apache's parent): SIGTERM to every application,
//!   SIGKILL after [`STOP_GRACE`], sockets unlinked, nothing left behind;
//! - restart or graceful restart (SIGUSR1, "retire"): the next generation's
//!   manager has already taken over the socket paths; this one starts nothing
//!   more, leaves its applications serving the requests they have for the
//!   longest `-idle-timeout`, then stops them without touching the sockets;
//! - Apache's parent gone: as stop.

pub mod control;
mod dynamic;
mod policy;
mod status;
mod unix;
mod upkeep;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use status::{html_escape, json_str};
pub use unix::Identity;

use crate::config::{AppOptions, Config, DynamicOptions, Server};
use crate::log::Level;
use crate::transport::Endpoint;
use dynamic::{Actions, Dynamic, StartAnswer};
use policy::{Exit, StaticApp};

/// How long applications get between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// The longest sleep between checks that Apache's parent is alive.
const TICK: Duration = Duration::from_secs(1);
/// How long a worker's Start may wait for a delayed start.
const START_WAIT: Duration = Duration::from_secs(60);

/// The directory of dynamic applications' sockets and of the control socket.
pub fn dynamic_dir(config: &Config) -> PathBuf {
    config.ipc_dir.join("dynamic")
}

/// One static application under management.
struct StaticEntry<'c> {
    server: &'c Server,
    schedule: StaticApp,
    spec: unix::SpawnSpec,
    listener: Option<OwnedFd>,
}

/// A dynamic application's path and the uid/gid it runs as.
type Class = (String, Option<(u32, u32)>);

/// Dynamic applications: the policy, their sockets, and workers waiting for
/// a start.
struct OnDemand {
    policy: Dynamic,
    opts: DynamicOptions,
    dir: PathBuf,
    wrapper: Option<PathBuf>,
    /// Path and identity of each application key ([`control::class_key`]).
    classes: HashMap<Vec<u8>, Class>,
    control: OwnedFd,
    listeners: HashMap<Vec<u8>, OwnedFd>,
    waiters: Vec<(OwnedFd, Vec<u8>, Instant)>,
}

/// Runs the manager until Apache stops it; returns the exit code.
/// `identity` is Apache's User/Group when started as root: sockets are
/// given to it and the manager becomes it. `log` writes to the main error
/// log.
pub fn run(config: &Config, identity: Option<Identity>, parent: libc::pid_t, log: &dyn Fn(Level, &str)) -> i32 {
    unix::become_manager();
    unix::die_with_parent();
    let signals = match unix::signal_fd() {
        Ok(fd) => fd,
        Err(e) => {
            log(Level::Alert, &format!("FastCGI: process manager exiting, signalfd() failed: {e}"));
            return 1;
        }
    };
    let mut statics = Vec::new();
    for server in &config.servers {
        let Some(spawn) = &server.spawn else { continue };
        // SAFETY: getuid/getgid cannot fail.
        let own = identity.as_ref().map_or_else(|| unsafe { (libc::getuid(), libc::getgid()) }, |a| (a.uid, a.gid));
        let wrapped = match run_as(config, &server.options, own) {
            Ok(w) => w,
            Err(msg) => {
                log(Level::Crit, &format!("FastCGI: can't start server \"{}\": {msg}", server.path));
                continue;
            }
        };
        let wrapper = config.wrapper.as_deref().zip(wrapped).map(|(w, (uid, gid))| (w, uid, gid));
        let spec = match unix::SpawnSpec::new(&server.path, &spawn.initial_env, spawn.priority, wrapper) {
            Ok(spec) => spec,
            Err(e) => {
                log(Level::Crit, &format!("FastCGI: can't start server \"{}\": {e}", server.path));
                continue;
            }
        };
        let listener = match open_listener(server, spawn.listen_queue_depth, config, identity.as_ref()) {
            Ok(fd) => Some(fd),
            Err(msg) => {
                log(Level::Crit, &msg);
                None
            }
        };
        statics.push(StaticEntry { server, schedule: StaticApp::new(spawn), spec, listener });
    }
    let dir = dynamic_dir(config);
    let dirs_ok = unix::ensure_dir(&config.ipc_dir, identity.as_ref())
        .and_then(|()| unix::ensure_dir(&dir, identity.as_ref()))
        .map_err(|e| {
            log(
                Level::Error,
                &format!("FastCGI: can't create \"{}\": {e}; dynamic servers are disabled", dir.display()),
            )
        })
        .is_ok();
    if let Some(id) = &identity {
        if let Err(why) = unix::drop_privileges(id, config.wrapper.is_some()) {
            log(Level::Alert, &format!("FastCGI: process manager exiting, {why}"));
            return 1;
        }
        // A change of credentials clears the parent-death signal.
        unix::die_with_parent();
    }
    let on_demand = dirs_ok
        .then(|| {
            unix::clear_dir(&dir);
            match control::listen(&dir.join(control::CONTROL_NAME)) {
                Ok(control) => Some(OnDemand {
                    policy: Dynamic::new(config.dynamic.clone(), Instant::now()),
                    opts: config.dynamic.clone(),
                    dir: dir.clone(),
                    wrapper: config.wrapper.clone(),
                    classes: HashMap::new(),
                    control,
                    listeners: HashMap::new(),
                    waiters: Vec::new(),
                }),
                Err(e) => {
                    log(
                        Level::Error,
                        &format!("FastCGI: can't listen in \"{}\": {e}; dynamic servers are disabled", dir.display()),
                    );
                    None
                }
            }
        })
        .flatten();
    log(Level::Notice, &format!("FastCGI: process manager initialized (pid {})", std::process::id()));
    let upkeep = upkeep::start(config, log);
    let rc = Manager { statics, on_demand, signals, log }.serve(parent);
    if let Some(pid) = upkeep {
        upkeep::stop(pid);
    }
    rc
}

/// The uid/gid a server runs as under a FastCgiWrapper (`-user`, `-group`;
/// a missing one is Apache's): None when that is Apache's own identity
/// (no wrapper needed) or no wrapper is set. Requests are matched on it too.
pub fn run_as(config: &Config, options: &AppOptions, own: (u32, u32)) -> Result<Option<(u32, u32)>, String> {
    if config.wrapper.is_none() || (options.user.is_none() && options.group.is_none()) {
        return Ok(None);
    }
    let uid = match &options.user {
        Some(u) => unix::lookup_id(u, false).ok_or_else(|| format!("can't get uid for -user {u}"))?,
        None => own.0,
    };
    let gid = match &options.group {
        Some(g) => unix::lookup_id(g, true).ok_or_else(|| format!("can't get gid for -group {g}"))?,
        None => own.1,
    };
    if uid == 0 || gid == 0 {
        return Err("invalid uid or gid, see the -user and -group options".into());
    }
    Ok(((uid, gid) != own).then_some((uid, gid)))
}

fn open_listener(server: &Server, backlog: u32, config: &Config, owner: Option<&Identity>) -> Result<OwnedFd, String> {
    if let Endpoint::Unix(path) = &server.endpoint {
        if path.parent() == Some(config.ipc_dir.as_path()) {
            unix::ensure_dir(&config.ipc_dir, owner)
                .map_err(|e| format!("FastCGI: can't create FastCgiIpcDir \"{}\": {e}", config.ipc_dir.display()))?;
        }
    }
    unix::listen(&server.endpoint, backlog, owner).map_err(|e| {
        let what = match &server.endpoint {
            Endpoint::Unix(p) => format!("bind() failed [{}]", p.display()),
            Endpoint::Tcp { spec, .. } => format!("bind() failed [{spec}]"),
        };
        format!("FastCGI: can't create server \"{}\": {what}: {e}", server.path)
    })
}

/// Whether Apache's parent is gone (we were re-parented).
fn orphaned(parent: libc::pid_t) -> bool {
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

struct Manager<'c, 'l> {
    statics: Vec<StaticEntry<'c>>,
    on_demand: Option<OnDemand>,
    signals: OwnedFd,
    log: &'l dyn Fn(Level, &str),
}

/// What the main loop was told to do.
enum Next {
    Serve,
    Stop,
    Retire,
}

impl Manager<'_, '_> {
    fn serve(&mut self, parent: libc::pid_t) -> i32 {
        loop {
            let now = Instant::now();
            let mut wake = self.start_statics(now);
            if let Some(w) = self.tick_dynamic(now) {
                wake = Some(wake.map_or(w, |x| x.min(w)));
            }
            let timeout = wake.map_or(TICK, |w| w.saturating_duration_since(Instant::now()).min(TICK));
            let mut fds = vec![self.signals.as_raw_fd()];
            if let Some(od) = &self.on_demand {
                fds.push(od.control.as_raw_fd());
            }
            let ready = unix::wait_readable(&fds, timeout);
            let mut next = Next::Serve;
            if ready.contains(&0) {
                for sig in unix::take_signals(&self.signals) {
                    match sig {
                        libc::SIGUSR1 => next = Next::Retire,
                        libc::SIGTERM | libc::SIGINT | libc::SIGHUP => next = Next::Stop,
                        _ => {}
                    }
                }
            }
            self.reap_all();
            if ready.contains(&1) {
                self.serve_control();
            }
            self.publish();
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
                    Ok(pid) => {
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
            let _ = std::fs::remove_file(control::socket_path(&od.dir, &path));
        }
        for path in actions.start {
            let now = Instant::now();
            let shown =
                od.classes.get(&path).map_or_else(|| String::from_utf8_lossy(&path).into_owned(), |c| c.0.clone());
            let started =
                od.start(&path).map_err(|e| format!("FastCGI: can't start (dynamic) server \"{shown}\": {e}"));
            match started {
                Ok(pid) => {
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
            let Some(packet) = unix::recv_packet(&conn, control::MAX_MESSAGE, Duration::from_millis(200)) else {
                continue;
            };
            let Some(req) = control::Request::decode(&packet) else {
                (self.log)(Level::Error, "FastCGI: bogus message from a worker, ignored");
                continue;
            };
            if let control::Op::Status | control::Op::StatusHtml = req.op {
                let pid = std::process::id();
                let doc = match req.op {
                    control::Op::StatusHtml => status::html(pid, &self.status()),
                    _ => status::json(pid, &self.status()),
                };
                unix::send_packet(&conn, &control::encode_reply(Ok(doc.as_bytes())));
                continue;
            }
            let now = Instant::now();
            let mut actions = Actions::default();
            let Some(od) = self.on_demand.as_mut() else { return };
            if req.identity.is_some_and(|(uid, gid)| uid == 0 || gid == 0) {
                let why = "FastCGI never runs an application as root".to_string();
                unix::send_packet(&conn, &control::encode_reply(Err(&why)));
                continue;
            }
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
                control::Op::Start => Some(od.policy.start(&key, now, &mut actions)),
                // Answered above.
                control::Op::Status | control::Op::StatusHtml => None,
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
                            let _ = std::fs::remove_file(control::socket_path(&od.dir, &key));
                        }
                    }
                    Some(od.policy.start(&key, now, &mut actions))
                }
            };
            self.apply(actions);
            let Some(od) = self.on_demand.as_mut() else { return };
            if req.op == control::Op::Restart {
                unix::touch(&control::socket_path(&od.dir, &key));
            }
            match answer {
                None => {}
                Some(StartAnswer::Refused(why)) => unix::send_packet(&conn, &control::encode_reply(Err(&why))),
                Some(_) => od.waiters.push((conn, key, now + START_WAIT)),
            }
        }
        self.answer_waiters(Instant::now());
    }

    /// Answers workers whose application is now listening (or will not be).
    fn answer_waiters(&mut self, now: Instant) {
        let Some(od) = self.on_demand.as_mut() else { return };
        let waiters = std::mem::take(&mut od.waiters);
        for (conn, path, deadline) in waiters {
            let reply = if od.listeners.contains_key(&path) && od.policy.is_running(&path) {
                Ok(())
            } else if od.policy.is_failed(&path) {
                Err("it exited as soon as it started; see the error log".to_string())
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
            let slot = board.app_slot(&a.path, a.identity, a.kind == "dynamic");
            apps.push((slot, a.failures, a.backed_off));
            for (pid, up) in a.instances {
                processes.push((slot, u32::try_from(pid).unwrap_or(0), now.saturating_sub(up)));
            }
        }
        board.publish_processes(std::process::id(), &apps, &processes);
    }

    /// What runs, for the status page.
    fn status(&self) -> Vec<status::AppStatus> {
        let now = Instant::now();
        let up = |list: Vec<(i32, Instant)>| -> Vec<(i32, u64)> {
            list.into_iter().map(|(pid, since)| (pid, now.saturating_duration_since(since).as_secs())).collect()
        };
        let mut apps: Vec<status::AppStatus> = self
            .statics
            .iter()
            .map(|app| status::AppStatus {
                path: app.server.path.clone(),
                kind: "static",
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
                apps.push(status::AppStatus {
                    path,
                    kind: "dynamic",
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
            unix::wait_readable(&[self.signals.as_raw_fd()], left.min(Duration::from_millis(100)));
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
                unix::clear_dir(&od.dir);
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
        for app in &mut self.statics {
            app.listener = None;
        }
        let mut linger = self.statics.iter().map(|a| a.server.options.idle_timeout).max().unwrap_or(0);
        if let Some(od) = &mut self.on_demand {
            od.listeners.clear();
            od.waiters.clear();
            if !od.policy.pids().is_empty() {
                linger = linger.max(od.opts.app.idle_timeout);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(linger.into());
        while Instant::now() < deadline && !self.running().is_empty() {
            let ready = unix::wait_readable(&[self.signals.as_raw_fd()], TICK);
            let stop = !ready.is_empty()
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

impl OnDemand {
    /// Starts one instance of the dynamic application `key`, creating its
    /// socket if it has none; through the wrapper when it has an identity.
    fn start(&mut self, key: &[u8]) -> std::io::Result<libc::pid_t> {
        let unknown = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "unknown application");
        let (path, identity) = self.classes.get(key).ok_or_else(unknown)?;
        if !self.listeners.contains_key(key) {
            let endpoint = Endpoint::Unix(control::socket_path(&self.dir, key));
            let fd = unix::listen(&endpoint, self.opts.spawn.listen_queue_depth, None)?;
            self.listeners.insert(key.to_vec(), fd);
        }
        let wrapper = self.wrapper.as_deref().zip(*identity).map(|(w, (uid, gid))| (w, uid, gid));
        let spec = unix::SpawnSpec::new(path, &self.opts.spawn.initial_env, self.opts.spawn.priority, wrapper)?;
        let listener = self.listeners.get(key).map(|fd| fd.as_raw_fd()).unwrap_or(-1);
        unix::spawn(&spec, listener)
    }
}
