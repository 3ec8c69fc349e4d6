//! Apache's side of the process manager: fork it from the parent on the real
//! post-config pass, restart it if it dies, and stop or retire it when the
//! configuration it belongs to goes away (stop, restart, graceful restart).

use std::ffi::CString;
use std::os::raw::{c_int, c_void};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ffi::{self, apr_pool_t, server_rec};
use super::log_server;
use crate::config::Config;
use crate::log::Level;
use crate::pm::{self, Identity};

/// The manager of one configuration generation, allocated in its pconf.
#[repr(C)]
struct Handle {
    /// APR's record of the child, for the other-child registration.
    proc_: ffi::apr_proc_t,
    /// Apache's parent: the only process that may act on cleanups.
    parent: libc::pid_t,
    pconf: *mut apr_pool_t,
    server: *mut server_rec,
    /// When the current manager started (after its delay), to tell a
    /// restart loop.
    started: Option<Instant>,
    /// How many managers in a row died sooner than [`MIN_LIFETIME`].
    quick_deaths: u32,
}

/// A manager that dies sooner than this after its start counts as a quick
/// death: the next one waits before it starts, longer each time.
const MIN_LIFETIME: Duration = Duration::from_secs(5);
/// The longest wait before a manager restarted after quick deaths starts.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// The wait before the manager that follows `quick_deaths` quick deaths
/// starts: none after a normal life, then 1 s, 2 s, 4 s ... up to
/// [`MAX_RESTART_DELAY`]. A manager is never left dead: without one no
/// static or dynamic application runs.
fn restart_delay(quick_deaths: u32) -> Duration {
    match quick_deaths {
        0 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 1).min(5)).min(MAX_RESTART_DELAY),
    }
}

/// Starts the process manager: static servers, and dynamic ones on demand.
/// Called from post-config; skips the first (configuration check) pass.
pub(super) fn start(pconf: *mut apr_pool_t, s: *mut server_rec, config: &Arc<Config>) {
    // SAFETY: plain queries of httpd's state.
    let (state, mode) = unsafe {
        (ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as c_int), ffi::ap_state_query(ffi::AP_SQ_RUN_MODE as c_int))
    };
    if state == ffi::AP_SQ_MS_CREATE_PRE_CONFIG as c_int || mode != ffi::AP_SQ_RM_NORMAL as c_int {
        return;
    }
    // SAFETY: pconf is the live configuration pool; the handle lives as long as it.
    let handle = unsafe { ffi::apr_palloc(pconf, std::mem::size_of::<Handle>()) } as *mut Handle;
    if handle.is_null() || handle.align_offset(std::mem::align_of::<Handle>()) != 0 {
        return;
    }
    let value = Handle {
        proc_: ffi::apr_proc_t::default(),
        // SAFETY: getpid cannot fail.
        parent: unsafe { libc::getpid() },
        pconf,
        server: s,
        started: None,
        quick_deaths: 0,
    };
    // SAFETY: handle is fresh, aligned pool memory of Handle's size.
    unsafe { handle.write(value) };
    // SAFETY: just initialised; only Apache's parent uses it, from one thread.
    let h = unsafe { &mut *handle };
    watch_retired(s, pconf);
    if fork_manager(h, config, Duration::ZERO) {
        // SAFETY: the handle outlives pconf's cleanups, which run before the pool's memory goes.
        unsafe {
            ffi::apr_pool_cleanup_register(pconf, handle.cast(), Some(cleanup), Some(ffi::apr_pool_cleanup_null));
        }
    }
}

pub(super) fn identity() -> Option<Identity> {
    // SAFETY: geteuid cannot fail; ap_unixd_config is filled by the User/Group directives.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let cfg = std::ptr::addr_of!(ffi::ap_unixd_config).read();
        let name = super::c_str(cfg.user_name).and_then(|n| CString::new(n).ok())?;
        Some(Identity { uid: cfg.user_id, gid: cfg.group_id, name })
    }
}

/// Forks the manager (which waits `delay` before it starts anything) and
/// registers it; false if the fork failed.
fn fork_manager(h: &mut Handle, config: &Config, delay: Duration) -> bool {
    let identity = identity();
    let server = h.server;
    // Apache's parent has no threads, so the child may run anything.
    let Ok(pid) = pm::fork_manager() else {
        log_server(server, Level::Crit, "FastCGI: can't start the process manager: fork() failed");
        return false;
    };
    if pid == 0 {
        // SAFETY: in the new child: leave Apache's process group (prefork
        // signals it on restarts), take the name users grep for, run, and
        // leave without running Apache's exit handlers.
        unsafe {
            libc::setsid();
            name_process(server);
            // Apache's listening sockets are not the manager's: held open
            // by a retiring one, a disabled module would keep port 80.
            ffi::ap_close_listeners();
        }
        let code = super::guard(1, || {
            pm::run(config, identity, h.parent, delay, &|level, msg| log_server(server, level, msg))
        });
        // SAFETY: _exit skips atexit handlers and pool cleanups that belong to Apache.
        unsafe { libc::_exit(code) };
    }
    h.proc_.pid = pid;
    h.started = Some(Instant::now() + delay);
    // SAFETY: proc_ and the handle live in pconf; the registration is removed
    // by APR when pconf is cleared.
    unsafe {
        ffi::apr_proc_other_child_register(
            &mut h.proc_,
            Some(maintenance),
            (h as *mut Handle).cast(),
            std::ptr::null_mut(),
            h.pconf,
        );
    }
    true
}

