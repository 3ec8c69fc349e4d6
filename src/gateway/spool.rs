//! Bytes that must wait, in order, with bounded memory: memory up to a
//! limit, an unlinked temporary file beyond. Two uses: a request body of
//! unknown length, held until its end so CONTENT_LENGTH can be sent (PHP and
//! most applications need it); and a response the client cannot take as
//! fast as the application writes it, held so the application is free as
//! soon as it has answered.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// Bytes of a request body kept in memory before spilling to a file
/// (`FastCgiRequestBuffer`'s default).
const BODY_IN_MEMORY: usize = 64 * 1024;

/// A first-in first-out byte queue: written at the end, read from the
/// front. Once a file is in use, newer bytes follow the older ones there
/// until the queue has been read empty, when memory is used again (and the
/// file's blocks are given back).
#[derive(Debug)]
pub struct Spool {
    memory: Vec<u8>,
    /// Read up to here in `memory`.
    memory_read: usize,
    memory_limit: usize,
    file: Option<File>,
    /// Where the file is made (`FastCgiTempDir`); None: the system's.
    dir: Option<Arc<Path>>,
    /// Bytes taken from the server-wide budget of temporary files
    /// (`FastCgiSpoolBudget`), given back on reset and drop.
    charged: u64,
    file_written: u64,
    file_read: u64,
    /// Bytes written in all.
    len: u64,
}

impl Default for Spool {
    /// A spool for a request body.
    fn default() -> Self {
        Spool::new(BODY_IN_MEMORY)
    }
}

impl Spool {
    /// A spool that keeps up to `memory_limit` unread bytes in memory.
    pub fn new(memory_limit: usize) -> Self {
        Spool {
            memory: Vec::new(),
            memory_read: 0,
            memory_limit,
            file: None,
            dir: None,
            charged: 0,
            file_written: 0,
            file_read: 0,
            len: 0,
        }
    }

    /// A spool whose file, if it needs one, is made in `dir`.
    pub fn in_dir(memory_limit: usize, dir: Option<Arc<Path>>) -> Self {
        let mut spool = Spool::new(memory_limit);
        spool.dir = dir;
        spool
    }

    /// Appends bytes.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.unread() == 0 && self.len > 0 {
            self.reset()?;
        }
        self.len += data.len() as u64;
        let file_in_use = self.file_written > self.file_read;
        let in_memory = self.memory.len() - self.memory_read;
        if !file_in_use && in_memory + data.len() <= self.memory_limit {
            if self.memory_read > 0 && self.memory.len() + data.len() > self.memory_limit {
                self.memory.drain(..self.memory_read);
                self.memory_read = 0;
            }
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        if let Err(e) = self.charge_for(data.len()) {
            self.len -= data.len() as u64;
            return Err(e);
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(temp_file(self.dir.as_deref())?),
        };
        file.write_all_at(data, self.file_written)?;
        self.file_written += data.len() as u64;
        Ok(())
    }

    /// Whether `n` more bytes can be written without going over the
    /// server-wide budget: room in memory, or budget taken ahead for them
    /// (so that a write never fails half-way for want of it). An emptied
    /// spool starts again in memory.
    pub fn room_for(&mut self, n: usize) -> bool {
        if self.unread() == 0 && self.len > 0 && self.reset().is_err() {
            return false;
        }
        let file_in_use = self.file_written > self.file_read;
        if !file_in_use && self.memory.len() - self.memory_read + n <= self.memory_limit {
            return true;
        }
        self.charge_for(n).is_ok()
    }

    /// Takes budget for `more` bytes of file beyond what is charged;
    /// Err([`OverBudget`]) when it is used up.
    fn charge_for(&mut self, more: usize) -> io::Result<()> {
        let need = (self.file_written + more as u64).saturating_sub(self.charged);
        self.charge(need)
    }

    /// Takes `bytes` of the server-wide budget for this spool's file (a
    /// request body reserves its whole length before it is received).
    pub fn charge(&mut self, bytes: u64) -> io::Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        crate::metrics::spool_reserve(bytes).map_err(|first| io::Error::other(OverBudget { first }))?;
        self.charged += bytes;
        Ok(())
    }

    /// Appends `parts` in order, with one system call where they go to the
    /// file (a request body received in several reads).
    pub fn write_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let file_in_use = self.file_written > self.file_read;
        let in_memory = self.memory.len() - self.memory_read;
        if parts.len() < 2 || !file_in_use && in_memory + total <= self.memory_limit {
            return parts.iter().try_for_each(|p| self.write(p));
        }
        if self.unread() == 0 && self.len > 0 {
            self.reset()?;
        }
        self.charge_for(total)?;
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(temp_file(self.dir.as_deref())?),
        };
        write_all_parts_at(file, parts, self.file_written)?;
        self.len += total as u64;
        self.file_written += total as u64;
        Ok(())
    }

    /// Reads the oldest unread bytes; `Ok(0)` when all was read.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.memory[self.memory_read..];
        if !rest.is_empty() {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.memory_read += n;
            return Ok(n);
        }
        let Some(file) = &self.file else { return Ok(0) };
        let left = self.file_written - self.file_read;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = file.read_at(&mut buf[..want], self.file_read)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "spool file shorter than written"));
        }
        self.file_read += n as u64;
        Ok(n)
    }

    /// Total bytes written.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes written and not read yet.
    pub fn unread(&self) -> u64 {
        (self.memory.len() - self.memory_read) as u64 + (self.file_written - self.file_read)
    }

    /// Bytes that went to the file so far (since the last reset).
    pub fn in_file(&self) -> u64 {
        self.file_written
    }

    /// Reads everything again from the start (a request body sent again on
    /// a new connection). Only for a spool that was written whole before
    /// it was read.
    pub fn rewind(&mut self) -> io::Result<()> {
        self.memory_read = 0;
        self.file_read = 0;
        Ok(())
    }

    /// Empty again: memory reused, the file truncated and its budget given
    /// back.
    fn reset(&mut self) -> io::Result<()> {
        crate::metrics::spool_release(std::mem::take(&mut self.charged));
        self.memory.clear();
        self.memory_read = 0;
        if let Some(f) = &self.file {
            if self.file_written > 0 {
                f.set_len(0)?;
            }
        }
        self.file_written = 0;
        self.file_read = 0;
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        crate::metrics::spool_release(self.charged);
    }
}

