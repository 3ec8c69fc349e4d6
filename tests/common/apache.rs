//! A real Apache httpd in a temp ServerRoot, with mod_fastcgi_rs loaded.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::http::{self, Request};
use super::util::{self, TestDir};

const MODULES_DIR: &str = "/usr/lib/apache2/modules";
/// What the readiness probe file holds.
const PROBE_BODY: &str = "harness probe ok\n";
pub const PROBE_PATH: &str = "/__harness_probe.txt";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Prefork,
}

impl Mpm {
    fn module(self) -> (&'static str, &'static str) {
        match self {
            Mpm::Event => ("mpm_event_module", "mod_mpm_event.so"),
            Mpm::Prefork => ("mpm_prefork_module", "mod_mpm_prefork.so"),
        }
    }

    fn settings(self) -> &'static str {
        match self {
            Mpm::Event => {
                "StartServers 1\nServerLimit 2\nThreadLimit 16\nThreadsPerChild 16\n\
                 MaxRequestWorkers 32\nMinSpareThreads 1\nMaxSpareThreads 32\n"
            }
            Mpm::Prefork => {
                "StartServers 2\nServerLimit 8\nMinSpareServers 1\nMaxSpareServers 4\n\
                 MaxRequestWorkers 8\n"
            }
        }
    }
}

/// The standard modules every test server loads (when present on disk;
/// log_config and unixd are compiled into Debian's httpd).
const STANDARD_MODULES: &[(&str, &str)] = &[
    ("authz_core_module", "mod_authz_core.so"),
    ("authz_host_module", "mod_authz_host.so"),
    ("authn_core_module", "mod_authn_core.so"),
    ("mime_module", "mod_mime.so"),
    ("alias_module", "mod_alias.so"),
    ("actions_module", "mod_actions.so"),
    ("dir_module", "mod_dir.so"),
    ("log_config_module", "mod_log_config.so"),
    ("env_module", "mod_env.so"),
    ("setenvif_module", "mod_setenvif.so"),
    ("rewrite_module", "mod_rewrite.so"),
    ("headers_module", "mod_headers.so"),
    ("unixd_module", "mod_unixd.so"),
];

pub struct ApacheBuilder {
    root: PathBuf,
    htdocs: PathBuf,
    mpm: Mpm,
    log_level: String,
    config: String,
    load_module: bool,
    /// Start httpd as this (uid, gid) instead of the test's own user.
    run_as: Option<(u32, u32)>,
    /// Bind-mounted over /etc/hosts in a mount namespace of httpd's own.
    hosts_file: Option<PathBuf>,
}

