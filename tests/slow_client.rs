//! A slow client never holds an application process (issue 10): the
//! response is taken off the application into a per-request backlog
//! (memory, then an unlinked temporary file) and reaches the client as it
//! reads. One libfcgi instance (`FastCgiServer -processes 1`) serves
//! `/bytes?N`: N bytes of "0123456789" repeated.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::backends::compile_fcgi_app;
use common::http::Request;
use common::{util, Apache, Mpm, TestDir};

const MIB: u64 = 1 << 20;

/// These tests measure how long a request waits and how much memory a
/// child holds: they run one at a time, so that a 500 MiB response of one
/// does not slow down the application of another on a 2-core machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An Apache with one instance of the libfcgi app at `/echo.fcgi`; holds
/// [`ONE_AT_A_TIME`] while it lives.
fn site(name: &str, mpm: Mpm, server_opts: &str, extra: &str) -> (std::sync::MutexGuard<'static, ()>, Apache, TestDir) {
    let turn = util::one_at_a_time(&ONE_AT_A_TIME);
    let t = TestDir::new(name);
    let app = t.htdocs().join("echo.fcgi");
    compile_fcgi_app("echo.c", &app);
    let conf = format!("FastCgiServer {} -processes 1 -init-start-delay 0 {server_opts}\n{extra}", app.display());
    let apache = Apache::builder(&t).mpm(mpm).log_level("info").config(&conf).start();
    // The instance is up once it answers.
    assert!(common::util::wait_until(Duration::from_secs(10), || apache.get("/echo.fcgi/bytes?3").status == 200));
    (turn, apache, t)
}

/// A download read at a chosen pace, on a connection with a small receive
/// buffer, so the server really has to wait for it. The body (HTTP/1.0:
/// no chunking) is checked against the pattern as it arrives.
struct Download {
    /// Bytes per second; 0 = as fast as possible.
    rate: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    body: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<u64, String>>>,
}

impl Download {
    fn start(port: u16, path: &str, rate: u64) -> Download {
        let stream = slow_socket(port);
        let rate = Arc::new(AtomicU64::new(rate));
        let stop = Arc::new(AtomicBool::new(false));
        let body = Arc::new(AtomicU64::new(0));
        let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let (r, st, b) = (rate.clone(), stop.clone(), body.clone());
        let thread = std::thread::spawn(move || read_paced(stream, req.as_bytes(), &r, &st, &b));
        Download { rate, stop, body, thread: Some(thread) }
    }

    fn body_so_far(&self) -> u64 {
        self.body.load(Ordering::SeqCst)
    }

    fn full_speed(&self) {
        self.rate.store(0, Ordering::SeqCst);
    }

    /// Waits for the end; the body length, or what was wrong with it.
    fn finish(mut self) -> Result<u64, String> {
        self.full_speed();
        self.thread.take().map(|t| t.join().unwrap_or_else(|_| Err("reader panicked".into()))).unwrap_or(Ok(0))
    }

    /// Closes the connection where it is.
    fn abandon(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP connection to 127.0.0.1:`port` with a 16 KiB receive buffer (set
/// before connecting, so the window stays small).
fn slow_socket(port: u16) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 16 * 1024;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = port.to_be();
        sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let rc = libc::connect(fd, &sin as *const _ as *const libc::sockaddr, std::mem::size_of_val(&sin) as u32);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

fn read_paced(
    mut s: TcpStream,
    req: &[u8],
    rate: &AtomicU64,
    stop: &AtomicBool,
    body: &AtomicU64,
) -> Result<u64, String> {
    s.write_all(req).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut pos = 0u64;
    let started = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(pos);
        }
        let r = rate.load(Ordering::SeqCst);
        let want = if r == 0 { buf.len() } else { 4096 };
        let n = s.read(&mut buf[..want]).map_err(|e| format!("read after {pos} body bytes: {e}"))?;
        if n == 0 {
            if head.is_empty() || !head.ends_with(b"\r\n\r\n") {
                return Err(format!("no complete response head: {:?}", String::from_utf8_lossy(&head)));
            }
            return Ok(pos);
        }
        let mut data = &buf[..n];
        if !head.ends_with(b"\r\n\r\n") {
            while let Some((&b, rest)) = data.split_first() {
                head.push(b);
                data = rest;
                if head.ends_with(b"\r\n\r\n") {
                    if !head.starts_with(b"HTTP/1.1 200") {
                        return Err(format!("status: {:?}", String::from_utf8_lossy(&head)));
                    }
                    break;
                }
            }
        }
        for &b in data {
            if b != b'0' + (pos % 10) as u8 {
                return Err(format!("wrong byte at body offset {pos}"));
            }
            pos += 1;
        }
        body.store(pos, Ordering::SeqCst);
        if r > 0 {
            // Sleep until `pos` bytes are due at this rate.
            let due = Duration::from_secs_f64(pos as f64 / r as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait.min(Duration::from_millis(200)));
            }
        }
    }
}

