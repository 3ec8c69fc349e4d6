//! Root never works for Apache's user (issue 19): code running as
//! `www-data` (a PHP bug, say) races the process manager in the IPC
//! directory it owns and must not get a file outside it changed; the
//! start-up checks refuse directories that would allow it; the manager's
//! control socket refuses what no worker would ask; a manager killed is
//! always started again. All as root (the race needs a root manager);
//! skipped otherwise.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::backends::compile_fcgi_app;
use common::util::{self, wait_until};
use common::{procs, Apache, TestDir};

fn skip_unless_root() -> bool {
    if !util::is_root() {
        eprintln!("skipped: needs root (the manager must start as root for this to mean anything)");
        return true;
    }
    false
}

/// `dir` made as Debian's postinst makes the IPC directory: 0700, www-data's.
fn ipc_dir_like_debian(dir: &Path) {
    let (uid, gid) = util::www_data();
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
    chown(dir, Some(uid), Some(gid)).unwrap();
}

/// Owner, group and mode of every path under `root` but the `skip`ped
/// directories (not following links).
fn snapshot(root: &Path, skip: &[PathBuf]) -> BTreeMap<PathBuf, (u32, u32, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        if skip.iter().any(|s| p.starts_with(s)) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&p) else { continue };
        out.insert(p.clone(), (meta.uid(), meta.gid(), meta.mode()));
        if meta.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                todo.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    out
}

/// Two libfcgi programs in htdocs: `static.fcgi` (a FastCgiServer) and
/// `hello.fcgi` (dynamic, through `.fcgi`).
fn apps(t: &TestDir) -> (PathBuf, PathBuf) {
    let (stat, dynamic) = (t.htdocs().join("static.fcgi"), t.htdocs().join("hello.fcgi"));
    compile_fcgi_app("dyn_hello.c", &stat);
    fs::copy(&stat, &dynamic).unwrap();
    (stat, dynamic)
}

fn site_config(ipc: &Path, stat: &Path, htdocs: &Path) -> String {
    format!(
        "FastCgiIpcDir {ipc}\n\
         FastCgiServer {stat} -init-start-delay 0 -idle-timeout 3\n\
         FastCgiConfig -idle-timeout 3 -restart-delay 0\n\
         <Directory \"{htdocs}\">\n    Options +FollowSymLinks +ExecCGI\n    AddHandler fastcgi-script .fcgi\n</Directory>\n",
        ipc = ipc.display(),
        stat = stat.display(),
        htdocs = htdocs.display()
    )
}

