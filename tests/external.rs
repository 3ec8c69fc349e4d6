//! FastCgiExternalServer end to end (issue 2): a real Apache in front of the
//! tutorial's flup app, a libfcgi C app and the fault-injecting backend.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use common::backends::CAddr;
use common::fault::{big_body, FaultSite, BIG_LEN};
use common::sha256::{fnv1a64_hex, pattern, sha256_hex};
use common::util::{free_port, write_file};
use common::{json, Apache, Body, CApp, FaultServer, FlupApp, Request, Response, TestDir};

const HELLO_H1: &str = "<h1>Hello world!</h1>";
const TARGET_TXT: &str = "the local redirect target\n";
const LOG_WAIT: Duration = Duration::from_secs(5);

/// Field order is drop order: Apache first, then the backends, then the dir.
struct Site {
    apache: Apache,
    flup: Option<FlupApp>,
    fault: Option<FaultServer>,
    t: TestDir,
}

impl Site {
    /// `<htdocs>/app.py` (exists, as in the tutorial) → flup;
    /// `<htdocs>/fault` (virtual) → the fault backend with `-idle-timeout 2`.
    fn new(name: &str, with_flup: bool, with_fault: bool, extra: &str) -> Site {
        let t = TestDir::new(name);
        write_file(&t.htdocs().join("target.txt"), TARGET_TXT);
        let mut conf = String::new();
        let flup = with_flup.then(|| {
            // The tutorial keeps app.py in the DocumentRoot.
            write_file(
                &t.htdocs().join("app.py"),
                std::fs::read(common::util::apps_dir().join("wsgi_app.py")).unwrap(),
            );
            let app = FlupApp::start(&t, "flup");
            conf.push_str(&format!(
                "FastCgiExternalServer {} -socket {}\n",
                t.htdocs().join("app.py").display(),
                app.socket.display()
            ));
            app
        });
        let fault = with_fault.then(|| {
            let f = FaultServer::start(&t.sock("fault.sock"));
            conf.push_str(&format!(
                "FastCgiExternalServer {} -socket {} -idle-timeout 2\n",
                t.htdocs().join("fault").display(),
                f.path().display()
            ));
            f
        });
        conf.push_str(extra);
        let apache = Apache::builder(&t).config(&conf).start();
        Site { apache, flup, fault, t }
    }

    fn app_path(&self) -> String {
        self.t.htdocs().join("app.py").display().to_string()
    }

    fn fault_path(&self) -> String {
        self.t.htdocs().join("fault").display().to_string()
    }

    fn fault(&self) -> &FaultServer {
        self.fault.as_ref().expect("site has no fault backend")
    }

    fn req(&self, r: Request) -> Response {
        self.apache.request(r)
    }

    fn get(&self, path: &str) -> Response {
        self.apache.get(path)
    }

    fn log(&self) -> String {
        self.apache.error_log()
    }

    fn assert_log(&self, needle: &str) {
        assert!(self.apache.wait_for_log(needle, LOG_WAIT), "error log lacks {needle:?}:\n{}", self.log());
    }

    /// After a fault: no crashed child, and normal requests still work.
    fn assert_survived(&self) {
        self.apache.assert_alive();
        if self.fault.is_some() {
            let r = self.get("/fault/ok");
            assert_eq!(r.status, 200, "normal request to the fault backend after a fault: {}", r.text());
            assert_eq!(r.text(), "fault-backend ok\n");
        }
        if self.flup.is_some() {
            let r = self.get("/app.py");
            assert_eq!(r.status, 200, "normal request to flup after a fault");
            assert!(r.text().contains(HELLO_H1));
        }
        let log = self.log();
        assert!(!log.contains("invalid result code"), "httpd logged a bad handler result:\n{log}");
    }
}

fn env_of(r: &Response) -> BTreeMap<String, String> {
    assert_eq!(r.status, 200, "env request failed: {}", r.text());
    json::parse_object(&r.text()).unwrap_or_else(|e| panic!("bad JSON from /env ({e}): {}", r.text()))
}

