//! Dynamic mode end to end (issue 5): no FastCgiServer line, a file handled
//! by `fastcgi-script` is started on demand by the process manager
//! (`fcgi-pm`) with its listening socket on fd 0: the tutorial's flup app,
//! Debian's `AddHandler fastcgi-script .fcgi` with a libfcgi hello.fcgi, the
//! original's checks (ExecCGI, missing, not executable, directory,
//! ScriptAlias), scale-up under load, scale-down when idle, -autoUpdate, an
//! app that cannot stay up, awkward paths and FastCgiConfig parsing.
//!
//! Processes are found through /proc as children of the `fcgi-pm` child of
//! the Apache parent this test started; this file never signals anything.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backends::compile_fcgi_app;
use common::util::{self, count, numbers_after, wait_until, write_file};
use common::{Apache, Mpm, Request, Response, TestDir};

const LOG_WAIT: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------- /proc

#[derive(Clone, Debug)]
struct Proc {
    pid: i32,
    ppid: i32,
    state: char,
    comm: String,
    cmdline: Vec<String>,
}

fn proc_info(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(Proc { pid, ppid, state, comm, cmdline })
}

/// Live (non-zombie) children of `ppid`.
fn children_of(ppid: i32) -> Vec<Proc> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                if let Some(p) = proc_info(pid) {
                    if p.ppid == ppid && p.state != 'Z' {
                        out.push(p);
                    }
                }
            }
        }
    }
    out
}

fn alive(pid: i32) -> bool {
    proc_info(pid).map(|p| p.state != 'Z').unwrap_or(false)
}

fn describe(procs: &[Proc]) -> String {
    procs
        .iter()
        .map(|p| format!("  pid {} ppid {} {} [{}] {:?}", p.pid, p.ppid, p.state, p.comm, p.cmdline))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------- a site

/// Field order is drop order: Apache first, then the directory.
struct Site {
    apache: Apache,
    _t: TestDir,
}

impl Site {
    fn start(t: TestDir, mpm: Mpm, conf: &str) -> Site {
        let apache = Apache::builder(&t).mpm(mpm).config(conf).start();
        Site { apache, _t: t }
    }

    fn log(&self) -> String {
        self.apache.error_log()
    }

    fn parent_pid(&self) -> i32 {
        self.apache.pid().expect("apache pid") as i32
    }

    /// The one live `fcgi-pm` child of Apache's parent.
    fn pm(&self) -> Proc {
        let mut found = Vec::new();
        let ok = wait_until(LOG_WAIT, || {
            found = children_of(self.parent_pid()).into_iter().filter(|p| p.comm == "fcgi-pm").collect();
            found.len() == 1
        });
        assert!(
            ok,
            "expected one fcgi-pm child of Apache's parent {}, found:\n{}\nchildren:\n{}\n--- error.log ---\n{}",
            self.parent_pid(),
            describe(&found),
            describe(&children_of(self.parent_pid())),
            self.log()
        );
        found.remove(0)
    }

    /// Live instances of the app `path` under the manager `pm` (after exec:
    /// the path is on their command line).
    fn instances(&self, pm: i32, path: &Path) -> Vec<Proc> {
        let path = path.display().to_string();
        children_of(pm).into_iter().filter(|p| p.cmdline.iter().any(|a| *a == path)).collect()
    }

    fn get(&self, path: &str) -> Response {
        self.apache.get(path)
    }

    /// GET that must answer 200; returns the body.
    fn get_ok(&self, path: &str) -> String {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}\n--- error.log ---\n{}", r.text(), self.log());
        r.text()
    }

    fn wait_log(&self, needle: &str) {
        assert!(self.apache.wait_for_log(needle, LOG_WAIT), "error log lacks {needle:?}:\n{}", self.log());
    }

    fn started_line(path: &Path) -> String {
        format!("FastCGI: (dynamic) server \"{}\" started (pid ", path.display())
    }

    /// The pids of the `started` lines for `path`, in log order.
    fn started_pids(&self, path: &Path) -> Vec<i32> {
        numbers_after(&self.log(), &Site::started_line(path))
    }
}

