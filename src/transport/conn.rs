//! One connection to an application: connect with an optional timeout, then
//! non-blocking reads and writes driven by [`Conn::wait`], or a read that
//! waits itself ([`Conn::read_within`]) when only the answer is awaited.

use std::cell::Cell;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::Endpoint;

/// A connected stream socket to an application. Closing is dropping.
///
/// The descriptor stays blocking (connect uses that, bounded by
/// SO_SNDTIMEO); every read and write asks not to block (`MSG_DONTWAIT`)
/// instead of the descriptor being switched with fcntl: one system call
/// less per connection.
#[derive(Debug)]
pub struct Conn {
    fd: OwnedFd,
    /// The receive timeout set on the socket for [`Conn::read_within`]
    /// (zero: none set, the kernel's default).
    read_timeout: Cell<Duration>,
    /// The receive low-water mark set on the socket (1: the kernel's
    /// default); see [`Conn::set_low_water`].
    low_water: Cell<usize>,
}

/// What [`Conn::wait`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Data (or end of stream, or an error) can be read without blocking.
    pub readable: bool,
    /// At least one byte can be written without blocking.
    pub writable: bool,
    /// The other socket of [`Conn::wait_with`] can take more.
    pub other_writable: bool,
}

/// Connects to `endpoint`. `timeout` None blocks until the kernel gives up,
/// which is the original's `-appConnTimeout 0`; Some bounds the wait and
/// fails with [`io::ErrorKind::TimedOut`]. For TCP each resolved address is
/// tried in turn, the error of the last one is returned.
pub fn connect(endpoint: &Endpoint, timeout: Option<Duration>) -> io::Result<Conn> {
    match endpoint {
        Endpoint::Unix(path) => {
            let (sun, len) = unix_sockaddr(path)?;
            connect_raw(libc::AF_UNIX, &sun as *const _ as *const libc::sockaddr, len as usize, timeout)
        }
        Endpoint::Tcp { addrs, .. } => {
            let mut last = io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
            for addr in addrs {
                let (storage, len) = sockaddr_of(addr);
                let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
                match connect_raw(family, &storage as *const _ as *const libc::sockaddr, len, timeout) {
                    Ok(conn) => {
                        // Records go out as written; a failure only costs latency.
                        let _ =
                            set_option(conn.fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, &(1 as libc::c_int));
                        return Ok(conn);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
    }
}

/// The `sockaddr_un` of a Unix socket path, and its length; ENAMETOOLONG
/// when the path does not fit `sun_path`.
pub fn unix_sockaddr(path: &std::path::Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.len() >= sun.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok((sun, (mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t))
}

fn sockaddr_of(addr: &std::net::SocketAddr) -> (libc::sockaddr_storage, usize) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match addr {
        std::net::SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            (storage, mem::size_of::<libc::sockaddr_in>())
        }
        std::net::SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            (storage, mem::size_of::<libc::sockaddr_in6>())
        }
    }
}

/// Blocking connect bounded by SO_SNDTIMEO (Linux applies it to connect for
/// both TCP and Unix sockets, the latter when the listen queue is full). The
/// timeout stays set: no read or write of a [`Conn`] blocks.
fn connect_raw(
    family: libc::c_int,
    addr: *const libc::sockaddr,
    len: usize,
    timeout: Option<Duration>,
) -> io::Result<Conn> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if let Some(t) = timeout {
        set_timeout(raw, libc::SO_SNDTIMEO, t)?;
    }
    loop {
        // SAFETY: addr points to a sockaddr of `len` bytes that outlives the call.
        let rc = unsafe { libc::connect(raw, addr, len as libc::socklen_t) };
        if rc == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EINPROGRESS) | Some(libc::EAGAIN) if timeout.is_some() => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connect() timed out"));
            }
            _ => return Err(err),
        }
    }
    Ok(Conn { fd, read_timeout: Cell::new(Duration::ZERO), low_water: Cell::new(1) })
}

/// Sets option `name` at `level` of socket `fd` to `value` (a plain C
/// value: an int, a timeval).
fn set_option<T: Copy>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: valid fd; the option value points to a live T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets SO_SNDTIMEO or SO_RCVTIMEO (`which`) of socket `fd` to `t`.
fn set_timeout(fd: RawFd, which: libc::c_int, t: Duration) -> io::Result<()> {
    let tv = libc::timeval { tv_sec: t.as_secs() as libc::time_t, tv_usec: t.subsec_micros() as libc::suseconds_t };
    set_option(fd, libc::SOL_SOCKET, which, &tv)
}

