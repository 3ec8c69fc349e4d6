//! Holding a request body of unknown length until its end, so CONTENT_LENGTH
//! can be sent (PHP and most applications need it): memory up to a small
//! threshold, an unlinked temporary file beyond, so memory stays bounded.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

/// Bytes kept in memory before spilling to a file.
const IN_MEMORY: usize = 64 * 1024;

/// A spooled body: write it all, then read it back once.
#[derive(Debug, Default)]
pub struct Spool {
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
    read_pos: usize,
}

impl Spool {
    /// Appends body bytes.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.len += data.len() as u64;
        if self.file.is_none() && self.memory.len() + data.len() <= IN_MEMORY {
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let mut f = temp_file()?;
                f.write_all(&self.memory)?;
                self.memory = Vec::new();
                self.file.insert(f)
            }
        };
        file.write_all(data)
    }

    /// Total bytes written.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Switches from writing to reading from the start.
    pub fn rewind(&mut self) -> io::Result<()> {
        self.read_pos = 0;
        match &mut self.file {
            Some(f) => f.seek(SeekFrom::Start(0)).map(drop),
            None => Ok(()),
        }
    }

    /// Reads the next bytes back; `Ok(0)` at the end.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.read(buf),
            None => {
                let rest = self.memory.get(self.read_pos..).unwrap_or_default();
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                self.read_pos += n;
                Ok(n)
            }
        }
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
}