/// The attack of issue 19, for a minute: a racer running as www-data swaps
/// every new entry of the IPC directory (and of `dynamic/`, which it keeps
/// removing) for a link to a root-owned file or directory, while managers
/// are started again and again (killed, graceful restarts). No file outside
/// the IPC directory may change owner or mode.
#[test]
fn www_data_racing_the_manager_changes_nothing_outside_the_ipc_dir() {
    if skip_unless_root() {
        return;
    }
    let t = TestDir::new("race");
    let ipc = t.join("ipc");
    ipc_dir_like_debian(&ipc);
    let victim = t.join("victim");
    util::write_file(&victim, "root:x:0:0:root:/root:/bin/bash\n");
    let victim_dir = t.join("victimdir");
    util::mkdir_0755(&victim_dir);
    let racer = t.join("bin/racer");
    let cc = Command::new("cc")
        .args(["-O2", "-Wall", "-pthread", "-o"])
        .arg(&racer)
        .arg(util::apps_dir().join("racer.c"))
        .output()
        .expect("run cc");
    assert!(cc.status.success(), "racer.c: {}", String::from_utf8_lossy(&cc.stderr));
    let (stat, _) = apps(&t);
    let apache = Apache::builder(&t).config(&site_config(&ipc, &stat, &t.htdocs())).start();
    let parent = apache.pid().expect("Apache's pid") as i32;
    let skip = [ipc.clone(), t.join("logs"), t.join("run")];
    let before = snapshot(t.path(), &skip);
    assert!(before.contains_key(&victim) && before.contains_key(&victim_dir));

    let (uid, gid) = util::www_data();
    const SECONDS: u64 = 62;
    let racer = Command::new(&racer)
        .arg(&ipc)
        .arg(&victim)
        .arg(&victim_dir)
        .arg(SECONDS.to_string())
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the racer");
    let start = Instant::now();
    let (mut gracefuls, mut kills, mut served) = (0, 0, 0);
    let mut round = 0;
    while start.elapsed() < Duration::from_secs(SECONDS - 2) {
        round += 1;
        for path in ["/hello.fcgi", "/static.fcgi"] {
            if common::Request::get(path)
                .timeout(Duration::from_millis(300))
                .send(apache.port)
                .is_ok_and(|r| r.status == 200)
            {
                served += 1;
            }
        }
        if round % 2 == 0 {
            apache.signal(libc::SIGUSR1);
            gracefuls += 1;
        } else {
            for pm in procs::managers(parent) {
                util::signal(pm, libc::SIGKILL);
                kills += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    let out = racer.wait_with_output().expect("racer");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let swaps: u64 = report.trim().strip_prefix("swaps ").and_then(|n| n.parse().ok()).unwrap_or(0);
    let log = apache.error_log();
    drop(apache);

    let after = snapshot(t.path(), &skip);
    let changed: Vec<String> = before
        .iter()
        .filter_map(|(p, was)| {
            let now = after.get(p)?;
            (now != was).then(|| {
                format!(
                    "{}: uid {} gid {} mode {:o} -> uid {} gid {} mode {:o}",
                    p.display(),
                    was.0,
                    was.1,
                    was.2,
                    now.0,
                    now.1,
                    now.2
                )
            })
        })
        .collect();
    assert!(changed.is_empty(), "root changed files outside the IPC directory for www-data:\n{changed:#?}\n{log}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root:x:0:0:root:/root:/bin/bash\n");
    eprintln!("{gracefuls} graceful restarts, {kills} managers killed, {served} requests served, {swaps} swaps");
    assert!(swaps > 0, "the racer never swapped an entry: the test did not race anything\n{report}\n{log}");
    assert!(gracefuls >= 15 && kills >= 10, "too few manager starts: {gracefuls} gracefuls, {kills} kills");
    assert!(
        util::count(&log, "process manager initialized") >= 20,
        "managers were not started again and again:\n{log}"
    );
}

fn configtest_with(t: &TestDir, conf: &str) -> (i32, String) {
    Apache::builder(t).config(conf).configtest()
}

#[test]
fn startup_refuses_a_linked_or_open_or_foreign_ipc_dir() {
    if skip_unless_root() {
        return;
    }
    let t = TestDir::new("ipccheck");
    let real = t.join("ipc-real");
    ipc_dir_like_debian(&real);
    let link = t.join("ipc-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (code, out) = configtest_with(&t, &format!("FastCgiIpcDir {}", link.display()));
    assert_ne!(code, 0, "a symlinked FastCgiIpcDir was accepted:\n{out}");
    assert!(out.contains("FastCgiIpcDir") && out.contains("is a symbolic link"), "{out}");

    let open = t.join("ipc-open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let (code, out) = configtest_with(&t, &format!("FastCgiIpcDir {}", open.display()));
    assert_ne!(code, 0, "a FastCgiIpcDir every user can write was accepted:\n{out}");
    assert!(out.contains("is writable by every user"), "{out}");
    // Its missing subdirectory would be made in it: refused the same way.
    let (code, out) = configtest_with(&t, &format!("FastCgiIpcDir {}/sub", open.display()));
    assert_ne!(code, 0, "{out}");

    let foreign = t.join("ipc-nobody");
    fs::create_dir(&foreign).unwrap();
    chown(&foreign, Some(65534), Some(65534)).unwrap();
    let (code, out) = configtest_with(&t, &format!("FastCgiIpcDir {}", foreign.display()));
    assert_ne!(code, 0, "a FastCgiIpcDir of another user was accepted:\n{out}");
    assert!(out.contains("belongs to uid 65534"), "{out}");

    // What Debian's package makes passes, with nothing to say.
    let (code, out) = configtest_with(&t, &format!("FastCgiIpcDir {}", real.display()));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("FastCGI"), "{out}");
}

#[test]
fn a_socket_in_tmp_is_warned_about() {
    if skip_unless_root() {
        return;
    }
    let t = TestDir::new("tmpsock");
    let (stat, _) = apps(&t);
    let sock = format!("/tmp/fcgirs-{}-static.sock", std::process::id());
    let ext = format!("/tmp/fcgirs-{}-ext.sock", std::process::id());
    let (code, out) = configtest_with(
        &t,
        &format!("FastCgiServer {} -socket {sock}\nFastCgiExternalServer /srv/ext.fcgi -socket {ext}", stat.display()),
    );
    assert_eq!(code, 0, "a socket in /tmp is a warning, not an error:\n{out}");
    assert!(out.contains("\"/tmp\" is writable by every user (sticky"), "no warning for the static socket:\n{out}");
    assert!(
        out.contains("FastCgiExternalServer /srv/ext.fcgi: the socket") && out.contains("any local user"),
        "no warning for the external socket:\n{out}"
    );
}

/// A request to the manager's control socket as www-data would make it,
/// through Python (the packet of `pm::control::Request::encode`): prints
/// "<flag> <text>" or the connect error.
const FORGE: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect", e.errno); sys.exit(0)
ident = sys.argv[4]
flag, uid, gid = (0, 0, 0) if ident == "-" else (1, *map(int, ident.split(":")))
s.send(sys.argv[2].encode() + struct.pack(">QBII", 0, flag, uid, gid) + sys.argv[3].encode())
s.settimeout(20)
r = s.recv(65536)
print(r[0], r[1:].decode(errors="replace"))
"#;

fn forge(control: &Path, who: (u32, u32), op: &str, path: &str, identity: &str) -> String {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(FORGE)
        .arg(control)
        .arg(op)
        .arg(path)
        .arg(identity)
        .uid(who.0)
        .gid(who.1)
        .output()
        .expect("python3");
    format!("{}{}", String::from_utf8_lossy(&out.stdout).trim(), String::from_utf8_lossy(&out.stderr).trim())
}

#[test]
fn the_control_socket_refuses_what_no_worker_would_ask() {
    if skip_unless_root() {
        return;
    }
    let t = TestDir::new("control");
    let ipc = t.join("ipc");
    ipc_dir_like_debian(&ipc);
    let (stat, hello) = apps(&t);
    let noexec = t.htdocs().join("noexec.fcgi");
    util::write_file(&noexec, "#!/bin/sh\n");
    let apache = Apache::builder(&t).config(&site_config(&ipc, &stat, &t.htdocs())).start();
    let control = ipc.join("dynamic/.pm");
    assert!(wait_until(Duration::from_secs(10), || control.exists()), "no control socket\n{}", apache.error_log());
    let www = util::www_data();
    let hello = hello.display().to_string();
    let cases = [
        ("S", format!("{}/../htdocs/hello.fcgi", t.htdocs().display()), "-", "not an absolute, normalised path"),
        ("S", noexec.display().to_string(), "-", "not executable"),
        ("S", hello.clone(), "1000:1000", "without FastCgiWrapper"),
        ("S", stat.display().to_string(), "-", "is a defined server"),
        ("M", "/usr/bin/../bin/sh".to_string(), "-", "not an absolute, normalised path"),
    ];
    for (op, path, identity, why) in &cases {
        let answer = forge(&control, www, op, path, identity);
        assert!(answer.starts_with("1 ") && answer.contains(why), "{op} {path} {identity}: {answer}");
    }
    // The same channel still serves what a worker asks (the forged packet is right).
    let answer = forge(&control, www, "S", &hello, "-");
    assert!(answer.starts_with("0"), "a real start was refused: {answer}\n{}", apache.error_log());
    assert!(apache.get("/hello.fcgi").text().contains("Hello from libfcgi"));
    // Nobody else even reaches it.
    let answer = forge(&control, (65534, 65534), "S", &hello, "-");
    assert!(answer.starts_with("connect 13"), "another user reached the control socket: {answer}");
    let log = apache.error_log();
    assert!(
        log.contains("process manager refused a request from pid") && log.contains(&format!("(uid {})", www.0)),
        "refusals are not logged:\n{log}"
    );
}

/// The manager's log line "initialized (pid N)": the pids in order.
fn initialized(log: &str) -> Vec<i32> {
    util::numbers_after(log, "FastCGI: process manager initialized (pid ")
}

#[test]
fn a_manager_killed_right_after_its_start_comes_back() {
    if skip_unless_root() {
        return;
    }
    let t = TestDir::new("pmback");
    let ipc = t.join("ipc");
    ipc_dir_like_debian(&ipc);
    let (stat, _) = apps(&t);
    let apache = Apache::builder(&t).config(&site_config(&ipc, &stat, &t.htdocs())).start();
    for round in 1..=3 {
        assert!(
            wait_until(Duration::from_secs(40), || initialized(&apache.error_log()).len() >= round),
            "manager {round} never started:\n{}",
            apache.error_log()
        );
        let pm = *initialized(&apache.error_log()).last().unwrap();
        std::thread::sleep(Duration::from_secs(1));
        util::signal(pm, libc::SIGKILL);
        assert!(
            wait_until(Duration::from_secs(40), || initialized(&apache.error_log()).len() > round),
            "the manager killed 1 s after its start (pid {pm}) did not come back:\n{}",
            apache.error_log()
        );
    }
    let log = apache.error_log();
    assert!(log.contains("died right after starting, starting a new one in 2 s"), "no back-off:\n{log}");
    assert!(
        wait_until(Duration::from_secs(10), || apache.get("/static.fcgi").text().contains("Hello from libfcgi")),
        "the static application is not served after the manager came back:\n{}",
        apache.error_log()
    );
}
