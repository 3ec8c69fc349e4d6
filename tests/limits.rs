//! One hanging application never takes the whole server down (issue 23):
//! `-max-in-flight` caps the requests an application holds across every
//! Apache child, `-queue-timeout`/`-max-queued` bound the wait for a
//! place, and the rest is refused at once with 503 and `Retry-After`.
//! The hanging application is the fault backend's `/sleep?ms=N` (a thread
//! per connection, so only the gateway limits it); a second fault backend
//! and a static file must keep answering while it is flooded.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fault::FaultServer;
use common::http::Request;
use common::{procs, util, Apache, Mpm, TestDir};

/// The hanging application's cap in these tests.
const CAP: u64 = 6;

/// The two floods run one at a time: each alone keeps both cores busy.
static ONE_FLOOD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A flood client's pause after each answer. Unpaced, the two floods made
/// some 28,000 connections a second; each closed one keeps its port in
/// TIME_WAIT, so the loopback's 28,000 ephemeral ports ran out and every
/// connect (the probes' too) waited on the kernel's port search. Paced,
/// the clients still outnumber the workers two to one and more.
const FLOOD_PACE: Duration = Duration::from_millis(10);

/// A number in the status page's JSON: the first `"key":N` after `after`
/// (the application's path) and after `"limit":`.
fn limit_field(json: &str, app: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"path\":\"{app}\""))?;
    let limit = at + json[at..].find("\"limit\":")?;
    let pat = format!("\"{key}\":");
    let start = limit + json[limit..].find(&pat)? + pat.len();
    json[start..].chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().ok()
}

fn status_json(apache: &Apache) -> String {
    let r = Request::get("/fcgi-status?json").timeout(Duration::from_secs(10)).send(apache.port);
    r.map(|r| r.text()).unwrap_or_default()
}

struct Site {
    apache: Apache,
    _hang: FaultServer,
    _other: FaultServer,
    t: TestDir,
}

impl Site {
    fn start(name: &str, mpm: Mpm, mpm_conf: &str, hang_opts: &str) -> Site {
        let t = TestDir::new(name);
        let hang = FaultServer::start(&t.sock("hang.sock"));
        let other = FaultServer::start(&t.sock("other.sock"));
        util::write_file(&t.htdocs().join("static.txt"), "static file\n");
        let conf = format!(
            "{mpm_conf}\n\
             FastCgiExternalServer {} -socket {} -idle-timeout 60 {hang_opts}\n\
             FastCgiExternalServer {} -socket {} -idle-timeout 10\n\
             <Location /fcgi-status>\n  SetHandler fastcgi-status\n</Location>\n\
             FastCgiLogNotes On\n\
             LogFormat \"%U %>s ep=%{{fastcgi-endpoint}}n q=%{{fastcgi-queue-time}}n c=%{{fastcgi-connect-time}}n h=%{{fastcgi-header-time}}n r=%{{fastcgi-response-time}}n refused=%{{fastcgi-refused}}n us=%D\" upstream\n\
             CustomLog \"{}\" upstream\n",
            t.htdocs().join("hang").display(),
            hang.path().display(),
            t.htdocs().join("other").display(),
            other.path().display(),
            t.join("apache/logs/upstream.log").display(),
        );
        let apache = Apache::builder(&t).mpm(mpm).log_level("info").config(&conf).start();
        Site { apache, _hang: hang, _other: other, t }
    }

    fn hang_path(&self) -> String {
        self.t.htdocs().join("hang").display().to_string()
    }

    fn limit(&self, key: &str) -> Option<u64> {
        limit_field(&status_json(&self.apache), &self.hang_path(), key)
    }

    fn upstream_log(&self) -> String {
        util::read_lossy(&self.t.join("apache/logs/upstream.log"))
    }

    /// The 503s in the access log, and the longest one took in Apache
    /// (%D: from the request's first byte to the log line).
    fn refusals_logged(&self) -> (u64, Duration) {
        let log = self.upstream_log();
        let us: Vec<u64> = log
            .lines()
            .filter(|l| l.contains(" 503 "))
            .filter_map(|l| l.rsplit("us=").next()?.trim().parse::<u64>().ok())
            .collect();
        (us.len() as u64, Duration::from_micros(us.iter().copied().max().unwrap_or(0)))
    }
}

