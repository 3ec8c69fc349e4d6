//! Drop-in fidelity on CGI edge cases (issue 8): `nph-` scripts decided per
//! request by their name, 500 for missing or malformed CGI headers, and
//! `AcceptPathInfo Off`, as mod_cgi and the original mod_fastcgi behave.

mod common;

use std::time::Duration;

use common::http::raw;
use common::{Apache, FaultServer, TestDir};

const LOG_WAIT: Duration = Duration::from_secs(5);

/// The fault backend as `<htdocs>/fault`, as `<htdocs>/nph-fault` and as
/// `<htdocs>/off/fault` (in an `AcceptPathInfo Off` directory).
struct Site {
    apache: Apache,
    _fault: FaultServer,
    t: TestDir,
}

impl Site {
    fn new(name: &str) -> Site {
        let t = TestDir::new(name);
        let fault = FaultServer::start(&t.sock("fault.sock"));
        let sock = fault.path().display().to_string();
        let mut conf = String::new();
        for path in ["fault", "nph-fault", "off/fault", "on/fault"] {
            conf.push_str(&format!(
                "FastCgiExternalServer {} -socket {sock} -idle-timeout 5\n",
                t.htdocs().join(path).display()
            ));
        }
        conf.push_str(&format!(
            "<Directory {htdocs}/off>\n    AcceptPathInfo Off\n</Directory>\n\
             <Directory {htdocs}/on>\n    AcceptPathInfo On\n</Directory>\n",
            htdocs = t.htdocs().display()
        ));
        std::fs::create_dir_all(t.htdocs().join("off")).unwrap();
        std::fs::create_dir_all(t.htdocs().join("on")).unwrap();
        let apache = Apache::builder(&t).log_level("info").config(&conf).start();
        Site { apache, _fault: fault, t }
    }

    fn raw_get(&self, path: &str) -> Vec<u8> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        raw(self.apache.port, req.as_bytes(), Duration::from_secs(20)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn status(&self, path: &str) -> u16 {
        let bytes = self.raw_get(path);
        let line = bytes.split(|&b| b == b'\r').next().unwrap_or_default();
        String::from_utf8_lossy(line).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    fn assert_log(&self, needle: &str) {
        let found = common::util::wait_until(LOG_WAIT, || self.apache.error_log().contains(needle));
        assert!(found, "no log line {needle:?} in:\n{}", self.apache.error_log());
    }
}

/// A script named `nph-*` writes the whole response itself, status line
/// included, without `-nph`; the same output from a script with another
/// name is a malformed header block (500).
#[test]
fn nph_is_decided_by_the_script_name() {
    let s = Site::new("fid_nph");
    let bytes = s.raw_get("/nph-fault/nph");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 203 Non-Authoritative Information\r\n"), "{text}");
    assert!(text.contains("\r\nX-Nph: yes\r\n") && text.ends_with("\r\n\r\nnph body\n"), "{text}");
    // httpd added nothing of its own: no Date, no Server.
    assert!(!text.contains("\r\nDate:") && !text.contains("\r\nServer:"), "{text}");

    assert_eq!(s.status("/fault/nph"), 500);
    s.assert_log(&format!(
        "FastCGI: comm with server \"{}\" aborted: error parsing headers: malformed header 'HTTP/1.1 203 Non-Authoritative'",
        s.t.htdocs().join("fault").display()
    ));
    // An nph- script's ordinary output is passed on as it is too.
    let bytes = s.raw_get("/nph-fault/ok");
    assert!(
        bytes.starts_with(b"Content-Type: text/plain\r\n\r\nfault-backend ok"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    s.apache.assert_alive();
}

/// No output, or output ending inside the header block: 500, with the
/// original's log line, as mod_cgi and mod_fastcgi answer.
#[test]
fn missing_or_incomplete_headers_are_500() {
    let s = Site::new("fid_500");
    let fault = s.t.htdocs().join("fault").display().to_string();
    assert_eq!(s.status("/fault/close"), 500);
    s.assert_log(&format!("FastCGI: incomplete headers (0 bytes) received from server \"{fault}\""));
    assert_eq!(s.status("/fault/half-headers"), 500);
    s.assert_log(&format!("FastCGI: incomplete headers (36 bytes) received from server \"{fault}\""));
    assert_eq!(s.status("/fault/hdr?nocolon"), 500);
    s.apache.assert_alive();
}

/// `AcceptPathInfo Off` refuses path info with 404 (logged at info, as
/// mod_cgi logs it); without path info, and under `On` or `Default`, the
/// request is served.
#[test]
fn accept_path_info_off_is_404() {
    let s = Site::new("fid_api");
    assert_eq!(s.status("/off/fault/ok"), 404);
    s.assert_log("FastCGI: AcceptPathInfo off disallows user's path /ok");
    assert_eq!(s.status("/off/fault"), 200);
    assert_eq!(s.status("/on/fault/ok"), 200);
    assert_eq!(s.status("/fault/ok"), 200);
    s.apache.assert_alive();
}
