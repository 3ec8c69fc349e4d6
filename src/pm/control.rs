//! The channel between Apache's workers and the process manager for dynamic
//! applications: a SOCK_SEQPACKET Unix socket in `<FastCgiIpcDir>/dynamic/`,
//! one message per packet, binary, so any path works (the original's text
//! pipe broke on spaces, `*` and newlines). Where an application's socket
//! lives is derived from its path, so workers find running instances
//! without asking.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The manager's socket, in the `dynamic/` directory.
pub const CONTROL_NAME: &str = ".pm";
/// The longest message: an op, a number, an identity and a path.
pub const MAX_MESSAGE: usize = 1 + 8 + 9 + 4096;

/// What a worker asks of the manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// No instance is listening: start one (reply follows).
    Start,
    /// A request waited `-startDelay` for an instance: start another if
    /// the caps allow (no reply).
    More,
    /// A request finished; the number is its duration in µs, for the load
    /// statistics (no reply).
    Done,
    /// The application's file is newer than its instances (`-autoUpdate`):
    /// replace them (reply follows).
    Restart,
    /// What runs (for the status page): the reply carries
    /// [`encode_status`]'s record.
    Status,
    /// An instance went away without answering: the reply carries why
    /// the application is refused now (how its last instance ended), or
    /// nothing when it is not. Changes nothing.
    Why,
}

impl Op {
    fn byte(self) -> u8 {
        match self {
            Op::Start => b'S',
            Op::More => b'M',
            Op::Done => b'C',
            Op::Restart => b'R',
            Op::Status => b'Q',
            Op::Why => b'W',
        }
    }

    /// Whether the manager answers this op.
    pub fn wants_reply(self) -> bool {
        matches!(self, Op::Start | Op::Restart | Op::Status | Op::Why)
    }
}

/// One message from a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub op: Op,
    pub micros: u64,
    /// The uid and gid to run the application as, through the
    /// FastCgiWrapper (SuexecUserGroup); None for Apache's own user.
    pub identity: Option<(u32, u32)>,
    pub path: Vec<u8>,
}

impl Request {
    /// The packet for this request.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + self.path.len());
        out.push(self.op.byte());
        out.extend_from_slice(&self.micros.to_be_bytes());
        let (flag, (uid, gid)) = match self.identity {
            Some(id) => (1u8, id),
            None => (0, (0, 0)),
        };
        out.push(flag);
        out.extend_from_slice(&uid.to_be_bytes());
        out.extend_from_slice(&gid.to_be_bytes());
        out.extend_from_slice(&self.path);
        out
    }

    /// Parses a packet; None for anything malformed.
    pub fn decode(packet: &[u8]) -> Option<Request> {
        let (&op, rest) = packet.split_first()?;
        let op = match op {
            b'S' => Op::Start,
            b'M' => Op::More,
            b'C' => Op::Done,
            b'R' => Op::Restart,
            b'Q' => Op::Status,
            b'W' => Op::Why,
            _ => return None,
        };
        let micros = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let uid = u32::from_be_bytes(rest.get(9..13)?.try_into().ok()?);
        let gid = u32::from_be_bytes(rest.get(13..17)?.try_into().ok()?);
        let identity = match rest.get(8)? {
            0 => None,
            1 => Some((uid, gid)),
            _ => return None,
        };
        let path = rest.get(17..)?.to_vec();
        if path.is_empty() || path.contains(&0) {
            return None;
        }
        Some(Request { op, micros, identity, path })
    }
}

/// One application as the manager reports it for the status page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppStatus {
    pub path: String,
    /// Started on demand (else a FastCgiServer).
    pub dynamic: bool,
    /// The uid/gid of a dynamic application run through the wrapper.
    pub identity: Option<(u32, u32)>,
    /// Static: its socket is open. Dynamic: always.
    pub listening: bool,
    pub failures: u32,
    pub backed_off: bool,
    /// Running instances: pid and seconds up.
    pub instances: Vec<(i32, u64)>,
}

/// The payload of the answer to [`Op::Status`]: the manager's pid, then
/// each application (binary, so any path travels as it is; the status
/// page renders it).
pub fn encode_status(manager_pid: u32, apps: &[AppStatus]) -> Vec<u8> {
    let mut out = manager_pid.to_be_bytes().to_vec();
    for a in apps {
        let flags = u8::from(a.dynamic) | u8::from(a.listening) << 1 | u8::from(a.backed_off) << 2;
        let (flags, (uid, gid)) = match a.identity {
            Some(id) => (flags | 8, id),
            None => (flags, (0, 0)),
        };
        out.push(flags);
        for n in [uid, gid, a.failures, u32::try_from(a.path.len()).unwrap_or(u32::MAX)] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(a.path.as_bytes());
        out.extend_from_slice(&u32::try_from(a.instances.len()).unwrap_or(0).to_be_bytes());
        for (pid, up) in &a.instances {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&up.to_be_bytes());
        }
    }
    out
}