/// What the flood saw.
#[derive(Default)]
struct FloodResult {
    ok: u64,
    refused: u64,
    other: Vec<u16>,
    /// The slowest 503 as the client saw it, connect included (reported
    /// only: a flood of short connections meets SYN retransmits and, under
    /// prefork, a full accept queue, neither of which the module decides),
    /// and 503s without Retry-After.
    slowest_refusal: Duration,
    without_retry_after: u64,
}

/// `clients` threads that send `GET /hang/sleep?ms=hang_ms` over and over
/// until `stop`.
fn flood(port: u16, clients: usize, hang_ms: u64, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<FloodResult>> {
    (0..clients)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut res = FloodResult::default();
                while !stop.load(Ordering::SeqCst) {
                    let path = format!("/hang/sleep?ms={hang_ms}");
                    match Request::get(&path).timeout(Duration::from_secs(40)).send(port) {
                        Ok(r) if r.status == 200 => res.ok += 1,
                        Ok(r) if r.status == 503 => {
                            res.refused += 1;
                            res.slowest_refusal = res.slowest_refusal.max(r.elapsed);
                            if r.header("Retry-After").is_none() {
                                res.without_retry_after += 1;
                            }
                        }
                        Ok(r) => res.other.push(r.status),
                        Err(_) => res.other.push(0),
                    }
                    std::thread::sleep(FLOOD_PACE);
                }
                res
            })
        })
        .collect()
}