/// The Apache children that serve requests (not the process manager).
fn workers(apache: &Apache) -> Vec<i32> {
    let Some(parent) = apache.pid() else { return Vec::new() };
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((comm, rest)) = stat.split_once(") ").map(|(a, b)| (a.rsplit('(').next().unwrap_or(""), b)) else {
            continue;
        };
        let ppid: i32 = rest.split(' ').nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent as i32 && comm.starts_with("apache2") {
            out.push(pid);
        }
    }
    out
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").to_string()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Open descriptors of `pid`, and how many are deleted temporary files.
fn fds(pid: i32) -> (usize, usize) {
    let mut total = 0;
    let mut deleted = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten() {
        total += 1;
        if std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().contains("(deleted)")) {
            deleted += 1;
        }
    }
    (total, deleted)
}

fn small_request_is_not_held(mpm: Mpm, server_opts: &str, name: &str) {
    let (_turn, apache, _t) = site(name, mpm, server_opts, "");
    let a = Download::start(apache.port, "/echo.fcgi/bytes?20971520", 200_000);
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let b = apache.get("/echo.fcgi/bytes?13");
    let waited = started.elapsed();
    assert_eq!(b.status, 200);
    assert_eq!(b.body, b"0123456789012");
    assert!(
        a.body_so_far() < 10 * MIB,
        "the slow client was not slow ({} bytes in 1.5 s): the test proves nothing",
        a.body_so_far()
    );
    assert!(
        waited < Duration::from_secs(1),
        "{mpm:?} {server_opts}: the single instance was held by the slow client: B waited {waited:?}"
    );
    // The slow client still gets its whole response, byte-exact.
    assert_eq!(a.finish(), Ok(20 * MIB));
    assert!(
        common::util::wait_until(Duration::from_secs(5), || apache
            .error_log()
            .contains("the client read slower than the application wrote")),
        "the backlog is not logged:\n{}",
        apache.error_log()
    );
    apache.assert_alive();
}

#[test]
fn a_slow_download_does_not_hold_the_only_instance_event() {
    small_request_is_not_held(Mpm::Event, "", "slow_event");
}

#[test]
fn a_slow_download_does_not_hold_the_only_instance_prefork() {
    small_request_is_not_held(Mpm::Prefork, "", "slow_prefork");
}

#[test]
fn a_slow_download_does_not_hold_the_only_instance_with_flush() {
    small_request_is_not_held(Mpm::Event, "-flush", "slow_flush");
}