fn install_script(path: &Path, content: impl AsRef<[u8]>) {
    write_file(path, content);
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
}

/// `tests/apps/dyn_app.py` (flup, `WSGIServer(app).run()`) at `path`, with
/// its VERSION set to `version`.
fn install_flup_app(path: &Path, version: &str) {
    let src = fs::read_to_string(util::apps_dir().join("dyn_app.py")).expect("read tests/apps/dyn_app.py");
    assert!(src.contains("VERSION = 'v1'"));
    install_script(path, src.replace("VERSION = 'v1'", &format!("VERSION = '{version}'")));
}

/// Compiles `tests/apps/dyn_hello.c` against libfcgi into `dest` (0755).
fn build_hello(dest: &Path) {
    compile_fcgi_app("dyn_hello.c", dest);
}

/// `<Directory htdocs> Options +FollowSymLinks +ExecCGI </Directory>`.
fn exec_cgi(t: &TestDir) -> String {
    format!(
        "<Directory \"{}\">\n    Options +FollowSymLinks +ExecCGI\n    AllowOverride All\n</Directory>\n",
        t.htdocs().display()
    )
}

const DEBIAN_SNIPPET: &str = "AddHandler fastcgi-script .fcgi\n";

/// `key=N` from an app's answer (`... pid=N ppid=M`).
fn field(body: &str, key: &str) -> i32 {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in the app's answer: {body:?}"))
}

/// Sends `n` concurrent GETs of `path`; returns the responses (or the
/// transport errors) in no particular order. `peak` follows the number of
/// live instances of `app` under `pm` while they run.
fn burst(s: &Site, pm: i32, app: &Path, path: &str, n: usize) -> (Vec<Result<Response, String>>, usize) {
    let port = s.apache.port;
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let results = std::thread::scope(|sc| {
        let watcher = {
            let (done, peak) = (done.clone(), peak.clone());
            sc.spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let now = s.instances(pm, app).len();
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let path = path.to_string();
                sc.spawn(move || {
                    Request::get(&path).timeout(Duration::from_secs(45)).send(port).map_err(|e| e.to_string())
                })
            })
            .collect();
        let out: Vec<_> = handles.into_iter().map(|h| h.join().expect("request thread")).collect();
        done.store(true, Ordering::SeqCst);
        let _ = watcher.join();
        out
    });
    (results, peak.load(Ordering::SeqCst))
}

/// Every response of a burst is a 200 from the app; returns the distinct
/// pids that answered.
fn burst_pids(s: &Site, results: &[Result<Response, String>]) -> BTreeSet<i32> {
    let mut pids = BTreeSet::new();
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(r) if r.status == 200 && r.text().starts_with("Hello from libfcgi") => {
                pids.insert(field(&r.text(), "pid"));
            }
            Ok(r) => panic!(
                "request {i} of the burst: {} {:?} after {:?}\n--- error.log ---\n{}",
                r.status,
                r.text(),
                r.elapsed,
                s.log()
            ),
            Err(e) => panic!("request {i} of the burst failed: {e}\n--- error.log ---\n{}", s.log()),
        }
    }
    pids
}

// ---------------------------------------------------------------- tests

