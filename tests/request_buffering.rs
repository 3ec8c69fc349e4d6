//! Slow uploads never tie up an application (issue 22): a request body is
//! received whole (memory, then a temporary file in `FastCgiTempDir`)
//! before the gateway connects to an application or asks the process
//! manager for one. A client that stalls or leaves is dropped without any
//! application seeing its request, and its temporary file is gone.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::backends::compile_fcgi_app;
use common::fault::FaultServer;
use common::http::{Body, Request};
use common::{procs, util, Apache, Mpm, TestDir};

/// echo.c's checksum of a body.
fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// POSTs `body` to `path` at about `rate` bytes a second (10 pieces a
/// second) and returns the whole response (HTTP/1.0, read to the end).
fn slow_post(port: u16, path: &str, body: Vec<u8>, rate: usize) -> JoinHandle<String> {
    let head = format!("POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n", body.len());
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        s.write_all(head.as_bytes()).expect("head");
        for piece in body.chunks((rate / 10).max(1)) {
            if s.write_all(piece).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// One instance of echo.c, which reads a body whole before it answers:
/// as a FastCgiServer, or as a dynamic application limited to one process.
fn one_process_site(name: &str, mpm: Mpm, dynamic: bool) -> (Apache, TestDir) {
    let t = TestDir::new(name);
    let app = t.htdocs().join("echo.fcgi");
    compile_fcgi_app("echo.c", &app);
    let conf = if dynamic {
        format!(
            "FastCgiConfig -maxClassProcesses 1 -startDelay 1\n\
             <Directory \"{}\">\n  Options +ExecCGI\n  <Files *.fcgi>\n    SetHandler fastcgi-script\n  </Files>\n</Directory>\n",
            t.htdocs().display()
        )
    } else {
        format!("FastCgiServer {} -processes 1 -init-start-delay 0\n", app.display())
    };
    let apache = Apache::builder(&t).mpm(mpm).log_level("info").config(&conf).start();
    let up = util::wait_until(Duration::from_secs(15), || apache.get("/echo.fcgi/bytes?3").status == 200);
    assert!(up, "{}", apache.error_log());
    (apache, t)
}

/// The scenario: client A uploads slowly to a one-process
/// application; B's small POST is answered while A still uploads, and A's
/// body arrives byte for byte.
fn slow_upload_does_not_hold_the_application(mpm: Mpm, dynamic: bool) {
    let (apache, _t) = one_process_site(&format!("reqbuf-slow-{mpm:?}-{dynamic}"), mpm, dynamic);
    let body = pattern(512 * 1024);
    let want = format!("length={}\nfnv1a64={:016x}\n", body.len(), fnv1a64(&body));
    let started = Instant::now();
    let a = slow_post(apache.port, "/echo.fcgi/upload", body, 100_000);
    std::thread::sleep(Duration::from_millis(1500));
    let began = Instant::now();
    let b = Request::post("/echo.fcgi/small", Body::Fixed(b"abc".to_vec()))
        .timeout(Duration::from_secs(30))
        .send(apache.port)
        .expect("B");
    let took = began.elapsed();
    assert_eq!(b.status, 200);
    assert!(b.text().starts_with("length=3\n"), "{}", b.text());
    assert!(took < Duration::from_secs(2), "B waited {took:?} behind a slow upload");
    assert!(!a.is_finished(), "A's upload ended before B was answered: the test proves nothing");
    let a = a.join().expect("A");
    assert!(a.contains(&want), "A's body did not arrive whole: {a}");
    assert!(started.elapsed() > Duration::from_secs(4), "the upload was not slow");
    let json = Request::get("/echo.fcgi/bytes?1").send(apache.port).map(|r| r.status).unwrap_or(0);
    assert_eq!(json, 200);
    apache.assert_alive();
}

#[test]
fn slow_upload_event() {
    slow_upload_does_not_hold_the_application(Mpm::Event, false);
}

#[test]
fn slow_upload_prefork() {
    slow_upload_does_not_hold_the_application(Mpm::Prefork, false);
}

#[test]
fn slow_upload_dynamic() {
    slow_upload_does_not_hold_the_application(Mpm::Event, true);
}

/// The files in `dir` that Apache's processes hold open, with their sizes
/// (an O_TMPFILE there reads as `dir/#NNN (deleted)`).
fn open_files_in(apache: &Apache, dir: &Path) -> Vec<(String, u64)> {
    let parent = apache.pid().expect("pid") as i32;
    let mut pids = vec![parent];
    pids.extend(procs::children_of(parent).iter().map(|p| p.pid));
    let prefix = dir.display().to_string();
    let mut found = Vec::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()).map(|t| t.display().to_string()) else { continue };
            if target.starts_with(&prefix) {
                let size = std::fs::metadata(fd.path()).map(|m| m.len()).unwrap_or(0);
                found.push((format!("{pid}: {target}"), size));
            }
        }
    }
    found
}

