//! Temp directories, free ports, locating the module, polling.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The built module: `$FASTCGI_RS_MODULE`, else
/// `$CARGO_MANIFEST_DIR/target/release/mod_fastcgi_rs.so`. Panics (the test
/// fails) when it does not exist: a missing module must never pass.
pub fn module_path() -> PathBuf {
    let path = match std::env::var_os("FASTCGI_RS_MODULE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/mod_fastcgi_rs.so"),
    };
    if !path.is_file() {
        panic!(
            "mod_fastcgi_rs.so not found at {} (set FASTCGI_RS_MODULE or run `make` first); \
             the integration tests need the built module",
            path.display()
        );
    }
    path
}

/// `tests/apps` in the source tree.
pub fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Takes `lock` for a test that must not share the machine with its
/// siblings (they measure time or memory on 2 cores); a sibling that
/// panicked holding it does not stop the others.
pub fn one_at_a_time(lock: &'static std::sync::Mutex<()>) -> std::sync::MutexGuard<'static, ()> {
    lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Polls `f` every 25 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Creates `path` (and parents) with mode 0755, so `www-data` can reach it.
pub fn mkdir_0755(path: &Path) {
    mkdir_mode(path, 0o755);
}

/// Makes `path` (and its parents) a directory anyone may write in, sticky
/// like /tmp (1777): for what Apache's user writes there (temporary files,
/// cores, sockets).
pub fn mkdir_1777(path: &Path) {
    mkdir_mode(path, 0o1777);
}

fn mkdir_mode(path: &Path, mode: u32) {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode & 0o777)
        .create(path)
        .unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Writes a file readable by everyone (0644).
pub fn write_file(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        mkdir_0755(parent);
    }
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Reads a file as (lossy) UTF-8; empty when it does not exist.
pub fn read_lossy(path: &Path) -> String {
    fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A per-test directory under /tmp, mode 0755 all the way, removed on drop
/// unless the test panicked (then its path is printed, for the logs) or
/// `FASTCGI_RS_KEEP` is set.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // Short: Unix socket paths must stay under 108 bytes.
        let short: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(24).collect();
        let path = PathBuf::from(format!("/tmp/fcgirs-{}-{}-{:x}-{}", std::process::id(), n, nanos & 0xffff, short));
        mkdir_0755(&path);
        for sub in ["htdocs", "sock", "logs", "run", "conf", "bin", "cgi-bin"] {
            mkdir_0755(&path.join(sub));
        }
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// DocumentRoot of the Apache started in this directory.
    pub fn htdocs(&self) -> PathBuf {
        self.path.join("htdocs")
    }

    /// A directory for Unix sockets (0755; the sockets themselves are 0777).
    pub fn sock(&self, name: &str) -> PathBuf {
        self.path.join("sock").join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("FASTCGI_RS_KEEP").is_some() {
            eprintln!("test files kept in {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Sends `sig` to `pid` (ignores errors: the process may be gone).
pub fn signal(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill() on a pid this harness started; no memory involved.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Stops a child this harness started: SIGTERM, bounded wait, then SIGKILL
/// (also to its process group when `group` is set, as the child is the
/// leader of its own session).
pub fn stop_child(child: &mut std::process::Child, grace: Duration, group: bool) {
    let pid = child.id() as i32;
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(pid, libc::SIGTERM);
    let exited = wait_until(grace, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        // The leader is not reaped yet, so its pid (and group id) is still ours.
        if group {
            signal(-pid, libc::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// How many times `needle` occurs in `log`.
pub fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

/// The numbers that follow each occurrence of `prefix` in `log`.
pub fn numbers_after(log: &str, prefix: &str) -> Vec<i32> {
    log.match_indices(prefix)
        .filter_map(|(i, _)| {
            let digits: String = log[i + prefix.len()..].chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

/// The uid and gid of `www-data`, the user Apache's workers run as in the tests.
pub fn www_data() -> (u32, u32) {
    // SAFETY: getpwnam with a valid C string; the fields are copied at once.
    unsafe {
        let pw = libc::getpwnam(c"www-data".as_ptr());
        assert!(!pw.is_null(), "no www-data user");
        ((*pw).pw_uid, (*pw).pw_gid)
    }
}