/// Reads [`encode_status`]'s payload; None for anything malformed.
pub fn decode_status(mut bytes: &[u8]) -> Option<(u32, Vec<AppStatus>)> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        Some(head)
    }
    let word = |bytes: &mut &[u8]| take(bytes, 4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
    let pid = word(&mut bytes)?;
    let mut apps = Vec::new();
    while let Some((&flags, rest)) = bytes.split_first() {
        bytes = rest;
        let (uid, gid, failures, len) = (word(&mut bytes)?, word(&mut bytes)?, word(&mut bytes)?, word(&mut bytes)?);
        let path = String::from_utf8_lossy(take(&mut bytes, usize::try_from(len).ok()?)?).into_owned();
        let count = word(&mut bytes)?;
        let mut instances = Vec::new();
        for _ in 0..count {
            let pid = i32::from_be_bytes(take(&mut bytes, 4)?.try_into().ok()?);
            let up = u64::from_be_bytes(take(&mut bytes, 8)?.try_into().ok()?);
            instances.push((pid, up));
        }
        apps.push(AppStatus {
            path,
            dynamic: flags & 1 != 0,
            identity: (flags & 8 != 0).then_some((uid, gid)),
            listening: flags & 2 != 0,
            failures,
            backed_off: flags & 4 != 0,
            instances,
        });
    }
    Some((pid, apps))
}

/// The manager's answer: Ok with a payload (empty for Start/Restart: an
/// instance is listening; [`encode_status`]'s for Status), or why not.
pub fn encode_reply(result: Result<&[u8], &str>) -> Vec<u8> {
    let (flag, bytes) = match result {
        Ok(payload) => (0, payload),
        Err(why) => (1, why.as_bytes()),
    };
    let mut out = Vec::with_capacity(1 + bytes.len());
    out.push(flag);
    out.extend_from_slice(bytes);
    out
}

/// Parses the manager's answer.
pub fn decode_reply(packet: &[u8]) -> Result<Vec<u8>, String> {
    match packet.split_first() {
        Some((0, payload)) => Ok(payload.to_vec()),
        Some((_, why)) => Err(String::from_utf8_lossy(why).into_owned()),
        None => Err("the process manager closed the connection".into()),
    }
}

/// The key of a dynamic application: its path, and the identity it runs
/// as (one application per path and identity, as in the original).
pub fn class_key(path: &[u8], identity: Option<(u32, u32)>) -> Vec<u8> {
    let mut key = path.to_vec();
    if let Some((uid, gid)) = identity {
        key.extend_from_slice(format!("\0{uid}:{gid}").as_bytes());
    }
    key
}

/// Where the dynamic application with `key` ([`class_key`]) listens: a name
/// derived from it, so every worker computes the same one.
pub fn socket_path(dynamic_dir: &Path, key: &[u8]) -> PathBuf {
    dynamic_dir.join(socket_name(key))
}

/// The file name of [`socket_path`].
pub fn socket_name(key: &[u8]) -> String {
    crate::transport::hashed_name(key)
}