/// `key=value` lines from the echo apps.
fn kv(r: &Response) -> BTreeMap<String, String> {
    r.text().lines().filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

// ---------------------------------------------------------------- flup app

#[test]
fn get_serves_the_tutorial_hello_world() {
    let s = Site::new("get", true, false, "");
    let r = s.get("/app.py");
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert!(r.text().contains(HELLO_H1), "body: {}", r.text());
    assert!(r.text().contains("<title>Hello World!</title>"));
    assert_eq!(r.header("Content-Type"), Some("text/html"));
    // The same through keep-alive-less repeated requests (connection reuse
    // on the backend side must not mix responses up).
    for _ in 0..5 {
        let r = s.get("/app.py");
        assert_eq!(r.status, 200);
        assert!(r.text().contains(HELLO_H1));
    }
}

#[test]
fn query_string_reaches_the_app() {
    let s = Site::new("query", true, false, "");
    let env = env_of(&s.get("/app.py/env?a=1&b=two%20words&c=%2F"));
    assert_eq!(env["QUERY_STRING"], "a=1&b=two%20words&c=%2F");
    assert_eq!(env["REQUEST_METHOD"], "GET");
    let env = env_of(&s.get("/app.py/env"));
    assert_eq!(env.get("QUERY_STRING").map(String::as_str), Some(""), "QUERY_STRING must be empty, not missing");
}

/// What a WSGI app sees: httpd's own CGI variables for a request below the
/// server path (PATH_INFO is the rest of the URL).
#[test]
fn cgi_variables_seen_by_the_wsgi_app() {
    let s = Site::new("cgivars", true, false, "");
    let body = b"k=v&x=y".to_vec();
    let r = s.req(
        Request::post("/app.py/env/deeper/path?q=1", Body::Fixed(body.clone()))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Test-Header", "hello there")
            .header("User-Agent", "fastcgi-rs-tests/1"),
    );
    let env = env_of(&r);
    let port = s.apache.port.to_string();
    let expect = [
        ("SCRIPT_NAME", "/app.py"),
        ("PATH_INFO", "/env/deeper/path"),
        ("QUERY_STRING", "q=1"),
        ("REQUEST_METHOD", "POST"),
        ("SERVER_NAME", "127.0.0.1"),
        ("SERVER_PORT", port.as_str()),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
        ("CONTENT_LENGTH", "7"),
        ("HTTP_X_TEST_HEADER", "hello there"),
        ("HTTP_USER_AGENT", "fastcgi-rs-tests/1"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_URI", "/app.py/env/deeper/path?q=1"),
    ];
    for (k, v) in expect {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {env:#?}");
    }
    let host = format!("127.0.0.1:{port}");
    assert_eq!(env.get("HTTP_HOST"), Some(&host));
    assert_eq!(env.get("SCRIPT_FILENAME"), Some(&s.app_path()));
    assert_eq!(env.get("DOCUMENT_ROOT"), Some(&s.t.htdocs().display().to_string()));
    assert_eq!(
        env.get("PATH_TRANSLATED"),
        Some(&format!("{}/env/deeper/path", s.t.htdocs().display())),
        "PATH_TRANSLATED is the docroot + PATH_INFO"
    );
    assert!(env.contains_key("REMOTE_PORT"), "REMOTE_PORT missing: {env:#?}");
    assert!(env.get("SERVER_SOFTWARE").map(|v| v.contains("Apache")).unwrap_or(false));
}

/// httpoxy: a `Proxy:` request header must never become HTTP_PROXY.
#[test]
fn proxy_header_never_becomes_http_proxy() {
    let s = Site::new("httpoxy", true, true, "");
    let env = env_of(&s.req(Request::get("/app.py/env").header("Proxy", "http://evil.example:3128")));
    assert!(!env.contains_key("HTTP_PROXY"), "HTTP_PROXY reached the app: {env:#?}");
    // On the wire: the exact params the backend received.
    let r = s.req(Request::get("/fault/params?httpoxy").header("Proxy", "http://evil.example:3128"));
    assert_eq!(r.status, 200);
    let rec = s.fault().request_with_query("httpoxy").expect("backend saw the request");
    assert_eq!(rec.param("HTTP_PROXY"), None, "params sent: {:?}", rec.names());
    assert!(!r.text().contains("HTTP_PROXY"));
}

#[test]
fn post_3mib_is_streamed_intact() {
    let s = Site::new("post3m", true, false, "");
    let body = pattern(3 << 20, 11);
    let r = s.req(
        Request::post("/app.py/echo", Body::Fixed(body.clone())).header("Content-Type", "application/octet-stream"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let m = kv(&r);
    assert_eq!(m["length"], (3 << 20).to_string());
    assert_eq!(m["sha256"], sha256_hex(&body));
    assert_eq!(m["content_length"], (3 << 20).to_string());
    assert_eq!(m["method"], "POST");
}

/// A chunked request body: delivered intact, and the app gets a
/// CONTENT_LENGTH equal to the de-chunked length (the module spools it).
#[test]
fn chunked_post_is_delivered_with_content_length() {
    let s = Site::new("chunked", true, false, "");
    let body = pattern(1_000_003, 12);
    let r = s.req(Request::post("/app.py/echo", Body::chunked(&body, 7777)));
    assert_eq!(r.status, 200, "chunked POST: {}", r.text());
    let m = kv(&r);
    assert_eq!(m["sha256"], sha256_hex(&body));
    assert_eq!(m["length"], body.len().to_string());
    assert_eq!(m["content_length"], body.len().to_string(), "CONTENT_LENGTH for a chunked body");
    // Tiny and irregular chunks too.
    let small = pattern(5000, 13);
    let chunks: Vec<Vec<u8>> =
        small.chunks(1).take(10).map(|c| c.to_vec()).chain(small[10..].chunks(997).map(|c| c.to_vec())).collect();
    let r = s.req(Request::post("/app.py/echo", Body::Chunked(chunks)));
    let m = kv(&r);
    assert_eq!(m["sha256"], sha256_hex(&small));
    assert_eq!(m["content_length"], "5000");
}

#[test]
fn local_redirect_is_internal() {
    let s = Site::new("redirlocal", true, false, "");
    let r = s.get("/app.py/redirect-local");
    assert_eq!(r.status, 200, "internal redirect: {} {:?}", r.status, r.text());
    assert_eq!(r.text(), TARGET_TXT, "the client sees the target's content");
    assert_eq!(r.header("Location"), None);
    // A POST that redirects locally becomes a GET (a static file would
    // answer 405 to a POST).
    let r = s.req(Request::post("/app.py/redirect-local", Body::Fixed(b"x=1".to_vec())));
    assert_eq!(r.status, 200, "internal redirect after POST: {}", r.text());
    assert_eq!(r.text(), TARGET_TXT);
    // A local redirect back into the app itself.
    let r = s.get("/app.py/redirect-local?to=/app.py/env/again");
    let env = env_of(&r);
    assert_eq!(env["PATH_INFO"], "/env/again");
    assert_eq!(env.get("REDIRECT_URL").map(String::as_str), Some("/app.py/redirect-local"));
}

#[test]
fn absolute_redirect_is_302() {
    let s = Site::new("redirabs", true, false, "");
    let r = s.get("/app.py/redirect-abs");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("Location"), Some("http://example.com/x"));
    assert!(!r.text().contains("must not reach"), "script body leaked: {}", r.text());
}

#[test]
fn custom_status() {
    let s = Site::new("status", true, false, "");
    let r = s.get("/app.py/status");
    assert_eq!(r.status, 404);
    assert_eq!(r.reason, "Nobody Here", "the app's reason phrase, as mod_cgi keeps it");
    assert_eq!(r.text(), "custom status body\n", "the app's own body, not httpd's error page");
}

#[test]
fn set_cookie_repeated() {
    let s = Site::new("cookies", true, false, "");
    let r = s.get("/app.py/cookies");
    assert_eq!(r.status, 200);
    assert_eq!(r.headers_all("Set-Cookie"), vec!["a=1; Path=/", "b=2; Path=/"]);
    assert_eq!(r.text(), "cookies set\n");
}

#[test]
fn head_sends_no_body() {
    let s = Site::new("head", true, false, "");
    let r = s.req(Request::new("HEAD", "/app.py"));
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(r.extra.is_empty(), "a body followed the HEAD response: {:?}", String::from_utf8_lossy(&r.extra));
    assert_eq!(r.header("Content-Type"), Some("text/html"));
    s.assert_survived();
}

#[test]
fn stderr_is_logged() {
    let s = Site::new("stderr", true, true, "");
    let r = s.get("/app.py/stderr?m4711");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "logged\n");
    s.assert_log(&format!("FastCGI: server \"{}\" stderr: stderr-marker-m4711", s.app_path()));
    let r = s.get("/fault/stderr?f42");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "stderr sent\n");
    s.assert_log(&format!("FastCGI: server \"{}\" stderr: fault-stderr-f42", s.fault_path()));
}

// ------------------------------------------------------------ error cases

#[test]
fn missing_socket_is_503() {
    let t = TestDir::new("nosock");
    let server = t.htdocs().join("gone");
    let sock = t.sock("nobody-listens.sock");
    let tcp_server = t.htdocs().join("gone-tcp");
    let port = free_port(); // nobody listens there either
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiExternalServer {} -socket {}\nFastCgiExternalServer {} -host 127.0.0.1:{port} -appConnTimeout 2",
            server.display(),
            sock.display(),
            tcp_server.display()
        ))
        .start();
    let r = apache.get("/gone/x");
    assert_eq!(r.status, 503, "{}", r.text());
    // The line names the socket, which the server's path does not say.
    let needle = format!(
        "FastCGI: failed to connect to server \"{}\": connect() failed (tried unix:{})",
        server.display(),
        sock.display()
    );
    assert!(apache.wait_for_log(&needle, LOG_WAIT), "error log lacks {needle:?}:\n{}", apache.error_log());
    apache.assert_alive();
    // And it keeps answering 503, not worse.
    assert_eq!(apache.get("/gone/y").status, 503);
    // TCP: connection refused.
    let r = apache.get("/gone-tcp/x");
    assert_eq!(r.status, 503, "{}", r.text());
    let needle = format!("FastCGI: failed to connect to server \"{}\"", tcp_server.display());
    assert!(apache.wait_for_log(&needle, LOG_WAIT), "error log lacks {needle:?}:\n{}", apache.error_log());
    apache.assert_alive();
}