impl ApacheBuilder {
    pub fn mpm(mut self, mpm: Mpm) -> Self {
        self.mpm = mpm;
        self
    }

    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.to_string();
        self
    }

    /// Appends configuration text (directives at server level).
    pub fn config(mut self, text: &str) -> Self {
        self.config.push_str(text);
        self.config.push('\n');
        self
    }

    /// Starts httpd as the plain user `name` (only when the tests run as
    /// root; otherwise they already run as a plain user): no User/Group
    /// lines, and the ServerRoot (conf, logs, run) is chowned to that user.
    /// Listen ports are always above 1024.
    pub fn run_as_user(mut self, name: &str) -> Self {
        if util::is_root() {
            let c = std::ffi::CString::new(name).expect("user name");
            // SAFETY: getpwnam with a valid C string; the fields are copied
            // out at once, before any other passwd call.
            let pw = unsafe { libc::getpwnam(c.as_ptr()) };
            assert!(!pw.is_null(), "no such user: {name}");
            // SAFETY: pw is non-null and points to libc's static passwd entry.
            self.run_as = Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) });
        }
        self
    }

    /// Runs httpd (and so its children and the process manager) in a mount
    /// namespace of its own where `path` is bind-mounted over /etc/hosts:
    /// glibc's resolver in httpd reads the test's names, the system's
    /// /etc/hosts is untouched. Root only (CLONE_NEWNS). Change the names
    /// while httpd runs with `Apache::set_hosts`. See `hosts_text`.
    pub fn hosts_file(mut self, path: &Path) -> Self {
        assert!(util::is_root(), "hosts_file needs root (a mount namespace)");
        self.hosts_file = Some(path.to_path_buf());
        self
    }

    /// Leaves out `LoadModule fastcgi_module` (for harness self-checks only).
    pub fn without_fastcgi(mut self) -> Self {
        self.load_module = false;
        self
    }

    fn conf_text(&self, port: u16) -> String {
        let root = self.root.display();
        let htdocs = self.htdocs.display();
        let (mpm_name, mpm_file) = self.mpm.module();
        let mut c = String::new();
        let _ = writeln!(c, "ServerRoot \"{root}\"");
        let _ = writeln!(c, "Listen 127.0.0.1:{port}");
        let _ = writeln!(c, "ServerName 127.0.0.1");
        let _ = writeln!(c, "PidFile \"{root}/logs/httpd.pid\"");
        let _ = writeln!(c, "DefaultRuntimeDir \"{root}/run\"");
        let _ = writeln!(c, "Mutex file:{root}/run default");
        let _ = writeln!(c, "ErrorLog \"{root}/logs/error.log\"");
        let _ = writeln!(c, "LogLevel {}", self.log_level);
        let _ = writeln!(c, "LoadModule {mpm_name} {MODULES_DIR}/{mpm_file}");
        c.push_str(self.mpm.settings());
        for (name, file) in STANDARD_MODULES {
            if Path::new(MODULES_DIR).join(file).exists() {
                let _ = writeln!(c, "LoadModule {name} {MODULES_DIR}/{file}");
            }
        }
        if self.load_module {
            let _ = writeln!(c, "LoadModule fastcgi_module \"{}\"", util::module_path().display());
        }
        if util::is_root() && self.run_as.is_none() {
            c.push_str("User www-data\nGroup www-data\n");
        }
        c.push_str("Timeout 60\nKeepAlive On\nMaxKeepAliveRequests 1000\n");
        c.push_str("TypesConfig /etc/mime.types\n");
        c.push_str("LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b\" common\n");
        let _ = writeln!(c, "CustomLog \"{root}/logs/access.log\" common");
        let _ = writeln!(c, "DocumentRoot \"{htdocs}\"");
        c.push_str("<Directory />\n    AllowOverride None\n    Require all denied\n</Directory>\n");
        let _ = writeln!(
            c,
            "<Directory \"{htdocs}\">\n    Options +FollowSymLinks\n    AllowOverride None\n    Require all granted\n</Directory>"
        );
        c.push_str("# ---- test configuration ----\n");
        c.push_str(&self.config);
        c.push_str("# ---- harness probe ----\n");
        let _ = writeln!(c, "<Location {PROBE_PATH}>\n    SetHandler none\n</Location>");
        c
    }

    fn prepare(&self, port: u16) -> PathBuf {
        for sub in ["logs", "run", "conf"] {
            util::mkdir_0755(&self.root.join(sub));
        }
        util::mkdir_0755(&self.htdocs);
        util::write_file(&self.htdocs.join(&PROBE_PATH[1..]), PROBE_BODY);
        let conf = self.root.join("conf/httpd.conf");
        util::write_file(&conf, self.conf_text(port));
        // Fresh logs for each start.
        let _ = fs::remove_file(self.root.join("logs/error.log"));
        if let Some((uid, gid)) = self.run_as {
            for sub in ["", "logs", "run", "conf", "conf/httpd.conf"] {
                let p = if sub.is_empty() { self.root.clone() } else { self.root.join(sub) };
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
            }
        }
        conf
    }

    /// `apache2 -t -f conf`: (exit code, stdout + stderr).
    pub fn configtest(&self) -> (i32, String) {
        let conf = self.prepare(util::free_port());
        let mut cmd = Command::new(apache_binary());
        cmd.arg("-t").arg("-f").arg(&conf).stdin(Stdio::null());
        isolate(&mut cmd, self.run_as, self.hosts_file.as_deref());
        let out = cmd.output().expect("run apache2 -t");
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        (out.status.code().unwrap_or(-1), text)
    }

    /// Starts Apache and waits (bounded) until it serves the probe file.
    /// Panics with the error log when it does not come up.
    pub fn start(self) -> Apache {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = util::free_port();
            let conf = self.prepare(port);
            match Apache::launch(&self.root, &conf, port, self.run_as, self.hosts_file.as_deref()) {
                Ok(a) => return a,
                Err(e) => {
                    // Another test may have taken the port between our probe
                    // and httpd's bind: try another one.
                    if e.contains("Address already in use") {
                        last_err = e;
                        continue;
                    }
                    panic!("{e}");
                }
            }
        }
        panic!("{last_err}");
    }
}

/// The text of a hosts file: localhost, then one `address name` line per
/// entry (several entries for one name give that name several addresses;
/// glibc's getaddrinfo returns them all, in file order).
pub fn hosts_text(entries: &[(&str, &str)]) -> String {
    let mut s = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost\n");
    for (name, addr) in entries {
        let _ = writeln!(s, "{addr} {name}");
    }
    s
}

