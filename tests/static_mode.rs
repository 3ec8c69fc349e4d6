//! Static mode end to end (issue 4): `FastCgiServer` and the process
//! manager `fcgi-pm`, forked by a real Apache, running real flup apps: the
//! tutorial's lazy flow, the fd-0 convention, restarts and back-off, stop,
//! graceful and hard restarts under load, a dying manager or parent, config
//! errors, and Apache started as a plain user.
//!
//! Processes are identified through /proc (pid + start time, so a reused
//! pid is never mistaken for ours); signals go only to pids found as
//! children of the Apache this test started.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::util::{self, count, numbers_after, wait_until, write_file};
use common::{json, Apache, Mpm, Request, Response, TestDir};

const HELLO_H1: &str = "<h1>Hello world!</h1>";
const LOG_WAIT: Duration = Duration::from_secs(8);

/// The tutorial's app ("For the lazy"), word for word but for the
/// interpreter (Debian 12 has no /usr/bin/python) and the socket path.
const TUTORIAL_APP: &str = r#"#!/usr/bin/python3

from flup.server.fcgi import WSGIServer

def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/html')])
    return('''<html>
    <head>
        <title>Hello World!</title>
    </head>
    <body>
        <h1>Hello world!</h1>
    </body>
</html>''')

if __name__ == "__main__":
    WSGIServer(app, bindAddress = '@SOCKET@').run()
"#;

// ---------------------------------------------------------------- /proc

/// One process as /proc shows it.
#[derive(Clone, Debug)]
struct Proc {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    state: char,
    /// Start time in clock ticks since boot: pid + start identify a process.
    start: u64,
    comm: String,
    cmdline: Vec<String>,
    uid: u32,
}

fn proc_info(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let pgrp = rest.get(2)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX);
    Some(Proc { pid, ppid, pgrp, state, start, comm, cmdline, uid })
}

fn all_procs() -> Vec<Proc> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                if let Some(p) = proc_info(pid) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Live (non-zombie) children of `ppid`.
fn children_of(ppid: i32) -> Vec<Proc> {
    all_procs().into_iter().filter(|p| p.ppid == ppid && p.state != 'Z').collect()
}

/// The same process (pid and start time) still exists, zombie or not.
fn exists(p: &Proc) -> bool {
    proc_info(p.pid).map(|q| q.start == p.start).unwrap_or(false)
}

fn describe(procs: &[Proc]) -> String {
    procs
        .iter()
        .map(|p| format!("  pid {} ppid {} {} [{}] uid {} {:?}", p.pid, p.ppid, p.state, p.comm, p.uid, p.cmdline))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sends a signal to a process this test identified as one of its own.
fn kill(p: &Proc, sig: i32) {
    assert!(exists(p), "process {} is gone (or its pid was reused)", p.pid);
    util::signal(p.pid, sig);
}

// ---------------------------------------------------------------- users

fn www_data() -> (u32, u32) {
    // SAFETY: getpwnam with a valid C string; the fields are copied at once.
    unsafe {
        let pw = libc::getpwnam(c"www-data".as_ptr());
        assert!(!pw.is_null(), "no www-data user");
        ((*pw).pw_uid, (*pw).pw_gid)
    }
}

/// Who Apache's workers, the manager and the apps run as.
fn expected_uid() -> u32 {
    if util::is_root() {
        www_data().0
    } else {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() }
    }
}

// ---------------------------------------------------------------- a site

/// Field order is drop order: Apache first, then the directory.
struct Site {
    apache: Apache,
    t: TestDir,
}

impl Site {
    fn start(t: TestDir, mpm: Mpm, conf: &str) -> Site {
        let apache = Apache::builder(&t).mpm(mpm).config(conf).start();
        Site { apache, t }
    }

    fn log(&self) -> String {
        self.apache.error_log()
    }

    fn parent_pid(&self) -> i32 {
        self.apache.pid().expect("apache pid") as i32
    }

    /// Live `fcgi-pm` children of Apache's parent.
    fn managers(&self) -> Vec<Proc> {
        children_of(self.parent_pid()).into_iter().filter(|p| p.comm == "fcgi-pm").collect()
    }

    /// Waits for exactly one manager (other than `not`) and returns it.
    fn manager_other_than(&self, not: Option<i32>) -> Proc {
        let mut found = Vec::new();
        let ok = wait_until(LOG_WAIT, || {
            found = self.managers().into_iter().filter(|p| Some(p.pid) != not).collect();
            found.len() == 1
        });
        assert!(
            ok,
            "expected one fcgi-pm child of Apache's parent {} (other than {not:?}), found:\n{}\nchildren:\n{}\n--- error.log ---\n{}",
            self.parent_pid(),
            describe(&found),
            describe(&children_of(self.parent_pid())),
            self.log()
        );
        found.remove(0)
    }

    fn manager(&self) -> Proc {
        self.manager_other_than(None)
    }