fn seqpacket(flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | flags, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How long a request waits for a manager that is still starting.
const MANAGER_START: Duration = Duration::from_secs(5);

/// The largest reply (a status document for many applications).
const MAX_REPLY: usize = 256 * 1024;

/// Sends `request` to the manager at `control` and, for ops that have one,
/// waits up to `timeout` for the reply's payload.
pub fn ask(control: &Path, request: &Request, timeout: Duration) -> Result<Vec<u8>, String> {
    let talk = || -> io::Result<Vec<u8>> {
        let (sun, len) = crate::transport::unix_sockaddr(control)?;
        // A manager that is starting (Apache just started or restarted) has
        // no socket yet, or one it does not accept on yet: wait a little.
        let deadline = std::time::Instant::now() + timeout.min(MANAGER_START);
        let fd = loop {
            let fd = seqpacket(0)?;
            // SAFETY: sun is a valid address of len bytes; fd is ours.
            if unsafe { libc::connect(fd.as_raw_fd(), &sun as *const _ as *const libc::sockaddr, len) } == 0 {
                break fd;
            }
            let err = io::Error::last_os_error();
            let starting = matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused);
            if !starting || std::time::Instant::now() >= deadline {
                return Err(err);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let packet = request.encode();
        // SAFETY: packet is a live buffer of its length.
        if unsafe { libc::send(fd.as_raw_fd(), packet.as_ptr().cast(), packet.len(), libc::MSG_NOSIGNAL) } < 0 {
            return Err(io::Error::last_os_error());
        }
        if !request.op.wants_reply() {
            return Ok(Vec::new());
        }
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one live pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer from the process manager"));
        }
        let mut buf = vec![0u8; MAX_REPLY];
        // SAFETY: buf is a live writable buffer of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(buf)
    };
    match talk() {
        Ok(reply) if request.op.wants_reply() => decode_reply(&reply),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(format!("can't reach the process manager at {}: {e}", control.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_any_path() {
        for path in [&b"/a b/*x\nnl"[..], b"/srv/app.fcgi"] {
            for op in [Op::Start, Op::More, Op::Done, Op::Restart, Op::Status, Op::Why] {
                for identity in [None, Some((1000, 100))] {
                    let r = Request { op, micros: 123_456, identity, path: path.to_vec() };
                    assert_eq!(Request::decode(&r.encode()), Some(r));
                }
            }
        }
        assert_eq!(Request::decode(b"S1234567"), None);
        assert_eq!(Request::decode(b"X12345678\0uid.gid./p"), None);
        assert_eq!(Request::decode(b"S12345678\0uid.gid."), None);
        assert_eq!(Request::decode(b"S12345678\x02uid.gid./p"), None);
        assert_eq!(Request::decode(b"S12345678\0uid.gid./a\0b"), None);
        assert_ne!(class_key(b"/a", None), class_key(b"/a", Some((1, 1))));
    }

    #[test]
    fn status_round_trips() {
        let apps = vec![
            AppStatus {
                path: "/a \"b\"\n<c>".into(),
                dynamic: false,
                identity: None,
                listening: true,
                failures: 2,
                backed_off: false,
                instances: vec![(10, 5), (11, 7)],
            },
            AppStatus {
                path: "/d".into(),
                dynamic: true,
                identity: Some((1000, 100)),
                listening: true,
                failures: 0,
                backed_off: true,
                instances: Vec::new(),
            },
        ];
        let bytes = encode_status(42, &apps);
        assert_eq!(decode_status(&bytes), Some((42, apps)));
        assert_eq!(decode_status(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_status(&[0, 0]), None);
    }

    #[test]
    fn replies_and_socket_names() {
        assert_eq!(decode_reply(&encode_reply(Ok(b""))), Ok(Vec::new()));
        assert_eq!(decode_reply(&encode_reply(Ok(b"{}"))), Ok(b"{}".to_vec()));
        assert_eq!(decode_reply(&encode_reply(Err("exited"))), Err("exited".into()));
        let a = socket_path(Path::new("/ipc/dynamic"), b"/x/app.fcgi");
        assert_eq!(a, socket_path(Path::new("/ipc/dynamic"), b"/x/app.fcgi"));
        assert_ne!(a, socket_path(Path::new("/ipc/dynamic"), b"/x/app.fcgj"));
        assert!(a.starts_with("/ipc/dynamic"));
    }

    #[test]
    fn ask_and_answer_over_a_real_socket() {
        let dir = crate::transport::fresh_test_dir("control");
        let path = dir.join(CONTROL_NAME);
        let opened = super::super::dirs::open(&dir, None, false, true, &mut Vec::new()).unwrap();
        let (listener, _) = opened.listen(CONTROL_NAME.as_ref(), 128, super::super::dirs::SocketKind::Control).unwrap();
        let server = std::thread::spawn(move || {
            let mut pfd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one live pollfd; then accept on our listening socket.
            unsafe { libc::poll(&mut pfd, 1, 5000) };
            // SAFETY: accept on our listening socket.
            let conn = unsafe { libc::accept(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut()) };
            let mut buf = [0u8; MAX_MESSAGE];
            // SAFETY: buf is live and writable.
            let n = unsafe { libc::recv(conn, buf.as_mut_ptr().cast(), buf.len(), 0) };
            let req = Request::decode(&buf[..n as usize]).unwrap();
            let reply = encode_reply(Err(&format!("no {}", String::from_utf8_lossy(&req.path))));
            // SAFETY: reply is live.
            unsafe {
                libc::send(conn, reply.as_ptr().cast(), reply.len(), 0);
                libc::close(conn);
            }
        });
        let req = Request { op: Op::Start, micros: 0, identity: None, path: b"/p q".to_vec() };
        assert_eq!(ask(&path, &req, Duration::from_secs(5)), Err("no /p q".into()));
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