/// The scenario of the issue: a flood of requests to an application whose
/// requests all hang, many more clients than Apache has workers.
fn flood_leaves_the_rest_up(mpm: Mpm, mpm_conf: &str, clients: usize) {
    let _turn = util::one_at_a_time(&ONE_FLOOD);
    let site = Site::start(&format!("limits-flood-{mpm:?}"), mpm, mpm_conf, &format!("-max-in-flight {CAP}"));
    let port = site.apache.port;
    assert_eq!(Request::get("/other/sleep?ms=1").send(port).map(|r| r.status).unwrap_or(0), 200);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads = flood(port, clients, 15_000, stop.clone());
    // While it lasts: the static file and the other application answer
    // within a second, every time; the hanging one never holds more than
    // its cap.
    let mut probes = 0;
    let mut worst = Duration::ZERO;
    let mut most_in_flight = 0;
    let mut most_waiting = 0;
    std::thread::sleep(Duration::from_millis(1500));
    while started.elapsed() < Duration::from_secs(10) {
        for path in ["/static.txt", "/other/sleep?ms=1"] {
            let began = Instant::now();
            let r = Request::get(path).timeout(Duration::from_secs(10)).send(port);
            let took = began.elapsed();
            let status = r.map(|r| r.status).unwrap_or(0);
            assert_eq!(status, 200, "{path} during the flood");
            assert!(took < Duration::from_secs(1), "{path} took {took:?} during the flood");
            worst = worst.max(took);
            probes += 1;
        }
        let json = status_json(&site.apache);
        let app = site.hang_path();
        most_in_flight = most_in_flight.max(limit_field(&json, &app, "in_flight").unwrap_or(0));
        most_waiting = most_waiting.max(limit_field(&json, &app, "waiting").unwrap_or(0));
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = FloodResult::default();
    for t in threads {
        let r = t.join().expect("flood thread");
        total.ok += r.ok;
        total.refused += r.refused;
        total.other.extend(r.other);
        total.slowest_refusal = total.slowest_refusal.max(r.slowest_refusal);
        total.without_retry_after += r.without_retry_after;
    }
    eprintln!(
        "{mpm:?}: {probes} probes, worst {worst:?}; flood: {} ok, {} refused (slowest {:?} at the client, {:?} in Apache), most in flight {most_in_flight}, most waiting {most_waiting}",
        total.ok, total.refused, total.slowest_refusal, site.refusals_logged().1
    );
    assert!(most_in_flight <= CAP, "the hanging application held {most_in_flight} requests, cap {CAP}");
    assert!(most_in_flight >= CAP - 1, "the flood never filled the cap ({most_in_flight})");
    assert!(most_waiting <= CAP, "{most_waiting} waited, -max-queued defaults to {CAP}");
    assert!(total.refused > 50, "the flood got only {} refusals", total.refused);
    assert!(total.other.is_empty(), "statuses other than 200/503: {:?}", total.other);
    assert_eq!(total.without_retry_after, 0, "503s without Retry-After");
    // Waited at most -queue-timeout (1 s), plus a little, by Apache's own
    // clock (%D: from the request's first byte to the log).
    // Every refusal the clients saw has its line (written just after its
    // response, so it may trail a little).
    let logged = util::wait_until(Duration::from_secs(5), || site.refusals_logged().0 >= total.refused);
    assert!(logged, "{} refusals logged, clients saw {}", site.refusals_logged().0, total.refused);
    let in_apache = site.refusals_logged().1;
    assert!(in_apache < Duration::from_millis(2500), "a refusal took {in_apache:?} in Apache");
    // After the flood: the admitted requests end (15 s), nothing is left
    // in flight or waiting, and the application answers again.
    let drained = util::wait_until(Duration::from_secs(30), || {
        site.limit("in_flight") == Some(0) && site.limit("waiting") == Some(0)
    });
    assert!(drained, "places still taken after the flood: {}", status_json(&site.apache));
    let r = Request::get("/hang/sleep?ms=5").send(port).expect("after the flood");
    assert_eq!(r.status, 200);
    // One refusal line a second at most, and it says why.
    let log = site.apache.error_log();
    let lines = util::count(&log, "is at its limit of 6 requests in flight");
    let secs = started.elapsed().as_secs() + 2;
    assert!(lines >= 1 && lines as u64 <= secs, "{lines} refusal lines in {secs} s:\n{log}");
    assert!(log.contains("request refused with 503"), "{log}");
    let refused = limit_field(&status_json(&site.apache), &site.hang_path(), "queue_full").unwrap_or(0)
        + limit_field(&status_json(&site.apache), &site.hang_path(), "queue_timeout").unwrap_or(0);
    assert!(refused >= total.refused, "the page counts {refused} refusals, clients saw {}", total.refused);
    site.apache.assert_alive();
}

#[test]
fn flood_of_a_hung_application_event() {
    flood_leaves_the_rest_up(
        Mpm::Event,
        "StartServers 2\nServerLimit 2\nThreadLimit 16\nThreadsPerChild 16\nMaxRequestWorkers 32\nMinSpareThreads 32\nMaxSpareThreads 32\n",
        80,
    );
}

#[test]
fn flood_of_a_hung_application_prefork() {
    flood_leaves_the_rest_up(
        Mpm::Prefork,
        "StartServers 20\nServerLimit 20\nMaxRequestWorkers 20\nMinSpareServers 20\nMaxSpareServers 20\n",
        40,
    );
}

/// Starts `n` requests that hang for `ms` and waits until they hold their
/// places.
fn hold(site: &Site, n: u64, ms: u64) -> Vec<std::thread::JoinHandle<u16>> {
    let port = site.apache.port;
    let threads: Vec<_> = (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                let path = format!("/hang/sleep?ms={ms}");
                Request::get(&path).timeout(Duration::from_secs(60)).send(port).map(|r| r.status).unwrap_or(0)
            })
        })
        .collect();
    let held = util::wait_until(Duration::from_secs(10), || site.limit("in_flight") == Some(n));
    assert!(held, "{n} requests did not take their places: {}", status_json(&site.apache));
    threads
}

/// Apache's worker children (not the process manager).
fn workers(apache: &Apache) -> Vec<i32> {
    let parent = apache.pid().expect("apache pid") as i32;
    procs::children_of(parent).into_iter().filter(|p| p.comm != "fcgi-pm").map(|p| p.pid).collect()
}