    /// Waits until `pm` has exactly `n` app children running `app` (after
    /// exec: the path is on their command line), and returns them.
    fn apps(&self, pm: &Proc, app: &Path, n: usize) -> Vec<Proc> {
        let app = app.display().to_string();
        let mut found = Vec::new();
        let ok = wait_until(Duration::from_secs(10), || {
            found = children_of(pm.pid).into_iter().filter(|p| p.cmdline.iter().any(|a| *a == app)).collect();
            found.len() == n
        });
        assert!(
            ok,
            "expected {n} app processes ({app}) under fcgi-pm {}, found:\n{}\nall its children:\n{}\n--- error.log ---\n{}",
            pm.pid,
            describe(&found),
            describe(&children_of(pm.pid)),
            self.log()
        );
        found
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

    /// GET `<prefix>/info` of an fd0 app: its startup facts.
    fn info(&self, prefix: &str) -> BTreeMap<String, String> {
        let body = self.get_ok(&format!("{prefix}/info"));
        json::parse_object(&body).unwrap_or_else(|e| panic!("bad JSON from the app ({e}): {body}"))
    }

    fn wait_log(&self, needle: &str) {
        assert!(self.apache.wait_for_log(needle, LOG_WAIT), "error log lacks {needle:?}:\n{}", self.log());
    }

    fn conf_path(&self) -> PathBuf {
        self.apache.root().join("conf/httpd.conf")
    }
}

/// Copies `tests/apps/fd0_app.py` into the DocumentRoot, mode 0755.
fn install_fd0(t: &TestDir) -> PathBuf {
    let path = t.htdocs().join("fd0_app.py");
    let src = fs::read(util::apps_dir().join("fd0_app.py")).expect("read tests/apps/fd0_app.py");
    install_script(&path, &src);
    path
}

fn install_script(path: &Path, content: impl AsRef<[u8]>) {
    write_file(path, content);
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
}

/// The tutorial's app at `<htdocs>/app.py`, binding `socket` itself.
fn install_tutorial_app(t: &TestDir, socket: &Path) -> PathBuf {
    let path = t.htdocs().join("app.py");
    install_script(&path, TUTORIAL_APP.replace("@SOCKET@", &socket.display().to_string()));
    path
}

/// A directory like /tmp (1777), where the tutorial puts its socket: the
/// flup app (running as the Apache user) replaces the socket file there.
fn sticky_dir(t: &TestDir) -> PathBuf {
    let d = t.join("sock");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
    d
}

fn fd0_handler() -> &'static str {
    "<Files fd0_app.py>\n    SetHandler fastcgi-script\n</Files>\n"
}

/// The tutorial's configuration, with the default `-init-start-delay` (1 s):
/// its app unlinks and binds the socket path itself, so instances started
/// at the same moment can race (one gets EADDRINUSE and exits).
fn tutorial_conf(t: &TestDir, app: &Path, socket: &Path) -> String {
    format!(
        "<Directory \"{htdocs}\">\n    Options +FollowSymLinks +ExecCGI\n    AllowOverride All\n</Directory>\n\
         <Files app.py>\n    SetHandler fastcgi-script\n</Files>\n\
         FastCgiServer {app} -processes 4 -socket {socket}\n",
        htdocs = t.htdocs().display(),
        app = app.display(),
        socket = socket.display(),
    )
}

/// How many listening Unix sockets are bound to `path` (/proc/net/unix:
/// flags 00010000 is __SO_ACCEPTCON).
fn unix_listeners(path: &Path) -> usize {
    let path = path.display().to_string();
    fs::read_to_string("/proc/net/unix")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 8 && f[3] == "00010000" && f[7] == path
        })
        .count()
}

