//! Bytes that must wait, in order, with bounded memory: memory up to a
//! limit, an unlinked temporary file beyond. Two uses: a request body of
//! unknown length, held until its end so CONTENT_LENGTH can be sent (PHP and
//! most applications need it); and a response the client cannot take as
//! fast as the application writes it, held so the application is free as
//! soon as it has answered.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// Bytes of a request body kept in memory before spilling to a file.
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
        Spool { memory: Vec::new(), memory_read: 0, memory_limit, file: None, file_written: 0, file_read: 0, len: 0 }
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
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(temp_file()?),
        };
        file.write_all_at(data, self.file_written)?;
        self.file_written += data.len() as u64;
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

    /// Empty again: memory reused, the file truncated.
    fn reset(&mut self) -> io::Result<()> {
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

/// An anonymous file in the system temp dir (O_TMPFILE: never visible, gone
/// when closed).
fn temp_file() -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(std::env::temp_dir())
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