/// Sets up the child before exec: a session of its own (prefork signals
/// its whole process group on shutdown); with `hosts`, a private mount
/// namespace with `hosts` bind-mounted over /etc/hosts; with `run_as`, the
/// switch to that user (after the mount, which needs root).
fn isolate(cmd: &mut Command, run_as: Option<(u32, u32)>, hosts: Option<&Path>) {
    let Some(hosts) = hosts else {
        if let Some((uid, gid)) = run_as {
            // std drops the supplementary groups too when it switches from root.
            cmd.uid(uid).gid(gid);
        }
        // SAFETY: setsid() is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        return;
    };
    use std::os::unix::ffi::OsStrExt;
    // Allocated before the fork: nothing may allocate in pre_exec.
    let src = std::ffi::CString::new(hosts.as_os_str().as_bytes()).expect("hosts path");
    let etc_hosts = std::ffi::CString::new("/etc/hosts").unwrap();
    let root = std::ffi::CString::new("/").unwrap();
    // SAFETY: only system calls (async-signal-safe) on C strings owned by
    // the closure; errors are returned as io::Error, which fails spawn().
    unsafe {
        cmd.pre_exec(move || {
            let err = || Err(std::io::Error::last_os_error());
            libc::setsid();
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return err();
            }
            // Our mounts must not propagate back to the system's namespace.
            let none = std::ptr::null();
            if libc::mount(none, root.as_ptr(), none, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
                return err();
            }
            if libc::mount(src.as_ptr(), etc_hosts.as_ptr(), none, libc::MS_BIND, std::ptr::null()) != 0 {
                return err();
            }
            if let Some((uid, gid)) = run_as {
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return err();
                }
            }
            Ok(())
        });
    }
}

fn apache_binary() -> &'static str {
    if Path::new("/usr/sbin/apache2").exists() {
        "/usr/sbin/apache2"
    } else {
        "apache2"
    }
}

pub struct Apache {
    pub port: u16,
    root: PathBuf,
    child: Option<Child>,
    /// With `hosts_file`: how many times `set_hosts` replaced it.
    hosts_gen: Option<std::sync::atomic::AtomicU32>,
}

impl Apache {
    /// A builder whose ServerRoot is `<dir>/apache` and DocumentRoot
    /// `<dir>/htdocs`.
    pub fn builder(dir: &TestDir) -> ApacheBuilder {
        ApacheBuilder {
            root: dir.join("apache"),
            htdocs: dir.htdocs(),
            mpm: Mpm::Event,
            log_level: "info".to_string(),
            config: String::new(),
            load_module: true,
            run_as: None,
            hosts_file: None,
        }
    }

