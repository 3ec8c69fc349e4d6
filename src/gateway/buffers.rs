//! The buffers a request works with, kept per worker thread between
//! requests so that a plain request allocates and zero-fills none.

/// Bytes of the request body handled at a time.
pub(super) const IO_CHUNK: usize = 64 * 1024;

/// Bytes read from the application per system call. Its STDOUT goes to
/// httpd in one pass, and httpd's core output filter writes up to 64 KiB
/// (its FlushMaxThreshold) without ever waiting for the client: a larger
/// pass could wait for a slow client, holding the application.
const INPUT_CHUNK: usize = 64 * 1024;

/// The two I/O buffers of an exchange, kept per thread between requests so
/// that no request allocates or zero-fills them.
pub(super) struct Scratch {
    /// What one read from the application brings.
    pub input: Vec<u8>,
    /// One piece of the request body, written to the application from
    /// here (STDIN records are built around it, not copied).
    pub body: Vec<u8>,
    /// One piece of a held response on its way to the client.
    pub held: Vec<u8>,
}

thread_local! {
    /// Every worker thread keeps its [`Scratch`]: made per request, the three
    /// calloc'd buffers cost more than the rest of a small request in Apache
    /// (glibc zeroes memory it hands out again: 192 KiB per request), and
    /// under the event MPM a keep-alive connection's requests go to whichever
    /// thread is free. With 8 keepers among 64 threads, Apache spent 12.6 µs
    /// of user time per 13-byte GET against 7.9 µs with every thread keeping
    /// (wrk -c16, one child of 64 threads). The memory stays bounded: 192 KiB
    /// per thread at most (httpd itself lets each thread's allocator keep up
    /// to MaxMemFree, 2 MiB by default), and a request that held a large
    /// backlog hands the pages of its thread's set back
    /// ([`give_back_memory`]).
    static SCRATCH: std::cell::Cell<Option<Box<Scratch>>> = const { std::cell::Cell::new(None) };
}

impl Scratch {
    /// This thread's buffers (new ones when they are in use or not made
    /// yet); they go back to the thread when the guard drops.
    pub(super) fn take() -> ScratchGuard {
        let kept = SCRATCH.try_with(|cell| cell.take()).ok().flatten();
        ScratchGuard {
            buffers: Some(kept.unwrap_or_else(|| {
                Box::new(Scratch { input: vec![0; INPUT_CHUNK], body: vec![0; IO_CHUNK], held: vec![0; IO_CHUNK] })
            })),
        }
    }
}

/// Borrowed [`Scratch`], returned to the thread on drop.
pub(super) struct ScratchGuard {
    buffers: Option<Box<Scratch>>,
}

impl std::ops::Deref for ScratchGuard {
    type Target = Scratch;
    fn deref(&self) -> &Scratch {
        self.buffers.as_deref().unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl std::ops::DerefMut for ScratchGuard {
    fn deref_mut(&mut self) -> &mut Scratch {
        self.buffers.as_deref_mut().unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        let buffers = self.buffers.take();
        // A second set of this thread's (nested use) is freed.
        let _ = SCRATCH.try_with(|cell| drop(cell.replace(buffers)));
    }
}

/// The buffers that go with one request from start to end (its PARAMS and
/// STDIN records, the end of STDIN, the header block), kept per thread
/// between requests so that a request allocates none. [`Scratch`] holds
/// those one run of the pump borrows.
#[derive(Clone, Copy)]
pub(super) enum Spare {
    Records,
    Tail,
    HeaderBlock,
    /// The copy of BEGIN_REQUEST and PARAMS that a replayable attempt sends.
    Replay,
}

/// A spare buffer grown past this goes (a huge environment or header block
/// is no reason to keep memory).
const SPARE_MAX: usize = 16 * 1024;

thread_local! {
    static SPARES: [std::cell::Cell<Vec<u8>>; 4] = const {
        [const { std::cell::Cell::new(Vec::new()) }; 4]
    };
}

impl Spare {
    /// An empty buffer: the thread's spare when it has one.
    pub(super) fn take(self) -> Vec<u8> {
        SPARES.try_with(|spares| spares[self as usize].take()).unwrap_or_default()
    }

    /// Keeps `buf` as the thread's spare, emptied (one with no memory would
    /// only take the place of one that has some).
    pub(super) fn keep(self, mut buf: Vec<u8>) {
        if (1..=SPARE_MAX).contains(&buf.capacity()) {
            buf.clear();
            let _ = SPARES.try_with(|spares| spares[self as usize].set(buf));
        }
    }
}

/// Gives the memory a request that held a large backlog made resident back
/// to the system, so that a child does not keep the high-water mark of a
/// burst of slow clients for ever: the memory glibc keeps free (every
/// arena), and the pages of this thread's kept [`Scratch`].
///
/// Why the kept buffers too: they are calloc'd, and fresh heap memory is
/// not touched by calloc, so a thread's buffers cost little until a
/// response fills them (a full 64 KiB read, a held response fed 64 KiB at a
/// time). A burst of slow readers of large responses did that to every
/// thread it reached: 192 KiB each stayed resident after the burst had
/// gone (tests/slow_client.rs, 50 readers: +1.3 to 1.6 MiB per child with
/// only 8 threads keeping theirs). The buffers stay allocated; their pages
/// come back zeroed when next touched, and only those a request touches.
pub(super) fn give_back_memory() {
    let _ = SCRATCH.try_with(|cell| {
        if let Some(mut kept) = cell.take() {
            let Scratch { input, body, held } = &mut *kept;
            for buf in [input, body, held] {
                discard_pages(buf);
            }
            cell.set(Some(kept));
        }
    });
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe { libc::malloc_trim(0) };
}

/// Hands the whole pages inside `buf` back to the system; they read as
/// zeros when next touched. The allocator's own bookkeeping (before the
/// first byte, after the last) is on no page that goes.
fn discard_pages(buf: &mut [u8]) {
    // SAFETY: sysconf only reads a system constant.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
    if !page.is_power_of_two() {
        return;
    }
    let start = (buf.as_mut_ptr() as usize).next_multiple_of(page);
    let end = (buf.as_mut_ptr() as usize + buf.len()) & !(page - 1);
    if end > start {
        // SAFETY: [start, end) lies inside `buf`, which this function
        // borrows mutably: no one else reads or writes it meanwhile. It is
        // private anonymous memory (glibc's heaps and mappings), whose
        // pages MADV_DONTNEED replaces with zeroed ones on the next touch:
        // the same as writing zeros over them, as they were when made.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

#[cfg(test)]
mod tests {
    use super::discard_pages;

    /// Only whole pages inside the buffer go (they read as zeros); the
    /// bytes before the first page boundary and after the last stay.
    #[test]
    fn discarded_pages_read_as_zeros_and_nothing_else_changes() {
        // SAFETY: sysconf only reads a system constant.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let mut buf = vec![7u8; 64 * 1024 + 100];
        let slice = &mut buf[1..];
        let start = (slice.as_ptr() as usize).next_multiple_of(page) - slice.as_ptr() as usize;
        let end = (slice.as_ptr() as usize + slice.len()) / page * page - slice.as_ptr() as usize;
        discard_pages(slice);
        assert!(slice[..start].iter().all(|&b| b == 7));
        assert!(slice[start..end].iter().all(|&b| b == 0));
        assert!(slice[end..].iter().all(|&b| b == 7));
        assert_eq!(buf[0], 7);
        // Still usable.
        buf[5000] = 1;
        assert_eq!(buf[5000], 1);
    }
}
