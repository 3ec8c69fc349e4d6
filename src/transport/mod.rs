//! Sockets to FastCGI applications: where they are ([`Endpoint`]), connecting
//! with the original's `-appConnTimeout` semantics, and waiting for readiness
//! with an idle timeout. No FastCGI framing here.

mod conn;
mod endpoint;

pub use conn::{connect, peer_closed, unix_sockaddr, writable_now, Conn, Ready};
pub use endpoint::{hashed_name, is_literal, resolve, split_host_port, Endpoint, EndpointError};

/// A unit test's Unix socket: listening at `s` in a [`fresh_test_dir`],
/// with the directory (to remove at the end) and the endpoint to connect to.
#[cfg(test)]
pub(crate) fn test_socket(tag: &str) -> (std::path::PathBuf, std::os::unix::net::UnixListener, Endpoint) {
    let dir = fresh_test_dir(tag);
    let path = dir.join("s");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    (dir, listener, Endpoint::Unix(path))
}

/// A new directory of a unit test's own under the temporary directory: made
/// by one `mkdir` under a name nobody can guess, which fails rather than
/// take over a name another user put in the world-writable `/tmp` first (a
/// directory, or a link to one). Paths under it are the test's alone, even
/// when the tests run as root. In `transport`, which the rooms whose tests
/// need one may import: they bind Unix sockets in it.
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
