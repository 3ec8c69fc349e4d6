//! The Debian package on the machine's own Apache (issue 11): `dpkg -i` of
//! build/deb/libapache2-mod-fastcgi-rs_*.deb (built with `make deb` when
//! absent), the system Apache (`apache2ctl`, /etc/apache2) moved to a free
//! 127.0.0.1 port for the test, the tutorial's flup app in static mode and a
//! Debian-style `hello.fcgi` (in /var/www/fastcgi-rs-test) through a vhost
//! enabled with `a2ensite`, a graceful restart under load, reinstall and
//! upgrade with a locally edited `fastcgi_rs.conf`, then `apt-get remove`
//! and `purge`; then the swap from the old package (issue 26): a stand-in
//! `libapache2-mod-fastcgi` with Debian's maintainer scripts and an edited
//! `fastcgi.conf` holding a php-fpm block, our package installed over it
//! with apt, PHP still executed; and a system left as it was found
//! (/etc/apache2 and a2enmod's state in /var/lib/apache2 compared file by
//! file).
//!
//! Root only (it installs a package and starts a system service); as any
//! other user it is skipped with a message. It refuses to run when the
//! system Apache already runs or the package is already installed, takes a
//! lock so that two checkouts never run it at once, and restores what it
//! changed through Drop guards, also when it fails. Every command has a time
//! bound; only 127.0.0.1 is used; the only processes it signals are the
//! system Apache it started (through `apache2ctl`, then by that PID).
//!
//! While it runs, /usr/sbin/policy-rc.d (Debian's switch that keeps
//! maintainer scripts from touching services; containers ship one that
//! denies everything) is replaced by one that allows `apache2` only, so the
//! package's own reloads happen as on a normal server. The original file
//! (or its absence) is put back afterwards.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::util::{self, wait_until, write_file};
use common::{Request, TestDir};

const PKG: &str = "libapache2-mod-fastcgi-rs";
const ETC: &str = "/etc/apache2";
const VAR_LIB: &str = "/var/lib/apache2";
const IPC_DIR: &str = "/var/lib/apache2/fastcgi";
const MODULE_SO: &str = "/usr/lib/apache2/modules/mod_fastcgi_rs.so";
const PORTS_CONF: &str = "/etc/apache2/ports.conf";
const PID_FILE: &str = "/var/run/apache2/apache2.pid";
const ERROR_LOG: &str = "/var/log/apache2/error.log";
const POLICY: &str = "/usr/sbin/policy-rc.d";
const SITE: &str = "fastcgi-rs-test";
/// The vhost's DocumentRoot: not under /tmp, which systemd's apache2.service
/// (PrivateTmp) does not share with the rest of the machine.
const DOCROOT: &str = "/var/www/fastcgi-rs-test";
const HELLO_H1: &str = "<h1>Hello world!</h1>";
const LOCAL_EDIT: &str = "# local edit kept across upgrades (deb_package test)\n";
/// The package ours replaces (a stand-in built by the test).
const OLD_PKG: &str = "libapache2-mod-fastcgi";
/// Debian's fastcgi.conf of the old package, word for word.
const OLD_CONF: &str = "<IfModule mod_fastcgi.c>\n  AddHandler fastcgi-script .fcgi\n  #FastCgiWrapper /usr/lib/apache2/suexec\n  FastCgiIpcDir /var/lib/apache2/fastcgi\n</IfModule>\n";

// ------------------------------------------------------------ commands

struct Out {
    ok: bool,
    text: String,
}