/// `FastCgiIpcDir`: a relative `-socket` name resolves against it.
#[test]
fn ipc_dir_resolves_relative_socket() {
    let t = TestDir::new("ipcdir");
    let fault = FaultServer::start(&t.sock("rel.sock"));
    let server = t.htdocs().join("rel");
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiIpcDir {}\nFastCgiExternalServer {} -socket rel.sock",
            t.join("sock").display(),
            server.display()
        ))
        .start();
    let r = apache.get("/rel/ok?ipc");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    assert_eq!(r.text(), "fault-backend ok\n");
    assert!(fault.request_with_query("ipc").is_some());
}

#[test]
fn idle_timeout_is_504() {
    let s = Site::new("idle", false, true, "");
    let r = s.req(Request::get("/fault/stall").timeout(Duration::from_secs(20)));
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        r.elapsed >= Duration::from_millis(1500) && r.elapsed < Duration::from_secs(10),
        "answered after {:?}, expected about 2 s",
        r.elapsed
    );
    s.assert_log(&format!("FastCGI: comm with server \"{}\" aborted: idle timeout (2 sec)", s.fault_path()));
    // The module gives the connection up.
    assert!(
        common::util::wait_until(LOG_WAIT, || s.fault().stalls_released() >= 1),
        "the backend connection was not closed after the idle timeout"
    );
    s.assert_survived();
}

