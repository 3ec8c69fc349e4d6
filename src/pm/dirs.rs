//! The directories the module creates things in (`FastCgiIpcDir`, its
//! `dynamic/`, the directory of a static server's `-socket`), and how root
//! works in them without being tricked.
//!
//! The manager and Apache's parent run as root for a while, and Apache's
//! user owns the IPC directory, so any code running as that user (a PHP
//! bug) can swap an entry there for a symbolic link between two calls that
//! name it. A `chmod` or `chown` by path after a `bind` or `mkdir` then
//! lands on whatever the link points at: `/etc/passwd` becomes theirs.
//! So nothing here changes a path that another user can change:
//! - a directory is reached from `/` one component at a time, each opened
//!   with `O_NOFOLLOW` and judged ([`open`]): owned by root or Apache's
//!   user, writable by nobody else (a sticky directory such as `/tmp` is
//!   allowed with a warning), and a symbolic link is followed only where
//!   root alone could have put it;
//! - in a directory only root can write, root acts itself, on the
//!   directory's descriptor (`*at` calls);
//! - anywhere else it acts as Apache's user ([`Dir::act`]: the file-system
//!   uid and gid switched with `setfsuid`/`setfsgid`, umask 0177), so the
//!   kernel gives it exactly that user's rights and the new entries are
//!   that user's without a `chown`.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use crate::config::Config;
use crate::transport::Endpoint;

/// Apache's `User` and `Group` as numbers: who owns what the module
/// creates, and the only user besides root trusted with its directories.
pub type Owner = (libc::uid_t, libc::gid_t);

/// Who can change a directory's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writers {
    /// Root alone: root may act there by name.
    Root,
    /// Apache's user too: act there as that user.
    User,
    /// Everybody, but only their own entries (sticky, like `/tmp`): act as
    /// Apache's user; a name there may be taken first by anyone.
    Sticky,
}

/// An opened directory, judged safe, with the identity that acts in it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    writers: Writers,
    owner: Option<Owner>,
}

/// Sockets are made mode 0600: only their owner (Apache's user) connects.
const SOCKET_UMASK: libc::mode_t = 0o177;

