//! The traffic scoreboard (issue 13): counters shared by every Apache child,
//! checked exactly through `?json` and `?prometheus` (the latter read by an
//! exposition-format parser here), latency, failover health, graceful
//! restarts, mod_status's section, a load of 20,000 requests from wrk, and
//! the page in a real browser (Chromium, headless).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{util, Apache, FaultServer, Mpm, Request, TestDir};

// ---- a small JSON reader (the page's whole document) ----

#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Json {
        let mut p = JsonParser { s: text.as_bytes(), i: 0 };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing bytes in JSON: {text}");
        v
    }

    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(fields) => {
                fields.iter().find(|(k, _)| k == key).map(|(_, v)| v).unwrap_or_else(|| panic!("no {key} in {self:?}"))
            }
            _ => panic!("{key}: not an object: {self:?}"),
        }
    }

    fn num(&self, key: &str) -> f64 {
        match self.get(key) {
            Json::Num(n) => *n,
            other => panic!("{key}: not a number: {other:?}"),
        }
    }

    fn int(&self, key: &str) -> u64 {
        self.num(key) as u64
    }

    fn str(&self, key: &str) -> &str {
        match self.get(key) {
            Json::Str(s) => s,
            other => panic!("{key}: not a string: {other:?}"),
        }
    }

    fn arr(&self, key: &str) -> &[Json] {
        match self.get(key) {
            Json::Arr(a) => a,
            other => panic!("{key}: not an array: {other:?}"),
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) {
        self.ws();
        assert_eq!(self.s.get(self.i), Some(&b), "JSON: expected {:?} at {}", b as char, self.i);
        self.i += 1;
    }

    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return Json::Obj(fields);
                }
                loop {
                    self.ws();
                    let k = self.string();
                    self.eat(b':');
                    fields.push((k, self.value()));
                    self.ws();
                    self.i += 1;
                    match self.s[self.i - 1] {
                        b',' => continue,
                        b'}' => return Json::Obj(fields),
                        c => panic!("JSON: bad {:?} at {}", c as char, self.i),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return Json::Arr(items);
                }
                loop {
                    items.push(self.value());
                    self.ws();
                    self.i += 1;
                    match self.s[self.i - 1] {
                        b',' => continue,
                        b']' => return Json::Arr(items),
                        c => panic!("JSON: bad {:?} at {}", c as char, self.i),
                    }
                }
            }
            b'"' => Json::Str(self.string()),
            _ => {
                let start = self.i;
                while self.i < self.s.len() && !b",}] \n".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                match std::str::from_utf8(&self.s[start..self.i]).unwrap() {
                    "null" => Json::Null,
                    "true" => Json::Bool(true),
                    "false" => Json::Bool(false),
                    n => Json::Num(n.parse().unwrap_or_else(|_| panic!("JSON: bad number {n:?}"))),
                }
            }
        }
    }

    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = Vec::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).unwrap(),
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                            self.i += 4;
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap();
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        b'n' => out.push(b'\n'),
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

// ---- the Prometheus text exposition format, checked as promtool would ----

