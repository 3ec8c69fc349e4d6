//! The process manager's system calls: listening sockets handed to
//! applications as fd 0, spawning with the FastCGI conventions, privileges,
//! and signals. Nothing here decides policy.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::transport::Endpoint;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a path"))
}

/// Who owns sockets and runs applications when Apache starts as root.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Apache's `User`.
    pub uid: libc::uid_t,
    /// Apache's `Group`.
    pub gid: libc::gid_t,
    /// The user's name, for its supplementary groups.
    pub name: CString,
}

/// A TCP listening socket for a static application, with SO_REUSEADDR on
/// the first configured address (Unix sockets: [`super::dirs::Dir::listen`]).
pub fn listen_tcp(endpoint: &Endpoint, backlog: libc::c_int) -> io::Result<OwnedFd> {
    let Endpoint::Tcp { addrs, .. } = endpoint else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let addr = addrs.first().ok_or_else(|| io::Error::from_raw_os_error(libc::EADDRNOTAVAIL))?;
    // std sets SO_REUSEADDR on Unix before binding.
    let listener = std::net::TcpListener::bind(addr)?;
    let fd = OwnedFd::from(listener);
    // SAFETY: fd is a bound socket we own; re-listen sets our backlog.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

/// The pid and uid of the process at the other end of a Unix socket.
pub fn peer(conn: &OwnedFd) -> Option<(libc::pid_t, libc::uid_t)> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are live and sized for SO_PEERCRED.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some((cred.pid, cred.uid))
}

/// Shuts a listening socket down for everyone holding it: an application
/// blocked in accept() on it gets EINVAL (and libfcgi's loop ends), one
/// busy with a request finds it so when it comes back for the next.
pub fn shut_down(listener: &OwnedFd) {
    // SAFETY: shutdown(2) on a socket we own.
    unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
}