#[test]
fn zero_bytes_is_500() {
    let s = Site::new("zero", false, true, "");
    let r = s.get("/fault/close");
    assert_eq!(r.status, 500, "{}", r.text());
    s.assert_log(&format!("FastCGI: incomplete headers (0 bytes) received from server \"{}\"", s.fault_path()));
    s.assert_survived();
}

#[test]
fn half_headers_is_500() {
    let s = Site::new("halfhdr", false, true, "");
    let r = s.get("/fault/half-headers");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(!r.text().contains("X-Half"), "partial headers leaked: {}", r.text());
    // "Content-Type: text/plain\r\nX-Half: ye" is 36 bytes.
    s.assert_log(&format!("FastCGI: incomplete headers (36 bytes) received from server \"{}\"", s.fault_path()));
    s.assert_survived();
}

#[test]
fn garbage_record_is_502_protocol_error() {
    let s = Site::new("garbage", false, true, "");
    let r = s.req(Request::get("/fault/garbage").timeout(Duration::from_secs(20)));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.elapsed < Duration::from_millis(1900), "the error must not wait for the idle timeout ({:?})", r.elapsed);
    s.assert_log("protocol error");
    s.assert_log(&format!(
        "FastCGI: comm with server \"{}\" aborted: protocol error: invalid version: 2 != FCGI_VERSION(1)",
        s.fault_path()
    ));
    s.assert_survived();
}

#[test]
fn huge_header_block_is_500() {
    let s = Site::new("hugehdr", false, true, "");
    let mark = s.log().len();
    let r = s.req(Request::get("/fault/huge-headers").timeout(Duration::from_secs(20)));
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.header("X-Filler-00000").is_none());
    // A log line naming the server explains the 500.
    let needle = format!("\"{}\"", s.fault_path());
    assert!(
        common::util::wait_until(LOG_WAIT, || s.log().get(mark..).map(|t| t.contains(&needle)).unwrap_or(false)),
        "no log line about the huge headers:\n{}",
        s.log()
    );
    s.assert_survived();
}

/// The backend dies inside a STDOUT record after the headers went out: the
/// client must be able to tell the response is truncated.
#[test]
fn death_after_headers_truncates_the_response() {
    let s = Site::new("diemid", false, true, "");
    let r = s.req(Request::get("/fault/die-mid-record").timeout(Duration::from_secs(15)));
    assert_eq!(r.status, 200);
    assert!(!r.timed_out, "the module did not end the response ({:?} framing)", r.framing);
    assert!(!r.complete, "a truncated response looked complete ({:?}, {} bytes)", r.framing, r.body.len());
    assert!(r.body.len() >= 10_000 && r.body[..10_000].iter().all(|&b| b == b'd'), "body: {} bytes", r.body.len());
    assert!(r.body.len() < 10_000 + 4000, "the cut record cannot have been delivered whole");
    std::thread::sleep(Duration::from_millis(300));
    let log = s.log();
    assert!(!log.contains("invalid result code"), "no 'invalid result code' noise:\n{log}");
    s.assert_survived();
}