/// Places held by children killed with SIGKILL come back within seconds,
/// and a hard restart gives back the places of the requests it kills.
#[test]
fn places_of_killed_children_come_back() {
    let site = Site::start(
        "limits-kill",
        Mpm::Prefork,
        "StartServers 6\nServerLimit 8\nMaxRequestWorkers 8\nMinSpareServers 6\nMaxSpareServers 8\n",
        "-max-in-flight 2 -queue-timeout 0",
    );
    let port = site.apache.port;
    let _held = hold(&site, 2, 30_000);
    // Full: the next one is refused at once.
    let r = Request::get("/hang/sleep?ms=1").send(port).expect("third request");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
    // Kill every worker child (the two holding places among them).
    for pid in workers(&site.apache) {
        util::signal(pid, libc::SIGKILL);
    }
    let back = util::wait_until(Duration::from_secs(5), || site.limit("in_flight") == Some(0));
    assert!(back, "places of killed children not reclaimed: {}", status_json(&site.apache));
    assert!(site.limit("reclaimed").unwrap_or(0) >= 2, "{}", status_json(&site.apache));
    let ok = util::wait_until(Duration::from_secs(10), || {
        Request::get("/hang/sleep?ms=1").send(port).map(|r| r.status == 200).unwrap_or(false)
    });
    assert!(ok, "the application stays refused after its holders died");
    // A hard restart kills the requests in flight: their places are free after it.
    let _held = hold(&site, 2, 30_000);
    site.apache.restart(libc::SIGHUP);
    let back = util::wait_until(Duration::from_secs(5), || site.limit("in_flight") == Some(0));
    assert!(back, "places taken after a hard restart: {}", status_json(&site.apache));
    let statuses: Vec<u16> =
        (0..2).map(|_| Request::get("/hang/sleep?ms=1").send(port).map(|r| r.status).unwrap_or(0)).collect();
    assert_eq!(statuses, [200, 200]);
    site.apache.assert_alive();
}

/// A graceful restart lets the old children finish: their places go back
/// as their requests end, and the limit holds across both generations.
#[test]
fn graceful_restart_keeps_the_count() {
    let site = Site::start("limits-graceful", Mpm::Event, "", "-max-in-flight 2 -queue-timeout 0");
    let port = site.apache.port;
    let held = hold(&site, 2, 4_000);
    site.apache.restart(libc::SIGUSR1);
    // Still full across the generations.
    let r = Request::get("/hang/sleep?ms=1").send(port).expect("during the old generation's requests");
    assert_eq!(r.status, 503, "the new generation ignored the old one's places");
    let statuses: Vec<u16> = held.into_iter().map(|h| h.join().unwrap_or(0)).collect();
    assert_eq!(statuses, [200, 200]);
    let back = util::wait_until(Duration::from_secs(5), || site.limit("in_flight") == Some(0));
    assert!(back, "{}", status_json(&site.apache));
    assert_eq!(Request::get("/hang/sleep?ms=1").send(port).map(|r| r.status).unwrap_or(0), 200);
}

