//! Response header fidelity and safety (issue 14): one header line from the
//! application is one header line for the client, always. Each case is
//! checked on the raw bytes a client receives, not a parsed view: either a
//! clean 500 with a log line naming the server and the header, or exactly
//! the application's header lines, and never a line the application did
//! not send. The Apache child survives every case.

mod common;

use std::time::Duration;

use common::fault::{header_case, FaultSite};
use common::http::raw;

/// Header lines httpd itself adds to every response.
const SERVER_HEADERS: &[&str] = &["date", "server", "connection", "content-length", "transfer-encoding", "keep-alive"];

/// The fault backend as `<htdocs>/fault` and `<htdocs>/authfault`, the
/// latter behind the former as its access checker.
fn site(name: &str) -> FaultSite {
    FaultSite::start(
        name,
        &["fault", "authfault"],
        |t| {
            format!(
                "<Location /authfault>\n    FastCgiAccessChecker {}\n</Location>\n",
                t.htdocs().join("fault").display()
            )
        },
        "warn",
    )
}

/// The raw response to `GET path`.
fn raw_get(s: &FaultSite, path: &str) -> RawResponse {
    RawResponse::parse(&s.raw_get(path))
}

struct RawResponse {
    status: u16,
    /// Every header line as received, in order.
    lines: Vec<Vec<u8>>,
    body: Vec<u8>,
}

impl RawResponse {
    fn parse(bytes: &[u8]) -> RawResponse {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
        let mut lines = bytes[..end].split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec());
        let status_line = lines.next().unwrap_or_default();
        let status = String::from_utf8_lossy(&status_line)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {:?}", String::from_utf8_lossy(&status_line)));
        RawResponse { status, lines: lines.collect(), body: bytes[end + 4..].to_vec() }
    }

    /// The header lines that httpd did not add itself, sorted (httpd moves
    /// Content-Type to the end).
    fn app_lines(&self) -> Vec<Vec<u8>> {
        let mut lines: Vec<Vec<u8>> = self
            .lines
            .iter()
            .filter(|l| {
                let name = l.split(|&b| b == b':').next().unwrap_or_default();
                !SERVER_HEADERS.contains(&String::from_utf8_lossy(name).to_ascii_lowercase().as_str())
            })
            .cloned()
            .collect();
        lines.sort();
        lines
    }
}

/// The application's header lines for `case`, as a client must see them:
/// `Content-Type` first, then the case's lines without their CRLF.
fn expected_lines(case: &str) -> Vec<Vec<u8>> {
    let block = header_case(case).expect("a known case");
    let mut want = vec![b"Content-Type: text/plain".to_vec()];
    want.extend(
        block.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec()),
    );
    want.sort();
    want
}