/// Headers with Content-Length 100000, 5000 bytes, then silence: the idle
/// timeout ends it and the client sees less than promised.
#[test]
fn stall_after_headers_truncates_the_response() {
    let s = Site::new("stallhdr", false, true, "");
    let r = s.req(Request::get("/fault/stall-after-headers").timeout(Duration::from_secs(15)));
    assert_eq!(r.status, 200);
    assert!(!r.timed_out, "the module did not end the response after its idle timeout");
    assert!(!r.complete, "truncated response looked complete: {:?}", r.framing);
    assert!(r.body.len() <= 5000 && r.body.iter().all(|&b| b == b's'), "{} bytes", r.body.len());
    s.assert_log(&format!("FastCGI: comm with server \"{}\" aborted: idle timeout (2 sec)", s.fault_path()));
    let log = s.log();
    assert!(!log.contains("invalid result code"), "no 'invalid result code' noise:\n{log}");
    s.assert_survived();
}

/// EOF right after a complete response (no empty STDOUT, no END_REQUEST)
/// ends the response normally, as in the original.
#[test]
fn eof_without_end_request_ends_the_response() {
    let s = Site::new("eofnoend", false, true, "");
    let r = s.get("/fault/eof-no-end");
    assert_eq!(r.status, 200);
    assert!(r.complete, "{:?}", r.framing);
    assert_eq!(r.text(), "complete body without END_REQUEST\n");
    s.assert_survived();
}

#[test]
fn ten_mb_body_in_small_records() {
    let s = Site::new("big", false, true, "");
    let r = s.req(Request::get("/fault/big?rec=1000").timeout(Duration::from_secs(30)));
    assert_eq!(r.status, 200);
    assert!(r.complete, "{:?} after {} bytes", r.framing, r.body.len());
    assert_eq!(r.body.len(), BIG_LEN);
    assert_eq!(sha256_hex(&r.body), sha256_hex(big_body()));
    s.assert_survived();
}

#[test]
fn ten_mb_post_is_streamed_to_stdin() {
    let s = Site::new("bigpost", false, true, "");
    let body = pattern(10_000_000, 21);
    let r = s.req(Request::post("/fault/echo?bigpost", Body::Fixed(body.clone())).timeout(Duration::from_secs(30)));
    assert_eq!(r.status, 200, "{}", r.text());
    let m = kv(&r);
    assert_eq!(m["length"], "10000000");
    assert_eq!(m["sha256"], sha256_hex(&body));
    assert_eq!(m["content_length"], "10000000");
}

/// The exact params on the wire: httpd's CGI variables, no FCGI_ROLE (the
/// original never sent it), HTTP_* from request headers.
#[test]
fn params_on_the_wire() {
    let s = Site::new("params", false, true, "");
    let r = s.req(
        Request::get("/fault/params/sub?wire1")
            .header("X-Custom", "custom value")
            .header("Proxy", "http://evil.example/"),
    );
    assert_eq!(r.status, 200);
    let rec = s.fault().request_with_query("wire1").expect("backend saw the request");
    assert_eq!(rec.role, 1, "RESPONDER role");
    assert_eq!(rec.param("SCRIPT_NAME").as_deref(), Some("/fault"));
    assert_eq!(rec.param("PATH_INFO").as_deref(), Some("/params/sub"));
    assert_eq!(rec.param("SCRIPT_FILENAME"), Some(s.fault_path()));
    assert_eq!(rec.param("HTTP_X_CUSTOM").as_deref(), Some("custom value"));
    assert_eq!(rec.param("REQUEST_METHOD").as_deref(), Some("GET"));
    assert_eq!(rec.param("QUERY_STRING").as_deref(), Some("wire1"));
    assert_eq!(rec.param("HTTP_PROXY"), None);
    assert_eq!(rec.param("FCGI_ROLE"), None, "mod_fastcgi never sent FCGI_ROLE");
    assert_eq!(rec.param("CONTENT_LENGTH"), None, "no body, no CONTENT_LENGTH: {:?}", rec.param("CONTENT_LENGTH"));
    let mut names = rec.names();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate param names: {:?}", rec.names());
    assert_eq!(rec.stdin_len, 0);
}