/// Symbolic links followed in one walk before giving up, as the kernel's.
const MAX_LINKS: usize = 40;

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a path"))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn open_at(dir: RawFd, name: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: name is NUL-terminated; the result is checked before use.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
    check(fd)?;
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_fd(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: all-zero is a valid stat; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a live, writable stat.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

fn stat_at(dir: RawFd, name: &CString) -> io::Result<libc::stat> {
    // SAFETY: all-zero is a valid stat; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is live; name is NUL-terminated; nothing is followed.
    check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// Who can change a directory with this `stat`, or why it is not to be
/// trusted. `owner` None: the module runs as one user, who is trusted
/// besides root.
fn judge(st: &libc::stat, owner: Option<Owner>, path: &Path) -> Result<Writers, String> {
    // SAFETY: geteuid/getegid cannot fail.
    let (uid, gid) = owner.unwrap_or_else(|| unsafe { (libc::geteuid(), libc::getegid()) });
    let shown = path.display();
    if st.st_uid != 0 && st.st_uid != uid {
        return Err(format!("\"{shown}\" belongs to uid {}, neither root nor Apache's user (uid {uid})", st.st_uid));
    }
    let mode = st.st_mode;
    if mode & libc::S_IWOTH != 0 {
        return if mode & libc::S_ISVTX != 0 {
            Ok(Writers::Sticky)
        } else {
            Err(format!("\"{shown}\" is writable by every user (mode {:o})", mode & 0o7777))
        };
    }
    let group_writes = mode & libc::S_IWGRP != 0 && st.st_gid != 0;
    if group_writes && st.st_gid != gid {
        return Err(format!("\"{shown}\" is writable by group gid {} (mode {:o})", st.st_gid, mode & 0o7777));
    }
    Ok(if st.st_uid == 0 && !group_writes { Writers::Root } else { Writers::User })
}

/// The warning for a sticky directory a socket or a directory of ours is in.
fn sticky_warning(path: &Path) -> String {
    format!(
        "FastCGI: \"{}\" is writable by every user (sticky, like /tmp): any local user can take a name there \
         first and receive the requests meant for the application; use FastCgiIpcDir or a directory under /run",
        path.display()
    )
}

/// Opens the directory `path` as described in the module's doc. `create`
/// makes missing components: as root (mode 0755, the last one 0700 and
/// given to `owner` through its descriptor) where only root can write, or
/// else as `owner`. A last component that is a symbolic link is refused
/// when `last_not_link`. Warnings (sticky directories) go to `warnings`.
pub fn open(
    path: &Path,
    owner: Option<Owner>,
    create: bool,
    last_not_link: bool,
    warnings: &mut Vec<String>,
) -> Result<Dir, String> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("\"{shown}\" is not an absolute path"));
    }
    let root = cstring(b"/").map_err(|e| e.to_string())?;
    let fd = open_at(libc::AT_FDCWD, &root, libc::O_PATH | libc::O_DIRECTORY).map_err(|e| format!("/: {e}"))?;
    let st = stat_fd(fd.as_raw_fd()).map_err(|e| format!("/: {e}"))?;
    let writers = judge(&st, owner, Path::new("/"))?;
    // The directories walked so far, for "..": (descriptor, path, writers).
    let mut stack = vec![Dir { fd, path: PathBuf::from("/"), writers, owner }];
    let mut todo: Vec<OsString> = components(path).into_iter().rev().collect();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        let is_last = todo.is_empty();
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().ok_or("empty walk")?;
        let here = cur.path.join(&name);
        let cname = cstring(name.as_bytes()).map_err(|e| e.to_string())?;
        let opened = match open_at(cur.fd.as_raw_fd(), &cname, libc::O_PATH | libc::O_DIRECTORY) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                cur.make_dir(&cname, is_last).map_err(|e| format!("can't create \"{}\": {e}", here.display()))?;
                if cur.writers == Writers::Sticky {
                    warnings.push(sticky_warning(&cur.path));
                }
                open_at(cur.fd.as_raw_fd(), &cname, libc::O_PATH | libc::O_DIRECTORY)
            }
            other => other,
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                let st = stat_at(cur.fd.as_raw_fd(), &cname).map_err(|e| format!("\"{}\": {e}", here.display()))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                    return Err(format!("\"{}\" is not a directory", here.display()));
                }
                if is_last && last_not_link {
                    return Err(format!("\"{}\" is a symbolic link", here.display()));
                }
                if cur.writers != Writers::Root {
                    return Err(format!(
                        "\"{}\" is a symbolic link in \"{}\", a directory not only root can write",
                        here.display(),
                        cur.path.display()
                    ));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(format!("\"{shown}\": too many levels of symbolic links"));
                }
                let target =
                    read_link(cur.fd.as_raw_fd(), &cname).map_err(|e| format!("\"{}\": {e}", here.display()))?;
                if target.is_absolute() {
                    stack.truncate(1);
                }
                todo.extend(components(&target).into_iter().rev());
                continue;
            }
            Err(e) => return Err(format!("\"{}\": {e}", here.display())),
        };
        let st = stat_fd(fd.as_raw_fd()).map_err(|e| format!("\"{}\": {e}", here.display()))?;
        let writers = judge(&st, owner, &here)?;
        stack.push(Dir { fd, path: here, writers, owner });
    }
    let dir = stack.pop().ok_or("empty walk")?;
    if dir.writers == Writers::Sticky {
        warnings.push(sticky_warning(&dir.path));
    }
    Ok(Dir { path: path.to_path_buf(), ..dir })
}

