//! What the processes the manager starts write to their stderr (and
//! stdout): a pipe each, read without blocking in the manager's loop, and
//! every line logged with the prefix the gateway gives FCGI_STDERR lines,
//! `FastCGI: server "<path>" stderr: <line>` (the original's text), instead
//! of landing in the error log raw. Memory is bounded: at most one line's
//! piece per pipe is kept, and each wake-up reads a bounded amount from a
//! pipe, so a chatty application can neither grow the manager nor hold it.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::log::Level;

/// Longest piece logged as one message (as the gateway's FCGI_STDERR
/// lines): a longer line is logged in pieces of this size, each with the
/// prefix, so that every piece fits in httpd's log line uncut.
pub(super) const MAX_LINE: usize = 4 * 1024;
/// The most read from one pipe per wake-up of the manager.
const READ_BUDGET: usize = 64 * 1024;
/// The most read from the pipe of a process that exited (a pipe holds
/// 64 KiB; more can come only from a process it left behind).
const EXIT_BUDGET: usize = 256 * 1024;

/// One started process's stderr.
struct Pipe {
    pid: libc::pid_t,
    path: String,
    fd: OwnedFd,
    /// The line being read, never [`MAX_LINE`] bytes or more.
    partial: Vec<u8>,
    /// The line so far was logged in pieces: its end alone is not a line.
    cut: bool,
    /// End of file or an error: flushed and closed after this round.
    done: bool,
}

/// The stderr pipes of every started process that has not yet exited.
#[derive(Default)]
pub(super) struct Pipes {
    list: Vec<Pipe>,
}

impl Pipes {
    /// Reads `fd` (the non-blocking read end of `pid`'s stderr) from now on,
    /// logging its lines as those of the server `path`.
    pub(super) fn add(&mut self, pid: libc::pid_t, path: &str, fd: OwnedFd) {
        self.list.push(Pipe { pid, path: path.to_string(), fd, partial: Vec::new(), cut: false, done: false });
    }

    /// The descriptors to wait on, in the order [`Pipes::pump`] takes.
    pub(super) fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.list.iter().map(|p| p.fd.as_raw_fd())
    }

    /// How many pipes are open.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// Reads the pipes at `ready` (indexes into [`Pipes::fds`] as last
    /// returned) and logs their complete lines; a pipe at its end has its
    /// last piece logged and is closed.
    pub(super) fn pump(&mut self, ready: &[usize], log: &dyn Fn(Level, &str)) {
        for &i in ready {
            if let Some(pipe) = self.list.get_mut(i) {
                pipe.read(READ_BUDGET, log);
            }
        }
        self.close_done(log);
    }

    /// `pid` exited: what its pipe holds is logged, then the pipe is
    /// closed (so before the line saying how it ended).
    pub(super) fn exited(&mut self, pid: libc::pid_t, log: &dyn Fn(Level, &str)) {
        for pipe in self.list.iter_mut().filter(|p| p.pid == pid) {
            pipe.read(EXIT_BUDGET, log);
            pipe.done = true;
        }
        self.close_done(log);
    }

    fn close_done(&mut self, log: &dyn Fn(Level, &str)) {
        for pipe in self.list.iter_mut().filter(|p| p.done) {
            pipe.flush(log);
        }
        self.list.retain(|p| !p.done);
    }
}