/// `-nph`: the application writes the whole response, status line included.
#[test]
fn nph_passes_the_response_through() {
    let t = TestDir::new("nph");
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiExternalServer {} -socket {} -nph",
            t.htdocs().join("raw").display(),
            fault.path().display()
        ))
        .start();
    let r = apache.get("/raw/nph");
    assert_eq!(r.status, 203, "{:?} {}", r.headers, r.text());
    assert_eq!(r.reason, "Non-Authoritative Information");
    assert_eq!(r.header("X-Nph"), Some("yes"));
    assert_eq!(r.text(), "nph body\n");
    assert!(r.complete);
    apache.assert_alive();
}

// ------------------------------------------------------- libfcgi C app

#[test]
fn libfcgi_app_get_and_post_over_unix_socket() {
    let t = TestDir::new("capp");
    let app = CApp::start(&t, CAddr::Unix(t.sock("echo.sock")));
    let server = t.htdocs().join("echo.fcgi");
    let apache =
        Apache::builder(&t).config(&format!("FastCgiExternalServer {} -socket {}", server.display(), app.addr)).start();
    let r = apache.get("/echo.fcgi/env?c1");
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.lines().any(|l| l == "SCRIPT_NAME=/echo.fcgi"), "{text}");
    assert!(text.lines().any(|l| l == "PATH_INFO=/env"), "{text}");
    assert!(text.lines().any(|l| l == "QUERY_STRING=c1"), "{text}");
    for (len, seed) in [(0usize, 1u64), (1, 2), (65535, 3), (1 << 20, 4)] {
        let body = pattern(len, seed);
        let r = apache.request(Request::post("/echo.fcgi/post", Body::Fixed(body.clone())));
        assert_eq!(r.status, 200, "{}", r.text());
        let m = kv(&r);
        assert_eq!(m["length"], len.to_string());
        assert_eq!(m["fnv1a64"], fnv1a64_hex(&body));
        assert_eq!(m["content_length"], len.to_string());
    }
    // Many requests in a row: the app and the module keep up.
    for i in 0..50 {
        let r = apache.get(&format!("/echo.fcgi/bytes?{}", i * 100));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), i * 100);
    }
    apache.assert_alive();
}

#[test]
fn libfcgi_app_over_tcp_host() {
    let t = TestDir::new("capptcp");
    let port = free_port();
    let _app = CApp::start(&t, CAddr::Tcp(port));
    let server = t.htdocs().join("tcp.fcgi");
    let apache = Apache::builder(&t)
        .config(&format!("FastCgiExternalServer {} -host 127.0.0.1:{port}", server.display()))
        .start();
    let r = apache.get("/tcp.fcgi/env");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().lines().any(|l| l == "SCRIPT_NAME=/tcp.fcgi"), "{}", r.text());
    let body = pattern(300_000, 9);
    let r = apache.request(Request::post("/tcp.fcgi/post", Body::Fixed(body.clone())));
    let m = kv(&r);
    assert_eq!(m["length"], "300000");
    assert_eq!(m["fnv1a64"], fnv1a64_hex(&body));
    let r = apache.get("/tcp.fcgi/bytes?1048576");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1 << 20);
    assert!(r.complete);
}

// ------------------------------------------------------------ -pass-header

#[test]
fn pass_header_authorization() {
    let t = TestDir::new("passhdr");
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let with = t.htdocs().join("with");
    let without = t.htdocs().join("without");
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiExternalServer {} -socket {} -pass-header Authorization -pass-header X-Custom\n\
             FastCgiExternalServer {} -socket {}",
            with.display(),
            fault.path().display(),
            without.display(),
            fault.path().display()
        ))
        .start();
    let auth = "Basic dXNlcjpwYXNz";
    let r = apache.request(Request::get("/with/params?w").header("Authorization", auth).header("X-Custom", "c1"));
    assert_eq!(r.status, 200);
    let rec = fault.request_with_query("w").expect("request reached the backend");
    assert_eq!(rec.param("HTTP_AUTHORIZATION").as_deref(), Some(auth));
    assert_eq!(rec.param("HTTP_X_CUSTOM").as_deref(), Some("c1"));
    let n = rec.names().iter().filter(|n| *n == "HTTP_X_CUSTOM").count();
    assert_eq!(n, 1, "HTTP_X_CUSTOM sent {n} times");

    let r = apache.request(Request::get("/without/params?wo").header("Authorization", auth));
    assert_eq!(r.status, 200);
    let rec = fault.request_with_query("wo").expect("request reached the backend");
    assert_eq!(rec.param("HTTP_AUTHORIZATION"), None, "Authorization must not pass without -pass-header");
    // Without the header in the request, nothing is invented.
    let r = apache.get("/with/params?none");
    assert_eq!(r.status, 200);
    let rec = fault.request_with_query("none").expect("request reached the backend");
    assert_eq!(rec.param("HTTP_AUTHORIZATION"), None);
}

