//! Issue 25: a small response is on its way to the client before httpd
//! finishes its request, so that httpd's look for a keep-alive client's next
//! request after the handler (`ap_check_pipeline`) finds it, and the worker
//! that served a request serves the connection's next one, without a trip
//! through the event MPM's listener. The response is whole for the client at
//! that point: one whose body came with its end gets a Content-Length (as
//! httpd's filter gives mod_cgi's finished scripts) instead of chunks whose
//! last one waits for EOS. A response with no body for the client (HEAD, a
//! 304 of httpd's conditions, a script's 304 or 204) is ended before the
//! handler returns, as httpd would end it after. What must not change:
//! Range is not applied (200 with the whole body), HEAD has no body.
//!
//! Made deterministic with a slow log hook (mod_lua, `LuaHookLog`): httpd
//! logs a request when the bucket that ends it is destroyed, which happens
//! before its pipeline check once the response is written, and after it
//! when the response still waits in the core output filter. While the hook
//! sleeps, the client has its answer and sends the next request: with the
//! response written early, the check finds it and the same thread goes on.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::util::write_file;
use common::{Apache, FaultServer, Mpm, Request, TestDir};

const MOD_LUA: &str = "/usr/lib/apache2/modules/mod_lua.so";

/// One response read off a keep-alive connection: status, head lines, body.
struct Answer {
    status: u16,
    head: Vec<String>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one response framed by Content-Length (or none, for HEAD).
fn read_answer(s: &mut TcpStream, head_only: bool) -> Answer {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read the head");
        assert_eq!(n, 1, "connection closed in the head: {}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty()).map(str::to_string);
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let head: Vec<String> = lines.collect();
    let mut answer = Answer { status, head, body: Vec::new() };
    if !head_only {
        let len: usize = answer
            .header("Content-Length")
            .unwrap_or_else(|| panic!("no Content-Length for a whole small response: {:?}", answer.head))
            .parse()
            .expect("a number");
        answer.body = vec![0; len];
        s.read_exact(&mut answer.body).expect("read the body");
    }
    answer
}

fn site(t: &TestDir, fault: &FaultServer, mpm: Mpm) -> Apache {
    let lua = t.join("slowlog.lua");
    write_file(&lua, "function slow(r)\n    r.usleep(300000)\n    return apache2.DECLINED\nend\n");
    Apache::builder(t)
        .mpm(mpm)
        .config(&format!(
            "LoadModule lua_module {MOD_LUA}\n\
             LuaHookLog {} slow\n\
             LogFormat \"%{{tid}}P %k %>s %r\" tids\n\
             CustomLog logs/tids.log tids\n\
             FastCgiExternalServer {} -socket {} -idle-timeout 10",
            lua.display(),
            t.htdocs().join("fault").display(),
            fault.path().display()
        ))
        .start()
}

fn check(mpm: Mpm, name: &str) {
    if !Path::new(MOD_LUA).exists() {
        eprintln!("skipped: {MOD_LUA} is missing (Debian's apache2 package has it)");
        return;
    }
    let t = TestDir::new(name);
    let fault = FaultServer::start(&t.sock("f.sock"));
    let apache = site(&t, &fault, mpm);
    assert_eq!(apache.request(Request::get("/fault/x")).status, 200, "{}", apache.error_log());

    let mut s = TcpStream::connect(("127.0.0.1", apache.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let get = |path: &str, extra: &str| format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n").into_bytes();
    let rounds = 6;
    for i in 0..rounds {
        s.write_all(&get(&format!("/fault/n{i}"), "")).expect("send");
        let a = read_answer(&mut s, false);
        assert_eq!(a.status, 200);
        // The fault backend sends no Content-Length: httpd's, for a body
        // that came whole, and no chunking.
        assert_eq!(a.body, b"fault-backend ok\n", "{:?}", a.head);
        assert!(a.header("Transfer-Encoding").is_none(), "{:?}", a.head);
    }
    // Range is not applied (as before, and as mod_cgi): the whole body.
    s.write_all(&get("/fault/range", "Range: bytes=0-4\r\n")).expect("send");
    let a = read_answer(&mut s, false);
    assert_eq!(a.status, 200, "{:?}", a.head);
    assert_eq!(a.body, b"fault-backend ok\n");
    // HEAD: the head only.
    s.write_all(b"HEAD /fault/head HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let a = read_answer(&mut s, true);
    assert_eq!(a.status, 200, "{:?}", a.head);
    // 304 from httpd's conditions, and the statuses a script gives that
    // have no body: the head only, no length.
    let bodiless = [
        ("/fault/hdr?etag", "If-None-Match: \"v1\"\r\n", 304),
        ("/fault/hdr?s304", "", 304),
        ("/fault/hdr?s204", "", 204),
    ];
    for (path, extra, status) in bodiless {
        s.write_all(&get(path, extra)).expect("send");
        let a = read_answer(&mut s, true);
        assert_eq!(a.status, status, "{path}: {:?}", a.head);
        assert!(
            a.header("Content-Length").is_none() && a.header("Transfer-Encoding").is_none(),
            "{path}: {:?}",
            a.head
        );
    }
    // The connection is still good after them.
    s.write_all(&get("/fault/last", "Connection: close\r\n")).expect("send");
    let a = read_answer(&mut s, false);
    assert_eq!(a.body, b"fault-backend ok\n");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "bytes after the last response: {}", String::from_utf8_lossy(&rest));

    // Every request of the connection was served by one thread: the next
    // request was read by the worker that served the previous one.
    let log = apache.root().join("logs/tids.log");
    let ok = common::util::wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.lines().filter(|l| l.contains(" /fault/")).count() >= rounds + 7)
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ok, "access log:\n{text}");
    // The first line is the warm-up request on a connection of its own.
    let conn: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| l.contains(" /fault/") && !l.contains("/fault/x "))
        .filter_map(|l| {
            let mut w = l.split(' ');
            Some((w.next()?, w.next()?))
        })
        .collect();
    assert_eq!(conn.len(), rounds + 6, "{text}");
    // (The last, with Connection: close, counts no keep-alive of its own.)
    let keepalives: Vec<&str> = conn.iter().map(|(_, k)| *k).take(rounds + 5).collect();
    let expected: Vec<String> = (0..rounds + 5).map(|i| i.to_string()).collect();
    assert_eq!(keepalives, expected, "one connection's requests, in order:\n{text}");
    // Each request was read by the thread that wrote the response before
    // it, those that followed a head alone (HEAD, 304, 204) too.
    let first = conn[0].0;
    assert!(
        conn.iter().all(|(tid, _)| *tid == first),
        "the connection's requests went to several threads (each through the listener):\n{text}"
    );
    apache.assert_alive();
}

#[test]
fn the_worker_that_answered_reads_the_next_request_event() {
    check(Mpm::Event, "small_event");
}

#[test]
fn the_worker_that_answered_reads_the_next_request_prefork() {
    check(Mpm::Prefork, "small_prefork");
}