/// The tutorial's dynamic mode: `<Files app.py> SetHandler fastcgi-script`,
/// `Options +ExecCGI`, the app ends with `WSGIServer(app).run()`. The first
/// request starts it under fcgi-pm, later ones reuse the same instance.
/// A stale entry in `<DefaultRuntimeDir>/fastcgi/dynamic/` (the default
/// FastCgiIpcDir) is removed when the manager starts.
#[test]
fn tutorial_dynamic_flow_with_flup() {
    let t = TestDir::new("dyn_tutorial");
    let app = t.htdocs().join("app.py");
    install_flup_app(&app, "v1");
    // What a crashed earlier Apache could have left behind.
    let dyn_dir = t.join("apache/run/fastcgi/dynamic");
    util::mkdir_0755(&dyn_dir);
    let stale = dyn_dir.join("0123456789abcdef0123456789abcdef");
    write_file(&stale, "stale");
    if util::is_root() {
        let (uid, gid) = util::www_data();
        for p in [t.join("apache/run/fastcgi"), dyn_dir.clone(), stale.clone()] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown");
        }
    }
    let conf = format!("{}<Files app.py>\n    SetHandler fastcgi-script\n</Files>\n", exec_cgi(&t));
    let s = Site::start(t, Mpm::Event, &conf);
    let pm = s.pm();
    assert!(
        wait_until(LOG_WAIT, || !stale.exists()),
        "the stale entry {} survived the manager's start; dynamic/ holds {:?}",
        stale.display(),
        fs::read_dir(&dyn_dir).map(|rd| rd.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert!(s.instances(pm.pid, &app).is_empty(), "the app ran before any request");

    let body = s.get_ok("/app.py");
    assert!(body.starts_with("dyn_app v1 pid="), "{body}");
    let pid = field(&body, "pid");
    assert_eq!(field(&body, "ppid"), pm.pid, "the app's parent is fcgi-pm (pid {}): {body}", pm.pid);
    let inst = s.instances(pm.pid, &app);
    assert_eq!(inst.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![pid], "instances:\n{}", describe(&inst));
    s.wait_log(&format!("{}{pid})", Site::started_line(&app)));

    // Its socket lives in the default FastCgiIpcDir's dynamic/ directory.
    let sockets: Vec<PathBuf> = fs::read_dir(&dyn_dir)
        .expect("read dynamic/")
        .flatten()
        .filter(|e| e.file_type().map(|f| f.is_socket()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    assert!(!sockets.is_empty(), "no socket in {}", dyn_dir.display());

    for i in 0..6 {
        let b = s.get_ok("/app.py");
        assert_eq!(field(&b, "pid"), pid, "request {i} went to another instance: {b}");
    }
    assert_eq!(s.started_pids(&app), vec![pid], "one start only:\n{}", s.log());
    s.apache.assert_alive();
}

/// Debian's `fastcgi.conf` (`AddHandler fastcgi-script .fcgi`) with a C
/// libfcgi hello.fcgi compiled into the DocumentRoot, under prefork.
#[test]
fn debian_addhandler_with_libfcgi_hello() {
    let t = TestDir::new("dyn_debian");
    let hello = t.htdocs().join("hello.fcgi");
    build_hello(&hello);
    let conf = format!("{DEBIAN_SNIPPET}{}", exec_cgi(&t));
    let s = Site::start(t, Mpm::Prefork, &conf);
    let pm = s.pm();
    let body = s.get_ok("/hello.fcgi");
    assert!(body.starts_with("Hello from libfcgi pid="), "{body}");
    assert_eq!(field(&body, "ppid"), pm.pid, "{body}");
    // prefork: successive requests land in different Apache children; they
    // all share the one instance.
    for _ in 0..5 {
        let b = s.get_ok("/hello.fcgi");
        assert_eq!(field(&b, "pid"), field(&body, "pid"), "{b}");
    }
    assert_eq!(s.started_pids(&hello).len(), 1, "{}", s.log());
    s.apache.assert_alive();
}

/// The original's checks before anything is started: ExecCGI off (403),
/// a missing script (404), a non-executable one (403), a directory (403);
/// a ScriptAlias'd directory needs no ExecCGI.
#[test]
fn exec_cgi_missing_not_executable_directory_and_script_alias() {
    let t = TestDir::new("dyn_checks");
    let noexec = t.htdocs().join("noexec");
    let exec = t.htdocs().join("exec");
    let cgi = t.join("cgi-bin");
    util::mkdir_0755(&noexec);
    util::mkdir_0755(&exec);
    util::mkdir_0755(&exec.join("sub"));
    build_hello(&noexec.join("hello.fcgi"));
    fs::copy(noexec.join("hello.fcgi"), cgi.join("hello.fcgi")).expect("copy hello");
    fs::set_permissions(cgi.join("hello.fcgi"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy(noexec.join("hello.fcgi"), exec.join("plain.fcgi")).expect("copy hello");
    fs::set_permissions(exec.join("plain.fcgi"), fs::Permissions::from_mode(0o644)).unwrap();
    let conf = format!(
        "<Directory \"{noexec}\">\n    SetHandler fastcgi-script\n</Directory>\n\
         <Directory \"{exec}\">\n    Options +ExecCGI\n    SetHandler fastcgi-script\n</Directory>\n\
         ScriptAlias /cgi/ \"{cgi}/\"\n\
         <Directory \"{cgi}\">\n    SetHandler fastcgi-script\n    Require all granted\n</Directory>\n",
        noexec = noexec.display(),
        exec = exec.display(),
        cgi = cgi.display()
    );
    let s = Site::start(t, Mpm::Event, &conf);

    let r = s.get("/noexec/hello.fcgi");
    assert_eq!(r.status, 403, "ExecCGI off: {}", r.text());
    s.wait_log(&format!(
        "FastCGI: \"ExecCGI Option\" is off in this directory: {}",
        noexec.join("hello.fcgi").display()
    ));

    let r = s.get("/exec/missing.fcgi");
    assert_eq!(r.status, 404, "missing script: {}", r.text());
    // With its reason, which httpd writes before the message ("(2)No such
    // file or directory: [client ...] FastCGI: stat() of ... failed").
    let missing = format!("FastCGI: stat() of \"{}\" failed", exec.join("missing.fcgi").display());
    s.wait_log(&missing);
    assert!(
        s.log().lines().any(|l| l.contains(&missing) && l.contains("No such file or directory")),
        "no reason on the stat() line:\n{}",
        s.log()
    );

    let r = s.get("/exec/plain.fcgi");
    assert_eq!(r.status, 403, "non-executable script: {}", r.text());
    let needle = format!("FastCGI: invalid (dynamic) server \"{}\": ", exec.join("plain.fcgi").display());
    s.wait_log(&needle);
    let log = s.log();
    let line = log.lines().find(|l| l.contains(&needle)).unwrap_or_default();
    assert!(line.contains("not executable"), "reason for the non-executable script: {line}");

    let r = s.get("/exec/sub/");
    assert_eq!(r.status, 403, "a directory: {}", r.text());
    s.wait_log(&format!("FastCGI: invalid (dynamic) server \"{}", exec.join("sub").display()));
    s.wait_log("script is a directory");

    // Nothing of the refused ones was started.
    let log = s.log();
    for p in [noexec.join("hello.fcgi"), exec.join("plain.fcgi"), exec.join("missing.fcgi"), exec.join("sub")] {
        assert!(
            !log.contains(&format!("(dynamic) server \"{}\" started", p.display())),
            "{} started:\n{log}",
            p.display()
        );
    }

    let body = s.get_ok("/cgi/hello.fcgi");
    assert!(body.starts_with("Hello from libfcgi pid="), "through ScriptAlias: {body}");
    s.apache.assert_alive();
}

/// 16 concurrent slow requests to a single-threaded app: with
/// `-startDelay 1 -maxClassProcesses 3` more instances start, never more
/// than three, and every request is served.
#[test]
fn scale_up_under_concurrent_slow_requests() {
    let t = TestDir::new("dyn_scaleup");
    let hello = t.htdocs().join("hello.fcgi");
    build_hello(&hello);
    let conf = format!(
        "{DEBIAN_SNIPPET}{}FastCgiConfig -startDelay 1 -maxClassProcesses 3 -init-start-delay 0\n",
        exec_cgi(&t)
    );
    let s = Site::start(t, Mpm::Event, &conf);
    let pm = s.pm();
    let began = Instant::now();
    let (results, peak) = burst(&s, pm.pid, &hello, "/hello.fcgi?ms=1500", 16);
    let took = began.elapsed();
    let pids = burst_pids(&s, &results);
    let log = s.log();
    let started = s.started_pids(&hello);
    assert!(pids.len() > 1, "one instance served all 16 slow requests in {took:?}: {pids:?}\n{log}");
    assert!(pids.len() <= 3, "more than -maxClassProcesses 3 instances answered: {pids:?}\n{log}");
    assert!(started.len() > 1 && started.len() <= 3, "started lines: {started:?}\n{log}");
    assert!(peak <= 3, "{peak} instances ran at once (cap 3)\n{log}");
    for p in &pids {
        assert!(started.contains(p), "pid {p} answered but has no started line: {started:?}\n{log}");
    }
    if started.len() == 3 {
        assert!(
            log.contains(&format!(
                "FastCGI: scheduled the start of the last (dynamic) server \"{}\" process: reached dynamicMaxClassProcs (3)",
                hello.display()
            )),
            "three instances but no dynamicMaxClassProcs line:\n{log}"
        );
    }
    s.apache.assert_alive();
}

/// After a burst made several instances, with a short kill interval and no
/// -minProcesses floor, the idle class is scaled down: the youngest go
/// first, and the last one stays (-singleThreshold 0).
#[test]
fn scale_down_when_idle() {
    let t = TestDir::new("dyn_scaledown");
    let hello = t.htdocs().join("hello.fcgi");
    build_hello(&hello);
    let conf = format!(
        "{DEBIAN_SNIPPET}{}FastCgiConfig -startDelay 1 -maxClassProcesses 3 -init-start-delay 0 \
         -killInterval 2 -updateInterval 1 -minProcesses 0 -multiThreshold 50\n",
        exec_cgi(&t)
    );
    let s = Site::start(t, Mpm::Event, &conf);
    let pm = s.pm();
    let (results, peak) = burst(&s, pm.pid, &hello, "/hello.fcgi?ms=1500", 8);
    let pids = burst_pids(&s, &results);
    let started = s.started_pids(&hello);
    assert!(
        peak >= 2 && started.len() >= 2,
        "the burst did not make two instances (peak {peak}, started {started:?}, answered {pids:?}):\n{}",
        s.log()
    );
    let before = s.instances(pm.pid, &hello).len();
    let idle = Instant::now();
    let down = wait_until(Duration::from_secs(15), || s.instances(pm.pid, &hello).len() == 1);
    let log = s.log();
    assert!(
        down,
        "{before} instances after the burst, still {} after 15 s idle:\n{}\n{log}",
        s.instances(pm.pid, &hello).len(),
        describe(&s.instances(pm.pid, &hello))
    );
    let signaled = numbers_after(&log, &format!("FastCGI: (dynamic) server \"{}\" (pid ", hello.display()))
        .into_iter()
        .filter(|p| log.contains(&format!("\"{}\" (pid {p}) termination signaled", hello.display())))
        .collect::<BTreeSet<_>>();
    assert!(!signaled.is_empty(), "no termination signaled line after {:?} idle:\n{log}", idle.elapsed());
    let first = started[0];
    assert!(!signaled.contains(&first), "the oldest instance (pid {first}) was killed, not the youngest:\n{log}");
    // The last instance is never killed with -singleThreshold 0, and it is
    // the oldest one.
    std::thread::sleep(Duration::from_secs(4));
    let left = s.instances(pm.pid, &hello);
    assert_eq!(left.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![first], "left:\n{}\n{}", describe(&left), s.log());
    let body = s.get_ok("/hello.fcgi");
    assert_eq!(field(&body, "pid"), first, "{body}");
    s.apache.assert_alive();
}

/// -autoUpdate: when the script file is replaced by a newer one, the next
/// requests are served by the new version and the old instance stops.
/// Also -initial-env: the app's environment.
#[test]
fn auto_update_serves_the_new_version() {
    let t = TestDir::new("dyn_autoupd");
    let app = t.htdocs().join("app.py");
    install_flup_app(&app, "v1");
    let conf = format!(
        "{}<Files app.py>\n    SetHandler fastcgi-script\n</Files>\n\
         FastCgiConfig -autoUpdate -init-start-delay 0 -initial-env DYN_MARK=marked\n",
        exec_cgi(&t)
    );
    let s = Site::start(t, Mpm::Event, &conf);
    let pm = s.pm();
    let v1 = s.get_ok("/app.py");
    assert!(v1.starts_with("dyn_app v1 "), "{v1}");
    let old = field(&v1, "pid");
    assert_eq!(s.get_ok("/app.py/env?name=DYN_MARK"), "marked\n", "-initial-env reaches the app");
    assert_eq!(s.get_ok("/app.py/env?name=PATH"), "<unset>\n", "the environment is only -initial-env");
    assert_eq!(field(&s.get_ok("/app.py"), "pid"), old, "no restart while the script is unchanged");

    // A later second than the socket's, whatever the comparison's grain.
    std::thread::sleep(Duration::from_millis(1100));
    let tmp = app.with_file_name(".app.py.new");
    install_flup_app(&tmp, "v2");
    fs::rename(&tmp, &app).expect("replace app.py");

    // Every request keeps working across the restart: the one that finds
    // the newer script too.
    let mut body = String::new();
    let mut n = 0;
    let ok = wait_until(Duration::from_secs(10), || {
        n += 1;
        let r = s.get("/app.py");
        assert_eq!(
            r.status,
            200,
            "request {n} after the script was replaced: {:?}\n--- error.log ---\n{}",
            r.text(),
            s.log()
        );
        body = r.text();
        body.starts_with("dyn_app v2 ")
    });
    assert!(ok, "still {body:?} 10 s after the script was replaced:\n{}", s.log());
    let new = field(&body, "pid");
    assert_ne!(new, old, "{body}");
    s.wait_log(&format!("FastCGI: restarting old server \"{}\" processes, newer version found", app.display()));
    assert!(wait_until(LOG_WAIT, || !alive(old)), "the old instance (pid {old}) still runs:\n{}", s.log());
    // Settled: the new instance keeps serving, no restart loop.
    for _ in 0..3 {
        let b = s.get_ok("/app.py");
        assert!(b.starts_with("dyn_app v2 ") && field(&b, "pid") == new, "{b}\n{}", s.log());
    }
    assert_eq!(count(&s.log(), "newer version found"), 1, "{}", s.log());
    assert_eq!(s.instances(pm.pid, &app).len(), 1);
    s.apache.assert_alive();
}

/// The pipes (`pipe:[inode]`) among `pid`'s descriptors, by fd number.
fn pipes_of(pid: i32) -> BTreeMap<i32, String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let fd = e.file_name().to_str()?.parse().ok()?;
                    let link = fs::read_link(e.path()).ok()?.display().to_string();
                    link.starts_with("pipe:").then_some((fd, link))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An app that exits at once: every request, the first one too, gets 503
/// at once with a log line saying how it ended (not "incomplete headers"),
/// the Apache child survives; after 4 quick failures starts are refused
/// (503 at once, no new process). A wrong interpreter is a 503 too. What
/// the apps write to stderr (and stdout) reaches the error log line by
/// line with the `FastCGI: server "..." stderr:` prefix, through a pipe
/// per process that the manager closes when the process is gone.
#[test]
fn app_that_exits_at_once_gives_503_fast() {
    let t = TestDir::new("dyn_dies");
    let die = t.htdocs().join("die.fcgi");
    install_script(
        &die,
        "#!/bin/sh\necho 'die.fcgi: cannot read /etc/die.conf' >&2\necho 'die.fcgi on stdout'\nprintf 'die.fcgi: last words' >&2\nexit 1\n",
    );
    let badinterp = t.htdocs().join("badinterp.fcgi");
    install_script(&badinterp, "#!/nonexistent/interpreter\n");
    let hello = t.htdocs().join("hello.fcgi");
    build_hello(&hello);
    // Starts of a class are spaced by -restart-delay (default 5 s, as in
    // the original): 1 s keeps the repeated failures below short.
    let conf = format!("{DEBIAN_SNIPPET}{}FastCgiConfig -restart-delay 1\n", exec_cgi(&t));
    let s = Site::start(t, Mpm::Event, &conf);
    let pm = s.pm();
    // A running instance: fd 0 its socket, 1 and 2 one pipe the manager
    // reads, nothing else of the manager's.
    assert!(s.get_ok("/hello.fcgi").starts_with("Hello from libfcgi"));
    let hello_pid = s.instances(pm.pid, &hello).first().map(|p| p.pid).expect("a hello.fcgi instance");
    // (The request's connection, fd 3, may still be closing: a moment.)
    let fds = || -> Vec<String> {
        let mut fds: Vec<String> = fs::read_dir(format!("/proc/{hello_pid}/fd"))
            .expect("read the instance's fds")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        fds.sort();
        fds
    };
    common::util::wait_until(Duration::from_secs(3), || fds() == ["0", "1", "2"]);
    assert_eq!(fds(), ["0", "1", "2"], "descriptors of hello.fcgi");
    let app_pipes = pipes_of(hello_pid);
    assert_eq!(app_pipes.len(), 2, "{app_pipes:?}");
    assert_eq!(app_pipes.get(&1), app_pipes.get(&2), "stdout and stderr are one pipe");
    let pm_pipes = pipes_of(pm.pid);
    assert!(pm_pipes.values().any(|p| Some(p) == app_pipes.get(&2)), "the manager reads {app_pipes:?}: {pm_pipes:?}");

    let get_503 = |path: &str, limit: Duration| {
        let r = s.apache.request(Request::get(path).timeout(Duration::from_secs(20)));
        assert_eq!(r.status, 503, "GET {path}: {} {:?} after {:?}\n{}", r.status, r.text(), r.elapsed, s.log());
        assert!(r.elapsed < limit, "GET {path}: 503 took {:?} (limit {limit:?})\n{}", r.elapsed, s.log());
    };
    // Requests do not wait for it to be started again: four in a row each
    // get 503 at once, the first one too, and each log line says how it
    // ended.
    for _ in 0..4 {
        get_503("/die.fcgi", Duration::from_millis(500));
    }
    s.wait_log(&format!("FastCGI: (dynamic) server \"{}\" (pid ", die.display()));
    s.wait_log("terminated by calling exit with status '1'");
    let line = format!("FastCGI: failed to connect to (dynamic) server \"{}\": it exited with status 1", die.display());
    let log = s.log();
    assert_eq!(count(&log, &line), 4, "a line naming the exit status for each request:\n{log}");
    assert!(!log.contains("incomplete headers"), "an app that could not start is no incomplete answer:\n{log}");
    assert!(s.get_ok("/hello.fcgi").starts_with("Hello from libfcgi"));
    s.apache.assert_alive();

    // Its stderr and stdout: prefixed lines, the last one without a newline
    // too, logged before the line saying how it ended; nothing raw.
    let prefix = format!("FastCGI: server \"{}\" stderr: ", die.display());
    for want in ["die.fcgi: cannot read /etc/die.conf", "die.fcgi on stdout", "die.fcgi: last words"] {
        assert!(log.contains(&format!("{prefix}{want}")), "no {want:?} with the prefix:\n{log}");
    }
    let raw: Vec<&str> = log.lines().filter(|l| l.contains("die.fcgi") && !l.contains("FastCGI:")).collect();
    assert!(raw.is_empty(), "raw lines in the error log: {raw:?}");
    let last_words = log.find(&format!("{prefix}die.fcgi: last words")).unwrap_or(usize::MAX);
    let ended = log.find("terminated by calling exit with status '1'").unwrap_or(0);
    assert!(last_words < ended, "what it wrote comes before how it ended:\n{log}");

    // Failures until the back-off (4 attempts), each one bounded: a request
    // after each -restart-delay starts it again.
    let backoff = format!("FastCGI: (dynamic) server \"{}\" has failed to remain running for ", die.display());
    for _ in 0..8 {
        if s.log().contains(&backoff) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1100));
        get_503("/die.fcgi", Duration::from_secs(4));
    }
    s.wait_log(&backoff);
    s.wait_log("its restart interval has been backed off to 600 seconds");
    let starts = s.started_pids(&die).len();
    assert!(starts <= 5, "{starts} starts before the back-off:\n{}", s.log());
    get_503("/die.fcgi", Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.started_pids(&die).len(), starts, "started again during the back-off:\n{}", s.log());

    get_503("/badinterp.fcgi", Duration::from_secs(5));
    s.wait_log(&format!(
        "FastCGI: server \"{}\" stderr: FastCGI: can't start server \"{}\" (pid ",
        badinterp.display(),
        badinterp.display()
    ));
    assert!(s.get_ok("/hello.fcgi").starts_with("Hello from libfcgi"));
    s.apache.assert_alive();

    // The pipes of the processes that exited are closed: the manager holds
    // none more than it did with only hello.fcgi running.
    let settled = wait_until(LOG_WAIT, || {
        s.instances(pm.pid, &die).is_empty()
            && s.instances(pm.pid, &badinterp).is_empty()
            && pipes_of(pm.pid).len() == pm_pipes.len()
    });
    assert!(settled, "the manager holds {:?}, held {pm_pipes:?} before", pipes_of(pm.pid));
}

/// Paths the original's text pipe could not carry: a space, a `*`, a
/// newline.
#[test]
fn awkward_paths_space_star_newline() {
    let t = TestDir::new("dyn_paths");
    let space = t.htdocs().join("my app.fcgi");
    let star = t.htdocs().join("star*app.fcgi");
    let newline = t.htdocs().join("new\nline.fcgi");
    build_hello(&space);
    for p in [&star, &newline] {
        fs::copy(&space, p).expect("copy hello");
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let conf = format!("{DEBIAN_SNIPPET}{}", exec_cgi(&t));
    let s = Site::start(t, Mpm::Event, &conf);
    let pm = s.pm();
    let mut pids = BTreeSet::new();
    for (url, path) in [("/my%20app.fcgi", &space), ("/star*app.fcgi", &star), ("/new%0Aline.fcgi", &newline)] {
        let body = s.get_ok(url);
        assert!(body.starts_with("Hello from libfcgi pid="), "{url}: {body}");
        let pid = field(&body, "pid");
        let inst = s.instances(pm.pid, path);
        assert_eq!(
            inst.iter().map(|p| p.pid).collect::<Vec<_>>(),
            vec![pid],
            "{url}: the instance runs {path:?}:\n{}",
            describe(&children_of(pm.pid))
        );
        assert_eq!(field(&s.get_ok(url), "pid"), pid, "{url}: reused");
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 3, "each path is its own app: {pids:?}");
    s.wait_log(&Site::started_line(&space));
    s.apache.assert_alive();
}

#[test]
fn fastcgi_config_parsing() {
    let t = TestDir::new("dyn_config");
    let check = |conf: &str| Apache::builder(&t).config(conf).configtest();

    let (code, out) = check("FastCgiConfig -foo");
    assert_ne!(code, 0, "accepted -foo:\n{out}");
    assert!(out.contains("FastCgiConfig: invalid option: -foo"), "{out}");

    let (code, out) = check("FCGIConfig -singleThreshhold 1 -multiThreshhold 10");
    assert_eq!(code, 0, "the misspelled aliases:\n{out}");

    let (code, out) = check("FastCgiConfig -maxProcesses 4 -processSlack 5");
    assert_ne!(code, 0, "accepted processSlack 5 with maxProcesses 4:\n{out}");
    assert!(out.contains("processSlack (5) must be less than maxProcesses (4) + 1"), "{out}");

    let (code, out) = check(
        "FastCgiConfig -appConnTimeout 0 -autoUpdate -flush -gainValue 0.5 -idle-timeout 30 \
         -initial-env FOO=bar -initial-env BAZ -init-start-delay 1 -killInterval 300 \
         -listen-queue-depth 100 -maxClassProcesses 10 -maxProcesses 50 -minProcesses 5 \
         -multiThreshold 50 -pass-header X-Foo -priority 0 -processSlack 5 -restart \
         -restart-delay 5 -min-server-life 30 -singleThreshold 0 -startDelay 3 -updateInterval 300",
    );
    assert_eq!(code, 0, "every option with its default:\n{out}");
}