/// Checks the lazy flow on a running site: the page, one manager under
/// Apache's parent, four apps under it, all as the expected user.
fn check_lazy_flow(s: &Site, app: &Path, socket: &Path) {
    // The tutorial's app binds the socket path itself (bindAddress): each of
    // the four unlinks the file and binds its own listener there, and none
    // accepts on the manager's socket (fd 0). A request that reached the
    // manager's socket before the apps replaced it would wait for nobody,
    // so wait until all four listen on the path (/proc/net/unix keeps the
    // bound name of each), as they would long before a user's first click.
    let mut n = 0;
    let bound = wait_until(Duration::from_secs(10), || {
        n = unix_listeners(socket);
        n >= 4
    });
    assert!(bound, "{n} of the 4 flup apps listen on {}:\n{}", socket.display(), s.log());
    let mut last = String::new();
    let served = wait_until(Duration::from_secs(10), || {
        match Request::get("/app.py").timeout(Duration::from_secs(5)).send(s.apache.port) {
            Ok(r) if r.status == 200 && r.text().contains(HELLO_H1) => true,
            Ok(r) => {
                last = format!("{} {}", r.status, r.text());
                false
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        }
    });
    assert!(served, "the tutorial's page never showed Hello world; last: {last}\n--- error.log ---\n{}", s.log());

    let pm = s.manager();
    assert_eq!(pm.ppid, s.parent_pid(), "fcgi-pm's parent is not Apache's parent");
    assert_eq!(fs::read_to_string(format!("/proc/{}/comm", pm.pid)).unwrap_or_default().trim(), "fcgi-pm");
    let cmdline = pm.cmdline.join(" ");
    assert!(cmdline.starts_with("fcgi-pm"), "fcgi-pm's command line: {cmdline:?}");
    assert!(cmdline.contains("-f"), "fcgi-pm's command line should keep Apache's arguments: {cmdline:?}");
    assert_eq!(pm.uid, expected_uid(), "fcgi-pm runs as uid {}", pm.uid);
    s.wait_log(&format!("FastCGI: process manager initialized (pid {})", pm.pid));

    let apps = s.apps(&pm, app, 4);
    // Still exactly four, the same four, a moment later: none crashed.
    std::thread::sleep(Duration::from_millis(500));
    let again = s.apps(&pm, app, 4);
    let mut a: Vec<i32> = apps.iter().map(|p| p.pid).collect();
    let mut b: Vec<i32> = again.iter().map(|p| p.pid).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the app processes changed:\n{}", s.log());
    let all = children_of(pm.pid);
    assert_eq!(all.len(), 4, "fcgi-pm has other children:\n{}", describe(&all));
    for p in &apps {
        assert_eq!(p.uid, expected_uid(), "app {} runs as uid {}", p.pid, p.uid);
        assert_ne!(p.uid, 0, "an app runs as root");
        s.wait_log(&format!("FastCGI: server \"{}\" started (pid {})", app.display(), p.pid));
    }
    assert!(!s.log().contains("terminated"), "an app terminated:\n{}", s.log());
    for _ in 0..5 {
        assert!(s.get_ok("/app.py").contains(HELLO_H1));
    }
}

// ---------------------------------------------------------------- 1. lazy flow

/// The tutorial's "For the lazy" chapter: its app, its handler block and its
/// `FastCgiServer ... -processes 4 -socket <tmp>/fcgi.sock`.
#[test]
fn lazy_flow_four_apps_under_one_fcgi_pm() {
    let t = TestDir::new("lazy");
    let socket = sticky_dir(&t).join("fcgi.sock");
    let app = install_tutorial_app(&t, &socket);
    let conf = tutorial_conf(&t, &app, &socket);
    let s = Site::start(t, Mpm::Event, &conf);
    check_lazy_flow(&s, &app, &socket);
    s.apache.assert_alive();
}

// ---------------------------------------------------------------- 2. fd 0

/// An app that serves the socket on fd 0, under FastCgiIpcDir with a
/// relative `-socket`: the socket file, the app's environment, cwd, argv,
/// fds, process group, user and priority.
#[test]
fn fd0_app_on_relative_socket_under_ipc_dir() {
    let t = TestDir::new("fd0unix");
    let app = install_fd0(&t);
    let ipc = t.join("ipc");
    let conf = format!(
        "FastCgiIpcDir {ipc}\n{handler}\
         FastCgiServer {app} -socket fd0.sock -initial-env FOO=bar -initial-env EMPTY= -init-start-delay 0 -priority 3\n",
        ipc = ipc.display(),
        handler = fd0_handler(),
        app = app.display(),
    );
    let s = Site::start(t, Mpm::Event, &conf);
    let info = s.info("/fd0_app.py");
    let pm = s.manager();
    let apps = s.apps(&pm, &app, 1);

    // The socket: in the IPC dir, mode 0600, owned by the Apache user.
    let socket = ipc.join("fd0.sock");
    let meta = fs::metadata(&socket).unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
    assert!(meta.file_type().is_socket(), "{} is not a socket", socket.display());
    assert_eq!(meta.mode() & 0o7777, 0o600, "socket mode {:o}", meta.mode() & 0o7777);
    if util::is_root() {
        assert_eq!((meta.uid(), meta.gid()), www_data(), "socket owner");
    } else {
        assert_eq!(meta.uid(), expected_uid(), "socket owner");
    }

    // The process: the one app, a child of fcgi-pm, its own group and session.
    let pid: i32 = info["pid"].parse().unwrap();
    assert_eq!(pid, apps[0].pid, "{info:?}");
    assert_eq!(info["ppid"], pm.pid.to_string(), "the app's parent is not fcgi-pm");
    assert_eq!(info["pgid"], info["pid"], "the app is not in a process group of its own");
    assert_eq!(apps[0].pgrp, pid);
    assert_eq!(info["uid"], expected_uid().to_string(), "app uid");
    assert_eq!(info["euid"], expected_uid().to_string(), "app euid");
    assert_ne!(info["uid"], "0");

    // Environment: exactly the -initial-env list, as execve gave it.
    assert_eq!(info["environ"], "EMPTY=\nFOO=bar", "the app's environment");
    assert_eq!(info.get("env.FOO").map(String::as_str), Some("bar"));
    assert_eq!(info.get("env.EMPTY").map(String::as_str), Some(""));
    for leak in ["env.PATH", "env.HOME", "env.APACHE_RUN_USER", "env.PWD"] {
        assert!(!info.contains_key(leak), "{leak} leaked into the app's environment: {info:?}");
    }

    // cwd, argv, fds, fd 0, priority.
    assert_eq!(info["cwd"], s.t.htdocs().display().to_string(), "the app's cwd");
    assert_eq!(info["argv0"], app.display().to_string(), "argv[0]");
    assert_eq!(info["argc"], "1");
    assert_eq!(info["extra_fds"], "", "fds other than 0-2 left open in the app");
    assert_eq!(info["fd0_is_socket"], "yes", "{info:?}");
    assert_eq!(info["fd0_listening"], "yes", "{info:?}");
    assert_eq!(info["fd0_family"], "AF_UNIX", "{info:?}");
    // SAFETY: getpriority on ourselves.
    let own_nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    assert_eq!(info["nice"], (own_nice + 3).to_string(), "-priority 3");

    s.wait_log(&format!("FastCGI: server \"{}\" started (pid {pid})", app.display()));
    assert!(s.get_ok("/fd0_app.py/").starts_with("hello from fd0_app"));
    s.apache.assert_alive();
}

/// `-port`: the same fd-0 app over TCP, listening on 127.0.0.1 only; a bare
/// `-initial-env NAME` copies Apache's value; `-user`/`-group` without a
/// wrapper are ignored with the original's warning.
#[test]
fn fd0_app_on_port_listens_on_loopback_only() {
    let t = TestDir::new("fd0tcp");
    let app = install_fd0(&t);
    let port = util::free_port();
    let home = std::env::var("HOME").unwrap_or_default();
    assert!(!home.is_empty(), "the test needs HOME set (Apache inherits it)");
    let conf = format!(
        "{handler}FastCgiServer {app} -port {port} -initial-env HOME -init-start-delay 0 -user nobody -group nogroup\n",
        handler = fd0_handler(),
        app = app.display(),
    );
    let s = Site::start(t, Mpm::Event, &conf);
    let info = s.info("/fd0_app.py");
    assert_eq!(info["environ"], format!("HOME={home}"), "a bare -initial-env copies Apache's value, and only it");
    assert_eq!(info["fd0_is_socket"], "yes", "{info:?}");
    assert_eq!(info["fd0_listening"], "yes", "{info:?}");
    assert_eq!(info["fd0_family"], "AF_INET", "{info:?}");
    assert_eq!(info["fd0_name"], format!("127.0.0.1:{port}"), "{info:?}");
    assert_eq!(info["uid"], expected_uid().to_string(), "-user without a wrapper must be ignored");
    s.wait_log("FastCGI: there is no fastcgi wrapper set, user/group options are ignored");

    // Every listener on that port is 127.0.0.1's (/proc/net/tcp: local
    // address 0100007F, state 0A = LISTEN), and none in tcp6.
    let hex_port = format!("{port:04X}");
    let listeners = |file: &str| -> Vec<String> {
        fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (local, st) = (f.get(1)?, f.get(3)?);
                (*st == "0A" && local.ends_with(&format!(":{hex_port}"))).then(|| local.to_string())
            })
            .collect()
    };
    let v4 = listeners("/proc/net/tcp");
    assert!(!v4.is_empty(), "nothing listens on port {port}");
    for l in &v4 {
        assert_eq!(l, &format!("0100007F:{hex_port}"), "a listener on port {port} is not 127.0.0.1: {v4:?}");
    }
    let v6 = listeners("/proc/net/tcp6");
    assert!(v6.is_empty(), "IPv6 listeners on port {port}: {v6:?}");
    // 127.0.0.2 reaches the loopback interface too: refused when bound to 127.0.0.1.
    let other = SocketAddr::from(([127, 0, 0, 2], port));
    assert!(
        TcpStream::connect_timeout(&other, Duration::from_secs(2)).is_err(),
        "the app's port answers on 127.0.0.2: it is not bound to 127.0.0.1 only"
    );
    assert!(s.get_ok("/fd0_app.py/").starts_with("hello from fd0_app"));
    s.apache.assert_alive();
}

