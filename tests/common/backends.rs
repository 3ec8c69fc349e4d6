//! Real FastCGI applications, started by the tests and stopped by PID:
//! the tutorial's flup WSGI app, a libfcgi C program, and php-fpm.

use std::fs;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::util::{self, TestDir};

const PYTHON: &str = "/usr/bin/python3";

/// Spawns `cmd` in a session of its own with output to `log`.
fn spawn(mut cmd: Command, log: &Path) -> Child {
    let out = fs::File::create(log).expect("backend log");
    let err = out.try_clone().expect("backend log clone");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid() is async-signal-safe; it keeps terminal signals and
    // Apache's process-group signals away from the backend.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Waits until `ready()` or the child exits; panics with the log otherwise.
fn wait_ready(child: &mut Child, what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let mut exited = None;
    let ok = util::wait_until(Duration::from_secs(15), || {
        if let Ok(Some(st)) = child.try_wait() {
            exited = Some(st);
            return true;
        }
        ready()
    });
    if let Some(st) = exited {
        panic!("{what} exited before it was ready ({st}):\n{}", util::read_lossy(log));
    }
    if !ok {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not become ready in 15 s:\n{}", util::read_lossy(log));
    }
}

fn unix_ready(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

/// The tutorial's flup app (`tests/apps/wsgi_app.py`) as an external
/// FastCGI server on a Unix socket.
pub struct FlupApp {
    pub socket: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl FlupApp {
    /// Starts it on `<dir>/sock/<name>.sock`.
    pub fn start(dir: &TestDir, name: &str) -> FlupApp {
        let socket = dir.sock(&format!("{name}.sock"));
        let log = dir.join(&format!("logs/{name}.log"));
        let _ = fs::remove_file(&socket);
        let mut cmd = Command::new(PYTHON);
        cmd.arg(util::apps_dir().join("wsgi_app.py")).arg(&socket);
        let mut child = spawn(cmd, &log);
        wait_ready(&mut child, "flup app", &log, || unix_ready(&socket));
        FlupApp { socket, log, child: Some(child) }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for FlupApp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            util::stop_child(&mut c, Duration::from_secs(3), false);
        }
        let _ = fs::remove_file(&self.socket);
    }
}

/// Where the libfcgi C app listens.
pub enum CAddr {
    Unix(PathBuf),
    Tcp(u16),
}

/// `tests/apps/echo.c`, compiled with `cc ... -lfcgi` into the test dir.
pub struct CApp {
    pub addr: String,
    pub log: PathBuf,
    child: Option<Child>,
    socket: Option<PathBuf>,
}

/// Compiles `tests/apps/<name>` against libfcgi into `dest`, mode 0755.
pub fn compile_fcgi_app(name: &str, dest: &Path) {
    let src = util::apps_dir().join(name);
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(dest)
        .arg(&src)
        .arg("-lfcgi")
        .output()
        .expect("run cc (is a C compiler installed?)");
    assert!(
        out.status.success(),
        "compiling {} failed (libfcgi-dev installed?):\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
}

impl CApp {
    /// Compiles the app into `<dir>/bin/echo` (once per directory).
    pub fn build(dir: &TestDir) -> PathBuf {
        let bin = dir.join("bin/echo");
        if bin.exists() {
            return bin;
        }
        compile_fcgi_app("echo.c", &bin);
        bin
    }

    pub fn start(dir: &TestDir, addr: CAddr) -> CApp {
        CApp::start_with(dir, addr, &[])
    }

    /// [`CApp::start`] with `env` added to its environment
    /// (`ECHO_PROCS`, `ECHO_NAME`, ...: tests/apps/echo.c).
    pub fn start_with(dir: &TestDir, addr: CAddr, env: &[(&str, &str)]) -> CApp {
        let bin = CApp::build(dir);
        let (arg, socket) = match &addr {
            CAddr::Unix(p) => {
                let _ = fs::remove_file(p);
                (p.display().to_string(), Some(p.clone()))
            }
            CAddr::Tcp(port) => (format!("127.0.0.1:{port}"), None),
        };
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = dir.join(&format!("logs/echo-{n}.log"));
        let mut cmd = Command::new(&bin);
        cmd.arg(&arg).envs(env.iter().copied());
        let mut child = spawn(cmd, &log);
        match &addr {
            CAddr::Unix(p) => wait_ready(&mut child, "libfcgi echo app", &log, || unix_ready(p)),
            CAddr::Tcp(port) => {
                wait_ready(&mut child, "libfcgi echo app", &log, || TcpStream::connect(("127.0.0.1", *port)).is_ok())
            }
        }
        CApp { addr: arg, log, child: Some(child), socket }
    }
}

impl Drop for CApp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            util::stop_child(&mut c, Duration::from_secs(3), false);
        }
        if let Some(s) = &self.socket {
            let _ = fs::remove_file(s);
        }
    }
}

/// php-fpm running a temp pool on a Unix socket.
pub struct PhpFpm {
    pub socket: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// `/usr/sbin/php-fpm*` (e.g. php-fpm8.2).
pub fn php_fpm_binary() -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/sbin")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).map(|n| n.starts_with("php-fpm")).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().expect("no /usr/sbin/php-fpm* found: install php-fpm (make deps)")
}

impl PhpFpm {
    pub fn start(dir: &TestDir) -> PhpFpm {
        PhpFpm::start_with(dir, 2)
    }

    /// php-fpm with a static pool of `children` workers.
    pub fn start_with(dir: &TestDir, children: u32) -> PhpFpm {
        let socket = dir.sock("php-fpm.sock");
        let log = dir.join("logs/php-fpm.log");
        let conf = dir.join("conf/php-fpm.conf");
        let user = if util::is_root() { "user = www-data\ngroup = www-data\n" } else { "" };
        util::write_file(
            &conf,
            format!(
                "[global]\nerror_log = {log}\ndaemonize = no\npid = {pid}\n\n\
                 [test]\nlisten = {sock}\nlisten.mode = 0666\n{user}\
                 pm = static\npm.max_children = {children}\ncatch_workers_output = yes\n",
                log = log.display(),
                pid = dir.join("run/php-fpm.pid").display(),
                sock = socket.display(),
            ),
        );
        let mut cmd = Command::new(php_fpm_binary());
        cmd.arg("-F").arg("-y").arg(&conf);
        let out_log = dir.join("logs/php-fpm.out");
        let mut child = spawn(cmd, &out_log);
        wait_ready(&mut child, "php-fpm", &out_log, || unix_ready(&socket));
        PhpFpm { socket, log, child: Some(child) }
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            util::stop_child(&mut c, Duration::from_secs(5), false);
        }
    }
}