/// The names of [`open_files_in`].
fn files_in(apache: &Apache, dir: &Path) -> Vec<String> {
    open_files_in(apache, dir).into_iter().map(|(name, _)| name).collect()
}

/// A client that stalls in the middle of its body, and one that leaves:
/// no application ever sees them, and their temporary files are gone.
#[test]
fn stalled_and_departed_uploads_never_reach_the_application() {
    let t = TestDir::new("reqbuf-stall");
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let tmp = t.join("spool");
    util::mkdir_1777(&tmp);
    let conf = format!(
        "Timeout 3\nFastCgiTempDir {}\nFastCgiExternalServer {} -socket {}\n",
        tmp.display(),
        t.htdocs().join("app").display(),
        fault.path().display()
    );
    let apache = Apache::builder(&t).log_level("info").config(&conf).start();
    let head = "POST /app/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 400000\r\n\r\n";
    // A stalls after 200 KB (past FastCgiRequestBuffer: a temporary file).
    let mut a = TcpStream::connect(("127.0.0.1", apache.port)).expect("A");
    a.write_all(head.as_bytes()).expect("A head");
    a.write_all(&pattern(200_000)).expect("A body");
    let spooled = util::wait_until(Duration::from_secs(5), || !files_in(&apache, &tmp).is_empty());
    assert!(spooled, "no temporary file in FastCgiTempDir while the body is received");
    // B leaves after 200 KB.
    let mut b = TcpStream::connect(("127.0.0.1", apache.port)).expect("B");
    b.write_all(head.as_bytes()).expect("B head");
    b.write_all(&pattern(200_000)).expect("B body");
    std::thread::sleep(Duration::from_millis(300));
    drop(b);
    // httpd's Timeout drops A.
    a.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut answer = Vec::new();
    let _ = a.read_to_end(&mut answer);
    let gone = util::wait_until(Duration::from_secs(5), || files_in(&apache, &tmp).is_empty());
    assert!(gone, "temporary files left: {:?}", files_in(&apache, &tmp));
    assert_eq!(fault.begun(), 0, "an application saw an incomplete upload");
    assert!(apache.error_log().contains("client stopped connection before send body completed"));
    // A complete upload goes through, whole.
    let body = pattern(300_000);
    let r = Request::post("/app/params", Body::Fixed(body.clone())).send(apache.port).expect("C");
    assert_eq!(r.status, 200);
    let rec = fault.wait_request(Duration::from_secs(5), |r| r.param("PATH_INFO").as_deref() == Some("/params"));
    let rec = rec.expect("the application got the complete upload");
    assert_eq!(rec.stdin_sha256, common::sha256::sha256_hex(&body));
    assert_eq!(rec.param("CONTENT_LENGTH").as_deref(), Some("300000"));
    assert!(files_in(&apache, &tmp).is_empty());
}