impl Conn {
    /// Reads what is available; `WouldBlock` when nothing is, `Ok(0)` at end
    /// of stream.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf, libc::MSG_DONTWAIT)
    }

    /// recv(2) with `flags`, again after a signal.
    fn recv(&self, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
        loop {
            // SAFETY: buf is a live, writable region of buf.len() bytes.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// The descriptor, given up, with the receive timeout set on it (for
    /// [`Conn::from_raw`]): a pool keeps an idle connection as one word.
    /// Its low-water mark goes back to the kernel's default first, since a
    /// raw descriptor does not carry it: the next request's reads must not
    /// wait for this one's. The connection back if that fails.
    pub fn into_raw(self) -> Result<(RawFd, Duration), Conn> {
        if self.set_low_water(1).is_err() {
            return Err(self);
        }
        Ok((self.fd.into_raw_fd(), self.read_timeout.get()))
    }

    /// The connection [`Conn::into_raw`] gave up.
    ///
    /// # Safety
    /// SAFETY: the caller guarantees `fd` came from `into_raw` and is owned
    /// by it alone: the connection closes it when dropped.
    pub unsafe fn from_raw(fd: RawFd, read_timeout: Duration) -> Conn {
        // SAFETY: the caller owns fd, an open socket (see above).
        Conn { fd: unsafe { OwnedFd::from_raw_fd(fd) }, read_timeout: Cell::new(read_timeout), low_water: Cell::new(1) }
    }

    /// Makes a read wait until `bytes` have arrived (SO_RCVLOWAT), or its
    /// timeout has passed, when it returns what came: for a caller that
    /// knows that many are on their way. A large response then comes in
    /// reads that fill the buffer, not one read (and one write to the
    /// client, and one wake-up of the client) per record the application
    /// wrote: libfcgi writes 8 KiB at a time, and under load a reader that
    /// keeps up takes each as it comes. Set on the socket only when it
    /// changes; 1 is the kernel's default.
    pub fn set_low_water(&self, bytes: usize) -> io::Result<()> {
        let bytes = bytes.clamp(1, libc::c_int::MAX as usize);
        if self.low_water.get() == bytes {
            return Ok(());
        }
        set_option(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVLOWAT, &(bytes as libc::c_int))?;
        self.low_water.set(bytes);
        Ok(())
    }

    /// Reads what arrives within `timeout`, waiting in the read itself
    /// (SO_RCVTIMEO) instead of in a poll before it: one system call, not
    /// two, when nothing but the application's answer is awaited. The
    /// timeout goes to the socket only when it differs from the one set
    /// last (a kept connection keeps its idle timeout from request to
    /// request). `WouldBlock` when nothing came in time (below a low-water
    /// mark, [`Conn::set_low_water`], what came by then), `Ok(0)` at end
    /// of stream; under a millisecond it does not wait.
    pub fn read_within(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if timeout < Duration::from_millis(1) {
            return self.read(buf);
        }
        // SO_RCVTIMEO keeps microseconds; zero would mean no timeout.
        let timeout = Duration::from_micros(timeout.as_micros().min(u128::from(u64::MAX)) as u64);
        if self.read_timeout.get() != timeout {
            set_timeout(self.fd.as_raw_fd(), libc::SO_RCVTIMEO, timeout)?;
            self.read_timeout.set(timeout);
        }
        self.recv(buf, 0)
    }

    /// Writes what fits without blocking; never raises SIGPIPE.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_parts(&[buf], 0)
    }

    /// Writes `parts`, taken as one stream, from offset `skip` (what
    /// earlier calls wrote), in one system call: a record's header and its
    /// content in the caller's buffer go out without being copied together.
    /// At most four parts; returns how many bytes were written.
    pub fn write_parts(&self, parts: &[&[u8]], skip: usize) -> io::Result<usize> {
        let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; 4];
        let mut count = 0;
        let mut skip = skip;
        for part in parts {
            let Some(rest) = part.get(skip..) else {
                skip -= part.len();
                continue;
            };
            skip = 0;
            if rest.is_empty() || count == iov.len() {
                continue;
            }
            iov[count] = libc::iovec { iov_base: rest.as_ptr() as *mut libc::c_void, iov_len: rest.len() };
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = count;
        loop {
            // SAFETY: msg points at `count` iovecs over live slices that
            // sendmsg only reads.
            let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Whether the socket has nothing to read and is not closed, looked at
    /// without waiting: a pooled connection is checked so before reuse
    /// (end of stream, an error or stray bytes would all show as readable).
    pub fn quiet(&self) -> bool {
        revents_now(self.fd.as_raw_fd(), libc::POLLIN) == Some(0)
    }

    /// Waits until the socket is readable (always asked) or, with
    /// `want_write`, writable. Returns `Ready::default()` when `timeout`
    /// passes first. Hang-ups and errors count as readable, so the next read
    /// reports them.
    pub fn wait(&self, want_write: bool, timeout: Duration) -> io::Result<Ready> {
        self.wait_with(want_write, None, timeout, Instant::now())
    }

    /// [`Conn::wait`], also waking when `other` (the client's socket, which
    /// has output waiting) can take more: `Ready::other_writable`.
    /// `timeout` counts from `since`, the caller's own reading of the clock
    /// (which is read again only after a signal interrupts the wait).
    pub fn wait_with(
        &self,
        want_write: bool,
        other: Option<RawFd>,
        timeout: Duration,
        since: Instant,
    ) -> io::Result<Ready> {
        let mut left = timeout;
        let mut events = libc::POLLIN;
        if want_write {
            events |= libc::POLLOUT;
        }
        loop {
            let mut pfds = [
                libc::pollfd { fd: self.fd.as_raw_fd(), events, revents: 0 },
                libc::pollfd { fd: other.unwrap_or(-1), events: libc::POLLOUT, revents: 0 },
            ];
            let count: libc::nfds_t = if other.is_some() { 2 } else { 1 };
            let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
            // SAFETY: pfds holds `count` (<= 2) live pollfds.
            let rc = unsafe { libc::poll(pfds.as_mut_ptr(), count, ms) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    left = timeout.saturating_sub(since.elapsed());
                    continue;
                }
                return Err(err);
            }
            let [app, client] = pfds;
            return Ok(Ready {
                readable: app.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
                writable: app.revents & (libc::POLLOUT | libc::POLLERR) != 0,
                other_writable: client.revents & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0,
            });
        }
    }
}

/// Whether `fd` (a client's socket) can take more data right now; a
/// closed or failed socket counts as writable, so the write reports it.
pub fn writable_now(fd: RawFd) -> bool {
    revents_now(fd, libc::POLLOUT) != Some(0)
}

/// Whether the peer of socket `fd` has closed or reset its side (bytes it
/// sent and not yet read do not count), without blocking.
pub fn peer_closed(fd: RawFd) -> bool {
    revents_now(fd, libc::POLLRDHUP).is_some_and(|r| r & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0)
}

/// What `fd` reports for `events` (and hang-ups, errors) right now,
/// without waiting; None when poll itself fails.
fn revents_now(fd: RawFd, events: libc::c_short) -> Option<libc::c_short> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: pfd is one live pollfd; a zero timeout never blocks.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    (rc >= 0).then_some(pfd.revents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn unix_round_trip_and_idle_wait() {
        let (dir, listener, ep) = crate::transport::test_socket("conn");
        let conn = connect(&ep, Some(Duration::from_secs(2))).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        assert_eq!(conn.wait(false, Duration::from_millis(50)).unwrap(), Ready::default());
        assert_eq!(conn.write(b"ping").unwrap(), 4);
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        // Parts as one stream, resumed inside the first part.
        assert_eq!(conn.write_parts(&[b"xy", b"", b"ab", b"cd"], 1).unwrap(), 5);
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"yabcd");
        assert_eq!(conn.write_parts(&[b"ab"], 2).unwrap(), 0);
        peer.write_all(b"pong").unwrap();
        assert!(conn.wait(false, Duration::from_secs(2)).unwrap().readable);
        let mut buf = [0u8; 16];
        assert_eq!(conn.read(&mut buf).unwrap(), 4);
        assert_eq!(conn.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(peer);
        assert_eq!(conn.read(&mut buf).unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_read_that_waits() {
        let (dir, listener, ep) = crate::transport::test_socket("conn-wait");
        let conn = connect(&ep, None).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let mut buf = [0u8; 16];
        // Nothing comes: WouldBlock once the time is up, not before.
        let began = Instant::now();
        assert_eq!(
            conn.read_within(&mut buf, Duration::from_millis(60)).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(began.elapsed() >= Duration::from_millis(50), "{:?}", began.elapsed());
        // Under a millisecond: no wait at all.
        assert_eq!(conn.read_within(&mut buf, Duration::ZERO).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // What arrives while it waits is read by the same call.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            peer.write_all(b"late").unwrap();
            peer
        });
        assert_eq!(conn.read_within(&mut buf, Duration::from_secs(5)).unwrap(), 4);
        assert_eq!(&buf[..4], b"late");
        // The non-waiting read is unchanged by the timeout on the socket.
        assert_eq!(conn.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(writer.join().unwrap());
        assert_eq!(conn.read_within(&mut buf, Duration::from_secs(5)).unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refused_and_missing() {
        let err = connect(&Endpoint::Unix("/nonexistent/fcgi.sock".into()), None).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let ep = Endpoint::Tcp { spec: addr.to_string(), addrs: vec![addr] };
        assert_eq!(connect(&ep, None).unwrap_err().raw_os_error(), Some(libc::ECONNREFUSED));
    }
}