// ---------------------------------------------------------------- 3. restart

/// SIGKILL to an app: logged, restarted at once (`-restart-delay 0`), and
/// the listening socket never went away, so the next request is served.
#[test]
fn killed_app_is_restarted_and_serves_again() {
    let t = TestDir::new("killapp");
    let app = install_fd0(&t);
    let socket = t.sock("k.sock");
    let conf = format!(
        "{handler}FastCgiServer {app} -socket {socket} -init-start-delay 0 -restart-delay 0\n",
        handler = fd0_handler(),
        app = app.display(),
        socket = socket.display(),
    );
    let s = Site::start(t, Mpm::Event, &conf);
    let info = s.info("/fd0_app.py");
    let pm = s.manager();
    let victim = s.apps(&pm, &app, 1).remove(0);
    assert_eq!(info["pid"], victim.pid.to_string());

    kill(&victim, libc::SIGKILL);
    s.wait_log(&format!(
        "FastCGI: server \"{}\" (pid {}) terminated due to uncaught signal '9'",
        app.display(),
        victim.pid
    ));
    let restarted = format!("FastCGI: server \"{}\" restarted (pid ", app.display());
    s.wait_log(&restarted);
    let new_pids = numbers_after(&s.log(), &restarted);
    assert_eq!(new_pids.len(), 1, "one restart expected:\n{}", s.log());

    // The very next request is served by the new process.
    let info = s.info("/fd0_app.py");
    assert_eq!(info["pid"], new_pids[0].to_string(), "served by {info:?}");
    assert_ne!(info["pid"], victim.pid.to_string());
    assert_eq!(info["ppid"], pm.pid.to_string());
    assert!(!exists(&victim), "the killed app was not reaped");
    s.apache.assert_alive();
}