/// A write to a temporary file refused because the server-wide budget
/// (`FastCgiSpoolBudget`) is used up; `first`: the first refusal of its
/// second, the one to log.
#[derive(Debug)]
pub struct OverBudget {
    pub first: bool,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the budget of temporary files (FastCgiSpoolBudget) is used up")
    }
}

impl std::error::Error for OverBudget {}

/// The refusal behind `e`, if it is one.
pub fn over_budget(e: &io::Error) -> Option<&OverBudget> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<OverBudget>())
}

/// Writes every byte of `parts` at `offset` (pwritev, again after a short write).
fn write_all_parts_at(file: &File, parts: &[&[u8]], mut offset: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut iov: Vec<libc::iovec> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| libc::iovec { iov_base: p.as_ptr() as *mut libc::c_void, iov_len: p.len() })
        .collect();
    let mut first = 0;
    while first < iov.len() {
        let count = libc::c_int::try_from(iov.len() - first).unwrap_or(libc::c_int::MAX);
        // SAFETY: iov[first..] are iovecs over live slices of `parts`, which
        // pwritev only reads; the offset fits off_t for any file we write.
        let n = unsafe { libc::pwritev(file.as_raw_fd(), iov[first..].as_ptr(), count, offset as libc::off_t) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut n = n as usize;
        offset += n as u64;
        while n > 0 && first < iov.len() {
            let v = &mut iov[first];
            if n >= v.iov_len {
                n -= v.iov_len;
                first += 1;
            } else {
                // SAFETY: n < iov_len: the advanced pointer stays inside the same slice.
                v.iov_base = unsafe { v.iov_base.cast::<u8>().add(n) }.cast();
                v.iov_len -= n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// An anonymous file in `dir` or the system temp dir (O_TMPFILE: never
/// visible, gone when closed).
fn temp_file(dir: Option<&Path>) -> io::Result<File> {
    std::fs::OpenOptions::new().read(true).write(true).mode(0o600).custom_flags(libc::O_TMPFILE).open(temp_dir(dir))
}

/// The directory temporary files go to: `configured`, else `$TMPDIR`,
/// else `/tmp`.
pub fn temp_dir(configured: Option<&Path>) -> std::path::PathBuf {
    configured.map_or_else(std::env::temp_dir, Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(sizes: &[usize]) {
        let mut spool = Spool::default();
        let mut expect = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let chunk: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
            spool.write(&chunk).unwrap();
            expect.extend_from_slice(&chunk);
        }
        assert_eq!(spool.len(), expect.len() as u64);
        spool.rewind().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 7000];
        loop {
            let n = spool.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, expect);
    }

    #[test]
    fn small_bodies_stay_in_memory() {
        round_trip(&[10, 0, 1000]);
    }

    #[test]
    fn large_bodies_spill_to_a_file() {
        round_trip(&[60_000, 10_000, 300_000, 1]);
    }

    /// Interleaved writes and reads come out in order, through memory, the
    /// file, and memory again once read empty.
    #[test]
    fn fifo_order_across_memory_and_file() {
        let mut spool = Spool::new(1000);
        let mut expect = std::collections::VecDeque::new();
        let mut got = Vec::new();
        let mut want = Vec::new();
        let mut buf = [0u8; 700];
        let mut k = 0u8;
        for round in 0..200usize {
            let n = (round * 37) % 900;
            let chunk: Vec<u8> = (0..n)
                .map(|_| {
                    k = k.wrapping_add(1);
                    k
                })
                .collect();
            spool.write(&chunk).unwrap();
            expect.extend(chunk);
            if round % 3 != 0 {
                let r = spool.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..r]);
                want.extend(expect.drain(..r));
            }
            assert_eq!(spool.unread(), expect.len() as u64);
            if round == 100 {
                assert!(spool.in_file() > 0, "never spilled");
                while spool.unread() > 0 {
                    let r = spool.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..r]);
                    want.extend(expect.drain(..r));
                }
            }
        }
        assert_eq!(got, want);
        assert!(spool.memory.len() <= 1000 + 900);
    }
}
