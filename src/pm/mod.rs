//! The process manager (`fcgi-pm`): a process forked from Apache's parent at
//! post-config that starts and restarts the static applications
//! (FastCgiServer) on sockets it creates, and stops them when Apache stops.
//!
//! Lifecycle, better than the original's:
//! - stop (SIGTERM from Apache's parent): SIGTERM to every application,
//!   SIGKILL after [`STOP_GRACE`], sockets unlinked, nothing left behind;
//! - restart or graceful restart (SIGUSR1, "retire"): the next generation's
//!   manager has already taken over the socket paths; this one starts nothing
//!   more, leaves its applications serving the requests they have for the
//!   longest `-idle-timeout`, then stops them without touching the sockets;
//! - Apache's parent gone: as stop.

mod policy;
mod unix;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub use policy::{Exit, StaticApp};
pub use unix::Identity;

use crate::config::{Config, Server};
use crate::log::Level;
use crate::transport::Endpoint;

/// How long applications get between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// The longest sleep between checks that Apache's parent is alive.
const TICK: Duration = Duration::from_secs(1);

/// One static application under management.
struct App<'c> {
    server: &'c Server,
    schedule: StaticApp,
    spec: unix::SpawnSpec,
    listener: Option<OwnedFd>,
}

/// Runs the manager until Apache stops it; returns the exit code.
/// `identity` is Apache's User/Group when started as root: sockets are
/// given to it and the manager becomes it. `log` writes to the main error
/// log.
pub fn run(config: &Config, identity: Option<Identity>, parent: libc::pid_t, log: &dyn Fn(Level, &str)) -> i32 {
    unix::become_manager();
    unix::die_with_parent();
    let mut apps = Vec::new();
    for server in &config.servers {
        let Some(spawn) = &server.spawn else { continue };
        let spec = match unix::SpawnSpec::new(&server.path, &spawn.initial_env, spawn.priority) {
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
        apps.push(App { server, schedule: StaticApp::new(spawn), spec, listener });
    }
    if let Some(id) = &identity {
        if let Err(why) = unix::drop_privileges(id) {
            log(Level::Alert, &format!("FastCGI: process manager exiting, {why}"));
            return 1;
        }
        // A change of credentials clears the parent-death signal.
        unix::die_with_parent();
    }
    log(Level::Notice, &format!("FastCGI: process manager initialized (pid {})", std::process::id()));
    let mut manager = Manager { apps, log };
    manager.serve(parent)
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

struct Manager<'c, 'l> {
    apps: Vec<App<'c>>,
    log: &'l dyn Fn(Level, &str),
}

impl Manager<'_, '_> {
    fn serve(&mut self, parent: libc::pid_t) -> i32 {
        loop {
            let wake = self.start_due(Instant::now());
            let timeout = wake.map_or(TICK, |w| w.saturating_duration_since(Instant::now()).min(TICK));
            let signal = unix::wait_signal(timeout);
            self.reap_all();
            let orphaned = orphaned(parent);
            match signal {
                Some(libc::SIGUSR1) => return self.retire(parent),
                Some(libc::SIGTERM | libc::SIGINT | libc::SIGHUP) => return self.stop(true),
                _ if orphaned => {
                    (self.log)(
                        Level::Alert,
                        "FastCGI: the PM is shutting down, Apache seems to have disappeared - bye",
                    );
                    return self.stop(true);
                }
                _ => {}
            }
        }
    }

    /// Starts every instance that is due; returns when the next one is.
    fn start_due(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for app in &mut self.apps {
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

    fn reap_all(&mut self) {
        while let Some((pid, status)) = unix::reap() {
            let now = Instant::now();
            let how = if libc::WIFSIGNALED(status) {
                Exit::Signal { signal: libc::WTERMSIG(status), core: libc::WCOREDUMP(status) }
            } else {
                Exit::Code(libc::WEXITSTATUS(status))
            };
            let Some(app) = self.apps.iter_mut().find_map(|a| a.schedule.exited(pid, now, how).then_some(a)) else {
                continue;
            };
            let path = &app.server.path;
            let line = match how {
                Exit::Code(code) => {
                    format!("FastCGI: server \"{path}\" (pid {pid}) terminated by calling exit with status '{code}'")
                }
                Exit::Signal { signal, core } => format!(
                    "FastCGI: server \"{path}\" (pid {pid}) terminated due to uncaught signal '{signal}' ({}){}",
                    unix::signal_name(signal),
                    if core { ", a core file may have been generated" } else { "" }
                ),
            };
            (self.log)(Level::Warn, &line);
        }
    }

    fn running(&self) -> Vec<libc::pid_t> {
        self.apps.iter().flat_map(|a| a.schedule.pids()).collect()
    }

    /// Waits up to `grace` for every application to exit.
    fn wait_exit(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while !self.running().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            unix::wait_signal(left.min(Duration::from_millis(100)));
            self.reap_all();
        }
    }

    /// Stops every application (SIGTERM, then SIGKILL after the grace) and,
    /// when `own_sockets`, removes the socket files.
    fn stop(&mut self, own_sockets: bool) -> i32 {
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
            for app in &self.apps {
                if let (Endpoint::Unix(path), Some(_)) = (&app.server.endpoint, &app.listener) {
                    let _ = std::fs::remove_file(path);
                }
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
        for app in &mut self.apps {
            app.listener = None;
        }
        let linger = self.apps.iter().map(|a| a.server.options.idle_timeout).max().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(linger.into());
        while Instant::now() < deadline && !self.running().is_empty() {
            let signal = unix::wait_signal(TICK);
            self.reap_all();
            if matches!(signal, Some(libc::SIGTERM | libc::SIGINT | libc::SIGHUP)) || orphaned(parent) {
                break;
            }
        }
        self.stop(false)
    }
}