/// What a static application writes to its stderr and stdout reaches the
/// error log line by line with the prefix FCGI_STDERR lines get (`FastCGI:
/// server "..." stderr: `), a long line in 4 KiB pieces; nothing raw.
#[test]
fn app_stderr_is_logged_line_by_line_with_the_prefix() {
    let t = TestDir::new("pmstderr");
    let app = t.htdocs().join("noisy.sh");
    install_script(
        &app,
        "#!/bin/sh\necho 'noisy: starting up' >&2\necho 'noisy: on stdout'\n\
         head -c 10000 /dev/zero | tr '\\0' z >&2\necho >&2\necho 'noisy: ready' >&2\nexec sleep 600\n",
    );
    let conf = format!(
        "FastCgiServer {app} -socket {socket} -init-start-delay 0\n",
        app = app.display(),
        socket = t.sock("noisy.sock").display(),
    );
    let s = Site::start(t, Mpm::Event, &conf);
    let prefix = format!("FastCGI: server \"{}\" stderr: ", app.display());
    s.wait_log(&format!("{prefix}noisy: ready"));
    let log = s.log();
    for want in ["noisy: starting up", "noisy: on stdout"] {
        assert_eq!(count(&log, &format!("{prefix}{want}")), 1, "{want:?}:\n{log}");
    }
    let pieces: Vec<usize> = log
        .lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
        .filter(|rest| rest.starts_with('z'))
        .map(|rest| rest.len())
        .collect();
    assert_eq!(pieces, [4096, 4096, 1808], "the 10,000-byte line, in pieces");
    let raw: Vec<&str> = log.lines().filter(|l| l.contains("noisy") && !l.contains("FastCGI: ")).collect();
    assert!(raw.is_empty(), "raw lines: {raw:?}");
    assert!(!log.lines().any(|l| l.starts_with('z')), "a raw piece of the long line");
    s.apache.assert_alive();
}

// ---------------------------------------------------------------- 4. back-off

/// Fast crashes (exit 1) back off to 600 s after 4 attempts; exit status 0
/// does not count as a failure (that app restarts once a second: at
/// `-restart-delay 0` it would respawn about a thousand times a second).
#[test]
fn fast_crashes_back_off_but_exit_zero_does_not() {
    let t = TestDir::new("backoff");
    let fail = t.htdocs().join("fail1.sh");
    let zero = t.htdocs().join("exit0.sh");
    install_script(&fail, "#!/bin/sh\nexit 1\n");
    install_script(&zero, "#!/bin/sh\nexit 0\n");
    let conf = format!(
        "FastCgiServer {fail} -socket {fs} -init-start-delay 0 -restart-delay 0\n\
         FastCgiServer {zero} -socket {zs} -init-start-delay 0 -restart-delay 1\n",
        fail = fail.display(),
        fs = t.sock("f1.sock").display(),
        zero = zero.display(),
        zs = t.sock("e0.sock").display(),
    );
    let s = Site::start(t, Mpm::Event, &conf);

    let backoff = format!(
        "FastCGI: server \"{}\" has failed to remain running for 30 seconds given 4 attempts, \
         its restart interval has been backed off to 600 seconds",
        fail.display()
    );
    s.wait_log(&backoff);
    let exit1 = |log: &str| {
        log.lines()
            .filter(|l| {
                l.contains(&format!("FastCGI: server \"{}\" (pid ", fail.display()))
                    && l.contains("terminated by calling exit with status '1'")
            })
            .count()
    };
    let n = exit1(&s.log());
    assert!(n >= 4, "only {n} exit-1 lines before the back-off:\n{}", s.log());

    // exit 0 restarts go on without a back-off.
    let exit0 = |log: &str| {
        log.lines()
            .filter(|l| {
                l.contains(&format!("FastCGI: server \"{}\" (pid ", zero.display()))
                    && l.contains("terminated by calling exit with status '0'")
            })
            .count()
    };
    // Five exits: a failure count would have backed off before the fifth start.
    let backed_off_at = Instant::now();
    let ok = wait_until(Duration::from_secs(10), || exit0(&s.log()) >= 5);
    assert!(ok, "exit-0 app was not restarted 4 times:\n{}", s.log());
    // Backed off: no further start of the failing app for a while.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(backed_off_at.elapsed()));
    let log = s.log();
    assert_eq!(exit1(&log), n, "the failing app was restarted after the back-off:\n{log}");
    assert_eq!(count(&log, &backoff), 1, "{log}");
    assert!(
        !log.contains(&format!("FastCGI: server \"{}\" has failed to remain running", zero.display())),
        "exit status 0 counted as a failure:\n{log}"
    );
    s.apache.assert_alive();
}

// ---------------------------------------------------------------- 5. stop

enum StopHow {
    /// `apache2 -k stop -f conf`
    KStop,
    /// SIGTERM to Apache's parent by pid.
    Sigterm,
}

/// Where the app's socket lives.
enum SockDir {
    /// A /tmp-like directory (1777), as in the tutorial.
    Sticky,
    /// A directory owned by root, mode 0755 (like /run): only the manager
    /// running as root when it creates the socket can write there.
    RootOwned,
}