/// A 500 MiB response to a client reading 5 MB/s: the child's memory stays
/// bounded (the backlog goes to a file), the client gets every byte, and no
/// temporary file stays open afterwards.
#[test]
fn a_large_held_response_stays_out_of_memory() {
    // Above the per-request and server-wide defaults (64M, a quarter of the
    // free space): this response is held whole.
    let status = "<Location /fastcgi-status>\n    SetHandler fastcgi-status\n</Location>\n\
                  FastCgiResponseSpoolMax 1G\nFastCgiSpoolBudget 1G\n";
    let (_turn, apache, _t) = site("slow_rss", Mpm::Event, "", status);
    let pids = workers(&apache);
    assert!(!pids.is_empty(), "no Apache child found");
    let rss_before: Vec<u64> = pids.iter().map(|&p| rss_kib(p)).collect();
    let fds_before: Vec<(usize, usize)> = pids.iter().map(|&p| fds(p)).collect();
    let d = Download::start(apache.port, "/echo.fcgi/bytes?524288000", 5_000_000);
    // While the client reads slowly, the application writes it all.
    let mut peak = 0u64;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        for (i, &p) in pids.iter().enumerate() {
            peak = peak.max(rss_kib(p).saturating_sub(rss_before[i]));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.body_so_far() < 100 * MIB, "the client was not slow");
    // The application is done with it: another request is served at once.
    let started = Instant::now();
    assert_eq!(apache.get("/echo.fcgi/bytes?5").status, 200);
    assert!(started.elapsed() < Duration::from_secs(2), "the instance is still busy with the big response");
    assert_eq!(d.finish(), Ok(500 * MIB));
    assert!(peak < 16 * 1024, "RSS grew by {peak} KiB while holding a 500 MiB response");
    // The status page counts the held response and its temporary file.
    let json = apache.get("/fastcgi-status?json").text();
    assert!(json.contains("\"held\":{\"responses\":1,"), "{json}");
    assert!(!json.contains("\"file_bytes\":0,"), "nothing counted in a temporary file: {json}");
    let prom = apache.get("/fastcgi-status?prometheus").text();
    assert!(prom.lines().any(|l| l.starts_with("fastcgi_held_responses_total{") && l.ends_with(" 1")), "{prom}");
    let settled = common::util::wait_until(Duration::from_secs(5), || {
        pids.iter().enumerate().all(|(i, &p)| fds(p).1 <= fds_before[i].1)
    });
    assert!(settled, "a temporary file is still open: {:?}", pids.iter().map(|&p| fds(p)).collect::<Vec<_>>());
}

/// Over FastCgiResponseSpoolMax the application is paced, and the response
/// still arrives complete and byte-exact.
#[test]
fn over_the_spool_max_the_application_is_paced() {
    let (_turn, apache, _t) = site("slow_max", Mpm::Event, "", "FastCgiResponseSpoolMax 8M\n");
    let d = Download::start(apache.port, "/echo.fcgi/bytes?67108864", 1_000_000);
    let paced = common::util::wait_until(Duration::from_secs(10), || {
        apache.error_log().contains("exceeds FastCgiResponseSpoolMax (8388608 bytes); pacing the application")
    });
    assert!(paced, "no pacing logged:\n{}", apache.error_log());
    assert_eq!(d.finish(), Ok(64 * MIB));
    apache.assert_alive();
}

/// A client that goes away after 1 MiB of a 200 MiB held response: its
/// backlog and temporary file are freed at once.
#[test]
fn a_client_that_leaves_frees_its_backlog() {
    let (_turn, apache, _t) = site("slow_gone", Mpm::Event, "", "");
    let pids = workers(&apache);
    let fds_before: Vec<(usize, usize)> = pids.iter().map(|&p| fds(p)).collect();
    let rss_before: Vec<u64> = pids.iter().map(|&p| rss_kib(p)).collect();
    let d = Download::start(apache.port, "/echo.fcgi/bytes?209715200", 1_000_000);
    assert!(common::util::wait_until(Duration::from_secs(10), || d.body_so_far() >= MIB));
    // Give the application time to hand over much of the response.
    std::thread::sleep(Duration::from_millis(1500));
    d.abandon();
    // No more descriptors than before and no deleted file among them (one
    // fewer happens: a keep-alive connection of the harness's probe that
    // closed meanwhile).
    let freed = common::util::wait_until(Duration::from_secs(10), || {
        pids.iter().enumerate().all(|(i, &p)| {
            let (total, deleted) = fds(p);
            total <= fds_before[i].0 && deleted == 0
        })
    });
    assert!(
        freed,
        "descriptors did not return: before {fds_before:?}, now {:?}",
        pids.iter().map(|&p| fds(p)).collect::<Vec<_>>()
    );
    for (i, &p) in pids.iter().enumerate() {
        let grown = rss_kib(p).saturating_sub(rss_before[i]);
        assert!(grown < 8 * 1024, "RSS of {p} still {grown} KiB above its start");
    }
    // And the application serves the next request.
    assert_eq!(apache.get("/echo.fcgi/bytes?5").status, 200);
    apache.assert_alive();
}