fn shown(lines: &[Vec<u8>]) -> String {
    lines
        .iter()
        .map(|l| {
            let t = String::from_utf8_lossy(l);
            if t.len() > 80 {
                format!("{}... ({} bytes)", &t[..80], t.len())
            } else {
                t.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines up to the header-block limit pass through whole, one line each.
#[test]
fn long_and_many_header_lines_pass_through_intact() {
    let s = site("hdr_long");
    for case in ["long10k", "cookie60k", "inject", "many"] {
        let r = raw_get(&s, &format!("/fault/hdr?{case}"));
        assert_eq!(r.status, 200, "{case}: {}", shown(&r.lines));
        let got = r.app_lines();
        let want = expected_lines(case);
        assert!(got == want, "{case}: the client got\n{}\nbut the application sent\n{}", shown(&got), shown(&want));
        // Chunked or not, the body arrives.
        assert!(r.body.windows(9).any(|w| w == b"hdr body\n"), "{case}: body {:?}", String::from_utf8_lossy(&r.body));
    }
    // The line whose tail spells a header is one line, and nothing else
    // starts with that name.
    let r = raw_get(&s, "/fault/hdr?inject");
    assert!(!r.lines.iter().any(|l| l.starts_with(b"X-Injected")), "an injected header line reached the client");
    s.apache.assert_alive();
}

/// A long `Location` with a 302: the redirect keeps the whole URL.
#[test]
fn a_long_location_is_kept_whole() {
    let s = site("hdr_loc");
    let r = raw_get(&s, "/fault/hdr?location");
    assert_eq!(r.status, 302);
    let want = expected_lines("location").pop().unwrap();
    assert!(r.lines.contains(&want), "Location changed:\n{}", shown(&r.lines));
    s.apache.assert_alive();
}

/// What cannot be passed on faithfully is refused with 500 and a log line
/// naming the server and the header: a NUL byte, a folded continuation
/// line, a line with no colon, a line over the 128 KiB block limit.
#[test]
fn headers_that_cannot_pass_faithfully_are_500() {
    let s = site("hdr_bad");
    let cases = [
        ("nul", "NUL byte in header 'X-Bad'"),
        ("fold", "invalid header name '  continued'"),
        ("nocolon", "malformed header 'this is no header'"),
        ("line200k", "header block exceeds 131072 bytes"),
    ];
    for (case, why) in cases {
        let r = raw_get(&s, &format!("/fault/hdr?{case}"));
        assert_eq!(r.status, 500, "{case}: {}", shown(&r.lines));
        let leaked: Vec<_> = r.app_lines().into_iter().filter(|l| !l.starts_with(b"Content-Type: text/html")).collect();
        assert!(leaked.is_empty(), "{case}: application headers on the error page:\n{}", shown(&leaked));
        s.assert_log(&format!(
            "FastCGI: comm with server \"{}\" aborted: error parsing headers: {why}",
            s.path("fault")
        ));
    }
    s.apache.assert_alive();
    assert_eq!(raw_get(&s, "/fault/ok").status, 200);
}

/// A bare CR inside a value is dropped, as httpd's own line reader does for
/// mod_cgi: the value stays one header line, and the text after the CR
/// never becomes a header of its own.
#[test]
fn a_bare_cr_never_starts_a_header_line() {
    let s = site("hdr_cr");
    let r = raw_get(&s, "/fault/hdr?cr");
    assert_eq!(r.status, 200);
    assert_eq!(r.app_lines(), vec![b"Content-Type: text/plain".to_vec(), b"X-Cr: aSet-Cookie: evil=1".to_vec()]);
    assert!(!r.lines.iter().any(|l| l.starts_with(b"Set-Cookie")), "{}", shown(&r.lines));
    assert!(!r.lines.iter().any(|l| l.contains(&b'\r')), "a CR reached the client");
    s.apache.assert_alive();
}

/// `Status` from the header block still applies (httpd's scanner runs).
#[test]
fn status_and_ordinary_headers_still_apply() {
    let s = site("hdr_status");
    let req = "GET /fault/hdr?status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let bytes = raw(s.apache.port, req.as_bytes(), Duration::from_secs(20)).unwrap();
    assert!(bytes.starts_with(b"HTTP/1.1 299 Fine Thanks\r\n"), "{}", String::from_utf8_lossy(&bytes[..40]));
    let r = RawResponse::parse(&bytes);
    assert_eq!(r.app_lines(), vec![b"Content-Type: text/plain".to_vec(), b"X-Status: set".to_vec()]);
}

/// Authorizer variables: a 10 KiB one reaches the handler's environment
/// whole; a NUL refuses the request (500, logged), a bare CR is dropped.
#[test]
fn authorizer_variables_are_whole_or_refused() {
    let s = site("hdr_auth");
    let r = raw_get(&s, "/authfault/params?auth-long");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let want = format!("Long={}\n", "V".repeat(10 * 1024));
    assert!(String::from_utf8_lossy(&r.body).contains(&want), "the variable did not arrive whole");

    let r = raw_get(&s, "/authfault/params?auth-cr");
    assert_eq!(r.status, 200);
    // A line of its own (the body's first one now that it comes whole with
    // a Content-Length; it followed a chunk-size line when chunked).
    let lines = format!("\n{}", String::from_utf8_lossy(&r.body));
    assert!(lines.contains("\nCr=ab\n"), "{lines}");

    let r = raw_get(&s, "/authfault/params?auth-nul");
    assert_eq!(r.status, 500);
    s.assert_log(&format!(
        "FastCGI: comm with server \"{}\" aborted: error parsing headers: NUL byte in header 'Variable-Nul'",
        s.path("fault")
    ));
    s.apache.assert_alive();
}

/// A 20,000-byte stderr line reaches the error log whole (in pieces that
/// each carry the prefix and fit httpd's log line), never cut.
#[test]
fn a_long_stderr_line_is_logged_whole() {
    let s = site("hdr_stderr");
    let r = raw_get(&s, "/fault/stderr-long?20000");
    assert_eq!(r.status, 200);
    let prefix = format!("FastCGI: server \"{}\" stderr: ", s.path("fault"));
    let logged = || -> String {
        s.apache
            .error_log()
            .lines()
            .filter_map(|l| l.split_once(prefix.as_str()).map(|(_, rest)| rest.to_string()))
            .collect()
    };
    let want: String = "0123456789".repeat(2000);
    let whole = common::util::wait_until(Duration::from_secs(5), || logged() == want);
    assert!(whole, "stderr logged as {} bytes, expected {}", logged().len(), want.len());
}