fn stop_leaves_nothing(name: &str, mpm: Mpm, how: StopHow, dir: SockDir) {
    let t = TestDir::new(name);
    let app = install_fd0(&t);
    let socket = match dir {
        SockDir::Sticky => sticky_dir(&t).join("s.sock"),
        SockDir::RootOwned => t.sock("s.sock"),
    };
    let conf = format!(
        "{handler}FastCgiServer {app} -processes 2 -socket {socket} -init-start-delay 0\n",
        handler = fd0_handler(),
        app = app.display(),
        socket = socket.display(),
    );
    let mut s = Site::start(t, mpm, &conf);
    s.info("/fd0_app.py");
    let pm = s.manager();
    let apps = s.apps(&pm, &app, 2);
    assert!(socket.exists());
    let parent = proc_info(s.parent_pid()).expect("apache parent");
    let conf_path = s.conf_path();

    let started = Instant::now();
    match how {
        StopHow::KStop => {
            let out = Command::new("/usr/sbin/apache2")
                .arg("-k")
                .arg("stop")
                .arg("-f")
                .arg(&conf_path)
                .output()
                .expect("apache2 -k stop");
            assert!(out.status.success(), "apache2 -k stop: {}", String::from_utf8_lossy(&out.stderr));
        }
        StopHow::Sigterm => kill(&parent, libc::SIGTERM),
    }
    let mut all = apps.clone();
    all.push(pm.clone());
    let gone = wait_until(Duration::from_secs(8), || all.iter().all(|p| !exists(p)));
    let left: Vec<Proc> = all.iter().filter(|p| exists(p)).filter_map(|p| proc_info(p.pid)).collect();
    assert!(
        gone,
        "after stop, {:?} later, still there (zombies included):\n{}\n--- error.log ---\n{}",
        started.elapsed(),
        describe(&left),
        s.log()
    );
    // Apache's parent exits too (it waited for the manager).
    assert!(
        wait_until(Duration::from_secs(8), || proc_info(parent.pid)
            .map(|p| p.start != parent.start || p.state == 'Z')
            .unwrap_or(true)),
        "Apache's parent did not exit:\n{}",
        s.log()
    );
    s.apache.stop();
    assert!(!socket.exists(), "the socket file {} outlived stop", socket.display());
    let conf_text = conf_path.display().to_string();
    let stray: Vec<Proc> =
        all_procs().into_iter().filter(|p| p.comm == "fcgi-pm" && p.cmdline.iter().any(|a| *a == conf_text)).collect();
    assert!(stray.is_empty(), "an fcgi-pm of this config is still running:\n{}", describe(&stray));
    let log = s.log();
    assert!(!log.contains("died, starting a new one"), "a manager was restarted during stop:\n{log}");
}

#[test]
fn k_stop_leaves_no_process_zombie_or_socket_prefork() {
    stop_leaves_nothing("stopk", Mpm::Prefork, StopHow::KStop, SockDir::Sticky);
}

#[test]
fn sigterm_to_parent_leaves_no_process_zombie_or_socket_event() {
    stop_leaves_nothing("stopterm", Mpm::Event, StopHow::Sigterm, SockDir::Sticky);
}

/// The socket in a root-owned directory: the manager has dropped to the
/// Apache user by the time it stops, yet the file must still go.
#[test]
fn stop_removes_a_socket_in_a_root_owned_dir() {
    stop_leaves_nothing("stoprootdir", Mpm::Event, StopHow::Sigterm, SockDir::RootOwned);
}

// ---------------------------------------------------------------- 6. restarts

fn restart_site(name: &str) -> (Site, PathBuf, PathBuf) {
    let t = TestDir::new(name);
    let app = install_fd0(&t);
    let socket = t.sock("g.sock");
    let conf = format!(
        "{handler}FastCgiServer {app} -processes 2 -socket {socket} -init-start-delay 0 -idle-timeout 3\n",
        handler = fd0_handler(),
        app = app.display(),
        socket = socket.display(),
    );
    let s = Site::start(t, Mpm::Event, &conf);
    s.info("/fd0_app.py");
    (s, app, socket)
}

/// After a restart: a new manager serves, the old one retired and, after the
/// idle timeout, went away with its apps, leaving the socket to the new one.
fn check_replaced(s: &Site, app: &Path, socket: &Path, old_pm: &Proc, old_apps: &[Proc]) -> Proc {
    let new_pm = s.manager_other_than(Some(old_pm.pid));
    s.wait_log(&format!("FastCGI: process manager (pid {}) retiring", old_pm.pid));
    s.apps(&new_pm, app, 2);
    let served_by_new = wait_until(LOG_WAIT, || {
        Request::get("/fd0_app.py/info")
            .send(s.apache.port)
            .ok()
            .and_then(|r| json::parse_object(&r.text()).ok())
            .map(|i| i.get("ppid") == Some(&new_pm.pid.to_string()))
            .unwrap_or(false)
    });
    assert!(served_by_new, "requests are not served by the new manager's apps:\n{}", s.log());
    let mut old = old_apps.to_vec();
    old.push(old_pm.clone());
    // -idle-timeout 3, then SIGTERM (SIGKILL after 3 s).
    let gone = wait_until(Duration::from_secs(10), || old.iter().all(|p| !exists(p)));
    let left: Vec<Proc> = old.iter().filter(|p| exists(p)).filter_map(|p| proc_info(p.pid)).collect();
    assert!(gone, "the retired manager or its apps are still there:\n{}\n{}", describe(&left), s.log());
    assert!(socket.exists(), "the retiring manager removed the new generation's socket");
    assert!(s.get_ok("/fd0_app.py/").starts_with("hello from fd0_app"));
    new_pm
}