    fn launch(
        root: &Path,
        conf: &Path,
        port: u16,
        run_as: Option<(u32, u32)>,
        hosts: Option<&Path>,
    ) -> Result<Apache, String> {
        let out = fs::File::create(root.join("logs/stdout.log")).expect("stdout log");
        let err = fs::File::create(root.join("logs/stderr.log")).expect("stderr log");
        let mut cmd = Command::new(apache_binary());
        cmd.arg("-f").arg(conf).arg("-DFOREGROUND");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        isolate(&mut cmd, run_as, hosts);
        let child = cmd.spawn().map_err(|e| format!("cannot start apache2: {e}"))?;
        let mut apache = Apache {
            port,
            root: root.to_path_buf(),
            child: Some(child),
            hosts_gen: hosts.map(|_| std::sync::atomic::AtomicU32::new(0)),
        };
        match apache.wait_ready(Duration::from_secs(15)) {
            Ok(()) => Ok(apache),
            Err(why) => {
                apache.stop();
                Err(format!(
                    "Apache did not come up on port {port}: {why}\n--- stderr ---\n{}\n--- error.log ---\n{}\n--- conf ({}) ---\n{}",
                    util::read_lossy(&root.join("logs/stderr.log")),
                    util::read_lossy(&root.join("logs/error.log")),
                    conf.display(),
                    util::read_lossy(conf),
                ))
            }
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = std::time::Instant::now() + timeout;
        let mut last = String::from("no attempt");
        while std::time::Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("apache2 exited early: {status}"));
                }
            }
            let probe = Request::get(PROBE_PATH).timeout(Duration::from_secs(5));
            match probe.send(self.port) {
                Ok(r) if r.status == 200 && r.body == PROBE_BODY.as_bytes() => return Ok(()),
                Ok(r) => last = format!("probe answered {} {:?}", r.status, r.text()),
                Err(e) => last = format!("probe: {e}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("timed out; last: {last}"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The children that serve requests now (the process manager left
    /// out): after a graceful restart, the old generation's.
    pub fn workers(&self) -> Vec<i32> {
        let Some(parent) = self.pid() else { return Vec::new() };
        super::procs::children_of(parent as i32).into_iter().filter(|p| p.comm != "fcgi-pm").map(|p| p.pid).collect()
    }

    /// Waits up to `timeout` until none of `old` (from [`Apache::workers`])
    /// runs any more; true when they are gone. A child of the old
    /// generation may take a connection or two after a graceful restart,
    /// before it notices: a test of the new configuration waits for this.
    pub fn wait_gone(&self, old: &[i32], timeout: Duration) -> bool {
        let parent = self.pid().map_or(0, |p| p as i32);
        util::wait_until(timeout, || {
            old.iter().all(|&pid| super::procs::info(pid).is_none_or(|p| p.ppid != parent || p.state == 'Z'))
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.root.join("logs/error.log")
    }

    pub fn error_log(&self) -> String {
        util::read_lossy(&self.error_log_path())
    }

    /// Waits until the error log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        util::wait_until(timeout, || self.error_log().contains(needle))
    }

    /// Sends a request to this server (panics on an I/O error, with the log).
    pub fn request(&self, req: Request) -> http::Response {
        match req.send(self.port) {
            Ok(r) => r,
            Err(e) => {
                panic!("request to Apache on port {} failed: {e}\n--- error.log ---\n{}", self.port, self.error_log())
            }
        }
    }

    pub fn get(&self, path: &str) -> http::Response {
        self.request(Request::get(path))
    }

    /// Asserts that no Apache child died on a signal (a crash shows as
    /// "exit signal" in the main error log) and that the server still serves.
    pub fn assert_alive(&self) {
        let log = self.error_log();
        for bad in ["exit signal", "AH00052", "panicked"] {
            assert!(!log.contains(bad), "Apache error log shows a crash ({bad:?}):\n{log}");
        }
        let r = self.get(PROBE_PATH);
        assert_eq!(r.status, 200, "Apache stopped serving static files");
    }

    /// Replaces what httpd sees as /etc/hosts (needs `hosts_file`), at
    /// once for every lookup that starts afterwards: writes
    /// `<ServerRoot>/run/hosts.<n>` and bind-mounts it over /etc/hosts in
    /// httpd's mount namespace (`nsenter --mount=/proc/<httpd>/ns/mnt
    /// mount --bind`). A lookup opens either the old file or the new one,
    /// never a half-written file (rewriting the bind-mounted file in place
    /// would work too, glibc opens /etc/hosts on every lookup, but a lookup
    /// could then read it truncated; renaming over it does not work: the
    /// mount pins the old inode). The mounts stack up and go with httpd.
    pub fn set_hosts(&self, content: &str) {
        let gen = self.hosts_gen.as_ref().expect("set_hosts needs ApacheBuilder::hosts_file");
        let pid = self.pid().expect("Apache is not running");
        let n = gen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let file = self.root.join(format!("run/hosts.{n}"));
        util::write_file(&file, content);
        let mnt = format!("--mount=/proc/{pid}/ns/mnt");
        let file_s = file.display().to_string();
        let r =
            super::netns::run("nsenter", &[&mnt, "mount", "--bind", &file_s, "/etc/hosts"], Duration::from_secs(10));
        if let Err(e) = r {
            panic!("set_hosts: {e}");
        }
    }

    /// Sends `sig` to the Apache parent (e.g. SIGHUP restart, SIGUSR1 graceful).
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            util::signal(pid as i32, sig);
        }
    }

    /// Restarts (SIGHUP) or gracefully restarts (SIGUSR1) and waits until
    /// httpd says it resumed and serves the probe again.
    pub fn restart(&self, sig: i32) {
        const RESUMED: &str = "resuming normal operations";
        let before = self.error_log().matches(RESUMED).count();
        self.signal(sig);
        let ok = util::wait_until(Duration::from_secs(15), || self.error_log().matches(RESUMED).count() > before);
        assert!(ok, "Apache did not come back after signal {sig}:\n{}", self.error_log());
        let ok = util::wait_until(Duration::from_secs(10), || {
            Request::get(PROBE_PATH)
                .timeout(Duration::from_secs(2))
                .send(self.port)
                .map(|r| r.status == 200)
                .unwrap_or(false)
        });
        assert!(ok, "Apache does not serve after signal {sig}:\n{}", self.error_log());
    }

    /// Waits up to `timeout` for the parent to exit by itself (after a
    /// graceful-stop, SIGWINCH); true when it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let Some(child) = self.child.as_mut() else { return true };
        let exited = util::wait_until(timeout, || matches!(child.try_wait(), Ok(Some(_))));
        if exited {
            self.child = None;
        }
        exited
    }

    /// Stops Apache by its PID: SIGTERM, wait up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            util::stop_child(&mut child, Duration::from_secs(10), true);
        }
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- Apache error log ({}) ---\n{}", self.error_log_path().display(), self.error_log());
        }
    }
}