/// A temporary directory that cannot be written: 500, one clear line,
/// nothing sent to the application; bodies that fit in memory still work.
#[test]
fn unwritable_temporary_directory() {
    let t = TestDir::new("reqbuf-nodir");
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let conf = format!(
        "FastCgiTempDir /nonexistent-fcgirs-spool\nFastCgiSpoolBudget 100M\nFastCgiExternalServer {} -socket {}\n",
        t.htdocs().join("app").display(),
        fault.path().display()
    );
    let apache = Apache::builder(&t).config(&conf).start();
    assert!(apache.error_log().contains("FastCgiTempDir \"/nonexistent-fcgirs-spool\" is not a directory"));
    let r = Request::post("/app/params", Body::Fixed(pattern(300_000))).send(apache.port).expect("big");
    assert_eq!(r.status, 500);
    let log = apache.error_log();
    assert_eq!(
        util::count(&log, "cannot write the request body to a temporary file in /nonexistent-fcgirs-spool"),
        1,
        "{log}"
    );
    assert_eq!(fault.begun(), 0);
    let r = Request::post("/app/params", Body::Fixed(pattern(1000))).send(apache.port).expect("small");
    assert_eq!(r.status, 200);
    assert_eq!(fault.begun(), 1);
}

/// `FastCgiRequestBuffering Off` in a `<Location>` streams the body there
/// (the application sees the request while the upload goes on); elsewhere
/// it is still received first.
#[test]
fn buffering_off_per_location_streams() {
    let t = TestDir::new("reqbuf-off");
    let streamed = FaultServer::start(&t.sock("streamed.sock"));
    let buffered = FaultServer::start(&t.sock("buffered.sock"));
    let conf = format!(
        "FastCgiExternalServer {} -socket {}\nFastCgiExternalServer {} -socket {}\n\
         <Location /progress>\n  FastCgiRequestBuffering Off\n</Location>\n",
        t.htdocs().join("progress").display(),
        streamed.path().display(),
        t.htdocs().join("plain").display(),
        buffered.path().display()
    );
    let apache = Apache::builder(&t).config(&conf).start();
    let body = pattern(300_000);
    let s = slow_post(apache.port, "/progress/params", body.clone(), 100_000);
    let p = slow_post(apache.port, "/plain/params", body.clone(), 100_000);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(streamed.begun(), 1, "Off: the application should see the upload as it comes");
    assert_eq!(buffered.begun(), 0, "On: no application before the body is whole");
    for (h, f) in [(s, &streamed), (p, &buffered)] {
        let text = h.join().expect("upload");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let rec = f.wait_request(Duration::from_secs(5), |_| true).expect("request");
        assert_eq!(rec.stdin_sha256, common::sha256::sha256_hex(&body));
    }
}

/// A number in the status page's JSON: the first `"key":N` after `"spool":`.
fn spool_field(apache: &Apache, key: &str) -> u64 {
    let json = Request::get("/fcgi-status?json").send(apache.port).map(|r| r.text()).unwrap_or_default();
    let Some(at) = json.find("\"spool\":") else { return u64::MAX };
    let pat = format!("\"{key}\":");
    let Some(k) = json[at..].find(&pat) else { return u64::MAX };
    let rest = &json[at + k + pat.len()..];
    rest.chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap_or(u64::MAX)
}

/// Bytes of the temporary files in `dir` that Apache's processes hold open.
fn bytes_in(apache: &Apache, dir: &Path) -> u64 {
    open_files_in(apache, dir).iter().map(|(_, size)| size).sum()
}