/// Runs `prog args` with no stdin, output to a file, killed (and the test
/// failed) after `limit`.
fn run(prog: &str, args: &[&str], limit: Duration) -> Out {
    let log = tempfile_path("cmd");
    let out = fs::File::create(&log).expect("command log");
    let err = out.try_clone().expect("command log");
    let mut child = Command::new(prog)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
    let mut status = None;
    wait_until(limit, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let text = util::read_lossy(&log);
    let _ = fs::remove_file(&log);
    match status {
        Some(st) => Out { ok: st.success(), text },
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{prog} {}` did not finish in {limit:?}:\n{text}", args.join(" "));
        }
    }
}

/// Like `run`, and panics with the output unless it succeeds.
fn must(prog: &str, args: &[&str], limit: Duration) -> String {
    let o = run(prog, args, limit);
    assert!(o.ok, "`{prog} {}` failed:\n{}", args.join(" "), o.text);
    o.text
}

/// dpkg and apt-get, waiting (bounded) while another apt/dpkg holds the lock.
fn package_tool(prog: &str, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let o = run(prog, args, Duration::from_secs(300));
        if o.ok {
            return o.text;
        }
        let locked = o.text.contains("lock") && (o.text.contains("dpkg") || o.text.contains("apt"));
        if !locked || Instant::now() >= deadline {
            panic!("`{prog} {}` failed:\n{}", args.join(" "), o.text);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn apt_get(args: &[&str]) -> String {
    let mut all = vec!["-y", "-q", "-o", "DPkg::Lock::Timeout=120"];
    all.extend_from_slice(args);
    package_tool("apt-get", &all)
}

fn installed_version() -> Option<String> {
    let o = run("dpkg-query", &["-W", "-f=${Status}|${Version}", PKG], Duration::from_secs(30));
    let (status, version) = o.text.trim().split_once('|')?;
    (o.ok && status == "install ok installed").then(|| version.to_string())
}

fn package_known_to_dpkg() -> bool {
    let o = run("dpkg-query", &["-W", "-f=${Status}", PKG], Duration::from_secs(30));
    o.ok && !o.text.contains("not-installed")
}

static TMP_N: AtomicUsize = AtomicUsize::new(0);

fn tempfile_path(what: &str) -> PathBuf {
    let n = TMP_N.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!("fcgirs-deb-{}-{what}-{n}", std::process::id()))
}

// ------------------------------------------------------------ the .deb

fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The newest build/deb/libapache2-mod-fastcgi-rs_*.deb (not -dbgsym).
fn find_deb() -> Option<PathBuf> {
    let dir = source_dir().join("build/deb");
    let mut debs: Vec<PathBuf> = fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with(&format!("{PKG}_")) && n.ends_with(".deb")
        })
        .collect();
    debs.sort_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop()
}

/// The package `make deb` built, building it first when there is none.
fn the_deb() -> PathBuf {
    if let Some(deb) = find_deb() {
        return deb;
    }
    eprintln!("deb_package: no build/deb/{PKG}_*.deb, running `make deb`");
    let dir = source_dir();
    must("make", &["-C", dir.to_str().expect("utf-8 path"), "deb"], Duration::from_secs(1200));
    find_deb().expect("`make deb` succeeded but wrote no .deb to build/deb")
}

/// A copy of `deb` whose version is `version` (the same files): what an
/// upgrade to a newer package looks like to dpkg.
fn rebuild_with_version(deb: &Path, version: &str, t: &TestDir) -> PathBuf {
    let tree = t.join("repack");
    let _ = fs::remove_dir_all(&tree);
    let tree_s = tree.to_str().expect("utf-8 path");
    must("dpkg-deb", &["-R", deb.to_str().expect("utf-8 path"), tree_s], Duration::from_secs(60));
    let control_path = tree.join("DEBIAN/control");
    let control = fs::read_to_string(&control_path).expect("DEBIAN/control");
    let bumped: String = control
        .lines()
        .map(|l| if l.starts_with("Version: ") { format!("Version: {version}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert_ne!(bumped, control, "no Version field in {}", control_path.display());
    fs::write(&control_path, bumped).expect("write DEBIAN/control");
    let out = t.join(&format!("{PKG}_{version}.deb"));
    must("dpkg-deb", &["-b", tree_s, out.to_str().expect("utf-8 path")], Duration::from_secs(120));
    out
}

/// A stand-in for Debian's libapache2-mod-fastcgi (2.4.7~0910052141-1.2):
/// its files (fastcgi.load and fastcgi.conf as conffiles, a module, here a
/// copy of ours, which is the same `fastcgi_module`) and its maintainer
/// scripts as dh_apache2 wrote them (enable at configure, disable at
/// remove, forget at purge).
fn old_package(t: &TestDir, module: &Path) -> PathBuf {
    let tree = t.join("oldpkg");
    let _ = fs::remove_dir_all(&tree);
    let helper = "[ -e /usr/share/apache2/apache2-maintscript-helper ] || exit 0\n. /usr/share/apache2/apache2-maintscript-helper\n";
    let files: [(&str, String, u32); 7] = [
        (
            "DEBIAN/control",
            format!(
                "Package: {OLD_PKG}\nVersion: 2.4.7~0910052141-1.2\nArchitecture: all\nMaintainer: test <test@localhost>\n\
                 Section: httpd\nPriority: optional\nDescription: stand-in for the old mod_fastcgi package\n test only\n"
            ),
            0o644,
        ),
        (
            "DEBIAN/conffiles",
            "/etc/apache2/mods-available/fastcgi.load\n/etc/apache2/mods-available/fastcgi.conf\n".into(),
            0o644,
        ),
        (
            "DEBIAN/postinst",
            format!("#!/bin/sh\nset -e\n[ \"$1\" = configure ] || exit 0\n{helper}apache2_invoke enmod fastcgi || exit 1\n"),
            0o755,
        ),
        (
            "DEBIAN/prerm",
            format!("#!/bin/sh\nset -e\n[ \"$1\" = remove ] || exit 0\n{helper}apache2_invoke dismod fastcgi || exit 1\n"),
            0o755,
        ),
        (
            "DEBIAN/postrm",
            format!("#!/bin/sh\nset -e\n[ \"$1\" = purge ] || exit 0\n{helper}apache2_invoke dismod fastcgi || exit 1\n"),
            0o755,
        ),
        (
            "etc/apache2/mods-available/fastcgi.load",
            "LoadModule fastcgi_module /usr/lib/apache2/modules/mod_fastcgi.so\n".into(),
            0o644,
        ),
        ("etc/apache2/mods-available/fastcgi.conf", OLD_CONF.into(), 0o644),
    ];
    for (rel, content, mode) in files {
        let path = tree.join(rel);
        util::mkdir_0755(path.parent().expect("parent"));
        fs::write(&path, content).expect("write stand-in file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let so = tree.join("usr/lib/apache2/modules/mod_fastcgi.so");
    util::mkdir_0755(so.parent().expect("parent"));
    fs::copy(module, &so).expect("copy the module");
    let out = t.join(&format!("{OLD_PKG}_stand-in.deb"));
    let (tree_s, out_s) = (tree.to_str().expect("utf-8 path"), out.to_str().expect("utf-8 path"));
    must("dpkg-deb", &["--root-owner-group", "-b", tree_s, out_s], Duration::from_secs(120));
    out
}

fn old_package_known() -> bool {
    let o = run("dpkg-query", &["-W", "-f=${Status}", OLD_PKG], Duration::from_secs(30));
    o.ok && !o.text.contains("not-installed")
}

// ------------------------------------------------------------ /proc

fn stat_fields(pid: i32) -> Option<(String, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    if rest.first() == Some(&"Z") {
        return None;
    }
    Some((stat[open + 1..close].to_string(), rest.get(1)?.parse().ok()?))
}

fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some()
}

/// Live children of `ppid`, only those named `comm` when given.
fn children(ppid: i32, comm: Option<&str>) -> Vec<i32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if let Some((c, p)) = stat_fields(pid) {
            if p == ppid && comm.is_none_or(|want| c == want) {
                found.push(pid);
            }
        }
    }
    found.sort();
    found
}

fn proc_uid(pid: i32) -> Option<u32> {
    fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

fn www_data_uid() -> u32 {
    let passwd = fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"www-data")).then(|| f.get(2).and_then(|u| u.parse().ok())).flatten()
        })
        .expect("no www-data user")
}

/// The system Apache's parent, from its pidfile, when it runs.
fn system_apache_pid() -> Option<i32> {
    let pid: i32 = fs::read_to_string(PID_FILE).ok()?.trim().parse().ok()?;
    let (comm, _) = stat_fields(pid)?;
    (comm == "apache2").then_some(pid)
}

// ------------------------------------------------------------ snapshots

/// Every entry under `root`: type, mode, owner, and content or link target.
fn snapshot(root: &str, files_only: bool) -> BTreeMap<String, String> {
    fn walk(dir: &Path, files_only: bool, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else { continue };
            let ft = m.file_type();
            let meta = format!("{:o} {}:{}", m.permissions().mode() & 0o7777, m.uid(), m.gid());
            let key = p.display().to_string();
            if ft.is_dir() {
                if !files_only {
                    out.insert(key, format!("dir {meta}"));
                }
                walk(&p, files_only, out);
            } else if ft.is_symlink() {
                let target = fs::read_link(&p).map(|t| t.display().to_string()).unwrap_or_default();
                out.insert(key, format!("link -> {target}"));
            } else if ft.is_socket() {
                out.insert(key, format!("socket {meta}"));
            } else {
                let content = fs::read(&p).unwrap_or_default();
                out.insert(key, format!("file {meta} {}", String::from_utf8_lossy(&content)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new(root), files_only, &mut out);
    out
}

/// a2enmod/a2ensite/a2enconf's state under /var/lib/apache2 (other
/// modules' runtime files there, like mod_fcgid's sockets, are not ours).
fn a2_state() -> BTreeMap<String, String> {
    ["module", "site", "conf"].iter().flat_map(|d| snapshot(&format!("{VAR_LIB}/{d}"), true)).collect()
}

fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> String {
    let mut d = String::new();
    for (k, v) in before {
        match after.get(k) {
            None => d.push_str(&format!("  gone:    {k}\n")),
            Some(w) if w != v => d.push_str(&format!("  changed: {k}\n")),
            _ => {}
        }
    }
    for k in after.keys().filter(|k| !before.contains_key(*k)) {
        d.push_str(&format!("  new:     {k}\n"));
    }
    d
}

/// The directories under /var/lib/apache2 (a2enmod's state markers create
/// some on first use), to remove the empty ones this test left.
fn dirs_under(root: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut todo = vec![PathBuf::from(root)];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                dirs.push(e.path());
                todo.push(e.path());
            }
        }
    }
    dirs.sort();
    dirs
}

// ------------------------------------------------------------ guards

/// One run at a time on this machine (worktrees share the system Apache).
struct MachineLock {
    _file: fs::File,
}

impl MachineLock {
    fn take() -> MachineLock {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/mod_fastcgi_rs-system-apache.lock")
            .expect("open lock file");
        let got = wait_until(Duration::from_secs(900), || {
            // SAFETY: flock on an fd we own; no memory is involved.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
        });
        assert!(got, "another run of the system-Apache test held the lock for 15 minutes");
        MachineLock { _file: f }
    }
}

/// A file the test replaces, put back (bytes and mode) or removed if it did
/// not exist.
struct FileGuard {
    path: PathBuf,
    original: Option<(Vec<u8>, u32)>,
    restored: bool,
}

impl FileGuard {
    fn replace(path: &str, content: &str, mode: u32) -> FileGuard {
        let path = PathBuf::from(path);
        let original = fs::read(&path).ok().map(|b| {
            let mode = fs::metadata(&path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
            (b, mode)
        });
        let g = FileGuard { path, original, restored: false };
        fs::write(&g.path, content).unwrap_or_else(|e| panic!("write {}: {e}", g.path.display()));
        fs::set_permissions(&g.path, fs::Permissions::from_mode(mode)).expect("chmod");
        g
    }

    fn restore(&mut self) {
        if self.restored {
            return;
        }
        self.restored = true;
        match &self.original {
            Some((bytes, mode)) => {
                let _ = fs::write(&self.path, bytes);
                let _ = fs::set_permissions(&self.path, fs::Permissions::from_mode(*mode));
            }
            None => {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for FileGuard {
    fn drop(&mut self) {
        self.restore();
    }
}

fn site_path() -> PathBuf {
    PathBuf::from(format!("{ETC}/sites-available/{SITE}.conf"))
}

/// Everything the test changes on the machine, put back in this order by
/// `restore()` or on drop (also when the test fails): the system Apache it
/// started stopped (`apache2ctl stop`, then by its PID), its vhost disabled
/// (`a2dissite -p` also forgets a2ensite's state marker) and removed with
/// its DocumentRoot, ports.conf back, the package purged if still known to
/// dpkg, the empty state directories a2enmod/a2ensite create on first use
/// removed, and policy-rc.d back.
struct System {
    apache: Option<i32>,
    site: bool,
    docroot: bool,
    ports: Option<FileGuard>,
    package: bool,
    /// The stand-in old package, purged in `restore()`.
    old_package: bool,
    /// mod_actions, enabled for the PHP recipe and disabled again.
    actions: bool,
    policy: Option<FileGuard>,
    var_lib_dirs: Vec<PathBuf>,
}

impl System {
    fn start_apache(&mut self) -> i32 {
        let o = run("apache2ctl", &["start"], Duration::from_secs(60));
        let mut pid = None;
        let up = wait_until(Duration::from_secs(20), || {
            pid = system_apache_pid();
            pid.is_some()
        });
        self.apache = pid;
        assert!(o.ok && up, "apache2ctl start failed:\n{}\n--- error.log ---\n{}", o.text, log_tail());
        pid.expect("pid")
    }

    fn stop_apache(&mut self) {
        // The test refuses to start while the system Apache runs, so one
        // that runs now is the test's, also when a maintainer script
        // restarted it under another PID.
        if let Some(now) = system_apache_pid().filter(|_| self.apache.is_some()) {
            self.apache = Some(now);
        }
        let Some(pid) = self.apache.take() else { return };
        if !alive(pid) {
            return;
        }
        let _ = run("apache2ctl", &["stop"], Duration::from_secs(60));
        if !wait_until(Duration::from_secs(20), || !alive(pid)) {
            util::signal(pid, libc::SIGTERM);
            if !wait_until(Duration::from_secs(10), || !alive(pid)) {
                util::signal(pid, libc::SIGKILL);
                wait_until(Duration::from_secs(5), || !alive(pid));
            }
        }
    }

    fn add_site(&mut self, conf: &str) {
        self.site = true;
        write_file(&site_path(), conf);
        must("a2ensite", &["-q", SITE], Duration::from_secs(30));
    }

    fn remove_site(&mut self) {
        if !std::mem::take(&mut self.site) {
            return;
        }
        if fs::symlink_metadata(format!("{ETC}/sites-enabled/{SITE}.conf")).is_ok() {
            let _ = run("a2dissite", &["-q", "-p", SITE], Duration::from_secs(30));
        }
        let _ = fs::remove_file(site_path());
    }

    fn restore(&mut self) {
        self.stop_apache();
        self.remove_site();
        if std::mem::take(&mut self.docroot) {
            let _ = fs::remove_dir_all(DOCROOT);
        }
        if let Some(mut p) = self.ports.take() {
            p.restore();
        }
        if std::mem::take(&mut self.package) && package_known_to_dpkg() {
            let _ = run("dpkg", &["--purge", PKG], Duration::from_secs(300));
        }
        if std::mem::take(&mut self.old_package) && old_package_known() {
            let _ = run("dpkg", &["--purge", OLD_PKG], Duration::from_secs(300));
        }
        if std::mem::take(&mut self.actions) {
            let _ = run("a2dismod", &["-q", "-p", "actions"], Duration::from_secs(30));
        }
        for d in dirs_under(VAR_LIB).into_iter().rev() {
            if !self.var_lib_dirs.contains(&d) {
                let _ = fs::remove_dir(&d); // only when empty
            }
        }
        if let Some(mut p) = self.policy.take() {
            p.restore();
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.restore();
    }
}

// ------------------------------------------------------------ helpers

static LOG_START: AtomicUsize = AtomicUsize::new(0);

/// What the system Apache logged since the test began.
fn log_tail() -> String {
    let all = fs::read(ERROR_LOG).unwrap_or_default();
    let from = LOG_START.load(Ordering::SeqCst).min(all.len());
    String::from_utf8_lossy(&all[from..]).into_owned()
}

fn get(port: u16, path: &str) -> common::Response {
    Request::get(path)
        .header("Host", &format!("{SITE}.localhost"))
        .timeout(Duration::from_secs(20))
        .send(port)
        .unwrap_or_else(|e| panic!("GET {path}: {e}\n--- error.log ---\n{}", log_tail()))
}

fn body(r: &common::Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn assert_hello(port: u16) {
    let r = get(port, "/app.py");
    assert_eq!(r.status, 200, "GET /app.py: {}\n--- error.log ---\n{}", body(&r), log_tail());
    assert!(body(&r).contains(HELLO_H1), "GET /app.py: {}", body(&r));
}

/// The process manager under Apache's parent that is not one of `seen`
/// (after a graceful restart the previous ones retire: they stay until
/// their applications have finished and stopped), once it runs applications.
fn new_manager(apache: i32, seen: &[i32]) -> i32 {
    let mut pm = Vec::new();
    let ok = wait_until(Duration::from_secs(20), || {
        pm = children(apache, Some("fcgi-pm")).into_iter().filter(|p| !seen.contains(p)).collect();
        pm.len() == 1 && !children(pm[0], None).is_empty()
    });
    assert!(
        ok,
        "expected one new fcgi-pm (not {seen:?}) with app processes under Apache {apache}, found {pm:?}\n--- error.log ---\n{}",
        log_tail()
    );
    pm[0]
}

fn conffiles() -> String {
    run("dpkg-query", &["-W", "-f=${Conffiles}", PKG], Duration::from_secs(30)).text
}

fn is_enabled(name: &str) -> bool {
    Path::new(&format!("{ETC}/mods-enabled/{name}.load")).exists()
}

// ------------------------------------------------------------ the test

#[test]
fn debian_package_on_the_system_apache() {
    if !util::is_root() {
        eprintln!(
            "SKIPPED deb_package: installing the .deb on the system Apache needs root \
             (run `make test` as root)"
        );
        return;
    }
    let _lock = MachineLock::take();

    // What the system looks like before; the test refuses to disturb a
    // running server or an installed package.
    assert!(
        Path::new("/usr/sbin/apache2ctl").exists()
            && Path::new("/usr/share/apache2/apache2-maintscript-helper").exists(),
        "the system Apache (package apache2) is not installed: run `make deps`"
    );
    if let Some(pid) = system_apache_pid() {
        panic!("the system Apache runs (pid {pid}, {PID_FILE}): this test starts and stops it, stop it first");
    }
    assert!(
        !package_known_to_dpkg(),
        "{PKG} is already installed (or not purged): `apt-get purge {PKG}` first, this test installs and purges it"
    );
    assert!(!Path::new(IPC_DIR).exists(), "{IPC_DIR} exists before the package is installed");
    assert!(!Path::new(DOCROOT).exists(), "{DOCROOT} exists: a previous run was killed? remove it");
    let etc_before = snapshot(ETC, false);
    let var_before = a2_state();
    let policy_before = fs::read(POLICY).ok();
    LOG_START.store(fs::metadata(ERROR_LOG).map(|m| m.len() as usize).unwrap_or(0), Ordering::SeqCst);

    let deb = the_deb();
    let t = TestDir::new("deb_package");
    let port = util::free_port();

    let mut sys = System {
        apache: None,
        site: false,
        docroot: false,
        ports: None,
        package: true,
        old_package: false,
        actions: false,
        policy: None,
        var_lib_dirs: dirs_under(VAR_LIB),
    };
    sys.policy = Some(FileGuard::replace(
        POLICY,
        "#!/bin/sh\n# mod_fastcgi_rs deb_package test: allows apache2 only; restored after the test.\n\
         for a in \"$@\"; do [ \"$a\" = apache2 ] && exit 0; done\nexit 101\n",
        0o755,
    ));

    // ---- install: files, conffiles, Depends, the module enabled, the IPC
    // dir, and a stopped Apache stays stopped.
    let out = package_tool("dpkg", &["-i", deb.to_str().expect("utf-8 path")]);
    let version = installed_version().unwrap_or_else(|| panic!("{PKG} not installed after dpkg -i:\n{out}"));
    for f in [
        MODULE_SO,
        "/etc/apache2/mods-available/fastcgi_rs.load",
        "/etc/apache2/mods-available/fastcgi_rs.conf",
        "/etc/apache2/mods-available/fastcgi.load",
        "/usr/share/doc/libapache2-mod-fastcgi-rs/copyright",
        "/usr/share/doc/libapache2-mod-fastcgi-rs/changelog.Debian.gz",
    ] {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    let docs: Vec<String> = fs::read_dir("/usr/share/doc/libapache2-mod-fastcgi-rs")
        .expect("doc dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for d in ["README.md", "directives.md", "migrating.md"] {
        assert!(docs.iter().any(|n| n.starts_with(d)), "{d} missing from the doc dir: {docs:?}");
    }
    let cf = conffiles();
    for f in ["fastcgi_rs.load", "fastcgi_rs.conf", "fastcgi.load"] {
        assert!(cf.contains(&format!("/etc/apache2/mods-available/{f} ")), "{f} is not a conffile:\n{cf}");
    }
    let fields = must(
        "dpkg-query",
        &["-W", "-f=${Depends}\n${Provides}\n${Conflicts}\n${Replaces}", PKG],
        Duration::from_secs(30),
    );
    for want in ["apache2-api-20120211", "libc6", "libapache2-mod-fastcgi"] {
        assert!(fields.contains(want), "{want} missing from the package relations:\n{fields}");
    }
    assert!(is_enabled("fastcgi_rs"), "the module is not enabled after install:\n{out}");
    assert!(!is_enabled("fastcgi"), "the fastcgi alias is enabled too; only fastcgi_rs should be");
    let ipc = fs::metadata(IPC_DIR).unwrap_or_else(|e| panic!("{IPC_DIR}: {e}"));
    assert!(ipc.is_dir() && ipc.uid() == www_data_uid(), "{IPC_DIR} is not a directory owned by www-data");
    assert_eq!(system_apache_pid(), None, "installing the package started the stopped Apache:\n{out}");

    // ---- the site: the tutorial's app (static), a Debian-style .fcgi
    // (dynamic, through the package's AddHandler), the old config's IfModule.
    sys.docroot = true;
    util::mkdir_0755(Path::new(DOCROOT));
    let htdocs = PathBuf::from(DOCROOT);
    let app = htdocs.join("app.py");
    fs::copy(source_dir().join("examples/app.py"), &app).expect("copy app.py");
    fs::copy(util::apps_dir().join("dyn_app.py"), htdocs.join("hello.fcgi")).expect("copy hello.fcgi");
    for f in [&app, &htdocs.join("hello.fcgi")] {
        fs::set_permissions(f, fs::Permissions::from_mode(0o755)).expect("chmod 755");
    }
    sys.ports = Some(FileGuard::replace(
        PORTS_CONF,
        &format!("# mod_fastcgi_rs deb_package test; restored after the test\nListen 127.0.0.1:{port}\n"),
        0o644,
    ));
    sys.add_site(&format!(
        "# mod_fastcgi_rs deb_package test; removed after the test\n\
         <VirtualHost 127.0.0.1:{port}>\n\
         \x20   ServerName {SITE}.localhost\n\
         \x20   DocumentRoot {htdocs}\n\
         \x20   <Directory {htdocs}>\n\
         \x20       Options +FollowSymLinks +ExecCGI\n\
         \x20       AllowOverride None\n\
         \x20       Require all granted\n\
         \x20   </Directory>\n\
         \x20   <IfModule mod_fastcgi.c>\n\
         \x20       <Files app.py>\n\
         \x20           SetHandler fastcgi-script\n\
         \x20       </Files>\n\
         \x20       FastCgiServer {app} -processes 2 -socket {SITE}.sock -init-start-delay 0 -idle-timeout 10\n\
         \x20   </IfModule>\n\
         </VirtualHost>\n",
        htdocs = htdocs.display(),
        app = app.display(),
    ));

    let ct = run("apache2ctl", &["configtest"], Duration::from_secs(60));
    assert!(ct.ok && ct.text.contains("Syntax OK"), "apache2ctl configtest:\n{}", ct.text);
    let parent = sys.start_apache();
    assert!(
        wait_until(Duration::from_secs(20), || Request::get("/").send(port).is_ok()),
        "the system Apache does not answer on 127.0.0.1:{port}\n--- error.log ---\n{}",
        log_tail()
    );
    let pm = new_manager(parent, &[]);
    assert_eq!(proc_uid(pm), Some(www_data_uid()), "fcgi-pm does not run as www-data");
    assert_eq!(children(pm, Some("app.py")).len(), 2, "-processes 2 of app.py under fcgi-pm {pm}");
    assert_hello(port);
    let sock = format!("{IPC_DIR}/{SITE}.sock");
    assert!(
        fs::symlink_metadata(&sock).map(|m| m.file_type().is_socket()).unwrap_or(false),
        "{sock} (FastCgiIpcDir of fastcgi_rs.conf) is not a socket"
    );
    let r = get(port, "/hello.fcgi");
    assert!(
        r.status == 200 && body(&r).starts_with("dyn_app v1 pid="),
        "GET /hello.fcgi (dynamic, AddHandler of fastcgi_rs.conf): {} {}\n--- error.log ---\n{}",
        r.status,
        body(&r),
        log_tail()
    );
    assert!(log_tail().contains("FastCGI: process manager initialized"), "no PM line in {ERROR_LOG}");

    // ---- apache2ctl graceful under load: no failed request, a new PM.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut bad) = (0usize, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    match Request::get("/app.py")
                        .header("Host", &format!("{SITE}.localhost"))
                        .timeout(Duration::from_secs(20))
                        .send(port)
                    {
                        Ok(r) if r.status == 200 && String::from_utf8_lossy(&r.body).contains(HELLO_H1) => ok += 1,
                        Ok(r) => bad.push(format!("{} {}", r.status, String::from_utf8_lossy(&r.body))),
                        Err(e) => bad.push(e.to_string()),
                    }
                }
                (ok, bad)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    must("apache2ctl", &["graceful"], Duration::from_secs(60));
    let pm2 = new_manager(parent, &[pm]);
    assert!(wait_until(Duration::from_secs(40), || !alive(pm)), "the old fcgi-pm {pm} did not exit after graceful");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut bad) = (0, Vec::new());
    for h in load {
        let (o, b) = h.join().expect("load thread");
        ok += o;
        bad.extend(b);
    }
    assert!(
        bad.is_empty(),
        "{} of {} requests failed across graceful: {:?}",
        bad.len(),
        ok + bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(ok >= 10, "only {ok} requests ran across graceful");
    assert_eq!(system_apache_pid(), Some(parent), "graceful replaced Apache's parent");

    // ---- reinstall and upgrade keep a locally edited fastcgi_rs.conf, and
    // reload the running Apache (a new PM) so it runs the new module.
    let conf = "/etc/apache2/mods-available/fastcgi_rs.conf";
    let edited = format!("{}{LOCAL_EDIT}", fs::read_to_string(conf).expect("fastcgi_rs.conf"));
    fs::write(conf, &edited).expect("edit fastcgi_rs.conf");
    let out = package_tool("dpkg", &["-i", deb.to_str().expect("utf-8 path")]);
    assert_eq!(fs::read_to_string(conf).expect("conf"), edited, "reinstalling lost the local edit:\n{out}");
    let pm3 = new_manager(parent, &[pm, pm2]);
    assert_hello(port);
    let newer = format!("{version}+systest1");
    let newer_deb = rebuild_with_version(&deb, &newer, &t);
    let out = package_tool("dpkg", &["-i", newer_deb.to_str().expect("utf-8 path")]);
    assert_eq!(installed_version().as_deref(), Some(newer.as_str()), "upgrade to {newer}:\n{out}");
    assert_eq!(fs::read_to_string(conf).expect("conf"), edited, "upgrading lost the local edit:\n{out}");
    assert!(is_enabled("fastcgi_rs"), "the module is not enabled after the upgrade");
    let pm4 = new_manager(parent, &[pm, pm2, pm3]);
    assert_hello(port);

    // ---- the alias: `a2enmod fastcgi` from the old instructions.
    must("a2enmod", &["-q", "fastcgi"], Duration::from_secs(30));
    assert!(is_enabled("fastcgi") && is_enabled("fastcgi_rs"), "a2enmod fastcgi did not enable the alias");
    let ct = run("apache2ctl", &["configtest"], Duration::from_secs(60));
    assert!(ct.ok, "configtest with the fastcgi alias enabled:\n{}", ct.text);

    // ---- remove: disabled (the alias too), Apache reloaded without the
    // module, the PM and its apps gone, the conffiles and IPC dir kept.
    let apps = children(pm4, None);
    let out = apt_get(&["remove", PKG]);
    assert!(installed_version().is_none(), "still installed after apt-get remove:\n{out}");
    assert!(!is_enabled("fastcgi_rs") && !is_enabled("fastcgi"), "module still enabled after remove:\n{out}");
    assert!(!Path::new(MODULE_SO).exists(), "{MODULE_SO} left after remove");
    assert!(Path::new(conf).exists(), "remove (not purge) deleted the conffile");
    assert!(
        wait_until(Duration::from_secs(40), || {
            !alive(pm4) && apps.iter().all(|p| !alive(*p)) && children(parent, Some("fcgi-pm")).is_empty()
        }),
        "the process manager {pm4} or its apps {apps:?} outlived the removal:\n{out}\n--- error.log ---\n{}",
        log_tail()
    );
    assert_eq!(system_apache_pid(), Some(parent), "Apache did not survive the removal:\n{out}");
    let r = get(port, "/app.py");
    assert!(
        !body(&r).contains("dyn_app") && body(&r).contains("from flup.server.fcgi import"),
        "after remove, app.py should be a plain file again: {} {}",
        r.status,
        body(&r)
    );

    // ---- purge: the conffiles, the module's a2enmod state and the IPC dir.
    let out = apt_get(&["purge", PKG]);
    assert!(!package_known_to_dpkg(), "dpkg still knows {PKG} after purge:\n{out}");
    for f in ["fastcgi_rs.load", "fastcgi_rs.conf", "fastcgi.load"] {
        assert!(!Path::new(&format!("{ETC}/mods-available/{f}")).exists(), "{f} left after purge");
    }
    let enabled: Vec<String> = fs::read_dir(format!("{ETC}/mods-enabled"))
        .expect("mods-enabled")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("fastcgi"))
        .collect();
    assert!(enabled.is_empty(), "left in mods-enabled after purge: {enabled:?}");
    assert!(!Path::new(IPC_DIR).exists(), "{IPC_DIR} left after purge");
    let markers: Vec<String> =
        a2_state().into_keys().filter(|k| k.contains("/module/") && k.contains("fastcgi")).collect();
    assert!(markers.is_empty(), "a2enmod state left after purge: {markers:?}");

    // ---- the swap from the old package, as an admin lives it: its
    // fastcgi.conf edited to hold the PHP setup (php-fpm through
    // FastCgiExternalServer + Action), then ours installed with apt, which
    // removes the old one. PHP must still run, not be served as source.
    assert!(!old_package_known(), "{OLD_PKG} is known to dpkg before the test installs its stand-in");
    let php = common::PhpFpm::start(&t);
    write_file(&PathBuf::from(DOCROOT).join("info.php"), "<?php echo 'php says ', 6 * 7, \"\\n\";\n");
    let old = old_package(&t, &util::module_path());
    sys.old_package = true;
    let out = package_tool("dpkg", &["-i", old.to_str().expect("utf-8 path")]);
    assert!(is_enabled("fastcgi"), "the stand-in did not enable fastcgi:\n{out}");
    if !is_enabled("actions") {
        sys.actions = true;
        must("a2enmod", &["-q", "actions"], Duration::from_secs(30));
    }
    let old_conf = format!("{ETC}/mods-available/fastcgi.conf");
    let php_block = format!(
        "<IfModule mod_fastcgi.c>\n  AddType application/x-httpd-fastphp .php\n  \
         Action application/x-httpd-fastphp /php-fcgi-systest virtual\n  \
         Alias /php-fcgi-systest /usr/lib/cgi-bin/php-fcgi-systest\n  \
         FastCgiExternalServer /usr/lib/cgi-bin/php-fcgi-systest -socket {} -pass-header Authorization\n  \
         <Directory /usr/lib/cgi-bin>\n    Require all granted\n  </Directory>\n</IfModule>\n",
        php.socket.display()
    );
    fs::write(&old_conf, format!("{OLD_CONF}{php_block}")).expect("edit the old fastcgi.conf");
    let out = apt_get(&["install", deb.to_str().expect("utf-8 path")]);
    assert!(installed_version().is_some(), "apt-get install over the old package failed:\n{out}");
    assert!(
        run("dpkg-query", &["-W", "-f=${Status}", OLD_PKG], Duration::from_secs(30)).text.contains("config-files"),
        "apt did not remove {OLD_PKG} (its conffiles stay):\n{out}"
    );
    assert!(is_enabled("fastcgi_rs") && is_enabled("fastcgi"), "the old fastcgi.conf is not in effect:\n{out}");
    assert!(out.contains("kept /etc/apache2/mods-available/fastcgi.conf"), "the installation did not say so:\n{out}");
    assert!(fs::read_to_string(&old_conf).expect("old conf").contains("php-fcgi-systest"), "the edit was lost");
    let ct = run("apache2ctl", &["configtest"], Duration::from_secs(60));
    assert!(ct.ok && !ct.text.contains("FastCgiIpcDir"), "configtest after the swap:\n{}", ct.text);
    let php_runs = || {
        let r = get(port, "/info.php");
        (r.status == 200 && body(&r).contains("php says 42"), format!("{} {}", r.status, body(&r)))
    };
    let mut last = String::new();
    let ran = wait_until(Duration::from_secs(20), || {
        let (ok, seen) = php_runs();
        last = seen;
        ok
    });
    assert!(ran, "PHP after the swap: {last}\n--- error.log ---\n{}", log_tail());
    // a2dismod fastcgi leaves our module (and the old file out); a2enmod brings it back.
    must("a2dismod", &["-q", "fastcgi"], Duration::from_secs(30));
    assert!(is_enabled("fastcgi_rs") && !is_enabled("fastcgi"));
    assert!(run("apache2ctl", &["configtest"], Duration::from_secs(60)).ok);
    must("a2enmod", &["-q", "fastcgi"], Duration::from_secs(30));
    let ct = run("apache2ctl", &["configtest"], Duration::from_secs(60));
    assert!(ct.ok && is_enabled("fastcgi"), "a2enmod fastcgi again:\n{}", ct.text);
    must("apache2ctl", &["graceful"], Duration::from_secs(60));
    let ran = wait_until(Duration::from_secs(20), || php_runs().0);
    assert!(ran, "PHP after a2enmod fastcgi and graceful: {}\n{}", php_runs().1, log_tail());
    let out = apt_get(&["purge", PKG]);
    assert!(!package_known_to_dpkg(), "purge after the swap:\n{out}");
    drop(php);
    // The old package's scripts restart Apache (dh_apache2's default for
    // modules), so it now has another PID; stop_apache() finds it.

    // ---- the system as it was: Apache stopped, its config restored.
    sys.stop_apache();
    assert_eq!(system_apache_pid(), None, "the system Apache still runs after apache2ctl stop");
    sys.restore();
    let etc_diff = diff(&etc_before, &snapshot(ETC, false));
    assert!(etc_diff.is_empty(), "{ETC} differs from before the test:\n{etc_diff}");
    let var_diff = diff(&var_before, &a2_state());
    assert!(var_diff.is_empty(), "a2enmod's state in {VAR_LIB} differs from before the test:\n{var_diff}");
    assert_eq!(fs::read(POLICY).ok(), policy_before, "{POLICY} was not restored");
    let new_dirs: Vec<PathBuf> = dirs_under(VAR_LIB).into_iter().filter(|d| !sys.var_lib_dirs.contains(d)).collect();
    assert!(new_dirs.is_empty(), "directories left in {VAR_LIB}: {new_dirs:?}");
}

/// The modules `a2query -m` says the system Apache has enabled, by name.
fn enabled_modules() -> Vec<String> {
    let text = must("a2query", &["-m"], Duration::from_secs(30));
    let mut names: Vec<String> = text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect();
    names.sort();
    names
}

/// The packages dpkg has installed.
fn installed_packages() -> Vec<String> {
    let text = must("dpkg-query", &["-W", "-f=${db:Status-Abbrev}|${Package}\n"], Duration::from_secs(60));
    text.lines()
        .filter_map(|l| l.strip_prefix("ii ").and_then(|l| l.split_once('|')).map(|(_, p)| p.to_string()))
        .collect()
}

/// `make deb` on a machine with the system Apache (issue 26): the modules
/// `a2query -m` lists are the same before and after, and so are
/// /etc/apache2 and a2enmod's state; none of the test suite's packages
/// (php-fpm, mod_fcgid, chromium, ...) comes with it. It runs in a copy of
/// the checkout (without target/, build/, .git), so the checkout's own
/// target/ and build/deb are left alone. Root only, one run at a time with
/// the test above (the same lock).
#[test]
fn make_deb_leaves_the_system_apaches_modules_as_they_were() {
    /// What only the test suite or the benchmark needs (scripts/deps.sh).
    const TEST_ONLY: &[&str] =
        &["php-fpm", "libapache2-mod-fcgid", "chromium", "valgrind", "wrk", "fcgiwrap", "strace", "libfcgi-dev"];
    if !util::is_root() {
        eprintln!("SKIPPED deb_package: `make deb` installs packages on the system and needs root");
        return;
    }
    let _lock = MachineLock::take();
    assert!(Path::new("/usr/sbin/a2query").exists(), "the system Apache (package apache2) is not installed");
    let t = TestDir::new("make_deb");
    let copy = t.join("src");
    util::mkdir_0755(&copy);
    let src = source_dir();
    must(
        "sh",
        &[
            "-c",
            "tar -C \"$1\" --exclude=./target --exclude=./build --exclude=./.git --exclude=./fuzz/target -cf - . \
             | tar -C \"$2\" -xf -",
            "sh",
            src.to_str().expect("utf-8 path"),
            copy.to_str().expect("utf-8 path"),
        ],
        Duration::from_secs(60),
    );
    let modules_before = enabled_modules();
    assert!(!modules_before.is_empty(), "a2query -m lists no module");
    let etc_before = snapshot(ETC, false);
    let var_before = a2_state();
    let packages_before = installed_packages();

    // cargo builds into the copy's target/, whatever this test run uses.
    let out = must(
        "env",
        &["-u", "CARGO_TARGET_DIR", "make", "-C", copy.to_str().expect("utf-8 path"), "deb"],
        Duration::from_secs(1800),
    );
    let built = fs::read_dir(copy.join("build/deb")).into_iter().flatten().flatten().any(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.starts_with(&format!("{PKG}_")) && n.ends_with(".deb")
    });
    assert!(built, "`make deb` wrote no {PKG}_*.deb into build/deb:\n{out}");

    let modules_after = enabled_modules();
    assert_eq!(modules_after, modules_before, "`make deb` changed the modules a2query -m lists:\n{out}");
    let changed = diff(&etc_before, &snapshot(ETC, false)) + &diff(&var_before, &a2_state());
    assert!(changed.is_empty(), "`make deb` changed the system Apache's configuration:\n{changed}\n{out}");
    let new: Vec<String> = installed_packages().into_iter().filter(|p| !packages_before.contains(p)).collect();
    let test_only: Vec<&String> = new.iter().filter(|p| TEST_ONLY.contains(&p.as_str())).collect();
    assert!(test_only.is_empty(), "`make deb` installed the test suite's {test_only:?} (all new: {new:?})");
}