/// `FastCgiResponseBuffer 0` keeps the original's pacing: the instance
/// waits for the slow client, so the small request is held (which is what
/// the tests above would see without a backlog).
#[test]
fn response_buffer_zero_paces_the_application() {
    let (_turn, apache, _t) = site("slow_zero", Mpm::Event, "-idle-timeout 3", "FastCgiResponseBuffer 0\n");
    let a = Download::start(apache.port, "/echo.fcgi/bytes?20971520", 200_000);
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let b = apache.get("/echo.fcgi/bytes?13");
    assert!(
        started.elapsed() >= Duration::from_millis(1500) || b.status != 200,
        "the small request was answered at once ({:?}) although the instance was paced",
        started.elapsed()
    );
    a.abandon();
    apache.assert_alive();
}

/// After a burst of `n` slow readers of large responses leaves, each
/// child's memory is back within `slack_kib` of where it was (issue 22):
/// the backlogs' memory is given back, not kept by the allocator.
fn memory_comes_back_after(n: usize, name: &str, slack_kib: u64) {
    let (_turn, apache, _t) = site(name, Mpm::Event, "", "StartServers 2\nMinSpareThreads 32\n");
    // Every worker thread has served once and as many connections as the
    // burst has were open at once (httpd's per-thread memory, the event
    // MPM's recycled connection pools, our kept buffers exist): that is the
    // steady state the burst is compared with. The one instance answers
    // these one after the other, so they hold all 32 threads at once.
    let warm: Vec<_> = (0..60)
        .map(|_| {
            let port = apache.port;
            std::thread::spawn(move || {
                Request::get("/echo.fcgi/sleep?ms=40")
                    .timeout(Duration::from_secs(30))
                    .send(port)
                    .map(|r| r.status)
                    .unwrap_or(0)
            })
        })
        .collect();
    assert!(warm.into_iter().all(|h| h.join().unwrap_or(0) == 200));
    std::thread::sleep(Duration::from_millis(500));
    let pids = workers(&apache);
    let before: Vec<u64> = pids.iter().map(|&p| rss_kib(p)).collect();
    let readers: Vec<Download> =
        (0..n).map(|_| Download::start(apache.port, "/echo.fcgi/bytes?4000000", 2_000)).collect();
    // Each backlog fills its memory part (1 MiB) and goes on in a file.
    std::thread::sleep(Duration::from_secs(if n > 10 { 6 } else { 3 }));
    let during: Vec<u64> = pids.iter().map(|&p| rss_kib(p)).collect();
    for r in readers {
        r.abandon();
    }
    // The server goes on serving (a request now and then, as any has).
    let back = common::util::wait_until(Duration::from_secs(5), || {
        for _ in 0..4 {
            assert_eq!(Request::get("/echo.fcgi/bytes?5").send(apache.port).map(|r| r.status).unwrap_or(0), 200);
        }
        pids.iter().zip(&before).all(|(&p, &b)| rss_kib(p) <= b + slack_kib)
    });
    let after: Vec<u64> = pids.iter().map(|&p| rss_kib(p)).collect();
    eprintln!("{n} readers: RSS before {before:?} KiB, during {during:?}, after {after:?}");
    assert!(during.iter().zip(&before).any(|(d, b)| *d > b + 1024), "the burst never grew a child: proves nothing");
    assert!(back, "RSS did not come back: before {before:?} KiB, after {after:?}");
}

#[test]
fn memory_comes_back_after_3_slow_readers() {
    memory_comes_back_after(3, "slow_rss_back3", 1024);
}

/// With 50, each child used to keep 1.2 to 1.6 MiB more than before: the
/// 8 kept per-thread buffers (192 KiB each) were resident only after the
/// burst's large responses had filled them. A request that held a large
/// backlog now hands their pages back, so the 1 MiB holds for 50
/// too.
#[test]
fn memory_comes_back_after_50_slow_readers() {
    memory_comes_back_after(50, "slow_rss_back50", 1024);
}
