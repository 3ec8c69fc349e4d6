//! Where each number lives in the segment: every field is one 64-bit word,
//! every record a fixed number of words. Offsets, not structs, so that the
//! layout is the same in every process that maps the segment and nothing
//! but atomics ever touches it.

/// "FCGISB07": the segment holds a scoreboard of this layout.
pub const MAGIC: u64 = 0x4643_4749_5342_3037;

/// The header's words.
pub mod header {
    pub const MAGIC: usize = 0;
    pub const FINGERPRINT: usize = 1;
    pub const APP_SLOTS: usize = 2;
    pub const ENDPOINT_SLOTS: usize = 3;
    pub const PROCESS_SLOTS: usize = 4;
    /// Unix time the segment was created.
    pub const CREATED: usize = 5;
    /// Restarts the segment was kept across.
    pub const RESTARTS: usize = 6;
    /// The process table's sequence number (odd while the manager writes it).
    pub const PROC_SEQ: usize = 7;
    /// The pid of the manager that writes the process table.
    pub const MANAGER_PID: usize = 8;
    /// Requests of dynamic applications that found every slot taken.
    pub const OVERFLOW: usize = 9;
    /// Lease words (admission under `-max-in-flight`); 0 without limits.
    pub const LEASE_SLOTS: usize = 10;
    /// Monotonic time (ms) of the last sweep for leases of dead processes.
    pub const LEASE_SWEEP: usize = 11;
    /// Requests admitted without a lease word (all were taken).
    pub const LEASELESS: usize = 12;
    /// The budget of temporary-file bytes for all children (request
    /// bodies and held responses), the bytes in such files now, the most
    /// there were, writes refused for want of budget, and the unix second
    /// the last refusal was logged.
    pub const SPOOL_BUDGET: usize = 13;
    pub const SPOOL_USED: usize = 14;
    pub const SPOOL_PEAK: usize = 15;
    pub const SPOOL_REFUSED: usize = 16;
    pub const SPOOL_LOGGED: usize = 17;
    pub const WORDS: usize = 24;
}

/// Upper bounds of the latency histogram buckets, in microseconds; a last
/// bucket takes everything above.
pub const BOUNDS_US: [u64; 22] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 75_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000, 500_000,
    750_000, 1_000_000, 1_500_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];
/// Buckets of one histogram, the last one unbounded.
pub const BUCKETS: usize = BOUNDS_US.len() + 1;
/// Words of one histogram: the buckets (not cumulative), then the sum of
/// the observations in microseconds.
pub const HISTOGRAM_WORDS: usize = BUCKETS + 1;

/// Longest application name kept (a path; longer ones are cut).
pub const APP_NAME_BYTES: usize = 256;
/// Longest endpoint name kept.
pub const ENDPOINT_NAME_BYTES: usize = 128;

/// An application's words.
pub mod app {
    use super::{APP_NAME_BYTES, HISTOGRAM_WORDS};
    /// Hash of path and identity; 0: free.
    pub const KEY: usize = 0;
    /// 1 once the name and kind are written.
    pub const READY: usize = 1;
    pub const KIND: usize = 2;
    /// uid << 32 | gid, or u64::MAX for Apache's own identity.
    pub const IDENTITY: usize = 3;
    pub const EP_FIRST: usize = 4;
    pub const EP_COUNT: usize = 5;
    pub const NAME_LEN: usize = 6;
    pub const NAME: usize = 7;
    const AFTER_NAME: usize = NAME + APP_NAME_BYTES / 8;
    pub const REQUESTS: usize = AFTER_NAME;
    pub const IN_FLIGHT: usize = AFTER_NAME + 1;
    pub const BYTES_IN: usize = AFTER_NAME + 2;
    pub const BYTES_OUT: usize = AFTER_NAME + 3;
    /// Written by the process manager.
    pub const PROCESSES: usize = AFTER_NAME + 4;
    pub const FAILURES: usize = AFTER_NAME + 5;
    pub const BACKED_OFF: usize = AFTER_NAME + 6;
    pub const STARTS: usize = AFTER_NAME + 7;
    /// One counter per [`crate::metrics::Outcome`].
    pub const OUTCOMES: usize = AFTER_NAME + 8;
    pub const TTFB: usize = OUTCOMES + crate::metrics::Outcome::ALL.len();
    pub const TOTAL: usize = TTFB + HISTOGRAM_WORDS;
    /// `-balance round-robin`'s turn counter (also breaks least-busy ties).
    pub const TURN: usize = TOTAL + HISTOGRAM_WORDS;
    /// Bumped by the process manager each time it publishes a new address set.
    pub const ADDR_GEN: usize = TURN + 1;
    /// Responses that waited in a backlog for a slow client, their bytes
    /// that waited, how many of those went to a temporary file, and how
    /// many such responses reached FastCgiResponseSpoolMax (paced).
    pub const HELD: usize = ADDR_GEN + 1;
    pub const HELD_BYTES: usize = HELD + 1;
    pub const HELD_FILE_BYTES: usize = HELD + 2;
    pub const PACED: usize = HELD + 3;
    /// Admission under `-max-in-flight`: requests holding a place now,
    /// requests waiting for one, and the futex word a release bumps to
    /// wake a waiter (read and written only as the `AtomicU32` of its low
    /// half).
    pub const ADMITTED: usize = PACED + 1;
    pub const WAITING: usize = ADMITTED + 1;
    pub const WAKE: usize = ADMITTED + 2;
    /// Requests that waited for a place, and their waits in microseconds.
    pub const WAITED: usize = ADMITTED + 3;
    pub const WAITED_US: usize = ADMITTED + 4;
    /// Refusals, one counter per [`crate::metrics::Refusal`].
    pub const REFUSALS: usize = ADMITTED + 5;
    /// Places given back for processes that died holding them.
    pub const RECLAIMED: usize = REFUSALS + crate::metrics::Refusal::ALL.len();
    /// Unix time of the last refusal logged (one line a second at most).
    pub const REFUSAL_LOGGED: usize = RECLAIMED + 1;
    /// Request bodies received whole before the application was asked,
    /// their bytes, and those of them that went to a temporary file.
    pub const RECEIVED: usize = REFUSAL_LOGGED + 1;
    pub const RECEIVED_BYTES: usize = RECEIVED + 1;
    pub const RECEIVED_FILE_BYTES: usize = RECEIVED + 2;
    pub const WORDS: usize = RECEIVED_FILE_BYTES + 1;
}