/// Samples by (name, sorted labels).
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses and checks the exposition: every sample's family has HELP and
/// TYPE lines before it, names and labels are well formed, values are
/// numbers, no series repeats, histogram buckets are cumulative and end
/// with `+Inf` equal to `_count`.
fn parse_prometheus(text: &str) -> Samples {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = BTreeMap::new();
    let mut samples = Samples::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name) && !help.is_empty(), "{line}");
            assert!(helps.insert(name.to_string(), ()).is_none(), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            assert!(helps.contains_key(name), "TYPE before HELP: {line}");
            assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice: {line}");
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}")))),
            None => (series, Vec::new()),
        };
        assert!(valid_name(name), "bad name: {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "histogram")))
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        assert!(samples.insert((name.to_string(), labels), value).is_none(), "repeated series: {line}");
    }
    // Histograms: cumulative buckets, +Inf == _count.
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let bucket = format!("{family}_bucket");
        let mut series: BTreeMap<Vec<(String, String)>, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), v) in &samples {
            if *name == bucket {
                let le = labels.iter().find(|(k, _)| k == "le").expect("le label").1.clone();
                let le: f64 = if le == "+Inf" { f64::INFINITY } else { le.parse().expect("le value") };
                let rest: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
                series.entry(rest).or_default().push((le, *v));
            }
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{family} {labels:?} not cumulative");
            let inf = buckets.last().expect("buckets");
            assert!(inf.0.is_infinite(), "{family} {labels:?} has no +Inf bucket");
            assert_eq!(Some(&inf.1), samples.get(&(format!("{family}_count"), labels.clone())), "{family} {labels:?}");
        }
    }
    samples
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let eq = text[i..].find("=\"").map(|p| p + i).unwrap_or_else(|| panic!("bad labels {text}"));
        let name = &text[i..eq];
        assert!(valid_name(name), "bad label name {name}");
        let mut j = eq + 2;
        let mut value = String::new();
        while b[j] != b'"' {
            if b[j] == b'\\' {
                j += 1;
                value.push(match b[j] {
                    b'n' => '\n',
                    c => c as char,
                });
            } else {
                value.push(b[j] as char);
            }
            j += 1;
        }
        out.push((name.to_string(), value));
        i = j + 1;
        if i < b.len() {
            assert_eq!(b[i], b',', "labels {text}");
            i += 1;
        }
    }
    out.sort();
    out
}

fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut key: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    key.sort();
    *samples.get(&(name.to_string(), key.clone())).unwrap_or_else(|| panic!("no {name}{key:?}"))
}

// ---- the set-up ----

const STATUS: &str = "/fcgi-status";

/// Two event children with 4 threads each (8 concurrent requests need both),
/// or prefork.
fn children(mpm: Mpm) -> &'static str {
    match mpm {
        Mpm::Event => {
            "StartServers 2\nServerLimit 2\nThreadsPerChild 4\nMaxRequestWorkers 8\nMinSpareThreads 4\nMaxSpareThreads 8\n"
        }
        Mpm::Prefork => "StartServers 2\nMinSpareServers 2\n",
    }
}

fn pid_log(t: &TestDir) -> String {
    format!("LogFormat \"%P %U %>s\" pidlog\nCustomLog \"{}\" pidlog", t.join("apache/logs/pid.log").display())
}