// --------------------------------------------------------------- handlers

#[test]
fn set_handler_in_location() {
    let t = TestDir::new("sethandler");
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let app = t.join("cgi-bin/sh-app");
    let apache = Apache::builder(&t)
        .config(&format!(
            "Alias /sh {app}\n<Directory {bin}>\n    Require all granted\n</Directory>\n\
             <Location /sh>\n    SetHandler fastcgi-script\n</Location>\n\
             FastCgiExternalServer {app} -socket {sock}",
            app = app.display(),
            bin = t.join("cgi-bin").display(),
            sock = fault.path().display()
        ))
        .start();
    let r = apache.get("/sh/ok?sh");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "fault-backend ok\n");
    let rec = fault.request_with_query("sh").expect("backend saw it");
    assert_eq!(rec.param("SCRIPT_NAME").as_deref(), Some("/sh"));
    assert_eq!(rec.param("PATH_INFO").as_deref(), Some("/ok"));
}

#[test]
fn add_handler_by_extension() {
    let t = TestDir::new("addhandler");
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let server = t.htdocs().join("hello.fcgi");
    let apache = Apache::builder(&t)
        .config(&format!(
            "AddHandler fastcgi-script .fcgi\nFastCgiExternalServer {} -socket {}",
            server.display(),
            fault.path().display()
        ))
        .start();
    let r = apache.get("/hello.fcgi/ok");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "fault-backend ok\n");
    let r = apache.get("/hello.fcgi");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "fault-backend ok\n");
}