/// Checks `path` as [`open`] would, without creating anything: a missing
/// tail is judged by the deepest directory that exists (it will be created
/// there).
fn inspect(path: &Path, owner: Option<Owner>, warnings: &mut Vec<String>) -> Result<(), String> {
    let mut existing = path;
    loop {
        match std::fs::symlink_metadata(existing) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match existing.parent() {
                Some(parent) => existing = parent,
                None => break,
            },
            Err(e) => return Err(format!("\"{}\": {e}", existing.display())),
        }
    }
    open(existing, owner, false, existing == path, warnings).map(drop)
}

/// What configtest says of `config`'s directories: (warnings, errors).
/// The IPC directory and the directory of each static server's Unix
/// socket are judged as [`open`] will judge them when the manager creates
/// things there; an external server's socket in a directory every user
/// can write gets a warning (anyone could listen there first).
pub fn check_config(config: &Config, owner: Option<Owner>) -> (Vec<String>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    if let Err(e) = inspect(&config.ipc_dir, owner, &mut warnings) {
        errors.push(format!("FastCGI: FastCgiIpcDir \"{}\": {e}", config.ipc_dir.display()));
    }
    for server in &config.servers {
        let Endpoint::Unix(path) = &server.endpoint else { continue };
        let Some(parent) = path.parent() else { continue };
        if server.spawn.is_some() {
            if parent == config.ipc_dir {
                continue;
            }
            if let Err(e) = inspect(parent, owner, &mut warnings) {
                errors.push(format!("FastCGI: FastCgiServer {}: -socket \"{}\": {e}", server.path, path.display()));
            }
        } else if std::fs::metadata(parent).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o002 != 0
        }) {
            warnings.push(format!(
                "FastCGI: FastCgiExternalServer {}: the socket \"{}\" is in a directory every user can write: \
                 any local user can listen there first and receive the requests meant for the application; \
                 use a directory only the application's user can write, such as one under /run",
                server.path,
                path.display()
            ));
        }
    }
    warnings.dedup();
    (warnings, errors)
}

/// The normal components of `path` (`..` kept: it may follow a link).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

fn read_link(dir: RawFd, name: &CString) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is live and writable for its length.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// Restores the file-system identity and umask when dropped.
struct Acting {
    uid: libc::uid_t,
    gid: libc::gid_t,
    mask: libc::mode_t,
    switched: bool,
}

impl Drop for Acting {
    fn drop(&mut self) {
        // SAFETY: process credential calls with values saved before the switch.
        unsafe {
            libc::umask(self.mask);
            if self.switched {
                libc::setfsuid(self.uid);
                libc::setfsgid(self.gid);
            }
        }
    }
}

impl Dir {
    /// The directory's path, as asked for.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the identity that may change this directory (see the
    /// module's doc) and `umask`. `setfsuid` is per thread; the manager
    /// and Apache's parent, the only callers, have one.
    fn act<T>(&self, umask: libc::mode_t, f: impl FnOnce(RawFd) -> T) -> T {
        // SAFETY: geteuid cannot fail; umask always succeeds.
        let (root, mask) = unsafe { (libc::geteuid() == 0, libc::umask(umask)) };
        let mut acting = Acting { uid: 0, gid: 0, mask, switched: false };
        if let (true, Writers::User | Writers::Sticky, Some((uid, gid))) = (root, self.writers, self.owner) {
            // SAFETY: as root, switching the file-system ids only; the group
            // first, while the uid still allows it. The old values are
            // returned and restored by `acting`.
            unsafe {
                acting.gid = libc::setfsgid(gid) as libc::gid_t;
                acting.uid = libc::setfsuid(uid) as libc::uid_t;
            }
            acting.switched = true;
        }
        let out = f(self.fd.as_raw_fd());
        drop(acting);
        out
    }

    /// Whether root acts here itself (and so must give what it creates to
    /// the owner).
    fn root_acts(&self) -> bool {
        // SAFETY: geteuid cannot fail.
        self.writers == Writers::Root && self.owner.is_some() && unsafe { libc::geteuid() } == 0
    }