fn status_json(apache: &Apache) -> Json {
    let r = apache.get(&format!("{STATUS}?json"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    Json::parse(&r.text())
}

fn prometheus(apache: &Apache) -> Samples {
    let r = apache.get(&format!("{STATUS}?prometheus"));
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").is_some_and(|c| c.starts_with("text/plain; version=0.0.4")), "{:?}", r.headers);
    let text = r.text();
    if let Some(promtool) = ["/usr/bin/promtool"].iter().find(|p| Path::new(p).exists()) {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_prometheus(&text)
}

fn app<'a>(doc: &'a Json, path: &str) -> &'a Json {
    doc.arr("applications")
        .iter()
        .find(|a| a.str("path") == path)
        .unwrap_or_else(|| panic!("no application {path} in {doc:?}"))
}

/// Sends `n` GETs for `path` from `threads` threads at once; the statuses.
fn burst(apache: &Apache, path: &str, n: usize, threads: usize) -> Vec<u16> {
    let port = apache.port;
    let per = n.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let path = path.to_string();
            let count = per.min(n.saturating_sub(i * per));
            std::thread::spawn(move || {
                (0..count)
                    .map(|_| Request::get(&path).timeout(Duration::from_secs(20)).send(port).map_or(0, |r| r.status))
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

struct Site {
    t: TestDir,
    _fault: FaultServer,
    apache: Apache,
    h: String,
}

fn site(name: &str, mpm: Mpm, extra: &str) -> Site {
    let t = TestDir::new(name);
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let h = t.htdocs().display().to_string();
    let apache = Apache::builder(&t)
        .mpm(mpm)
        .config(children(mpm))
        .config(&pid_log(&t))
        .config(&format!(
            "FastCgiExternalServer {h}/ok -socket {f}\n\
             FastCgiExternalServer {h}/dead -socket {dead}\n\
             FastCgiExternalServer {h}/slow -socket {f} -idle-timeout 1\n\
             FastCgiExternalServer {h}/broken -socket {f}\n\
             <Location {STATUS}>\n  SetHandler fastcgi-status\n</Location>\n{extra}",
            f = fault.path().display(),
            dead = t.sock("dead.sock").display(),
            extra = extra
                .replace("{h}", &h)
                .replace("{dead}", &t.sock("dead.sock").display().to_string())
                .replace("{fault}", &fault.path().display().to_string()),
        ))
        .start();
    Site { t, _fault: fault, apache, h }
}

// ---- the tests ----

fn counters_are_exact(mpm: Mpm, name: &str) {
    let s = site(name, mpm, "");
    let (apache, h) = (&s.apache, &s.h);
    const N: usize = 40;
    const M: usize = 5;
    const K: usize = 2;
    // Slow successes first, 8 at a time: they need both children.
    let ok = burst(apache, "/ok/sleep?ms=150", 16, 8);
    let ok2 = burst(apache, "/ok/ok", N - 16, 8);
    assert!(ok.iter().chain(&ok2).all(|&s| s == 200), "{ok:?} {ok2:?}\n{}", apache.error_log());
    assert!(burst(apache, "/dead", M, 5).iter().all(|&s| s == 503));
    assert!(burst(apache, "/slow/stall", K, K).iter().all(|&s| s == 504));
    assert_eq!(apache.get("/broken/half-headers").status, 500);

    let doc = status_json(apache);
    assert_eq!(doc.get("scoreboard").get("enabled"), &Json::Bool(true));
    let check = |path: &str, total: usize, outcome: &str| {
        let a = app(&doc, &format!("{h}{path}"));
        assert_eq!(a.int("requests"), total as u64, "{path}: {a:?}");
        assert_eq!(a.get("outcomes").int(outcome), total as u64, "{path}: {a:?}");
        let sum: u64 = match a.get("outcomes") {
            Json::Obj(f) => f.iter().map(|(_, v)| if let Json::Num(n) = v { *n as u64 } else { 0 }).sum(),
            _ => unreachable!(),
        };
        assert_eq!(sum, total as u64, "{path}: outcomes do not add up: {a:?}");
        assert_eq!(a.int("in_flight"), 0, "{path}");
        assert_eq!(a.get("duration").int("count"), total as u64, "{path}");
    };
    check("/ok", N, "2xx");
    check("/dead", M, "connect_refused");
    check("/slow", K, "idle_timeout");
    check("/broken", 1, "incomplete_headers");
    let ok_app = app(&doc, &format!("{h}/ok"));
    assert_eq!(ok_app.int("errors"), 0);
    let bodies = 16 * "slept\n".len() + (N - 16) * "fault-backend ok\n".len();
    assert_eq!(ok_app.int("bytes_out"), bodies as u64, "{ok_app:?}");
    assert_eq!(app(&doc, &format!("{h}/dead")).int("errors"), M as u64);
    let dead_ep = &app(&doc, &format!("{h}/dead")).arr("endpoints")[0];
    assert_eq!(dead_ep.int("connect_failures"), M as u64);

    let p = prometheus(apache);
    let ok_path = format!("{h}/ok");
    assert_eq!(sample(&p, "fastcgi_requests_total", &[("app", &ok_path), ("outcome", "2xx")]), N as f64);
    let dead_path = format!("{h}/dead");
    assert_eq!(sample(&p, "fastcgi_requests_total", &[("app", &dead_path), ("outcome", "connect_refused")]), M as f64);
    let slow_path = format!("{h}/slow");
    assert_eq!(sample(&p, "fastcgi_requests_total", &[("app", &slow_path), ("outcome", "idle_timeout")]), K as f64);
    let broken = format!("{h}/broken");
    assert_eq!(sample(&p, "fastcgi_requests_total", &[("app", &broken), ("outcome", "incomplete_headers")]), 1.0);
    for path in [&ok_path, &dead_path, &slow_path, &broken] {
        let total: f64 = p
            .iter()
            .filter(|((n, l), _)| n == "fastcgi_requests_total" && l.iter().any(|(k, v)| k == "app" && v == path))
            .map(|(_, v)| v)
            .sum();
        let expected =
            [(&ok_path, N), (&dead_path, M), (&slow_path, K), (&broken, 1)].iter().find(|e| e.0 == path).unwrap().1;
        assert_eq!(total, expected as f64, "{path}");
        assert_eq!(sample(&p, "fastcgi_requests_in_flight", &[("app", path)]), 0.0);
        assert_eq!(sample(&p, "fastcgi_request_duration_seconds_count", &[("app", path)]), expected as f64);
    }
    assert_eq!(
        sample(
            &p,
            "fastcgi_endpoint_connect_failures_total",
            &[("app", &dead_path), ("endpoint", &format!("unix:{}", s.t.sock("dead.sock").display()))]
        ),
        M as f64
    );

    // The requests were served by more than one Apache child.
    let pids: std::collections::BTreeSet<String> = util::read_lossy(&s.t.join("apache/logs/pid.log"))
        .lines()
        .filter(|l| l.contains(" /ok/"))
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect();
    assert!(pids.len() >= 2, "all requests went to one child: {pids:?}");

    // A graceful restart with the same applications keeps the counters.
    apache.restart(libc::SIGUSR1);
    let doc = status_json(apache);
    assert_eq!(app(&doc, &ok_path).int("requests"), N as u64);
    assert_eq!(doc.get("scoreboard").int("restarts"), 1);
    // ... and so does a hard one, with nothing in flight.
    apache.restart(libc::SIGHUP);
    let doc = status_json(apache);
    assert_eq!(app(&doc, &ok_path).int("requests"), N as u64);
    assert_eq!(app(&doc, &ok_path).int("in_flight"), 0);
    // A restart that changes the applications starts from zero.
    let conf = s.t.join("apache/conf/httpd.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!("FastCgiExternalServer {h}/new -socket {}\n", s._fault.path().display()));
    std::fs::write(&conf, text).unwrap();
    let old = apache.workers();
    apache.restart(libc::SIGUSR1);
    assert!(apache.wait_gone(&old, Duration::from_secs(15)), "children {old:?} of the old generation still run");
    let doc = status_json(apache);
    assert_eq!(app(&doc, &ok_path).int("requests"), 0);
    assert_eq!(doc.get("scoreboard").int("restarts"), 0);
    assert_eq!(apache.get("/new/ok").status, 200);
    assert_eq!(app(&status_json(apache), &format!("{h}/new")).int("requests"), 1);
    apache.assert_alive();
}

#[test]
fn counters_are_exact_across_event_children() {
    counters_are_exact(Mpm::Event, "metrics_event");
}

#[test]
fn counters_are_exact_across_prefork_children() {
    counters_are_exact(Mpm::Prefork, "metrics_prefork");
}

#[test]
fn latency_percentiles_of_a_slow_backend() {
    let s = site("metrics_latency", Mpm::Event, "");
    let statuses = burst(&s.apache, "/ok/sleep?ms=200", 12, 4);
    assert!(statuses.iter().all(|&st| st == 200), "{statuses:?}");
    let doc = status_json(&s.apache);
    let a = app(&doc, &format!("{}/ok", s.h));
    let p50 = a.get("duration").num("p50");
    assert!((0.2..0.3).contains(&p50), "p50 {p50}: {a:?}");
    let ttfb = a.get("ttfb").num("p50");
    assert!((0.2..0.3).contains(&ttfb), "ttfb p50 {ttfb}");
    assert!(a.get("duration").num("p99") >= p50);
    let p = prometheus(&s.apache);
    let path = format!("{}/ok", s.h);
    assert_eq!(sample(&p, "fastcgi_request_duration_seconds_bucket", &[("app", &path), ("le", "0.2")]), 0.0);
    assert_eq!(sample(&p, "fastcgi_request_duration_seconds_bucket", &[("app", &path), ("le", "0.3")]), 12.0);
    let sum = sample(&p, "fastcgi_request_duration_seconds_sum", &[("app", &path)]);
    assert!((2.4..3.6).contains(&sum), "{sum}");
}

#[test]
fn failover_shows_the_dead_endpoint_and_counts_on_the_live_one() {
    let t = TestDir::new("metrics_failover");
    let fault = FaultServer::start(&t.sock("live.sock"));
    let dead = t.sock("dead.sock");
    let h = t.htdocs().display().to_string();
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiExternalServer {h}/app -socket {dead} -socket {live}\n\
             <Location {STATUS}>\n  SetHandler fastcgi-status\n</Location>",
            dead = dead.display(),
            live = fault.path().display()
        ))
        .start();
    for _ in 0..6 {
        assert_eq!(apache.get("/app/ok").status, 200);
    }
    let doc = status_json(&apache);
    let a = app(&doc, &format!("{h}/app"));
    assert_eq!(a.int("requests"), 6);
    let eps = a.arr("endpoints");
    assert_eq!(eps[0].str("name"), format!("unix:{}", dead.display()));
    // Marked down for all children (issue 12's shared health).
    assert_eq!(eps[0].str("health"), "down");
    assert_eq!(eps[0].get("next"), &Json::Bool(false));
    assert!(eps[0].int("connect_failures") >= 1);
    assert_eq!(eps[0].int("requests"), 0);
    assert_eq!(eps[1].str("health"), "up");
    assert_eq!(eps[1].get("next"), &Json::Bool(true));
    assert_eq!(eps[1].int("requests"), 6);
    assert!(eps[1].int("failovers") >= 1);
    let p = prometheus(&apache);
    let path = format!("{h}/app");
    let dead_name = format!("unix:{}", dead.display());
    let live_name = format!("unix:{}", fault.path().display());
    assert_eq!(sample(&p, "fastcgi_endpoint_up", &[("app", &path), ("endpoint", &dead_name)]), 0.0);
    assert_eq!(sample(&p, "fastcgi_endpoint_up", &[("app", &path), ("endpoint", &live_name)]), 1.0);
    assert_eq!(sample(&p, "fastcgi_endpoint_requests_total", &[("app", &path), ("endpoint", &live_name)]), 6.0);
    let page = apache.get(STATUS).text();
    assert!(page.contains(&format!("data-endpoint=\"{dead_name}\" data-health=\"down\"")), "{page}");
    assert!(page.contains(&format!("data-endpoint=\"{live_name}\" data-health=\"up\"")), "{page}");
}

#[test]
fn mod_status_shows_a_fastcgi_section() {
    let s = site(
        "metrics_mod_status",
        Mpm::Event,
        "LoadModule status_module /usr/lib/apache2/modules/mod_status.so\n\
         <Location /server-status>\n  SetHandler server-status\n</Location>",
    );
    for _ in 0..3 {
        assert_eq!(s.apache.get("/ok/ok").status, 200);
    }
    assert_eq!(s.apache.get("/dead").status, 503);
    let auto = s.apache.get("/server-status?auto").text();
    assert!(auto.contains("FastCGIApplications: 4\n"), "{auto}");
    assert!(auto.contains("FastCGIRequests: 4\n"), "{auto}");
    assert!(auto.contains("FastCGIErrors: 1\n"), "{auto}");
    assert!(
        auto.contains(&format!(
            "FastCGIApp1Path: {}/ok\nFastCGIApp1Requests: 3\nFastCGIApp1InFlight: 0\nFastCGIApp1Errors: 0\n",
            s.h
        )),
        "{auto}"
    );
    assert!(auto.contains("FastCGIApp2Errors: 1\n"), "{auto}");
    let html = s.apache.get("/server-status").text();
    assert!(html.contains("<h2>FastCGI</h2>"), "{html}");
    assert!(
        html.contains(&format!("<tr><td>{}/ok</td><td>external</td><td>3</td><td>0</td><td>0</td>", s.h)),
        "{html}"
    );
}

#[test]
fn scoreboard_off() {
    let s = site("metrics_off", Mpm::Event, "FastCgiScoreboard Off");
    assert_eq!(s.apache.get("/ok/ok").status, 200);
    let doc = status_json(&s.apache);
    assert_eq!(doc.get("scoreboard").get("enabled"), &Json::Bool(false));
    assert!(doc.arr("applications").is_empty());
    let page = s.apache.get(STATUS).text();
    assert!(page.contains("FastCgiScoreboard Off"), "{page}");
    assert!(page.contains(&format!("data-app=\"{}/ok\"", s.h)), "{page}");
    let p = s.apache.get(&format!("{STATUS}?prometheus")).text();
    assert!(parse_prometheus(&p).is_empty(), "{p}");
}

#[test]
fn wrk_load_loses_no_increment() {
    let s = site("metrics_wrk", Mpm::Event, "");
    let script = s.t.join("stop.lua");
    // Each of the 8 threads (one connection each) stops after 2,500 responses.
    std::fs::write(
        &script,
        "local n = 0\nfunction response(status, headers, body)\n  n = n + 1\n  if n >= 2500 then wrk.thread:stop() end\nend\n",
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}/ok/ok", s.apache.port);
    let log = s.t.join("apache/logs/pid.log");
    let served = || util::read_lossy(&log).lines().filter(|l| l.contains(" /ok/ok ")).count();
    let wrk = Command::new("wrk")
        .args(["-t8", "-c8", "-d60s", "-s"])
        .arg(&script)
        .arg(&url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run wrk (make deps installs it)");
    // wrk runs for its whole duration even when every thread stopped:
    // SIGINT ends it (with its report) once the requests are served.
    let done = util::wait_until(Duration::from_secs(55), || served() >= 20_000);
    std::thread::sleep(Duration::from_millis(300));
    util::signal(wrk.id() as i32, libc::SIGINT);
    let out = wrk.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(done, "only {} requests served in 55 s\n{report}", served());
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    let served =
        util::read_lossy(&s.t.join("apache/logs/pid.log")).lines().filter(|l| l.contains(" /ok/ok 200")).count();
    let doc = status_json(&s.apache);
    let a = app(&doc, &format!("{}/ok", s.h));
    assert!(served >= 20_000, "{served}\n{report}");
    assert_eq!(a.int("requests"), served as u64, "{report}");
    assert_eq!(a.get("outcomes").int("2xx"), served as u64);
    assert_eq!(a.int("in_flight"), 0);
    assert_eq!(a.get("duration").int("count"), served as u64);
    assert!(report.contains("20000 requests") || served > 20_000, "{report}");
    let text = util::read_lossy(&log);
    let pids: std::collections::BTreeSet<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    eprintln!("wrk: {served} requests over {} Apache children", pids.len());
}

fn build_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("build");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs Chromium headless on `url` with `args`; its stdout.
fn chromium(t: &TestDir, args: &[&str], url: &str) -> String {
    let profile = t.join("chromium-profile");
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .env("HOME", t.path())
        .output()
        .expect("run chromium (make deps installs it)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_page_in_a_real_browser() {
    // A static application with two processes, and one that fails over.
    let pre = TestDir::new("metrics_browser_app");
    let static_app = pre.join("app.py");
    std::fs::copy(util::apps_dir().join("fd0_app.py"), &static_app).unwrap();
    std::fs::set_permissions(&static_app, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = site(
        "metrics_browser",
        Mpm::Event,
        &format!(
            "FastCgiServer {app} -processes 2 -init-start-delay 0\n\
             FastCgiExternalServer {{h}}/failover -socket {{dead}} -socket {{fault}}",
            app = static_app.display()
        ),
    );
    let _ = &pre;
    assert!(burst(&s.apache, "/ok/sleep?ms=120", 8, 4).iter().all(|&st| st == 200));
    assert!(burst(&s.apache, "/ok/ok", 30, 4).iter().all(|&st| st == 200));
    assert!(burst(&s.apache, "/dead", 3, 3).iter().all(|&st| st == 503));
    assert!(burst(&s.apache, "/failover/ok", 5, 1).iter().all(|&st| st == 200));
    assert_eq!(s.apache.get("/broken/half-headers").status, 500);
    let static_path = static_app.display().to_string();
    // The static application runs its two processes (the manager writes them).
    assert!(util::wait_until(Duration::from_secs(10), || {
        app(&status_json(&s.apache), &static_path).get("processes").int("count") == 2
    }));
    let url = format!("http://127.0.0.1:{}{STATUS}", s.apache.port);
    let build = build_dir();
    for (file, size) in [("status-page.png", "1100,1500"), ("status-page-phone.png", "412,1800")] {
        let shot = build.join(file);
        let _ = std::fs::remove_file(&shot);
        chromium(
            &s.t,
            &[&format!("--window-size={size}"), "--hide-scrollbars", &format!("--screenshot={}", shot.display())],
            &url,
        );
        let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot {}: {e}", shot.display()));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{} bytes", png.len());
    }
    // The DOM as the browser built it: rows, counters, latency figures.
    let dom = chromium(&s.t, &["--dump-dom"], &url);
    let tile = |app: &str, metric: &str| -> String {
        let section = dom
            .split(&format!("data-app=\"{}{app}\"", s.h))
            .nth(1)
            .unwrap_or_else(|| panic!("{app} not rendered:\n{dom}"));
        let section = section.split("</section>").next().unwrap();
        let at = section.find(&format!("data-metric=\"{metric}\"")).unwrap_or_else(|| panic!("{metric} of {app}"));
        let v = &section[at..];
        let v = &v[v.find("class=\"v\">").unwrap() + 10..];
        v[..v.find('<').unwrap()].to_string()
    };
    assert_eq!(tile("/ok", "requests"), "38");
    assert_eq!(tile("/ok", "in_flight"), "0");
    assert_eq!(tile("/ok", "errors"), "0");
    assert_eq!(tile("/dead", "errors"), "3");
    assert_eq!(tile("/broken", "requests"), "1");
    for q in ["p50", "p90", "p99"] {
        let v = tile("/ok", q);
        assert!(v.ends_with(" ms") || v.ends_with(" s"), "{q}: {v}");
    }
    assert!(
        tile("/ok", "p99").trim_end_matches(" ms").parse::<u32>().is_ok_and(|ms| (100..=300).contains(&ms)),
        "{}",
        tile("/ok", "p99")
    );
    assert!(dom.contains("data-outcome=\"connect_refused\"><b>3</b> connect refused → 503</li>"), "{dom}");
    assert!(dom.contains("data-outcome=\"incomplete_headers\"><b>1</b> incomplete headers → 500</li>"), "{dom}");
    assert!(dom.contains("data-outcome=\"2xx\"><b>38</b> 2xx</li>"), "{dom}");
    assert_eq!(tile("/failover", "requests"), "5");
    assert!(dom.contains("data-health=\"failed\""), "{dom}");
    // The static application's processes.
    let section = dom.split(&format!("data-app=\"{static_path}\"")).nth(1).expect("static app rendered");
    let section = section.split("</section>").next().unwrap();
    assert_eq!(section.matches("<tr data-pid=").count(), 2, "{section}");
    // The overview: one row per application.
    for app in ["/ok", "/dead", "/slow", "/broken"] {
        assert!(dom.contains(&format!("<tr data-row=\"{}{app}\">", s.h)), "{app}: {dom}");
    }
    // No external assets and no script.
    assert!(!dom.contains("<script") && !dom.contains("<link") && !dom.contains("src="), "{dom}");
    let page = s.apache.get(&format!("{STATUS}?refresh=5")).text();
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"), "{page}");
}

#[test]
fn pooled_connections_are_counted() {
    let t = TestDir::new("metrics_pool");
    let fault = FaultServer::start(&t.sock("kc.sock"));
    let h = t.htdocs().display().to_string();
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiExternalServer {h}/kc -socket {} -keep-conn always\n<Location {STATUS}>\n  SetHandler fastcgi-status\n</Location>",
            fault.path().display()
        ))
        .start();
    for _ in 0..5 {
        assert_eq!(apache.get("/kc/ok").status, 200);
    }
    let doc = status_json(&apache);
    let ep = &app(&doc, &format!("{h}/kc")).arr("endpoints")[0];
    // One child (the harness's event set-up): one connection, reused 4 times,
    // idle in the pool now.
    assert_eq!(ep.int("requests"), 5, "{ep:?}");
    assert_eq!(ep.int("pool_reused"), 4, "{ep:?}");
    assert_eq!(ep.int("pool_idle"), 1, "{ep:?}");
    assert_eq!(fault.connections(), 1);
}