/// 20 clients, each in a loop of 50-200 ms requests, through a graceful
/// restart: not one request fails.
#[test]
fn graceful_restart_under_load_loses_no_request() {
    let (s, app, socket) = restart_site("graceful");
    let old_pm = s.manager();
    let old_apps = s.apps(&old_pm, &app, 2);

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let port = s.apache.port;
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let ms = 50 + (i * 37 + n * 53) % 151;
                    n += 1;
                    let r =
                        Request::get(&format!("/fd0_app.py/slow?ms={ms}")).timeout(Duration::from_secs(20)).send(port);
                    match r {
                        Ok(r) if r.status == 200 && r.complete && r.body == b"slow ok\n" => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failures.lock().unwrap().push(format!(
                            "client {i}: {} complete={} {:?}",
                            r.status,
                            r.complete,
                            r.text()
                        )),
                        Err(e) => failures.lock().unwrap().push(format!("client {i}: {e}")),
                    }
                }
            })
        })
        .collect();

    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let before = done.load(Ordering::Relaxed);
    s.apache.restart(libc::SIGUSR1);
    let remaining = Duration::from_secs(5).saturating_sub(t0.elapsed());
    std::thread::sleep(remaining.max(Duration::from_millis(1500)));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    let failures = failures.lock().unwrap().clone();
    let total = done.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed through a graceful restart, first ones:\n{}\n--- error.log ---\n{}",
        failures.len(),
        failures.len() + total,
        failures.iter().take(10).cloned().collect::<Vec<_>>().join("\n"),
        s.log()
    );
    assert!(before >= 20, "only {before} requests before the restart");
    assert!(total >= before + 40, "only {} requests after the restart ({total} in all)", total - before);

    check_replaced(&s, &app, &socket, &old_pm, &old_apps);
    s.apache.assert_alive();
    // The retired manager was reaped as Apache's own child, not a stranger.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!s.log().contains("long lost child came home"), "{}", s.log());
}

/// `-k restart` (SIGHUP): a new manager (new pid) and apps serve.
#[test]
fn hard_restart_replaces_the_manager() {
    let (s, app, socket) = restart_site("hardrestart");
    let old_pm = s.manager();
    let old_apps = s.apps(&old_pm, &app, 2);
    s.apache.restart(libc::SIGHUP);
    let new_pm = check_replaced(&s, &app, &socket, &old_pm, &old_apps);
    assert_ne!(new_pm.pid, old_pm.pid);
    s.wait_log(&format!("FastCGI: process manager initialized (pid {})", new_pm.pid));
    s.apache.assert_alive();
}

// ---------------------------------------------------------------- 7. dead manager

/// SIGKILL to fcgi-pm (after it ran > 5 s): Apache's parent starts a new
/// one, whose apps serve; the old manager's apps go away.
#[test]
fn killed_manager_is_replaced() {
    let t = TestDir::new("killpm");
    let app = install_fd0(&t);
    let socket = t.sock("m.sock");
    let conf = format!(
        "{handler}FastCgiServer {app} -processes 2 -socket {socket} -init-start-delay 0\n",
        handler = fd0_handler(),
        app = app.display(),
        socket = socket.display(),
    );
    let s = Site::start(t, Mpm::Event, &conf);
    let up = Instant::now();
    s.info("/fd0_app.py");
    let pm = s.manager();
    let apps = s.apps(&pm, &app, 2);
    std::thread::sleep(Duration::from_millis(5600).saturating_sub(up.elapsed()));

    kill(&pm, libc::SIGKILL);
    s.wait_log(&format!("FastCGI: process manager (pid {}) died, starting a new one", pm.pid));
    let new_pm = s.manager_other_than(Some(pm.pid));
    s.apps(&new_pm, &app, 2);
    let served = wait_until(LOG_WAIT, || {
        Request::get("/fd0_app.py/info")
            .send(s.apache.port)
            .ok()
            .and_then(|r| json::parse_object(&r.text()).ok())
            .map(|i| i.get("ppid") == Some(&new_pm.pid.to_string()))
            .unwrap_or(false)
    });
    assert!(served, "the new manager's apps do not serve:\n{}", s.log());
    let gone = wait_until(LOG_WAIT, || apps.iter().all(|p| !exists(p)));
    assert!(
        gone,
        "the dead manager's apps were left running:\n{}",
        describe(&apps.iter().filter_map(|p| proc_info(p.pid)).collect::<Vec<_>>())
    );
    s.apache.assert_alive();
}

/// SIGKILL to Apache's parent: the manager and its apps exit on their own.
#[test]
fn dead_parent_takes_manager_and_apps_down() {
    let t = TestDir::new("killparent");
    let app = install_fd0(&t);
    let conf = format!(
        "{handler}FastCgiServer {app} -processes 2 -socket {socket} -init-start-delay 0\n",
        handler = fd0_handler(),
        app = app.display(),
        socket = t.sock("p.sock").display(),
    );
    let s = Site::start(t, Mpm::Event, &conf);
    s.info("/fd0_app.py");
    let pm = s.manager();
    let apps = s.apps(&pm, &app, 2);
    let parent = proc_info(s.parent_pid()).expect("apache parent");
    let workers: Vec<Proc> = children_of(parent.pid).into_iter().filter(|p| p.pid != pm.pid).collect();

    kill(&parent, libc::SIGKILL);
    let mut ours = apps.clone();
    ours.push(pm.clone());
    let gone = wait_until(LOG_WAIT, || ours.iter().all(|p| !exists(p)));
    let left: Vec<Proc> = ours.iter().filter(|p| exists(p)).filter_map(|p| proc_info(p.pid)).collect();
    // Apache's own workers are orphaned by the SIGKILL: end them by pid.
    for w in &workers {
        if exists(w) {
            util::signal(w.pid, libc::SIGKILL);
        }
    }
    assert!(gone, "the manager or its apps outlived Apache's parent:\n{}\n{}", describe(&left), s.log());
}