/// Slow readers of endless responses and uploads together never keep more
/// in temporary files than FastCgiSpoolBudget (the scenario: 20
/// clients that never read a response of hundreds of MB, here endless, and
/// 20 slow uploaders): responses pace their application, bodies that find
/// no budget are streamed; all is released when the clients go.
#[test]
fn the_spool_budget_bounds_every_temporary_file() {
    const BUDGET: u64 = 6 << 20;
    const CLIENTS: usize = 20;
    let t = TestDir::new("reqbuf-budget");
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let tmp = t.join("spool");
    util::mkdir_1777(&tmp);
    let conf = format!(
        "ServerLimit 2\nThreadLimit 32\nThreadsPerChild 32\nMaxRequestWorkers 64\nMaxSpareThreads 64\n\
         FastCgiTempDir {}\nFastCgiSpoolBudget {BUDGET}\nFastCgiResponseBuffer 128K\n\
         FastCgiExternalServer {} -socket {} -idle-timeout 60\n\
         <Location /fcgi-status>\n  SetHandler fastcgi-status\n</Location>\n",
        tmp.display(),
        t.htdocs().join("app").display(),
        fault.path().display()
    );
    let apache = Apache::builder(&t).log_level("info").config(&conf).start();
    assert_eq!(spool_field(&apache, "budget"), BUDGET);
    // Twenty clients that never read an endless response.
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let mut s = TcpStream::connect(("127.0.0.1", apache.port)).expect("reader");
        s.write_all(b"GET /app/stream-forever HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
        readers.push(s);
    }
    // Twenty uploads of 1 MiB each at 250 KB/s.
    let body = pattern(1 << 20);
    let uploads: Vec<_> = (0..CLIENTS).map(|_| slow_post(apache.port, "/app/params", body.clone(), 250_000)).collect();
    let mut most_files = 0;
    let mut most_used = 0;
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(6) {
        let files = bytes_in(&apache, &tmp);
        let used = spool_field(&apache, "in_use");
        most_files = most_files.max(files);
        most_used = most_used.max(used);
        assert!(files <= BUDGET, "temporary files hold {files} bytes, budget {BUDGET}");
        assert!(used <= BUDGET, "the scoreboard counts {used} bytes, budget {BUDGET}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("most in files {most_files}, most counted {most_used}");
    assert!(most_used > BUDGET / 2, "the budget was never approached ({most_used})");
    assert!(spool_field(&apache, "refused") > 0, "nothing was refused");
    for u in uploads {
        let text = u.join().expect("upload");
        assert!(text.starts_with("HTTP/1.1 200"), "{}", &text[..text.len().min(200)]);
    }
    let sha = common::sha256::sha256_hex(&body);
    let whole = fault.requests().iter().filter(|r| r.stdin_sha256 == sha).count();
    assert_eq!(whole, CLIENTS, "uploads did not arrive whole");
    let log = apache.error_log();
    assert!(log.contains("the budget of temporary files (FastCgiSpoolBudget) is used up"), "{log}");
    drop(readers);
    let released = util::wait_until(Duration::from_secs(10), || {
        spool_field(&apache, "in_use") == 0 && bytes_in(&apache, &tmp) == 0
    });
    assert!(released, "still held: {} counted, {} in files", spool_field(&apache, "in_use"), bytes_in(&apache, &tmp));
    apache.assert_alive();
}

/// Resident memory of Apache's processes, in KiB.
fn rss_total(apache: &Apache) -> u64 {
    let parent = apache.pid().expect("pid") as i32;
    let mut pids = vec![parent];
    pids.extend(procs::children_of(parent).iter().filter(|p| p.comm != "fcgi-pm").map(|p| p.pid));
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").to_string()))
        })
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

/// Apache's children that serve requests (not the process manager).
fn serving_children(apache: &Apache) -> Vec<i32> {
    let parent = apache.pid().expect("pid") as i32;
    procs::children_of(parent).into_iter().filter(|p| p.comm != "fcgi-pm").map(|p| p.pid).collect()
}

/// What `pid` holds open: (all descriptors, sockets among them).
fn descriptors(pid: i32) -> (usize, usize) {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return (0, 0) };
    let targets: Vec<String> =
        fds.flatten().filter_map(|fd| std::fs::read_link(fd.path()).ok()).map(|t| t.display().to_string()).collect();
    let sockets = targets.iter().filter(|t| t.starts_with("socket:")).count();
    (targets.len(), sockets)
}

