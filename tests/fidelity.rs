//! Drop-in fidelity on CGI edge cases (issue 8): `nph-` scripts decided per
//! request by their name, 500 for missing or malformed CGI headers, and
//! `AcceptPathInfo Off`, as mod_cgi and the original mod_fastcgi behave.

mod common;

use common::fault::FaultSite;

/// The fault backend as `<htdocs>/fault`, as `<htdocs>/nph-fault` and as
/// `<htdocs>/off/fault` and `<htdocs>/on/fault` (in `AcceptPathInfo Off`
/// and `On` directories).
fn site(name: &str) -> FaultSite {
    FaultSite::start(
        name,
        &["fault", "nph-fault", "off/fault", "on/fault"],
        |t| {
            std::fs::create_dir_all(t.htdocs().join("off")).unwrap();
            std::fs::create_dir_all(t.htdocs().join("on")).unwrap();
            format!(
                "<Directory {htdocs}/off>\n    AcceptPathInfo Off\n</Directory>\n\
                 <Directory {htdocs}/on>\n    AcceptPathInfo On\n</Directory>\n",
                htdocs = t.htdocs().display()
            )
        },
        "info",
    )
}

/// The status code of `GET path`.
fn status(s: &FaultSite, path: &str) -> u16 {
    let bytes = s.raw_get(path);
    let line = bytes.split(|&b| b == b'\r').next().unwrap_or_default();
    String::from_utf8_lossy(line).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A script named `nph-*` writes the whole response itself, status line
/// included, without `-nph`; the same output from a script with another
/// name is a malformed header block (500).
#[test]
fn nph_is_decided_by_the_script_name() {
    let s = site("fid_nph");
    let bytes = s.raw_get("/nph-fault/nph");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 203 Non-Authoritative Information\r\n"), "{text}");
    assert!(text.contains("\r\nX-Nph: yes\r\n") && text.ends_with("\r\n\r\nnph body\n"), "{text}");
    // httpd added nothing of its own: no Date, no Server.
    assert!(!text.contains("\r\nDate:") && !text.contains("\r\nServer:"), "{text}");

    assert_eq!(status(&s, "/fault/nph"), 500);
    s.assert_log(&format!(
        "FastCGI: comm with server \"{}\" aborted: error parsing headers: malformed header 'HTTP/1.1 203 Non-Authoritative'",
        s.path("fault")
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
    let s = site("fid_500");
    let fault = s.path("fault").to_string();
    assert_eq!(status(&s, "/fault/close"), 500);
    s.assert_log(&format!("FastCGI: incomplete headers (0 bytes) received from server \"{fault}\""));
    assert_eq!(status(&s, "/fault/half-headers"), 500);
    s.assert_log(&format!("FastCGI: incomplete headers (36 bytes) received from server \"{fault}\""));
    assert_eq!(status(&s, "/fault/hdr?nocolon"), 500);
    s.apache.assert_alive();
}

/// `AcceptPathInfo Off` refuses path info with 404 (logged at info, as
/// mod_cgi logs it); without path info, and under `On` or `Default`, the
/// request is served.
#[test]
fn accept_path_info_off_is_404() {
    let s = site("fid_api");
    assert_eq!(status(&s, "/off/fault/ok"), 404);
    s.assert_log("FastCGI: AcceptPathInfo off disallows user's path /ok");
    assert_eq!(status(&s, "/off/fault"), 200);
    assert_eq!(status(&s, "/on/fault/ok"), 200);
    assert_eq!(status(&s, "/fault/ok"), 200);
    s.apache.assert_alive();
}