impl Pipe {
    /// Reads up to `budget` bytes, or until the pipe is empty.
    fn read(&mut self, budget: usize, log: &dyn Fn(Level, &str)) {
        let mut buf = [0u8; MAX_LINE];
        let mut total = 0;
        while total < budget && !self.done {
            // SAFETY: buf is a live, writable buffer of its length; fd is ours.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            match usize::try_from(n) {
                Ok(0) => self.done = true,
                Ok(n) => {
                    total += n;
                    self.feed(&buf[..n.min(buf.len())], log);
                }
                Err(_) => match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN) => return,
                    _ => self.done = true,
                },
            }
        }
    }

    /// Logs every complete line of `data` and keeps the rest (in pieces of
    /// [`MAX_LINE`] when it grows that long).
    fn feed(&mut self, data: &[u8], log: &dyn Fn(Level, &str)) {
        let mut rest = data;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            self.partial.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            if !(self.cut && self.partial.is_empty()) {
                self.log_line(log);
            }
            self.partial.clear();
            self.cut = false;
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= MAX_LINE {
            let piece: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
            self.log_piece(&piece, log);
            self.cut = true;
        }
    }

    /// The last piece of a pipe that ends without a newline.
    fn flush(&mut self, log: &dyn Fn(Level, &str)) {
        if !self.partial.is_empty() {
            self.log_line(log);
            self.partial.clear();
        }
    }

    fn log_line(&self, log: &dyn Fn(Level, &str)) {
        let line = self.partial.strip_suffix(b"\r").unwrap_or(&self.partial);
        for piece in line.chunks(MAX_LINE) {
            self.log_piece(piece, log);
        }
        if line.is_empty() {
            self.log_piece(line, log);
        }
    }

    fn log_piece(&self, piece: &[u8], log: &dyn Fn(Level, &str)) {
        let text = String::from_utf8_lossy(piece);
        log(Level::Error, &format!("FastCGI: server \"{}\" stderr: {text}", self.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::os::fd::FromRawFd;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: fds is a live array of two ints.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }, 0);
        // SAFETY: fresh descriptors nobody else owns.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn write(fd: &OwnedFd, data: &[u8]) {
        // SAFETY: data is a live buffer of its length.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        assert_eq!(n, data.len() as isize);
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
    }

    #[test]
    fn lines_are_logged_with_the_prefix_pieces_when_long_rest_at_exit() {
        let lines = RefCell::new(Vec::new());
        let log = |_: Level, m: &str| lines.borrow_mut().push(m.to_string());
        let (r, w) = pipe();
        let mut pipes = Pipes::default();
        pipes.add(42, "/srv/app.fcgi", r);
        write(&w, b"first\r\nsecond\nhalf");
        pipes.pump(&[0], &log);
        assert_eq!(
            *lines.borrow(),
            ["FastCGI: server \"/srv/app.fcgi\" stderr: first", "FastCGI: server \"/srv/app.fcgi\" stderr: second"]
        );
        lines.borrow_mut().clear();
        // A line longer than MAX_LINE: pieces, and no empty line after a cut.
        let long = vec![b'x'; 2 * MAX_LINE];
        write(&w, b" done\n");
        write(&w, &long);
        write(&w, b"\ntail");
        pipes.pump(&[0], &log);
        {
            let got = lines.borrow();
            assert_eq!(got.len(), 3, "{got:?}");
            assert_eq!(got[0], "FastCGI: server \"/srv/app.fcgi\" stderr: half done");
            assert!(got[1].ends_with(&"x".repeat(MAX_LINE)) && got[1].len() < MAX_LINE + 60);
            assert_eq!(got[1], got[2]);
        }
        lines.borrow_mut().clear();
        // Exit: the rest is logged and the pipe closed.
        assert_eq!(pipes.len(), 1);
        pipes.exited(41, &log);
        assert_eq!(pipes.len(), 1, "another pid's pipe stays");
        pipes.exited(42, &log);
        assert_eq!(pipes.len(), 0);
        assert_eq!(*lines.borrow(), ["FastCGI: server \"/srv/app.fcgi\" stderr: tail"]);
    }

    #[test]
    fn end_of_file_closes_the_pipe_and_nothing_accumulates() {
        let before = open_fds();
        let lines = RefCell::new(Vec::new());
        let log = |_: Level, m: &str| lines.borrow_mut().push(m.to_string());
        let mut pipes = Pipes::default();
        for round in 0..50 {
            let (r, w) = pipe();
            pipes.add(round, "/a", r);
            write(&w, b"bye");
            drop(w);
            let ready: Vec<usize> = (0..pipes.len()).collect();
            pipes.pump(&ready, &log);
            assert_eq!(pipes.len(), 0);
        }
        assert_eq!(lines.borrow().len(), 50);
        assert!(lines.borrow().iter().all(|l| l == "FastCGI: server \"/a\" stderr: bye"));
        assert!(open_fds() <= before, "{} descriptors open, {before} before", open_fds());
    }

    #[test]
    fn a_full_pipe_is_read_in_bounded_rounds() {
        let count = RefCell::new(0usize);
        let log = |_: Level, _: &str| *count.borrow_mut() += 1;
        let (r, w) = pipe();
        // SAFETY: fcntl on a pipe we own.
        let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4 * READ_BUDGET as libc::c_int) };
        assert!(size >= 4 * READ_BUDGET as libc::c_int, "F_SETPIPE_SZ: {size}");
        let mut pipes = Pipes::default();
        pipes.add(1, "/a", r);
        // Fill the pipe with short lines.
        let line = [b'y'; 15].iter().copied().chain([b'\n']).collect::<Vec<u8>>();
        let mut written = 0;
        loop {
            // SAFETY: line is a live buffer of its length.
            let n = unsafe { libc::write(w.as_raw_fd(), line.as_ptr().cast(), line.len()) };
            if n <= 0 {
                break;
            }
            written += 1;
        }
        assert!(written * line.len() >= 4 * READ_BUDGET);
        let mut rounds = 0;
        while *count.borrow() < written {
            let before = *count.borrow();
            pipes.pump(&[0], &log);
            assert!(*count.borrow() - before <= READ_BUDGET / line.len(), "one round read more than its budget");
            rounds += 1;
            assert!(rounds <= 8, "{} of {written} lines after {rounds} rounds", count.borrow());
        }
        assert!(rounds >= 4, "{rounds} rounds");
        assert_eq!(pipes.len(), 1, "an open, empty pipe stays");
    }
}