/// APR calls this in Apache's parent when the manager dies (it reaps it).
extern "C" fn maintenance(reason: c_int, data: *mut c_void, _status: c_int) {
    super::guard((), || {
        // SAFETY: data is the Handle registered with this callback, alive in pconf.
        let h = unsafe { &mut *(data as *mut Handle) };
        if reason != ffi::APR_OC_REASON_DEATH as c_int && reason != ffi::APR_OC_REASON_LOST as c_int {
            return;
        }
        // SAFETY: the registration being reported is ours.
        unsafe { ffi::apr_proc_other_child_unregister(data) };
        let pid = h.proc_.pid;
        h.proc_.pid = 0;
        // A start in the future (still waiting) counts as no life at all.
        let quick = h.started.is_some_and(|t| Instant::now().saturating_duration_since(t) < MIN_LIFETIME);
        h.quick_deaths = if quick { h.quick_deaths.saturating_add(1) } else { 0 };
        let delay = restart_delay(h.quick_deaths);
        let msg = if delay.is_zero() {
            format!("FastCGI: process manager (pid {pid}) died, starting a new one")
        } else {
            format!(
                "FastCGI: process manager (pid {pid}) died right after starting, starting a new one in {} s",
                delay.as_secs()
            )
        };
        log_server(h.server, Level::Error, &msg);
        if let Some(config) = super::state::active() {
            fork_manager(h, &config, delay);
        }
    })
}

/// Managers of earlier generations that are finishing their last requests
/// ("retired" at a restart), kept across generations in the process pool
/// so that each new generation registers them with APR in its own
/// configuration pool: Apache's parent then reaps them quietly instead of
/// logging "long lost child came home!". The callback lives in this module,
/// so a registration never outlives the generation that loaded it (a
/// configuration without the module reaps them with that warning).
#[repr(C)]
struct Retired {
    pids: [libc::pid_t; RETIRED_SLOTS],
    procs: [ffi::apr_proc_t; RETIRED_SLOTS],
}

const RETIRED_SLOTS: usize = 16;
const RETIRED_KEY: &std::ffi::CStr = c"fastcgi_rs:retired-managers";

/// The process-wide list (made on first use; None if the pool fails us).
fn retired_list(server: *mut server_rec) -> Option<&'static mut Retired> {
    // SAFETY: server is the live main server; its process record and that
    // record's pool live as long as Apache's parent.
    let pool = unsafe { (*(*server).process).pool };
    let mut data: *mut c_void = std::ptr::null_mut();
    // SAFETY: pool is live; data is a valid out-pointer.
    unsafe { ffi::apr_pool_userdata_get(&mut data, RETIRED_KEY.as_ptr(), pool) };
    if data.is_null() {
        // SAFETY: pool is live; the memory lives as long as the pool.
        data = unsafe { ffi::apr_palloc(pool, std::mem::size_of::<Retired>()) };
        if data.is_null() || (data as *mut Retired).align_offset(std::mem::align_of::<Retired>()) != 0 {
            return None;
        }
        // SAFETY: fresh memory of Retired's size; all zeros is a valid Retired.
        unsafe { std::ptr::write_bytes(data as *mut Retired, 0, 1) };
        // SAFETY: as above; APR's own no-op cleanup (no code of this module
        // may be left in a pool that outlives it).
        unsafe {
            ffi::apr_pool_userdata_set(data, RETIRED_KEY.as_ptr(), Some(ffi::apr_pool_cleanup_null), pool);
        }
    }
    // SAFETY: zeroed above or earlier filled Retired memory, used
    // only by Apache's parent from one thread.
    Some(unsafe { &mut *(data as *mut Retired) })
}

/// Adds a manager that retires now to the list.
fn remember_retired(server: *mut server_rec, pid: libc::pid_t) {
    if let Some(list) = retired_list(server) {
        let slot = list.pids.iter().position(|&p| p == 0).unwrap_or(0);
        list.pids[slot] = pid;
    }
}