/// A waiter whose client leaves gives up its place in the queue; a waiter
/// gets the place a finished request frees, without waiting for its
/// timeout; the access log's notes say what happened.
#[test]
fn waiters_leave_and_take_turns() {
    let site = Site::start("limits-wait", Mpm::Event, "", "-max-in-flight 1 -queue-timeout 20 -max-queued 1");
    let port = site.apache.port;
    let held = hold(&site, 1, 3_000);
    // A client that waits, then leaves.
    let mut gone = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    gone.write_all(b"GET /hang/sleep?ms=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let waiting = util::wait_until(Duration::from_secs(5), || site.limit("waiting") == Some(1));
    assert!(waiting, "{}", status_json(&site.apache));
    // The queue is full (-max-queued 1): refused at once.
    let began = Instant::now();
    let r = Request::get("/hang/sleep?ms=1").send(port).expect("over the queue");
    assert_eq!(r.status, 503);
    assert!(began.elapsed() < Duration::from_millis(500), "a full queue took {:?}", began.elapsed());
    drop(gone);
    let left = util::wait_until(Duration::from_secs(2), || site.limit("waiting") == Some(0));
    assert!(left, "the waiter whose client left still waits: {}", status_json(&site.apache));
    assert_eq!(site.limit("client_gone"), Some(1));
    // A waiter gets the place as soon as the holder is done (about 3 s
    // after it began, far below -queue-timeout 20).
    let began = Instant::now();
    let r = Request::get("/hang/sleep?ms=1").timeout(Duration::from_secs(30)).send(port).expect("waiter");
    assert_eq!(r.status, 200);
    assert!(began.elapsed() < Duration::from_secs(5), "the waiter took {:?}", began.elapsed());
    assert_eq!(held.into_iter().map(|h| h.join().unwrap_or(0)).collect::<Vec<_>>(), [200]);
    assert!(site.limit("waited").unwrap_or(0) >= 1);
    // The notes: endpoint and times for served requests, the reason for refused ones.
    let ok = util::wait_until(Duration::from_secs(5), || site.upstream_log().lines().count() >= 5);
    assert!(ok);
    let log = site.upstream_log();
    let served = log
        .lines()
        .find(|l| l.contains("/hang/sleep 200") && !l.contains("q=0.000"))
        .unwrap_or_else(|| panic!("no served request that waited:\n{log}"));
    let sock = site.t.sock("hang.sock");
    assert!(served.contains(&format!("ep=unix:{}", sock.display())), "{served}");
    for key in ["q=", "c=", "h=", "r="] {
        let v = served.split(key).nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or("");
        assert!(v.parse::<f64>().is_ok(), "{key} {v:?} in {served}");
    }
    assert!(served.contains("refused=-"), "{served}");
    let refused: Vec<&str> = log.lines().filter(|l| l.contains(" 503 ")).collect();
    assert!(refused.iter().any(|l| l.contains("refused=queue_full") && l.contains("ep=-")), "{log}");
    assert!(refused.iter().any(|l| l.contains("refused=client_gone")), "{log}");
}

/// Limits on dynamic applications come from FastCgiConfig and hold per
/// application.
#[test]
fn dynamic_applications_are_limited_too() {
    let t = TestDir::new("limits-dynamic");
    let app = t.htdocs().join("slow.fcgi");
    common::backends::compile_fcgi_app("echo.c", &app);
    let conf = format!(
        "FastCgiConfig -max-in-flight 1 -queue-timeout 0 -maxClassProcesses 4 -startDelay 1\n\
         <Location /fcgi-status>\n  SetHandler fastcgi-status\n</Location>\n\
         <Directory \"{}\">\n  Options +ExecCGI\n  <Files *.fcgi>\n    SetHandler fastcgi-script\n  </Files>\n</Directory>\n",
        t.htdocs().display()
    );
    let apache = Apache::builder(&t).config(&conf).start();
    let port = apache.port;
    let ok = util::wait_until(Duration::from_secs(15), || {
        Request::get("/slow.fcgi/sleep?ms=1").send(port).map(|r| r.status == 200).unwrap_or(false)
    });
    assert!(ok, "{}", apache.error_log());
    let busy =
        std::thread::spawn(move || Request::get("/slow.fcgi/sleep?ms=3000").send(port).map(|r| r.status).unwrap_or(0));
    let path = app.display().to_string();
    let held =
        util::wait_until(Duration::from_secs(5), || limit_field(&status_json(&apache), &path, "in_flight") == Some(1));
    assert!(held, "{}", status_json(&apache));
    let r = Request::get("/slow.fcgi/sleep?ms=1").send(port).expect("second");
    assert_eq!(r.status, 503);
    assert!(r.header("Retry-After").is_some());
    assert_eq!(busy.join().unwrap_or(0), 200);
    let json = status_json(&apache);
    assert_eq!(limit_field(&json, &path, "max_in_flight"), Some(1), "{json}");
    assert_eq!(limit_field(&json, &path, "queue_full"), Some(1), "{json}");
}

/// Bad combinations are configuration errors that name the option.
#[test]
fn configuration_errors() {
    let cases = [
        ("FastCgiExternalServer /x -host 127.0.0.1:9 -queue-timeout 2", "-queue-timeout needs -max-in-flight"),
        ("FastCgiExternalServer /x -host 127.0.0.1:9 -max-in-flight 0", "invalid value for -max-in-flight"),
        (
            "FastCgiExternalServer /x -host 127.0.0.1:9 -max-in-flight 2 -queue-timeout 1.2345",
            "invalid value for -queue-timeout",
        ),
        ("FastCgiScoreboard Off\nFastCgiExternalServer /x -host 127.0.0.1:9 -max-in-flight 2", "FastCgiScoreboard Off"),
    ];
    for (conf, want) in cases {
        let t = TestDir::new("limits-config");
        let (code, out) = Apache::builder(&t).config(conf).configtest();
        assert_ne!(code, 0, "{conf}: accepted");
        assert!(out.contains(want), "{conf}: {out}");
    }
    let t = TestDir::new("limits-config-ok");
    let (code, out) = Apache::builder(&t)
        .config("FastCgiExternalServer /x -host 127.0.0.1:9 -max-in-flight 4 -queue-timeout 0.25 -max-queued 0")
        .configtest();
    assert_eq!(code, 0, "{out}");
}