/// An endpoint's words.
pub mod endpoint {
    use super::ENDPOINT_NAME_BYTES;
    /// The application slot it belongs to, + 1 (0: unused).
    pub const APP: usize = 0;
    /// Its place in the application's failover order.
    pub const ORDER: usize = 1;
    pub const NAME_LEN: usize = 2;
    pub const NAME: usize = 3;
    const AFTER_NAME: usize = NAME + ENDPOINT_NAME_BYTES / 8;
    /// Requests that reached it.
    pub const REQUESTS: usize = AFTER_NAME;
    pub const IN_FLIGHT: usize = AFTER_NAME + 1;
    pub const CONNECT_FAILURES: usize = AFTER_NAME + 2;
    pub const CONNECT_TIMEOUTS: usize = AFTER_NAME + 3;
    /// Requests that reached it after an earlier endpoint failed.
    pub const FAILOVERS: usize = AFTER_NAME + 4;
    /// Unix time of the first failure since the last success; 0: up.
    pub const DOWN_SINCE: usize = AFTER_NAME + 5;
    pub const LAST_FAILURE: usize = AFTER_NAME + 6;
    /// Pooled (`-keep-conn`) connections idle now, and requests that reused one.
    pub const POOL_IDLE: usize = AFTER_NAME + 7;
    pub const POOL_REUSED: usize = AFTER_NAME + 8;
    /// Shared health: 0 up, 1 down (flipped by compare-and-swap, so one
    /// process logs each change).
    pub const STATE: usize = AFTER_NAME + 9;
    /// While down: the monotonic time (ms) before which it is not tried.
    pub const RETRY_AT: usize = AFTER_NAME + 10;
    /// While down: failed tries since it went down (the back-off's exponent).
    pub const BACKOFF: usize = AFTER_NAME + 11;
    /// Monotonic time (ms) it came back up: the start of its slow start.
    pub const UP_AT: usize = AFTER_NAME + 12;
    /// FCGI_MAX_CONNS as the manager learned it: 0 not asked yet,
    /// `CAPACITY_NONE` no answer.
    pub const CAPACITY: usize = AFTER_NAME + 13;
    /// 0: unused; 1: in the server's current address set; 2: removed
    /// (requests in flight finish, no new ones).
    pub const ACTIVE: usize = AFTER_NAME + 14;
    /// Odd while the manager rewrites the address below.
    pub const ADDR_SEQ: usize = AFTER_NAME + 15;
    /// family (4 or 6) << 16 | port; 0: no address (a Unix socket).
    pub const ADDR_META: usize = AFTER_NAME + 16;
    /// The IP address, big-endian, in two words (IPv4 in the low word).
    pub const ADDR_HI: usize = AFTER_NAME + 17;
    pub const ADDR_LO: usize = AFTER_NAME + 18;
    /// Why it is down: `DOWN_UNREACHABLE` (connect failed) or `DOWN_SILENT`
    /// (connected, no answer).
    pub const REASON: usize = AFTER_NAME + 19;
    /// Unix time (ms) a request last waited on a fresh connection while
    /// connections to the endpoint were kept idle (0: never): connections
    /// pooled before it are closed by any child that comes across them,
    /// and none is pooled for a while after it.
    pub const STARVED_AT: usize = AFTER_NAME + 20;
    pub const WORDS: usize = AFTER_NAME + 21;
    pub const DOWN_UNREACHABLE: u64 = 1;
    pub const DOWN_SILENT: u64 = 2;
    /// [`CAPACITY`]: the endpoint did not answer FCGI_GET_VALUES.
    pub const CAPACITY_NONE: u64 = u64::MAX;
}

/// A process's words (written by the process manager only).
pub mod process {
    /// 0: unused.
    pub const PID: usize = 0;
    /// The application slot, + 1.
    pub const APP: usize = 1;
    /// Unix time it started.
    pub const STARTED: usize = 2;
    pub const WORDS: usize = 3;
}

/// Rows of the spool budget's per-process accounting (one word each: the
/// pid and the bytes its temporary files hold), so that what a killed
/// child held is given back. More children than this are still counted,
/// without that.
pub const SPOOL_ROWS: usize = 1024;

/// Words of a scoreboard with these many slots (a lease is one word).
pub fn words(apps: usize, endpoints: usize, processes: usize, leases: usize) -> usize {
    header::WORDS + apps * app::WORDS + endpoints * endpoint::WORDS + processes * process::WORDS + leases + SPOOL_ROWS
}