/// No SetHandler/AddHandler at all: the fixups hook routes requests whose
/// filename maps to a defined server; a filename that merely shares a
/// prefix (no `/` boundary) is not routed.
#[test]
fn defined_server_needs_no_handler_directive() {
    let t = TestDir::new("nohandler");
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let server = t.htdocs().join("virt");
    write_file(&t.htdocs().join("virtual.txt"), "a static neighbour\n");
    let apache = Apache::builder(&t)
        .config(&format!("FastCgiExternalServer {} -socket {}", server.display(), fault.path().display()))
        .start();
    let r = apache.get("/virt/ok?nh1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "fault-backend ok\n");
    let r = apache.get("/virt?nh2");
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = fault.request_with_query("nh2").expect("backend saw it");
    assert_eq!(rec.param("PATH_INFO"), None, "no PATH_INFO for the server path itself");
    // Prefix without a '/' boundary: a static file, not the server.
    let before = fault.requests().len();
    let r = apache.get("/virtual.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "a static neighbour\n");
    let r = apache.get("/virtx/ok");
    assert_eq!(r.status, 404, "/virtx must not map to /virt");
    assert_eq!(fault.requests().len(), before, "the backend got requests it should not have");
    apache.assert_alive();
}

/// Every fault in a row against one Apache (event MPM): the child survives
/// each of them.
#[test]
fn child_survives_all_faults_in_a_row() {
    let s = Site::new("allfaults", true, true, "");
    for path in [
        "/fault/close",
        "/fault/half-headers",
        "/fault/garbage",
        "/fault/huge-headers",
        "/fault/die-mid-record",
        "/fault/stall",
        "/fault/stall-after-headers",
    ] {
        let r = s.req(Request::get(path).timeout(Duration::from_secs(20)));
        assert!(r.status >= 200, "{path}: {}", r.status);
        s.assert_survived();
    }
    s.assert_survived();
}

/// A client that disconnects mid-response frees the backend connection at
/// once (the backend is still streaming; the module must stop reading it).
#[test]
fn client_gone_frees_the_backend_connection() {
    use std::io::{Read, Write};
    let s = Site::new("clientgone", false, true, "");
    let released = s.fault().stalls_released();
    {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", s.apache.port)).unwrap();
        c.write_all(b"GET /fault/stream-forever HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "no response started");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    assert!(
        common::util::wait_until(Duration::from_millis(1500), || s.fault().stalls_released() > released),
        "the backend connection was not freed when the client went away"
    );
    s.assert_survived();
}

/// `-flush`: each chunk goes to the client as it arrives.
#[test]
fn flush_option_streams_each_chunk() {
    use std::io::{Read, Write};
    let t = TestDir::new("flush");
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let server = t.htdocs().join("flushed");
    let apache = Apache::builder(&t)
        .config(&format!("FastCgiExternalServer {} -socket {} -flush", server.display(), fault.path().display()))
        .start();
    let mut c = std::net::TcpStream::connect(("127.0.0.1", apache.port)).unwrap();
    let start = std::time::Instant::now();
    c.write_all(b"GET /flushed/drip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("first") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let first_at = start.elapsed();
    assert!(String::from_utf8_lossy(&got).contains("first"), "{}", String::from_utf8_lossy(&got));
    assert!(first_at < Duration::from_millis(1000), "first chunk arrived after {first_at:?} (backend pauses 1.5 s)");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    got.extend_from_slice(&rest);
    assert!(String::from_utf8_lossy(&got).contains("second"));
}

/// A site whose fault backend is `/plain` (as FaultSite maps it) and
/// `/kept` (`-keep-conn always`, `-idle-timeout 30`): a read that waited
/// for its low-water mark and then timed out would show as 30 s.
fn announced_site(name: &str) -> FaultSite {
    FaultSite::start(
        name,
        &["plain"],
        |t| {
            format!(
                "FastCgiExternalServer {} -socket {} -keep-conn always -idle-timeout 30\n",
                t.htdocs().join("kept").display(),
                t.sock("fault.sock").display()
            )
        },
        "info",
    )
}

/// A body the application announces (Content-Length) is read a buffer at
/// a time while that much is still owed; it arrives whole, from records of
/// 8 KiB (libfcgi's) or of 1,000 bytes, on new and on kept connections.
#[test]
fn an_announced_body_arrives_whole() {
    let s = announced_site("announced");
    for path in ["/plain/announced?len=3000000", "/kept/announced?len=3000000&piece=1000", "/kept/announced?len=65537"]
    {
        for _ in 0..2 {
            let r = s.apache.request(Request::get(path).timeout(Duration::from_secs(30)));
            assert_eq!(r.status, 200, "{path}");
            assert!(r.complete, "{path}: {:?} after {} bytes", r.framing, r.body.len());
            let len: usize = path.split("len=").nth(1).and_then(|v| v.split('&').next()?.parse().ok()).unwrap();
            assert_eq!(r.body.len(), len, "{path}");
            assert_eq!(sha256_hex(&r.body), sha256_hex(&big_body()[..len]), "{path}");
        }
    }
    assert!(s.fault.requests().iter().any(|r| r.keep_conn), "no request asked to keep its connection");
    s.apache.assert_alive();
}

/// An application that sends less than it announced, on a kept
/// connection: the read that waited for more takes what came after a
/// short wait, so the response ends (truncated, as the application left
/// it) within a second, not after `-idle-timeout` (30 s); the connection
/// goes back to the pool reading as a fresh one, and the next small
/// answer on it comes at once.
#[test]
fn a_body_shorter_than_announced_ends_at_once() {
    let s = announced_site("announced_short");
    let began = std::time::Instant::now();
    let r = s.apache.request(Request::get("/kept/announced?len=1000000&send=300000").timeout(Duration::from_secs(60)));
    let took = began.elapsed();
    assert_eq!(r.status, 200);
    assert!(!r.complete, "a response 700,000 bytes short looked complete: {:?}", r.framing);
    assert_eq!(r.body.len(), 300_000);
    assert!(took < Duration::from_secs(3), "the short response took {took:?}");
    for _ in 0..5 {
        let began = std::time::Instant::now();
        let r = s.apache.get("/kept/ok");
        assert_eq!((r.status, r.text().as_str()), (200, "fault-backend ok\n"));
        assert!(began.elapsed() < Duration::from_secs(2), "a small answer after it took {:?}", began.elapsed());
    }
    assert!(s.fault.connections() < s.fault.requests().len(), "no connection was reused");
    s.apache.assert_alive();
}

/// A slow application that announced its length: each piece reaches the
/// client within the low-water wait (0.1 s) of its arrival, not once a
/// buffer's worth (64 KiB, here 2 s later) has come.
#[test]
fn an_announced_body_that_comes_slowly_is_not_held_back() {
    let s = announced_site("announced_slow");
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.apache.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let began = std::time::Instant::now();
    c.write_all(b"GET /kept/announced?len=400000&piece=20000&ms=500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    // The head and the first piece, then the second piece (sent 0.5 s in).
    let second = loop {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        let body = got.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |at| got.len() - at - 4);
        if body > 20_000 {
            break began.elapsed();
        }
    };
    assert!(second < Duration::from_millis(1400), "the second piece reached the client after {second:?}");
    c.read_to_end(&mut got).unwrap();
    let at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(sha256_hex(&got[at..]), sha256_hex(&big_body()[..400_000]));
}