/// One slow uploader of the crowd: `body` at `rate` bytes a second (10
/// pieces a second, on a fixed schedule so that the pace does not drift).
/// With `give_up`, it leaves halfway: None. Otherwise the whole response.
fn crowd_upload(port: u16, body: std::sync::Arc<Vec<u8>>, rate: usize, give_up: bool) -> Option<String> {
    let head = format!("POST /echo.fcgi/up HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n", body.len());
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    s.write_all(head.as_bytes()).expect("head");
    let began = Instant::now();
    let piece = rate / 10;
    for (k, chunk) in body.chunks(piece).enumerate() {
        if give_up && k * piece >= body.len() / 2 {
            return None;
        }
        if let Some(wait) = (Duration::from_millis(100) * k as u32).checked_sub(began.elapsed()) {
            std::thread::sleep(wait);
        }
        if s.write_all(chunk).is_err() {
            return Some(String::new());
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The crowd: 200 clients each upload 1 MiB at 20 KB/s (about
/// 52 s) to a one-process application, and half of them give up midway.
/// Throughout, a fast client's request is answered within 2 s; the
/// children's memory grows by less than 64 MiB in all; every finished
/// body reaches the application whole; afterwards no temporary file is
/// open or left in FastCgiTempDir, and the children hold no more
/// descriptors (sockets or files) than before.
#[test]
fn a_crowd_of_slow_uploaders() {
    const CLIENTS: usize = 200;
    const RATE: usize = 20_000;
    let t = TestDir::new("reqbuf-crowd");
    let app = t.htdocs().join("echo.fcgi");
    compile_fcgi_app("echo.c", &app);
    let tmp = t.join("spool");
    util::mkdir_1777(&tmp);
    // A worker thread for every uploader (each holds one while its body
    // comes in) and for the fast client.
    let conf = format!(
        "StartServers 2\nServerLimit 2\nThreadLimit 128\nThreadsPerChild 128\nMaxRequestWorkers 256\n\
         MinSpareThreads 256\nMaxSpareThreads 256\nListenBacklog 511\nFastCgiTempDir {}\n\
         FastCgiServer {} -processes 1 -init-start-delay 0\n",
        tmp.display(),
        app.display()
    );
    let apache = Apache::builder(&t).config(&conf).start();
    assert!(util::wait_until(Duration::from_secs(10), || apache.get("/echo.fcgi/bytes?3").status == 200));
    let fast = || {
        let t0 = Instant::now();
        let r = Request::post("/echo.fcgi/fast", Body::Fixed(b"xyz".to_vec())).send(apache.port).expect("fast");
        assert_eq!(r.status, 200);
        assert!(r.text().starts_with("length=3\n"), "{}", r.text());
        t0.elapsed()
    };
    // Both children have served (their connection to the application and
    // whatever else a first request opens exists) before counting.
    for _ in 0..8 {
        fast();
    }
    std::thread::sleep(Duration::from_millis(500));
    let children = serving_children(&apache);
    assert_eq!(children.len(), 2, "two serving children expected");
    let fds_before: Vec<(usize, usize)> = children.iter().map(|&p| descriptors(p)).collect();
    let rss_before = rss_total(&apache);
    let body = std::sync::Arc::new(pattern(1 << 20));
    let want = format!("length={}\nfnv1a64={:016x}\n", body.len(), fnv1a64(&body));
    let port = apache.port;
    let started = Instant::now();
    let uploads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let body = body.clone();
            std::thread::spawn(move || crowd_upload(port, body, RATE, i % 2 == 1))
        })
        .collect();
    // The fast client, every half second until the last upload is done.
    let (mut worst, mut most, mut probes) = (Duration::ZERO, 0, 0);
    let mut fds_most = fds_before.clone();
    let mut spooled = 0;
    while !uploads.iter().all(JoinHandle::is_finished) {
        worst = worst.max(fast());
        probes += 1;
        most = most.max(rss_total(&apache).saturating_sub(rss_before));
        for (&p, m) in children.iter().zip(fds_most.iter_mut()) {
            let (all, sockets) = descriptors(p);
            *m = (m.0.max(all), m.1.max(sockets));
        }
        spooled = spooled.max(files_in(&apache, &tmp).len());
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = started.elapsed();
    let mut whole = 0;
    for u in uploads {
        if let Some(text) = u.join().expect("upload") {
            assert!(text.contains(&want), "an upload did not arrive whole: {}", &text[..text.len().min(200)]);
            whole += 1;
        }
    }
    eprintln!(
        "{CLIENTS} uploads in {took:?}: fast client worst {worst:?} over {probes} probes; \
         RSS grew at most {most} KiB; at most {spooled} temporary files; {whole} uploads whole"
    );
    assert!(took > Duration::from_secs(45), "the uploads were not slow ({took:?})");
    assert_eq!(whole, CLIENTS / 2);
    assert!(worst < Duration::from_secs(2), "a fast client waited {worst:?}");
    assert!(most < 64 * 1024, "Apache's memory grew by {most} KiB");
    assert!(spooled >= CLIENTS / 2, "at most {spooled} bodies were in temporary files: proves nothing");
    let clean = util::wait_until(Duration::from_secs(10), || files_in(&apache, &tmp).is_empty());
    assert!(clean, "temporary files left open: {:?}", files_in(&apache, &tmp));
    let names: Vec<_> = std::fs::read_dir(&tmp).expect("spool dir").flatten().map(|e| e.file_name()).collect();
    assert!(names.is_empty(), "files left in FastCgiTempDir: {names:?}");
    let settled = util::wait_until(Duration::from_secs(15), || {
        children.iter().zip(&fds_before).all(|(&p, before)| descriptors(p).0 <= before.0)
    });
    let fds_after: Vec<(usize, usize)> = children.iter().map(|&p| descriptors(p)).collect();
    eprintln!("descriptors (all, sockets) before {fds_before:?}, at most {fds_most:?}, after {fds_after:?}");
    let crowd: usize = fds_most.iter().zip(&fds_before).map(|(m, b)| m.1 - b.1).sum();
    assert!(crowd >= CLIENTS, "the children never held the crowd's sockets ({fds_most:?}): proves nothing");
    assert!(settled, "descriptors left: before {fds_before:?}, after {fds_after:?}");
    assert_eq!(serving_children(&apache), children, "a child was replaced: its descriptors were not counted");
    apache.assert_alive();
}

/// Large uploads keep Apache's memory small: 60 MiB is received whole (a
/// temporary file, sent on from a 4 MiB mapping window at a time), 200 MiB
/// (over FastCgiRequestSpoolMax) streams; each arrives byte for byte with
/// the children's memory growing by less than 16 MiB.
#[test]
fn large_uploads_keep_memory_small() {
    let (apache, _t) = one_process_site("reqbuf-large", Mpm::Event, false);
    for mib in [60usize, 200] {
        let body = pattern(mib << 20);
        let want = format!("length={}\nfnv1a64={:016x}\n", body.len(), fnv1a64(&body));
        let before = rss_total(&apache);
        let port = apache.port;
        let upload = std::thread::spawn(move || {
            Request::post("/echo.fcgi/big", Body::Fixed(body)).timeout(Duration::from_secs(120)).send(port)
        });
        let mut most = 0;
        while !upload.is_finished() {
            most = most.max(rss_total(&apache).saturating_sub(before));
            std::thread::sleep(Duration::from_millis(20));
        }
        let r = upload.join().expect("upload").expect("response");
        assert_eq!(r.status, 200);
        assert!(r.text().starts_with(&want), "{mib} MiB: {}", r.text());
        eprintln!("{mib} MiB: Apache's memory grew at most {most} KiB");
        assert!(most < 16 * 1024, "{mib} MiB upload: memory grew by {most} KiB");
    }
}
