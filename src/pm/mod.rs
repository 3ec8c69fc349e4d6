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
pub mod dirs;
mod dynamic;
mod manager;
mod policy;
mod stderr;
mod unix;
mod upkeep;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

pub use unix::{fork_manager, Identity};

use crate::config::{AppOptions, Config, Server};
use crate::log::Level;
use crate::transport::Endpoint;
use dynamic::Dynamic;
use manager::{orphaned, Manager, OnDemand, Refusals, StaticEntry};
use policy::StaticApp;

/// How long applications get between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// The longest sleep between checks that Apache's parent is alive.
const TICK: Duration = Duration::from_secs(1);
/// The control socket's backlog: workers asking at once.
const CONTROL_BACKLOG: libc::c_int = 128;
/// How long a worker's Start may wait for a delayed start.
const START_WAIT: Duration = Duration::from_secs(60);

/// The directory of dynamic applications' sockets and of the control socket.
pub fn dynamic_dir(config: &Config) -> PathBuf {
    config.ipc_dir.join("dynamic")
}

/// Runs the manager until Apache stops it; returns the exit code.
/// `identity` is Apache's User/Group when started as root: sockets are
/// given to it and the manager becomes it. `delay` is how long to wait
/// before starting anything (a manager that keeps dying is restarted with
/// a back-off). `log` writes to the main error log.
pub fn run(
    config: &Config,
    identity: Option<Identity>,
    parent: libc::pid_t,
    delay: Duration,
    log: &dyn Fn(Level, &str),
) -> i32 {
    unix::become_manager();
    unix::die_with_parent();
    let signals = match unix::signal_fd() {
        Ok(fd) => fd,
        Err(e) => {
            log(Level::Alert, &format!("FastCGI: process manager exiting, signalfd() failed: {e}"));
            return 1;
        }
    };
    if !delay.is_zero() && !wait_before_start(&signals, delay, parent) {
        return 0;
    }
    let owner = identity.as_ref().map(|id| (id.uid, id.gid));
    let mut warnings = Vec::new();
    let mut statics = Vec::new();
    for server in &config.servers {
        let Some(spawn) = &server.spawn else { continue };
        // SAFETY: getuid/getgid cannot fail.
        let own = owner.unwrap_or_else(|| unsafe { (libc::getuid(), libc::getgid()) });
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
        let (listener, name_ino) = match open_listener(server, spawn.listen_queue_depth, config, owner, &mut warnings) {
            Ok((fd, ino)) => (Some(fd), ino),
            Err(msg) => {
                log(Level::Crit, &msg);
                (None, None)
            }
        };
        statics.push(StaticEntry { server, schedule: StaticApp::new(spawn), spec, listener, name_ino });
    }
    let ipc_ok = dirs::open(&config.ipc_dir, owner, true, true, &mut warnings)
        .map_err(|e| log(Level::Error, &format!("FastCGI: FastCgiIpcDir: {e}; dynamic servers are disabled")))
        .is_ok();
    if let Some(id) = &identity {
        if let Err(why) = unix::drop_privileges(id, config.wrapper.is_some()) {
            log(Level::Alert, &format!("FastCGI: process manager exiting, {why}"));
            return 1;
        }
        // A change of credentials clears the parent-death signal.
        unix::die_with_parent();
    }
    // From here on the manager is Apache's user: what it creates is that user's.
    let dir = dynamic_dir(config);
    let on_demand = ipc_ok
        .then(|| {
            let opened = dirs::open(&dir, owner, true, true, &mut warnings);
            let control = opened.and_then(|d| {
                d.clear();
                let bound = d.listen(control::CONTROL_NAME.as_ref(), CONTROL_BACKLOG, dirs::SocketKind::Control);
                bound.map(|c| (d, c)).map_err(|e| e.to_string())
            });
            match control {
                Ok((dir, (control, control_ino))) => Some(OnDemand {
                    control_ino,
                    policy: Dynamic::new(config.dynamic.clone(), Instant::now()),
                    opts: config.dynamic.clone(),
                    dir,
                    wrapper: config.wrapper.clone(),
                    classes: HashMap::new(),
                    control,
                    listeners: HashMap::new(),
                    name_inos: HashMap::new(),
                    waiters: Vec::new(),
                    retiring: false,
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
    for w in &warnings {
        log(Level::Warn, w);
    }
    log(Level::Notice, &format!("FastCGI: process manager initialized (pid {})", std::process::id()));
    let upkeep = upkeep::start(config, log);
    // SAFETY: geteuid cannot fail.
    let apache_uid = owner.map_or_else(|| unsafe { libc::geteuid() }, |o| o.0);
    let mut manager = Manager {
        config,
        statics,
        on_demand,
        signals,
        log,
        apache_uid,
        refusals: Refusals::default(),
        stderr: stderr::Pipes::default(),
    };
    let rc = manager.serve(parent);
    if let Some(pid) = upkeep {
        upkeep::stop(pid);
    }
    rc
}

/// Waits `delay` before a restarted manager starts anything; false when
/// it was told to stop (or Apache went away) meanwhile.
fn wait_before_start(signals: &OwnedFd, delay: Duration, parent: libc::pid_t) -> bool {
    let deadline = Instant::now() + delay;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        if !unix::wait_readable(&[signals.as_raw_fd()], left.min(TICK)).is_empty()
            && unix::take_signals(signals)
                .iter()
                .any(|s| matches!(*s, libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGUSR1))
        {
            return false;
        }
        if orphaned(parent) {
            return false;
        }
    }
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

fn open_listener(
    server: &Server,
    backlog: u32,
    config: &Config,
    owner: Option<dirs::Owner>,
    warnings: &mut Vec<String>,
) -> Result<(OwnedFd, Option<u64>), String> {
    let what = match &server.endpoint {
        Endpoint::Unix(p) => format!("bind() failed [{}]", p.display()),
        Endpoint::Tcp { spec, .. } => format!("bind() failed [{spec}]"),
    };
    let failed = |e: String| format!("FastCGI: can't create server \"{}\": {what}: {e}", server.path);
    let backlog = backlog.min(libc::c_int::MAX as u32) as libc::c_int;
    match &server.endpoint {
        Endpoint::Unix(path) => {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(failed("not a socket path".into()));
            };
            // The IPC directory is made if missing; another directory must exist.
            let ipc = parent == config.ipc_dir.as_path();
            let dir = dirs::open(parent, owner, ipc, ipc, warnings).map_err(failed)?;
            let (fd, ino) =
                dir.listen(name, backlog, dirs::SocketKind::Application).map_err(|e| failed(e.to_string()))?;
            Ok((fd, Some(ino)))
        }
        Endpoint::Tcp { .. } => {
            unix::listen_tcp(&server.endpoint, backlog).map(|fd| (fd, None)).map_err(|e| failed(e.to_string()))
        }
    }
}

/// The checks a worker makes before it asks for a dynamic application,
/// made again by the manager: its control socket can be reached by any
/// process of Apache's user (a PHP bug, say), which must get no more from
/// the manager than a request could. What the manager cannot see (the
/// directory's ExecCGI option) stays the worker's; a FastCgiWrapper
/// (suexec) checks the rest again.
fn admissible(config: &Config, req: &control::Request) -> Result<(), String> {
    let path = std::str::from_utf8(&req.path).map_err(|_| "the path is not UTF-8".to_string())?;
    let normal = Path::new(path).components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !path.starts_with('/') || !normal || path.contains("//") || path.ends_with('/') {
        return Err(format!("\"{path}\" is not an absolute, normalised path"));
    }
    match req.identity {
        None if config.find(path).is_some() => {
            return Err(format!("\"{path}\" is a defined server, never started on demand"));
        }
        Some(_) if config.wrapper.is_none() => return Err("an identity was asked for without FastCgiWrapper".into()),
        Some((uid, gid)) if uid == 0 || gid == 0 => return Err("FastCGI never runs an application as root".into()),
        _ => {}
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("stat() of \"{path}\" failed: {e}"))?;
    if !meta.is_file() {
        return Err(format!("\"{path}\" is not a regular file"));
    }
    let c = std::ffi::CString::new(path).map_err(|_| "NUL in the path".to_string())?;
    // SAFETY: c is a valid C path; the check uses the effective ids (Apache's user).
    if unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) } != 0 {
        return Err(format!("\"{path}\" is not executable by the server's user"));
    }
    if let Some((uid, gid)) = req.identity {
        use std::os::unix::fs::MetadataExt;
        if (meta.uid(), meta.gid()) != (uid, gid) {
            return Err(format!(
                "\"{path}\" belongs to {}:{}, not to the {uid}:{gid} asked for (suexec refuses that too)",
                meta.uid(),
                meta.gid()
            ));
        }
    }
    Ok(())
}