// ---------------------------------------------------------------- 8. config

fn configtest(t: &TestDir, directives: &str) -> (i32, String) {
    Apache::builder(t).config(directives).configtest()
}

fn assert_rejected(t: &TestDir, directives: &str, needles: &[&str]) {
    let (code, out) = configtest(t, directives);
    assert_ne!(code, 0, "apache2 -t accepted {directives:?}:\n{out}");
    assert!(!out.contains("Syntax OK"), "{out}");
    for n in needles {
        assert!(out.contains(n), "apache2 -t output for {directives:?} lacks {n:?}:\n{out}");
    }
}

fn assert_accepted(t: &TestDir, directives: &str) -> String {
    let (code, out) = configtest(t, directives);
    assert_eq!(code, 0, "apache2 -t rejected {directives:?}:\n{out}");
    assert!(out.contains("Syntax OK"), "{out}");
    out
}

#[test]
fn config_errors_fail_configtest() {
    let t = TestDir::new("cfgerr");
    let app = install_fd0(&t);
    let app = app.display().to_string();
    let missing = t.htdocs().join("nope.py").display().to_string();
    let dir = t.htdocs().display().to_string();
    let plain = t.htdocs().join("plain.py");
    write_file(&plain, "#!/bin/sh\nexit 0\n"); // 0644
    let plain = plain.display().to_string();
    let sock = t.sock("x.sock").display().to_string();

    assert_rejected(&t, &format!("FastCgiServer {missing}"), &[&format!("stat({missing}) failed")]);
    assert_rejected(&t, &format!("FastCgiServer {dir}"), &[&dir, "directory"]);
    assert_rejected(&t, &format!("FastCgiServer {plain}"), &[&plain, "executable"]);
    assert_rejected(
        &t,
        &format!("FastCgiServer {app} -port 1 -socket x"),
        &["-port and -socket are mutually exclusive options"],
    );
    assert_rejected(&t, &format!("FastCgiServer {app} -processes 0"), &["invalid value for -processes"]);
    assert_rejected(&t, &format!("FastCgiServer {app} -foo"), &[&format!("FastCgiServer {app}: invalid option: -foo")]);
    assert_rejected(
        &t,
        &format!("FastCgiServer {app} -socket {sock}\nFastCgiServer {app} -socket {sock}2"),
        &["redefinition of a previously defined FastCGI server"],
    );
    // FastCgiIpcDir after a definition (the old package's fastcgi.conf read
    // before ours) applies to it; the same directory twice is no error.
    let ipc = t.join("ipc").display().to_string();
    assert_accepted(&t, &format!("FastCgiServer {app} -socket rel.sock\nFastCgiIpcDir {ipc}\nFastCgiIpcDir {ipc}/"));
    assert_rejected(&t, &format!("FastCgiIpcDir {ipc}\nFastCgiIpcDir {ipc}2"), &["already defined as"]);
    assert_accepted(&t, &format!("AppClass {app} -socket {sock}"));
}

/// `apache2 -t` reads FastCgiServer but never starts a manager or creates
/// the socket.
#[test]
fn configtest_starts_no_manager() {
    let t = TestDir::new("cfgnopm");
    let app = install_fd0(&t);
    let sock = t.sock("ct.sock");
    assert_accepted(
        &t,
        &format!("FastCgiServer {} -socket {} -processes 2 -init-start-delay 0", app.display(), sock.display()),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!sock.exists(), "apache2 -t created the app's socket");
    let conf = t.join("apache/conf/httpd.conf").display().to_string();
    let stray: Vec<Proc> =
        all_procs().into_iter().filter(|p| p.comm == "fcgi-pm" && p.cmdline.iter().any(|a| *a == conf)).collect();
    assert!(stray.is_empty(), "apache2 -t started a manager:\n{}", describe(&stray));
}

// ---------------------------------------------------------------- 9. plain user

/// Apache started as a plain user (www-data when the tests run as root; no
/// User/Group lines): the lazy flow still works, everything runs as that user.
#[test]
fn plain_user_apache_serves_the_lazy_flow() {
    let t = TestDir::new("plainuser");
    let socket = sticky_dir(&t).join("fcgi.sock");
    let app = install_tutorial_app(&t, &socket);
    let conf = tutorial_conf(&t, &app, &socket);
    let apache = Apache::builder(&t).config(&conf).run_as_user("www-data").start();
    let s = Site { apache, t };
    let parent = proc_info(s.parent_pid()).expect("apache parent");
    assert_eq!(parent.uid, expected_uid(), "Apache's parent is not running as the plain user");
    check_lazy_flow(&s, &app, &socket);
    s.apache.assert_alive();
}