/// Registers the retired managers still running with APR for this
/// generation (called in Apache's parent at post-config).
fn watch_retired(server: *mut server_rec, pconf: *mut apr_pool_t) {
    let Some(list) = retired_list(server) else { return };
    for i in 0..RETIRED_SLOTS {
        let pid = list.pids[i];
        if pid <= 0 {
            continue;
        }
        let mut status = 0;
        // SAFETY: waitpid on a child of this process, without blocking.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != 0 {
            list.pids[i] = 0;
            continue;
        }
        list.procs[i] = ffi::apr_proc_t { pid, ..Default::default() };
        // SAFETY: the record and the data slot live in the process pool,
        // longer than this registration, which pconf's clearing removes.
        unsafe {
            ffi::apr_proc_other_child_register(
                &mut list.procs[i],
                Some(retired),
                (&mut list.pids[i] as *mut libc::pid_t).cast(),
                std::ptr::null_mut(),
                pconf,
            );
        }
    }
}

/// APR calls this in Apache's parent when a retired manager has exited.
extern "C" fn retired(reason: c_int, data: *mut c_void, _status: c_int) {
    super::guard((), || {
        if reason == ffi::APR_OC_REASON_DEATH as c_int || reason == ffi::APR_OC_REASON_LOST as c_int {
            // SAFETY: the registration being reported is the one watch_retired
            // made, with the list's pid slot as data.
            unsafe {
                ffi::apr_proc_other_child_unregister(data);
                *(data as *mut libc::pid_t) = 0;
            }
        }
    })
}

/// pconf is going away: Apache stops (stop the manager and wait for it) or
/// restarts (tell it to retire and go on: the new generation's manager is
/// about to take over the sockets).
extern "C" fn cleanup(data: *mut c_void) -> ffi::apr_status_t {
    super::guard(0, || {
        // SAFETY: data is the Handle registered with this cleanup.
        let h = unsafe { &mut *(data as *mut Handle) };
        // SAFETY: getpid cannot fail. Workers and the manager inherit pconf
        // and may run its cleanups at exit: only Apache's parent acts.
        if unsafe { libc::getpid() } != h.parent || h.proc_.pid <= 0 {
            return 0;
        }
        let pid = h.proc_.pid;
        // SAFETY: plain query of httpd's state.
        let exiting = unsafe { ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as c_int) } == ffi::AP_SQ_MS_EXITING as c_int;
        if !exiting {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGUSR1) };
            remember_retired(h.server, pid);
            return 0;
        }
        // SAFETY: signalling and reaping our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + pm::STOP_GRACE + Duration::from_secs(3);
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid status pointer.
            let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if rc != 0 {
                break;
            }
            if Instant::now() >= deadline {
                // SAFETY: as above.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        remove_sockets();
        0
    })
}

/// Removes the static servers' socket files: the manager (no longer root)
/// may lack the right to, in a directory only root can write. Only sockets
/// are removed, through [`pm::dirs`] (as Apache's user where that user can
/// write).
fn remove_sockets() {
    let Some(config) = super::state::active() else { return };
    let owner = identity().map(|id| (id.uid, id.gid));
    for server in config.servers.iter().filter(|s| s.spawn.is_some()) {
        if let crate::transport::Endpoint::Unix(path) = &server.endpoint {
            if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
                if let Ok(dir) = pm::dirs::open(parent, owner, false, false, &mut Vec::new()) {
                    dir.remove_socket(name);
                }
            }
        }
    }
}

/// Names the manager `fcgi-pm` for `ps`: the kernel's comm, and the
/// command line rewritten in place as `fcgi-pm <Apache's arguments>`.
///
/// # Safety
/// SAFETY: the caller guarantees this runs in the freshly forked manager only; `s` is the live main server.
unsafe fn name_process(s: *mut server_rec) {
    const NAME: &[u8] = b"fcgi-pm";
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"fcgi-pm".as_ptr()) };
    // The kernel shows the block it laid out at exec; httpd's argv[0] still
    // points at its start (the other arguments may have been copied).
    let Ok(cmdline) = std::fs::read("/proc/self/cmdline") else { return };
    // SAFETY: process and its argv are set up by httpd's main before any hook.
    let Some(process) = (unsafe { (*s).process.as_ref() }) else { return };
    // SAFETY: argv holds argc >= 1 pointers to NUL-terminated strings.
    let argv0 = if process.argc >= 1 && !process.argv.is_null() { unsafe { *process.argv } } else { return };
    let Some(first_len) = cmdline.iter().position(|&b| b == 0) else { return };
    // SAFETY: argv0 is a NUL-terminated string.
    if argv0.is_null() || unsafe { std::ffi::CStr::from_ptr(argv0) }.to_bytes() != &cmdline[..first_len] {
        return;
    }
    // SAFETY: argv0 is the start of the kernel's argument block, which is
    // cmdline.len() bytes long; compare before writing.
    let block = unsafe { std::slice::from_raw_parts_mut(argv0 as *mut u8, cmdline.len()) };
    if block != cmdline.as_slice() {
        return;
    }
    let mut new = NAME.to_vec();
    new.extend_from_slice(&cmdline[first_len..]);
    if new.len() > block.len() {
        return;
    }
    new.resize(block.len(), 0);
    block.copy_from_slice(&new);
}