    /// Makes the directory `name` in this one: mode 0700 given to the owner
    /// when `last`, else 0755 and root's where root acts.
    fn make_dir(&self, name: &CString, last: bool) -> io::Result<()> {
        let mode = if last || !self.root_acts() { 0o700 } else { 0o755 };
        // SAFETY: mkdirat on our descriptor with a NUL-terminated name.
        self.act(0o077, |dir| check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) }))?;
        if self.root_acts() {
            let made = open_at(self.fd.as_raw_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY)?;
            // SAFETY: fchmod on the descriptor just opened without following a link.
            check(unsafe { libc::fchmod(made.as_raw_fd(), mode) })?;
            if let (true, Some((uid, gid))) = (last, self.owner) {
                // SAFETY: fchown on that descriptor.
                check(unsafe { libc::fchown(made.as_raw_fd(), uid, gid) })?;
            }
        }
        Ok(())
    }

    /// A listening Unix socket of `kind` named `name` here, mode 0600, the
    /// owner's, and the inode of that name (to tell later whether the name
    /// is still this socket's): bound under a temporary name and renamed
    /// over `name`, so a socket of an earlier generation is replaced
    /// without a moment in which connects fail.
    pub fn listen(&self, name: &OsStr, backlog: libc::c_int, kind: SocketKind) -> io::Result<(OwnedFd, u64)> {
        let tmp = cstring(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()).as_bytes())?;
        let cname = cstring(name.as_bytes())?;
        self.act(SOCKET_UMASK, |dir| {
            // SAFETY: unlinkat on our directory; a missing name is fine.
            unsafe { libc::unlinkat(dir, tmp.as_ptr(), 0) };
            let fd = bind_at(dir, &tmp, kind)?;
            let done = (|| {
                if let (true, Some((uid, gid))) = (self.root_acts(), self.owner) {
                    // SAFETY: only root can change this directory, so the
                    // name is still our socket; the link itself is never followed.
                    check(unsafe { libc::fchownat(dir, tmp.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })?;
                }
                // SAFETY: fd is a bound socket we own.
                check(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
                // SAFETY: both names in our directory, NUL-terminated.
                check(unsafe { libc::renameat(dir, tmp.as_ptr(), dir, cname.as_ptr()) })?;
                stat_at(dir, &cname).map(|st| st.st_ino)
            })();
            if done.is_err() {
                // SAFETY: as above.
                unsafe { libc::unlinkat(dir, tmp.as_ptr(), 0) };
            }
            done.map(|ino| (fd, ino))
        })
    }

    /// Removes `name` here if it is a socket.
    pub fn remove_socket(&self, name: &OsStr) {
        let Ok(cname) = cstring(name.as_bytes()) else { return };
        self.act(SOCKET_UMASK, |dir| {
            if stat_at(dir, &cname).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK) {
                // SAFETY: unlinkat on our directory; a link is removed, never followed.
                unsafe { libc::unlinkat(dir, cname.as_ptr(), 0) };
            }
        })
    }

    /// Removes every entry but directories (stale dynamic sockets of an
    /// earlier run; the original meant to and never did on httpd 2.x).
    pub fn clear(&self) {
        let Ok(dot) = cstring(b".") else { return };
        let Ok(listing) = open_at(self.fd.as_raw_fd(), &dot, libc::O_RDONLY | libc::O_DIRECTORY) else { return };
        // SAFETY: fdopendir takes over the descriptor (released from the OwnedFd).
        let stream = unsafe { libc::fdopendir(std::os::fd::IntoRawFd::into_raw_fd(listing)) };
        if stream.is_null() {
            return;
        }
        let mut names = Vec::new();
        loop {
            // SAFETY: stream is a live directory stream.
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                break;
            }
            // SAFETY: d_name is NUL-terminated within the entry.
            let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) }.to_owned();
            if name.as_bytes() != b"." && name.as_bytes() != b".." {
                names.push(name);
            }
        }
        // SAFETY: closes the stream and its descriptor, once.
        unsafe { libc::closedir(stream) };
        self.act(SOCKET_UMASK, |dir| {
            for name in names {
                // SAFETY: unlinkat on our directory; directories are left alone (EISDIR).
                unsafe { libc::unlinkat(dir, name.as_ptr(), 0) };
            }
        })
    }
}

