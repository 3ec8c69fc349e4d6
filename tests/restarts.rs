//! Restarts never crash a child (issue 20): a storm of graceful (USR1) and
//! hard (HUP) restarts, some a few milliseconds apart, and graceful stops
//! (WINCH), on event and prefork, under load on every kind of server
//! (static, dynamic, external with two endpoints and `-keep-conn`, the
//! status page) with two CPU hogs beside it. No child may die of a signal,
//! every answer is its application's or a documented 5xx, and no process
//! of an old generation stays long after its retirement. A crash leaves a
//! core in `CoreDumpDirectory`; the test prints its backtrace.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::backends::compile_fcgi_app;
use common::util::{self, wait_until};
use common::{procs, Apache, FlupApp, Mpm, Request, TestDir};

/// Restarts in one Apache's life, and lives (each ends in a graceful stop).
const RESTARTS_PER_LIFE: usize = 55;
const LIVES: usize = 4;

/// Busy threads beside the storm, as the whole suite is beside it in CI.
struct Hogs {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Hogs {
    fn start(n: usize) -> Hogs {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for i in 0..100_000u64 {
                            x = x.wrapping_mul(31).wrapping_add(i);
                        }
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        Hogs { stop, threads }
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What a URL must answer with 200.
const EXPECTED: &[(&str, &str)] = &[
    ("/static.fcgi", "Hello from libfcgi"),
    ("/hello.fcgi", "Hello from libfcgi"),
    ("/ext.fcgi", "<h1>Hello world!</h1>"),
    ("/fcgi-status?json", "\"applications\""),
];

/// Clients hammering [`EXPECTED`] on whatever port is current (0: none).
struct Load {
    port: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    fives: Arc<Mutex<std::collections::BTreeMap<u16, u64>>>,
    wrong: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(clients: usize) -> Load {
        let mut load = Load {
            port: Arc::default(),
            stop: Arc::default(),
            ok: Arc::default(),
            errors: Arc::default(),
            fives: Arc::default(),
            wrong: Arc::default(),
            threads: Vec::new(),
        };
        for c in 0..clients {
            let (port, stop, ok, errors) =
                (Arc::clone(&load.port), Arc::clone(&load.stop), Arc::clone(&load.ok), Arc::clone(&load.errors));
            let (fives, wrong) = (Arc::clone(&load.fives), Arc::clone(&load.wrong));
            load.threads.push(std::thread::spawn(move || {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let p = port.load(Ordering::Relaxed);
                    if p == 0 {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    let (path, want) = EXPECTED[i % EXPECTED.len()];
                    i += 1;
                    match Request::get(path).timeout(Duration::from_secs(10)).send(p) {
                        Ok(r) if r.status == 200 && r.text().contains(want) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        // The documented ones: 500 (a process gone before
                        // its headers), 503 (not reachable), 504 (idle timeout).
                        Ok(r) if matches!(r.status, 500 | 503 | 504) => {
                            *fives.lock().unwrap().entry(r.status).or_default() += 1;
                        }
                        Ok(r) => wrong.lock().unwrap().push(format!("{path}: {} {:?}", r.status, r.text())),
                        // A connection a hard restart or a stop cut.
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        load
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A small deterministic generator: the storm is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Processes of this test's generations: managers started from its
/// configuration, and applications under its htdocs (the external flup apps are
/// the test's own, in `sock/`).
fn ours(conf_marker: &str, htdocs: &Path) -> Vec<String> {
    let htdocs = htdocs.display().to_string();
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let p = procs::info(pid)?;
            if p.state == 'Z' {
                return None;
            }
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let mine = (p.comm == "fcgi-pm" && cmdline.contains(conf_marker)) || cmdline.starts_with(&htdocs);
            mine.then(|| format!("pid {pid} ppid {} [{}] {cmdline}", p.ppid, p.comm))
        })
        .collect()
}

/// gdb's backtrace of `core`: the crashing thread's (`bt`) or every thread's.
fn backtrace(core: &Path, all: bool) -> String {
    let command = if all { "thread apply all bt 30" } else { "bt 30" };
    std::process::Command::new("gdb")
        .args(["-batch", "-ex", command, "/usr/sbin/apache2"])
        .arg(core)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("gdb: {e}"))
}

/// httpd's own race at a hard restart, which no module can prevent: the
/// event MPM's main thread closes the sockets of the connections its
/// workers hold (`close_worker_sockets`, where `apr_os_sock_get` reads the
/// socket) while a worker that just finished one has given its pool, and
/// the socket in it, back (seen: the worker in `apr_allocator_destroy` ->
/// `munmap` at that moment). The same race seen from the other side, as
/// a child exits after a graceful restart: a worker thread ending destroys
/// its pool (`apr_pool_destroy` -> `apr_allocator_free`, called straight
/// from the MPM's thread function) while another thread destroys the
/// allocator under it (`apr_allocator_destroy` -> `munmap`). A crash is
/// taken for it only when the crashing thread is exactly there: frame #0
/// in one of those APR calls, every frame in APR, the event MPM or the
/// thread start, and none of this module.
fn httpds_own_race(crashing_thread: &str) -> bool {
    // gdb shows frame #0 once when it loads the core and again in `bt`.
    let mut frames: Vec<&str> = crashing_thread.lines().filter(|l| l.starts_with('#')).collect();
    frames.dedup();
    let in_httpd = |f: &&str| {
        ["libapr-1.so", "libaprutil-1.so", "mod_mpm_event.so", "start_thread", "clone"].iter().any(|m| f.contains(m))
    };
    let sockets = frames.first().is_some_and(|f| f.contains("apr_os_sock_get"))
        && frames.iter().skip(1).take(3).all(|f| f.contains("mod_mpm_event.so"));
    let thread_exit = frames.first().is_some_and(|f| f.contains("apr_allocator_free"))
        && frames.iter().any(|f| f.contains("apr_pool_destroy"))
        && frames.iter().any(|f| f.contains("mod_mpm_event.so"))
        && frames.iter().all(in_httpd);
    (sockets || thread_exit) && !crashing_thread.contains("mod_fastcgi_rs")
}

/// Children that died of a signal, judged as soon as the log shows them.
/// Each leaves a core in `CoreDumpDirectory`, always named `core` (the
/// kernel writes no second one over it), so a core is judged and moved
/// aside at once, and every crash of the storm is judged, not only one per
/// life: it fails the test unless it is httpd's own race. Crashes the log
/// shows between two looks (two children of one hard restart) share the
/// one core left.
struct Crashes {
    cores: PathBuf,
    /// Crash lines of this life's log already judged.
    seen: usize,
    tolerated: usize,
    judged: usize,
}

impl Crashes {
    fn judge(&mut self, log: &str, life: usize) {
        let crashes: Vec<&str> = log.lines().filter(|l| l.contains("exit signal")).collect();
        let Some(new) = crashes.get(self.seen..).filter(|n| !n.is_empty()) else { return };
        // The parent logs a death after the kernel has written the core.
        let core = self.cores.join("core");
        assert!(core.exists(), "life {life}: children died of a signal and left no core:\n{new:#?}");
        let crashing = backtrace(&core, false);
        assert!(
            httpds_own_race(&crashing),
            "life {life}: children died of a signal:\n{new:#?}\n{}",
            backtrace(&core, true)
        );
        eprintln!(
            "life {life}: {} crash(es) of httpd's own race at a restart (not this module):\n{crashing}",
            new.len()
        );
        let _ = fs::rename(&core, self.cores.join(format!("core.{}", self.judged)));
        self.judged += 1;
        self.tolerated += new.len();
        self.seen = crashes.len();
    }
}

fn site(t: &TestDir, sockets: &[PathBuf], cores: &Path) -> String {
    let htdocs = t.htdocs();
    format!(
        "CoreDumpDirectory {cores}\n\
         GracefulShutdownTimeout 5\n\
         FastCgiServer {htdocs}/static.fcgi -processes 2 -init-start-delay 0 -idle-timeout 2\n\
         FastCgiExternalServer {htdocs}/ext.fcgi -socket {a} -socket {b} -keep-conn always -idle-timeout 5\n\
         FastCgiConfig -idle-timeout 2 -restart-delay 0 -killInterval 5\n\
         <Directory \"{htdocs}\">\n    Options +FollowSymLinks +ExecCGI\n    AddHandler fastcgi-script .fcgi\n</Directory>\n\
         <Location /fcgi-status>\n    SetHandler fastcgi-status\n</Location>\n",
        cores = cores.display(),
        htdocs = htdocs.display(),
        a = sockets[0].display(),
        b = sockets[1].display(),
    )
}

fn storm(mpm: Mpm, name: &str) {
    let t = TestDir::new(name);
    // Cores of Apache's children land in CoreDumpDirectory.
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit with a valid struct; children inherit the limit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &unlimited) };
    let cores = t.join("cores");
    util::mkdir_1777(&cores);
    compile_fcgi_app("dyn_hello.c", &t.htdocs().join("static.fcgi"));
    fs::copy(t.htdocs().join("static.fcgi"), t.htdocs().join("hello.fcgi")).unwrap();
    util::write_file(&t.htdocs().join("ext.fcgi"), "");
    // flup serves each connection in a thread of its own, so connections
    // kept by `-keep-conn` never starve it.
    let apps = [FlupApp::start(&t, "a"), FlupApp::start(&t, "b")];
    let sockets = [apps[0].socket.clone(), apps[1].socket.clone()];
    let conf = site(&t, &sockets, &cores);
    let conf_marker = t.path().display().to_string();

    let _hogs = Hogs::start(2);
    let load = Load::start(4);
    let mut rng = Lcg(0x2026_1207);
    let mut logs = String::new();
    let mut crashes = Crashes { cores: cores.clone(), seen: 0, tolerated: 0, judged: 0 };
    let (mut usr1, mut hup, mut quick) = (0, 0, 0);
    let started = Instant::now();
    for life in 0..LIVES {
        let mut apache = Apache::builder(&t).mpm(mpm).config(&conf).start();
        load.port.store(apache.port, Ordering::Relaxed);
        crashes.seen = 0;
        for i in 0..RESTARTS_PER_LIFE {
            if rng.next(3) == 0 {
                apache.signal(libc::SIGHUP);
                hup += 1;
            } else {
                apache.signal(libc::SIGUSR1);
                usr1 += 1;
            }
            let gap = [5, 15, 30, 120, 300, 600][rng.next(6) as usize];
            if gap < 50 {
                quick += 1;
            }
            std::thread::sleep(Duration::from_millis(gap));
            crashes.judge(&apache.error_log(), life);
            if i % 10 == 9 {
                let serving = wait_until(Duration::from_secs(20), || {
                    Request::get(common::apache::PROBE_PATH)
                        .timeout(Duration::from_secs(2))
                        .send(apache.port)
                        .is_ok_and(|r| r.status == 200)
                });
                assert!(serving, "life {life}, restart {i}: Apache stopped serving:\n{}", apache.error_log());
            }
        }
        // Settled: the retired generations leave (idle timeouts of 2 s,
        // then the 3 s stop grace), one manager stays.
        let parent = apache.pid().expect("pid") as i32;
        let one = wait_until(Duration::from_secs(20), || procs::managers(parent).len() == 1);
        assert!(
            one,
            "life {life}: old managers stay after the storm: {:?}\n{:#?}\n{}",
            procs::managers(parent),
            ours(&conf_marker, &t.htdocs()),
            apache.error_log()
        );
        // httpd forgets a SIGWINCH that lands while it is still finishing
        // a restart (its own race, not the module's): send it again.
        let stopped = (0..3).any(|_| {
            apache.signal(libc::SIGWINCH);
            apache.wait_exit(Duration::from_secs(12))
        });
        assert!(stopped, "life {life}: graceful stop did not end Apache:\n{}", apache.error_log());
        load.port.store(0, Ordering::Relaxed);
        let gone = wait_until(Duration::from_secs(10), || ours(&conf_marker, &t.htdocs()).is_empty());
        let log = apache.error_log();
        assert!(gone, "life {life}: processes left after a graceful stop:\n{:#?}", ours(&conf_marker, &t.htdocs()));
        crashes.judge(&log, life);
        logs.push_str(&log);
    }
    load_stats(&load, started, usr1, hup, quick);
    eprintln!("{} crash(es) of httpd's own race tolerated", crashes.tolerated);
    let wrong = load.wrong.lock().unwrap().clone();
    assert!(wrong.is_empty(), "wrong answers during the storm:\n{wrong:#?}");
    assert!(load.ok.load(Ordering::Relaxed) > 500, "too few requests served for a storm under load");
}

fn load_stats(load: &Load, started: Instant, usr1: usize, hup: usize, quick: usize) {
    eprintln!(
        "{} restarts ({usr1} graceful, {hup} hard, {quick} within 50 ms of the next) and {LIVES} graceful stops in {:.0?}; \
         {} answers ok, 5xx {:?}, {} connections cut",
        usr1 + hup,
        started.elapsed(),
        load.ok.load(Ordering::Relaxed),
        load.fives.lock().unwrap(),
        load.errors.load(Ordering::Relaxed)
    );
}

#[test]
fn only_httpds_own_race_is_tolerated() {
    let seen = "#0  0x00007f4054886180 in apr_os_sock_get () from /lib/x86_64-linux-gnu/libapr-1.so.0\n\
                #0  0x00007f4054886180 in apr_os_sock_get () from /lib/x86_64-linux-gnu/libapr-1.so.0\n\
                #1  0x00007f40545c606c in ?? () from /usr/lib/apache2/modules/mod_mpm_event.so\n\
                #2  0x00007f40545c7507 in ?? () from /usr/lib/apache2/modules/mod_mpm_event.so\n\
                #3  0x00007f40545c7da7 in ?? () from /usr/lib/apache2/modules/mod_mpm_event.so\n\
                #7  0x000055cfb2c97850 in ap_run_mpm ()\n";
    assert!(httpds_own_race(seen));
    let ours = "#0  0x00007f40544e382b in mod_fastcgi_rs::transport::conn::connect_raw ()\n\
                #1  0x00007f40545c606c in ?? () from /usr/lib/apache2/modules/mod_mpm_event.so\n";
    assert!(!httpds_own_race(ours));
    let elsewhere = "#0  0x00007f4054886180 in apr_os_sock_get () from /lib/x86_64-linux-gnu/libapr-1.so.0\n\
                     #1  0x000055cfb2cb7360 in ap_run_handler ()\n";
    assert!(!httpds_own_race(elsewhere));
    // A child exiting after a graceful restart (seen in the storm, with
    // another thread in apr_allocator_destroy -> munmap).
    let exiting = "#0  0x00007f7cf2113365 in apr_allocator_free () from /lib/x86_64-linux-gnu/libapr-1.so.0\n\
                   #1  0x00007f7cf2139491 in ?? () from /lib/x86_64-linux-gnu/libaprutil-1.so.0\n\
                   #2  0x00007f7cf21135de in apr_pool_destroy () from /lib/x86_64-linux-gnu/libapr-1.so.0\n\
                   #3  0x00007f7cf1e5f59a in ?? () from /usr/lib/apache2/modules/mod_mpm_event.so\n\
                   #4  0x00007f7cf1f981f5 in start_thread (arg=<optimized out>) at ./nptl/pthread_create.c:442\n\
                   #5  0x00007f7cf20188ec in clone3 () at ../sysdeps/unix/sysv/linux/x86_64/clone3.S:81\n";
    assert!(httpds_own_race(exiting));
    // The same, but a request of ours on the stack: ours.
    let from_a_request = "#0  0x00007f7cf2113365 in apr_allocator_free () from /lib/x86_64-linux-gnu/libapr-1.so.0\n\
                          #1  0x00007f7cf21135de in apr_pool_destroy () from /lib/x86_64-linux-gnu/libapr-1.so.0\n\
                          #2  0x000055cfb2cb7360 in ap_process_request ()\n\
                          #3  0x00007f7cf1e5f59a in ?? () from /usr/lib/apache2/modules/mod_mpm_event.so\n";
    assert!(!httpds_own_race(from_a_request));
}

#[test]
fn restart_storm_event() {
    storm(Mpm::Event, "storm_event");
}

#[test]
fn restart_storm_prefork() {
    storm(Mpm::Prefork, "storm_prefork");
}

/// The inode of the socket Apache listens on at `port` (from /proc/net/tcp).
fn listen_inode(port: u16) -> Option<String> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        (local_port == port && f.get(3) == Some(&"0A")).then(|| f.get(9).map(|s| s.to_string())).flatten()
    })
}

/// Whether process `pid` holds a descriptor of socket `inode`.
fn holds_socket(pid: i32, inode: &str) -> bool {
    let want = format!("socket:[{inode}]");
    fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == want))
}

/// A graceful restart with idle applications: the old manager and its
/// applications leave at once, not after the longest -idle-timeout (30 s
/// here); three in a row leave one generation; no manager holds Apache's
/// listening socket; a disabled module leaves no socket behind.
#[test]
fn a_graceful_restart_leaves_no_old_generation() {
    let t = TestDir::new("graceful_drain");
    compile_fcgi_app("dyn_hello.c", &t.htdocs().join("static.fcgi"));
    fs::copy(t.htdocs().join("static.fcgi"), t.htdocs().join("hello.fcgi")).unwrap();
    let ipc = t.join("apache/run/fastcgi");
    let conf = format!(
        "FastCgiServer {htdocs}/static.fcgi -processes 2 -init-start-delay 0 -idle-timeout 30\n\
         FastCgiConfig -idle-timeout 30\n\
         <Directory \"{htdocs}\">\n    Options +ExecCGI\n    AddHandler fastcgi-script .fcgi\n</Directory>\n",
        htdocs = t.htdocs().display()
    );
    let apache = Apache::builder(&t).config(&conf).start();
    let parent = apache.pid().expect("pid") as i32;
    assert!(apache.get("/static.fcgi").text().contains("Hello from libfcgi"));
    assert!(apache.get("/hello.fcgi").text().contains("Hello from libfcgi"));
    let listening = listen_inode(apache.port).expect("Apache's listening socket in /proc/net/tcp");
    let old = procs::managers(parent);
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(!holds_socket(old[0], &listening), "the manager holds Apache's listening socket");
    let old_apps: Vec<i32> = procs::children_of(old[0]).iter().map(|p| p.pid).collect();
    assert!(old_apps.len() >= 3, "static and dynamic instances expected: {old_apps:?}");

    let began = Instant::now();
    apache.restart(libc::SIGUSR1);
    let gone = wait_until(Duration::from_secs(4), || {
        procs::info(old[0]).is_none_or(|p| p.state == 'Z')
            && old_apps.iter().all(|&a| procs::info(a).is_none_or(|p| p.state == 'Z'))
    });
    assert!(gone, "the old generation stayed {:?} after a graceful restart:\n{}", began.elapsed(), apache.error_log());
    assert!(apache.get("/static.fcgi").text().contains("Hello from libfcgi"), "{}", apache.error_log());
    assert!(apache.get("/hello.fcgi").text().contains("Hello from libfcgi"), "{}", apache.error_log());

    for _ in 0..3 {
        apache.restart(libc::SIGUSR1);
    }
    assert!(apache.get("/static.fcgi").text().contains("Hello from libfcgi"));
    let one = wait_until(Duration::from_secs(5), || procs::managers(parent).len() == 1);
    assert!(one, "generations left after three gracefuls: {:?}", procs::managers(parent));
    for pm in procs::managers(parent) {
        assert!(!holds_socket(pm, &listening), "manager {pm} holds Apache's listening socket");
    }

    // The module goes (a2dismod + graceful): the retiring manager takes its
    // sockets with it.
    let conf_path = t.join("apache/conf/httpd.conf");
    let text = fs::read_to_string(&conf_path).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.contains("fastcgi_module") && !l.starts_with("FastCgi") && !l.contains("fastcgi-script"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&conf_path, without).unwrap();
    let last = procs::managers(parent);
    apache.signal(libc::SIGUSR1);
    let empty = wait_until(Duration::from_secs(10), || {
        last.iter().all(|&m| procs::info(m).is_none_or(|p| p.state == 'Z'))
            && fs::read_dir(&ipc).map_or(true, |d| d.flatten().all(|e| e.path().is_dir()))
            && fs::read_dir(ipc.join("dynamic")).map_or(true, |mut d| d.next().is_none())
    });
    let left: Vec<String> = ["", "dynamic"]
        .iter()
        .flat_map(|sub| fs::read_dir(ipc.join(sub)).into_iter().flatten().flatten())
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(empty, "after the module was disabled: managers {last:?}, files left {left:#?}");
}

/// Under steady client load on a static application, three graceful
/// restarts in a row: each old generation (its manager and applications)
/// is gone within a few seconds of the last request it answered, not after
/// the -idle-timeout (60 s here); no retired process holds Apache's
/// listening socket while it drains; one generation remains; no request
/// fails. Only Apache's parent, started here, is signalled (by pid).
#[test]
fn graceful_restarts_under_load_drain_each_old_generation() {
    /// Bound on a drain, from the later of the graceful and the generation's
    /// last answer (the manager waits 1 s for queued connections, then its
    /// applications leave as they finish): some slack for a loaded machine,
    /// far below the idle timeout.
    const DRAIN_BOUND: Duration = Duration::from_secs(4);
    let t = TestDir::new("graceful_load");
    compile_fcgi_app("dyn_hello.c", &t.htdocs().join("static.fcgi"));
    let conf = format!(
        "FastCgiServer {htdocs}/static.fcgi -processes 3 -init-start-delay 0 -idle-timeout 60\n\
         <Directory \"{htdocs}\">\n    Options +ExecCGI\n    AddHandler fastcgi-script .fcgi\n</Directory>\n",
        htdocs = t.htdocs().display()
    );
    let apache = Apache::builder(&t).config(&conf).start();
    let parent = apache.pid().expect("pid") as i32;
    let port = apache.port;
    let listening = listen_inode(port).expect("Apache's listening socket in /proc/net/tcp");

    // Clients in a loop of 10-40 ms requests; the time of the last answer
    // from each generation (the app's ppid is its manager) and how many.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let answers = Arc::new(Mutex::new(std::collections::HashMap::<i32, (Instant, u64)>::new()));
    let clients: Vec<JoinHandle<()>> = (0..8)
        .map(|i| {
            let (stop, ok, failures, answers) = (stop.clone(), ok.clone(), failures.clone(), answers.clone());
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let ms = 10 + (i * 7 + n * 13) % 31;
                    n += 1;
                    let r = Request::get(&format!("/static.fcgi?ms={ms}")).timeout(Duration::from_secs(20)).send(port);
                    let ppid = r.as_ref().ok().filter(|r| r.status == 200 && r.complete).and_then(|r| {
                        let text = r.text();
                        let ppid = text.strip_prefix("Hello from libfcgi pid=")?.split("ppid=").nth(1)?;
                        ppid.trim().parse::<i32>().ok()
                    });
                    match (ppid, r) {
                        (Some(ppid), _) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            let mut answers = answers.lock().unwrap();
                            let entry = answers.entry(ppid).or_insert((Instant::now(), 0));
                            *entry = (Instant::now(), entry.1 + 1);
                        }
                        (None, Ok(r)) => failures.lock().unwrap().push(format!(
                            "client {i}: {} complete={} {:?}",
                            r.status,
                            r.complete,
                            r.text()
                        )),
                        (None, Err(e)) => failures.lock().unwrap().push(format!("client {i}: {e}")),
                    }
                }
            })
        })
        .collect();
    let answered = |pm: i32| answers.lock().unwrap().get(&pm).copied();

    let mut drains = Vec::new();
    for round in 1..=3 {
        let managers = procs::managers(parent);
        assert_eq!(managers.len(), 1, "round {round}: generations before the graceful: {managers:?}");
        let pm = managers[0];
        // The generation is busy when it is retired (httpd's own graceful
        // holds new connections for up to a second while its new children
        // start).
        let busy = wait_until(Duration::from_secs(10), || answered(pm).is_some_and(|(_, n)| n >= 30));
        assert!(busy, "round {round}: the generation of manager {pm} answered {:?}", answered(pm));
        let apps: Vec<i32> = procs::children_of(pm).iter().map(|p| p.pid).collect();
        assert!(apps.len() >= 3, "round {round}: the manager's applications: {apps:?}");
        let old: Vec<i32> = std::iter::once(pm).chain(apps).collect();
        let signalled = Instant::now();
        apache.restart(libc::SIGUSR1);
        let alive = |p: &i32| procs::info(*p).is_some_and(|p| p.state != 'Z');
        let mut held = Vec::new();
        let mut gone_at = None;
        while signalled.elapsed() < Duration::from_secs(30) {
            let left: Vec<i32> = old.iter().copied().filter(alive).collect();
            held.extend(left.iter().copied().filter(|&p| holds_socket(p, &listening)));
            if left.is_empty() {
                gone_at = Some(Instant::now());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let left: Vec<i32> = old.iter().copied().filter(alive).collect();
        let Some(gone_at) = gone_at else {
            panic!(
                "round {round}: {left:?} of the old generation {old:?} still there after 30 s:\n{}",
                apache.error_log()
            )
        };
        held.sort_unstable();
        held.dedup();
        assert!(held.is_empty(), "round {round}: retired processes {held:?} held Apache's listening socket");
        let from = answered(pm).map_or(signalled, |(last, _)| last.max(signalled));
        let drain = gone_at.saturating_duration_since(from);
        assert!(
            drain < DRAIN_BOUND,
            "round {round}: the old generation {old:?} left {drain:?} after its last answer ({:?} after the graceful)\n{}",
            gone_at - signalled,
            apache.error_log()
        );
        drains.push((gone_at - signalled, drain));
    }
    let one = wait_until(Duration::from_secs(5), || procs::managers(parent).len() == 1);
    assert!(one, "generations left after three gracefuls: {:?}", procs::managers(parent));
    let new_pm = procs::managers(parent)[0];
    assert!(!holds_socket(new_pm, &listening), "the manager {new_pm} holds Apache's listening socket");
    // The last generation serves the load.
    let served = wait_until(Duration::from_secs(5), || answered(new_pm).is_some());
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    assert!(served, "no answer from the last generation (manager {new_pm})");
    let failures = failures.lock().unwrap().clone();
    eprintln!("drains (after the graceful, after the last answer): {drains:?}; {} answers", ok.load(Ordering::Relaxed));
    assert!(failures.is_empty(), "{} requests failed: {failures:#?}\n{}", failures.len(), apache.error_log());
}