/// The file-system inode `path` names now: recorded when a socket is
/// bound there, to tell later whether the name is still that socket's.
pub fn name_ino(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// Becomes `id`: group, supplementary groups, then user. With
/// `keep_root` (a FastCgiWrapper is set) only the effective uid changes and
/// root stays the real and saved uid, so that applications started under
/// other users can still be signalled, as the original did; applications
/// themselves never keep it (see [`spawn`]).
pub fn drop_privileges(id: &Identity, keep_root: bool) -> Result<(), String> {
    // SAFETY: plain credential system calls with values from httpd's config.
    unsafe {
        if libc::setgid(id.gid) != 0 {
            return Err(format!("setgid({}) failed", id.gid));
        }
        if libc::initgroups(id.name.as_ptr(), id.gid) != 0 {
            return Err(format!("initgroups({},{}) failed", id.name.to_string_lossy(), id.gid));
        }
        let rc = if keep_root { libc::setresuid(u32::MAX, id.uid, 0) } else { libc::setuid(id.uid) };
        if rc != 0 {
            return Err(format!("setuid({}) failed", id.uid));
        }
    }
    Ok(())
}

/// Whether root was kept as the real uid (a wrapper is in use).
fn kept_root() -> bool {
    // SAFETY: getuid/geteuid cannot fail.
    unsafe { libc::getuid() == 0 && libc::geteuid() != 0 }
}

/// A user or group as `-user`/`-group` give it: a name, or `#id`.
pub fn lookup_id(name: &str, group: bool) -> Option<u32> {
    if let Some(n) = name.strip_prefix('#') {
        return n.parse().ok();
    }
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: reentrant lookups into local buffers; results checked before use.
    unsafe {
        if group {
            let mut g: libc::group = mem::zeroed();
            let mut out = std::ptr::null_mut();
            let rc = libc::getgrnam_r(c.as_ptr(), &mut g, buf.as_mut_ptr(), buf.len(), &mut out);
            (rc == 0 && !out.is_null()).then_some(g.gr_gid)
        } else {
            let mut p: libc::passwd = mem::zeroed();
            let mut out = std::ptr::null_mut();
            let rc = libc::getpwnam_r(c.as_ptr(), &mut p, buf.as_mut_ptr(), buf.len(), &mut out);
            (rc == 0 && !out.is_null()).then_some(p.pw_uid)
        }
    }
}

/// Everything a spawn needs, prepared before `fork` so the child only makes
/// system calls.
pub struct SpawnSpec {
    /// What is executed: the application, or the wrapper.
    program: CString,
    argv: Vec<CString>,
    dir: CString,
    env: Vec<CString>,
    priority: libc::c_int,
}

impl SpawnSpec {
    /// The program at `path` (argv[0] is the full path, as the original),
    /// run in its own directory with exactly `env` as its environment. With
    /// `wrapper` (path, uid, gid) the wrapper is executed instead, as
    /// `wrapper uid gid basename` (suexec's argument order).
    pub fn new(path: &str, env: &[String], priority: u32, wrapper: Option<(&Path, u32, u32)>) -> io::Result<Self> {
        let app = Path::new(path);
        let dir = app.parent().unwrap_or(Path::new("/"));
        let (program, argv) = match wrapper {
            None => (cstring(path.as_bytes())?, vec![cstring(path.as_bytes())?]),
            Some((w, uid, gid)) => {
                let base = app.file_name().map(|b| b.as_bytes()).unwrap_or_default();
                let w = cstring(w.as_os_str().as_bytes())?;
                let argv = vec![
                    w.clone(),
                    cstring(uid.to_string().as_bytes())?,
                    cstring(gid.to_string().as_bytes())?,
                    cstring(base)?,
                ];
                (w, argv)
            }
        };
        Ok(SpawnSpec {
            program,
            argv,
            dir: cstring(dir.as_os_str().as_bytes())?,
            env: env.iter().map(|e| cstring(e.as_bytes())).collect::<io::Result<_>>()?,
            priority: priority.min(40) as libc::c_int,
        })
    }
}

/// A pipe for an application's stderr: the read end (non-blocking) and the
/// write end (blocking, as an application expects its stderr), both
/// close-on-exec.
fn stderr_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: fds is a live array of two ints.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: fresh descriptors nobody else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own.
    let flags = check(unsafe { libc::fcntl(read.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok((read, write))
}

/// Starts an application: its own session and process group, cwd its
/// directory, `nice(priority)`, the listening socket on fd 0, stdout and
/// stderr into a pipe whose read end (non-blocking, close-on-exec) is
/// returned with the pid, no other fds, default signals but SIGPIPE
/// ignored, SIGKILL if the manager dies.
pub fn spawn(spec: &SpawnSpec, listener: RawFd) -> io::Result<(libc::pid_t, OwnedFd)> {
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let become_user = kept_root();
    let mut envp: Vec<*const libc::c_char> = spec.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let (stderr, stderr_write) = stderr_pipe()?;
    let err_fd = stderr_write.as_raw_fd();
    // SAFETY: the manager is single-threaded, so the child may run any code;
    // it only makes system calls on data prepared above and then execs or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        // The write end is the child's alone: the pipe ends when it (and
        // what it started) exits.
        drop(stderr_write);
        return Ok((pid, stderr));
    }
    // SAFETY: in the child; every pointer refers to memory prepared before fork.
    unsafe {
        libc::setsid();
        // The manager stops its applications gently; if it is itself killed,
        // they must not outlive it (flup, for one, ignores a lone SIGTERM).
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        let mut none: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        for sig in 1..32 {
            libc::signal(sig, libc::SIG_DFL);
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::chdir(spec.dir.as_ptr());
        if spec.priority != 0 {
            libc::nice(spec.priority);
        }
        // dup2 clears close-on-exec on the copies; the originals go with
        // every other descriptor above 2.
        if err_fd != 2 {
            libc::dup2(err_fd, 2);
        }
        if listener != 0 {
            libc::dup2(listener, 0);
        }
        libc::dup2(2, 1);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        if become_user {
            // The manager kept root as its real uid: the child gives it up
            // (a wrapper must be started by Apache's user anyway).
            let uid = libc::geteuid();
            if libc::setresuid(uid, uid, uid) != 0 {
                libc::_exit(254);
            }
        }
        libc::execve(spec.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        let err = io::Error::last_os_error();
        let msg = format!(
            "FastCGI: can't start server \"{}\" (pid {}), execve() failed: {err}\n",
            spec.program.to_string_lossy(),
            libc::getpid()
        );
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(255);
    }
}

/// Sends `sig` to an application's whole process group (it may have forked
/// workers of its own).
pub fn signal_group(pid: libc::pid_t, sig: libc::c_int) {
    let regain = kept_root();
    // SAFETY: credential switches allowed by the saved uid 0, and kill(2) on
    // a process group we created with setsid.
    unsafe {
        let euid = libc::geteuid();
        if regain {
            libc::seteuid(0);
        }
        if libc::kill(-pid, sig) != 0 {
            libc::kill(pid, sig);
        }
        if regain {
            libc::seteuid(euid);
        }
    }
}

/// A reaped child: its pid and raw wait status.
pub fn reap() -> Option<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    // SAFETY: waitpid with a valid status pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// The signals the manager waits for (blocked, then taken synchronously).
pub fn manager_signals() -> libc::sigset_t {
    // SAFETY: sigset operations on a local set.
    unsafe {
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Forks the process that becomes the manager. Every signal is held over
/// the fork, and the child drops the handlers it inherited before it lets
/// any but the manager's own through: a retire or stop signal sent the
/// moment the manager is born (a restart right after a restart) then waits
/// for [`signal_fd`] instead of running Apache's handler in the child,
/// where it would be lost and leave a manager no generation owns.
pub fn fork_manager() -> io::Result<libc::pid_t> {
    // SAFETY: signal mask and disposition calls on local sets; fork in
    // Apache's parent, which has one thread.
    unsafe {
        let mut all: libc::sigset_t = mem::zeroed();
        let mut old: libc::sigset_t = mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::fork();
        if pid == 0 {
            for sig in 1..libc::SIGRTMIN() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let keep = manager_signals();
            libc::sigprocmask(libc::SIG_SETMASK, &keep, std::ptr::null_mut());
            return Ok(0);
        }
        let err = io::Error::last_os_error();
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            Err(err)
        } else {
            Ok(pid)
        }
    }
}

/// Blocks the manager's signals and makes it the reaper of its
/// applications' orphans.
pub fn become_manager() {
    let set = manager_signals();
    // SAFETY: process-wide settings of a single-threaded process.
    unsafe {
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// SIGTERM when Apache's parent dies (set again after a change of
/// credentials, which clears it).
pub fn die_with_parent() {
    // SAFETY: a process-wide setting.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
}

/// A descriptor that becomes readable when one of [`manager_signals`]
/// arrives (they are blocked, so they queue there).
pub fn signal_fd() -> io::Result<OwnedFd> {
    let set = manager_signals();
    // SAFETY: a new signalfd for a live set; the result is checked.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// The signals queued on `fd` since the last call.
pub fn take_signals(fd: &OwnedFd) -> Vec<libc::c_int> {
    let mut out = Vec::new();
    loop {
        // SAFETY: signalfd_siginfo is plain data; all-zero is valid.
        let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
        let size = mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: info is a live, writable buffer of `size` bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n != size as isize {
            return out;
        }
        out.push(info.ssi_signo as libc::c_int);
    }
}

/// Waits until one of `fds` is readable or `timeout` passes; returns the
/// readable ones (indexes into `fds`).
pub fn wait_readable(fds: &[RawFd], timeout: Duration) -> Vec<usize> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: pfds is a live array of pfds.len() pollfds.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if rc <= 0 {
        return Vec::new();
    }
    pfds.iter().enumerate().filter(|(_, p)| p.revents != 0).map(|(i, _)| i).collect()
}

/// Accepts one connection on `listener` (non-blocking); None when none is
/// waiting.
pub fn accept(listener: &OwnedFd) -> Option<OwnedFd> {
    // SAFETY: accept4 on our listening socket; the result is checked.
    let fd =
        unsafe { libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    // SAFETY: a fresh descriptor nobody else owns.
    (fd >= 0).then(|| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// Receives one packet, waiting at most `timeout` for it.
pub fn recv_packet(fd: &OwnedFd, max: usize, timeout: Duration) -> Option<Vec<u8>> {
    if wait_readable(&[fd.as_raw_fd()], timeout).is_empty() {
        return None;
    }
    let mut buf = vec![0u8; max];
    // SAFETY: buf is a live writable buffer of its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// Sends one packet; errors (the worker gave up) are ignored.
pub fn send_packet(fd: &OwnedFd, packet: &[u8]) {
    // SAFETY: packet is a live buffer of its length.
    unsafe {
        libc::send(fd.as_raw_fd(), packet.as_ptr().cast(), packet.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
    };
}

/// Sets `path`'s modification time to now (`-autoUpdate` compares the
/// application's file with its socket's).
pub fn touch(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(c) = cstring(path.as_os_str().as_bytes()) {
        // SAFETY: c is a valid C path; NULL times mean now.
        unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) };
    }
}

/// The text of a signal number, e.g. "Killed".
pub fn signal_name(sig: libc::c_int) -> String {
    // SAFETY: strsignal returns NULL or a NUL-terminated string.
    let p = unsafe { libc::strsignal(sig) };
    if p.is_null() {
        return format!("signal {sig}");
    }
    // SAFETY: non-NULL and NUL-terminated.
    unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
