//! mod_fastcgi_rs: Apache httpd 2.4's FastCGI gateway, a drop-in for the old
//! `mod_fastcgi`, in Rust behind a thin C shim (`c-shim/mod_fastcgi.c`).
//!
//! One room per concern, and a room knows only the rooms below it
//! (docs/development.md has the map; `tests/rooms.rs` keeps it):
//! `protocol` (FastCGI 1.0 records, sans-IO) and `config` (directives into
//! typed structs) are pure; `transport` owns sockets; `metrics` the shared
//! scoreboard; `pm` the process manager; `upstream` which connection a
//! request gets; `gateway` one FastCGI exchange for one request against
//! the [`gateway::Client`] trait; `status` the pages; `apache` is the only
//! place that touches httpd through FFI.

pub mod config;
pub mod gateway;
pub mod log;
pub mod metrics;
pub mod pm;
pub mod protocol;
pub mod status;
pub mod transport;
pub mod upstream;

#[cfg(feature = "apache")]
mod apache;

/// A new directory of a unit test's own under the temporary directory: made
/// by one `mkdir` under a name nobody can guess, which fails rather than
/// take over a name another user put in the world-writable `/tmp` first (a
/// directory, or a link to one). Paths under it are the test's alone, even
/// when the tests run as root.
#[cfg(test)]
pub(crate) fn fresh_test_dir(tag: &str) -> std::path::PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    loop {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fcgi-{tag}-{}-{n}-{nanos:x}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("mkdir {}: {e}", dir.display()),
        }
    }
}