/// The listening sockets the manager makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    /// An application's: a stream socket it accepts on (blocking).
    Application,
    /// The manager's control socket: one packet per message, non-blocking
    /// so that the manager's loop never waits in accept.
    Control,
}

/// A Unix socket of `kind` bound to `name` in `dir` (there is no `bindat`:
/// the name is resolved from `dir` by way of `/proc/self/fd`, which also
/// keeps long directory paths within `sun_path`).
fn bind_at(dir: RawFd, name: &CString, kind: SocketKind) -> io::Result<OwnedFd> {
    let path = PathBuf::from(format!("/proc/self/fd/{dir}")).join(OsStr::from_bytes(name.as_bytes()));
    let (sun, len) = crate::transport::unix_sockaddr(&path)?;
    let type_ = match kind {
        SocketKind::Application => libc::SOCK_STREAM,
        SocketKind::Control => libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK,
    };
    // SAFETY: plain socket(2); the result is checked.
    let fd = check(unsafe { libc::socket(libc::AF_UNIX, type_ | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sun is a valid address of len bytes; fd is ours.
    check(unsafe { libc::bind(fd.as_raw_fd(), &sun as *const _ as *const libc::sockaddr, len) })?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn scratch(name: &str) -> PathBuf {
        // 0755 whatever the umask: the checks under test look at modes.
        let dir = crate::transport::fresh_test_dir(&format!("dirs-{name}"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn creates_listens_and_clears() {
        let base = scratch("create");
        let mut warnings = Vec::new();
        let dir = open(&base.join("a/b"), None, true, true, &mut warnings).unwrap();
        let (fd, ino) = dir.listen(OsStr::new("s.sock"), 5, SocketKind::Application).unwrap();
        assert_eq!(std::fs::symlink_metadata(base.join("a/b/s.sock")).unwrap().ino(), ino);
        let meta = std::fs::symlink_metadata(base.join("a/b/s.sock")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(std::os::unix::net::UnixStream::connect(base.join("a/b/s.sock")).is_ok());
        drop(fd);
        dir.clear();
        assert!(std::fs::read_dir(base.join("a/b")).unwrap().next().is_none());
        assert!(warnings.is_empty(), "{warnings:?}");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn refuses_links_and_open_directories() {
        let base = scratch("refuse");
        std::fs::create_dir(base.join("real")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
        let mut w = Vec::new();
        let err = open(&base.join("link"), None, false, true, &mut w).unwrap_err();
        assert!(err.contains("is a symbolic link"), "{err}");
        // A link in a directory only its owner writes is followed when not last
        // (the test runs as the directory's owner, root or not).
        std::fs::create_dir(base.join("real/x")).unwrap();
        let through = open(&base.join("link/x"), None, false, true, &mut w);
        assert!(through.is_ok() || through.unwrap_err().contains("not only root"));
        std::fs::create_dir(base.join("open")).unwrap();
        std::fs::set_permissions(base.join("open"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = inspect(&base.join("open/ipc"), None, &mut w).unwrap_err();
        assert!(err.contains("writable by every user"), "{err}");
        std::fs::set_permissions(base.join("open"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        inspect(&base.join("open/ipc"), None, &mut w).unwrap();
        assert!(w.iter().any(|l| l.contains("sticky")), "{w:?}");
        let _ = std::fs::remove_dir_all(&base);
    }
}
