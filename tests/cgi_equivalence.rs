//! Equivalence with mod_cgi (issue 8): the CGI scripts in `tests/cgi/` run
//! once through mod_cgi and once through our module, on the same Apache, and
//! the two answers must be the same: raw status line, header lines (less
//! Date, Server, Keep-Alive, Connection) and body. The only allowed
//! differences are the ones listed in docs/behaviour.md, "Differences from mod_cgi";
//! each is declared in the table below ([`Doc`]) with the fields it may change,
//! and the test checks that the documented behaviour is still what we see.
//!
//! The set-up, one Apache (event MPM, then prefork) with mod_cgi and our module loaded:
//!
//! - the scripts are copied into `<dir>/cgi-bin`, and `<dir>/fcgi-bin` is a
//!   symlink to that directory: the same files under two names;
//! - `/cgi/` is `ScriptAlias`ed to `cgi-bin`: mod_cgi runs the scripts;
//! - `/fcgi/` is `Alias`ed to `fcgi-bin`, and every script there is a
//!   `FastCgiExternalServer` of its own, all on one socket where Debian's
//!   `fcgiwrap` (started here, as www-data) listens. Our module sends
//!   SCRIPT_FILENAME = `<dir>/fcgi-bin/<script>`, and fcgiwrap executes the
//!   file SCRIPT_FILENAME names, with the CGI environment from the params.
//!   One line per script is how a mod_fastcgi site maps FastCGI servers onto
//!   URLs (one path each), so the URL layout (SCRIPT_NAME, PATH_INFO) is the
//!   one mod_cgi sees. Two directory names are needed because a defined
//!   server takes every request whose file is its path, whatever the URL
//!   (our fixups hook gives it the fastcgi-script handler), so `/cgi/` must
//!   not reach the same file name.
//!
//! fcgiwrap runs with `-f` (stderr over FastCGI, as Debian's unit starts it),
//! so the scripts' stderr reaches our module and Apache's error log, as with
//! mod_cgi; both logs are checked for it.
//!
//! Both sides' answers are normalized the same way before comparison: the
//! path names that differ by construction (`/fcgi/` vs `/cgi/`, `fcgi-bin`
//! vs `cgi-bin`, `-fcgi` vs `-cgi` in file names) are rewritten to the mod_cgi
//! spelling, and a Content-Length follows its body's normalization.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::sha256::pattern;
use common::util::{self, write_file};
use common::{Apache, Body, Mpm, Request, Response, TestDir};

const FCGIWRAP: &str = "/usr/sbin/fcgiwrap";
const MODULES: &str = "/usr/lib/apache2/modules";
/// Headers that are never compared: they depend on time, build or connection.
const IGNORED_HEADERS: &[&str] = &["date", "server", "keep-alive", "connection"];
/// How httpd frames a body it generates the head for (not an `nph-`
/// script's own head): a Content-Length when the whole body is at hand before
/// the head goes out, else chunked. That depends on timing (mod_cgi reads the
/// script's pipe, we forward FastCGI records as they come, fcgiwrap buffers),
/// not on what the script said, so the framing is not compared; the decoded
/// body and whether it arrived complete are (docs/behaviour.md: [`FRAMING_ROW`]).
const FRAMING_HEADERS: &[&str] = &["content-length", "transfer-encoding"];
const FRAMING_ROW: &str = "framing of a response whose head httpd writes";

// ------------------------------------------------------------------ fcgiwrap

/// Debian's fcgiwrap on a Unix socket, as www-data (when the tests run as
/// root), stopped by PID.
struct FcgiWrap {
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

fn www_data() -> Option<(u32, u32)> {
    if !util::is_root() {
        return None;
    }
    // SAFETY: getpwnam with a valid C string; the fields are copied out at once.
    let pw = unsafe { libc::getpwnam(c"www-data".as_ptr()) };
    assert!(!pw.is_null(), "no www-data user");
    // SAFETY: pw is non-null and points to libc's static passwd entry.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

impl FcgiWrap {
    fn start(t: &TestDir) -> FcgiWrap {
        assert!(Path::new(FCGIWRAP).exists(), "{FCGIWRAP} is missing: `make deps` installs Debian's fcgiwrap package");
        // A directory the www-data fcgiwrap may create its socket in.
        let dir = t.join("wrap");
        util::mkdir_0755(&dir);
        let id = www_data();
        if let Some((uid, gid)) = id {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown socket dir");
        }
        let socket = dir.join("fcgiwrap.sock");
        let log = t.join("logs/fcgiwrap.log");
        let out = fs::File::create(&log).expect("fcgiwrap log");
        let err = out.try_clone().expect("fcgiwrap log clone");
        let mut cmd = Command::new(FCGIWRAP);
        // One process (no -c): requests are sent one at a time anyway, and a
        // preforking fcgiwrap's parent would leave its children behind on SIGTERM.
        cmd.arg("-f").arg("-s").arg(format!("unix:{}", socket.display()));
        // The scripts' environment is the request's plus fcgiwrap's own: keep
        // the latter to a PATH, as Apache's is for mod_cgi.
        cmd.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        if let Some((uid, gid)) = id {
            cmd.uid(uid).gid(gid);
        }
        // SAFETY: setsid() is async-signal-safe; it keeps Apache's and the
        // terminal's process-group signals away.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {FCGIWRAP}: {e}"));
        let ready = util::wait_until(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_))) || std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        if !ready || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fcgiwrap did not come up on {}:\n{}", socket.display(), util::read_lossy(&log));
        }
        FcgiWrap { socket, log, child: Some(child) }
    }
}

impl Drop for FcgiWrap {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // fcgiwrap only notices SIGTERM at its next request: a short grace, then SIGKILL.
            util::stop_child(&mut c, Duration::from_millis(500), false);
        }
        let _ = fs::remove_file(&self.socket);
    }
}

// ------------------------------------------------------------------ the site

/// Field order is drop order: Apache first, then fcgiwrap, then the files.
struct Site {
    apache: Apache,
    wrap: FcgiWrap,
    t: TestDir,
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cgi")
}

/// Copies the scripts into `<dir>/cgi-bin` (0755) and returns their names.
fn install_scripts(t: &TestDir) -> Vec<String> {
    let bin = t.join("cgi-bin");
    let mut names = Vec::new();
    for e in fs::read_dir(scripts_dir()).expect("tests/cgi") {
        let e = e.expect("dir entry");
        let name = e.file_name().to_string_lossy().into_owned();
        let src = e.path();
        let mode = fs::metadata(&src).expect("stat script").permissions().mode();
        assert!(mode & 0o111 != 0, "tests/cgi/{name} must be executable in git (chmod +x)");
        let dest = bin.join(&name);
        fs::copy(&src, &dest).expect("copy script");
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).expect("chmod script");
        names.push(name);
    }
    names.sort();
    names
}

fn config(t: &TestDir, scripts: &[String], socket: &Path) -> String {
    let dir = t.path().display().to_string();
    let htdocs = t.htdocs().display().to_string();
    let mut c = String::new();
    for (name, file) in [
        ("cgi_module", "mod_cgi.so"),
        ("include_module", "mod_include.so"),
        ("auth_basic_module", "mod_auth_basic.so"),
        ("authn_file_module", "mod_authn_file.so"),
        ("authz_user_module", "mod_authz_user.so"),
    ] {
        let _ = writeln!(c, "LoadModule {name} {MODULES}/{file}");
    }
    let _ = writeln!(
        c,
        r#"
ScriptAlias /cgi/ "{dir}/cgi-bin/"
Alias /fcgi/ "{dir}/fcgi-bin/"
<Directory "{dir}/cgi-bin">
    Require all granted
</Directory>
<Directory "{dir}/fcgi-bin">
    Require all granted
</Directory>
# What mod_env adds to the environment (only for these scripts: for the
# others the table is empty until the gateway fills it, which ours encodes
# without checking names); Authorization passed on request.
<FilesMatch "^env(-passauth|-dump-setenv)?\.pl$">
    SetEnv EQUIV_SETENV "set by mod_env"
</FilesMatch>
<Files "env-passauth.pl">
    CGIPassAuth On
    AuthType Basic
    AuthName "equiv"
    AuthUserFile "{dir}/conf/htpasswd"
    Require valid-user
</Files>
# AcceptPathInfo per script (the same file names under both prefixes).
<Files "pi-off.sh">
    AcceptPathInfo Off
</Files>
<Files "pi-on.sh">
    AcceptPathInfo On
</Files>
# SSI: a page that includes a script.
<Directory "{htdocs}">
    Options +Includes
</Directory>
AddType text/html .shtml
AddOutputFilter INCLUDES .shtml
# Action: documents handled by a script.
<Directory "{htdocs}/act-cgi">
    SetHandler equiv-action-cgi
</Directory>
<Directory "{htdocs}/act-fcgi">
    SetHandler equiv-action-fcgi
</Directory>
Action equiv-action-cgi /cgi/action.sh
Action equiv-action-fcgi /fcgi/action.sh
"#
    );
    c.push_str("# Every script under /fcgi/ is an external server on fcgiwrap's socket.\n");
    for s in scripts {
        let _ = writeln!(c, "FastCgiExternalServer {dir}/fcgi-bin/{s} -socket {}", socket.display());
    }
    // Name-based virtual hosts: the first (the default) carries the rewrite
    // rules; the others differ only in AllowEncodedSlashes (server scope).
    let rewrite = "    RewriteEngine On\n    RewriteRule ^/rw/(f?cgi)/(.*)$ /$1/env.pl/$2 [PT]\n";
    let _ = writeln!(c, "<VirtualHost *:*>\n    ServerName 127.0.0.1\n{rewrite}</VirtualHost>");
    for (host, mode) in [("nodecode.equiv", "NoDecode"), ("decode.equiv", "On")] {
        let _ = writeln!(c, "<VirtualHost *:*>\n    ServerName {host}\n    AllowEncodedSlashes {mode}\n</VirtualHost>");
    }
    c
}

impl Site {
    fn new(name: &str, mpm: Mpm) -> Site {
        let t = TestDir::new(name);
        let scripts = install_scripts(&t);
        std::os::unix::fs::symlink(t.join("cgi-bin"), t.join("fcgi-bin")).expect("symlink fcgi-bin");
        let htdocs = t.htdocs();
        write_file(&htdocs.join("target.txt"), "the local redirect target\n");
        // user:pass, as {SHA} (base64 of the SHA-1 of "pass").
        write_file(&t.join("conf/htpasswd"), "user:{SHA}nU4eI71bcnBGqeO0t9tXvY1u5oQ=\n");
        for p in ["cgi", "fcgi"] {
            write_file(
                &htdocs.join(format!("ssi-{p}.shtml")),
                format!("<p>before</p>\n<!--#include virtual=\"/{p}/ssi-part.sh?from=ssi\" -->\n<p>after</p>\n"),
            );
            write_file(&htdocs.join(format!("act-{p}/doc.txt")), "a document for the action\n");
        }
        let wrap = FcgiWrap::start(&t);
        let conf = config(&t, &scripts, &wrap.socket);
        let apache = Apache::builder(&t).mpm(mpm).config(&conf).start();
        Site { apache, wrap, t }
    }
}

// ------------------------------------------------------------------ the cases

/// A documented difference (docs/behaviour.md, "Differences from mod_cgi"): what our
/// side answers instead, and which fields are not compared for it.
#[derive(Clone, Copy)]
struct Doc {
    /// The docs/behaviour.md row this is: how its first column begins.
    row: &'static str,
    /// Our status, checked (it is documented); the status line is then not compared.
    status: Option<u16>,
    /// Header names (lower case) not compared; `["*"]`: none is.
    headers: &'static [&'static str],
    /// The body (and whether it arrived complete) is not compared.
    body: bool,
}

/// A case's request: `{p}` in the path is `cgi` or `fcgi`.
struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    doc: Option<Doc>,
}

fn case(name: &'static str, path: &'static str) -> Case {
    Case { name, method: "GET", path, headers: Vec::new(), body: None, doc: None }
}

impl Case {
    fn method(mut self, m: &'static str) -> Case {
        self.method = m;
        self
    }
    fn header(mut self, k: &'static str, v: &str) -> Case {
        self.headers.push((k, v.to_string()));
        self
    }
    fn body(mut self, b: Vec<u8>) -> Case {
        if self.method == "GET" {
            self.method = "POST";
        }
        self.body = Some(b);
        self
    }
    fn documented(mut self, d: Doc) -> Case {
        self.doc = Some(d);
        self
    }
    fn request(&self, prefix: &str) -> Request {
        let mut r = Request::new(self.method, &self.path.replace("{p}", prefix)).timeout(Duration::from_secs(20));
        for (k, v) in &self.headers {
            r = r.header(k, v);
        }
        if let Some(b) = &self.body {
            r = r.body(Body::Fixed(b.clone()));
        }
        r
    }
}

/// fcgiwrap answers a script that wrote nothing to stdout with its own 502
/// response ("An error occurred while reading CGI reply (no response
/// received)"), where mod_cgi answers 500.
const FCGIWRAP_NO_OUTPUT: Doc =
    Doc { row: "a script that writes nothing to stdout", status: Some(502), headers: &["content-type"], body: true };

/// The whole environment of `path` on virtual host `host`, asked with
/// header names that httpd exports changed (lower case, `-`, a leading
/// digit) or not at all (`.`, `_`).
fn env_dump(host: &str, path: &'static str) -> Case {
    case(leak(format!("whole environment {path} on {host}")), path)
        .header("Host", host)
        .header("x-lower-case", "a")
        .header("X-Dotted.Name", "b")
        .header("X_Under", "c")
        .header("1-Digit", "d")
        .header("User-Agent", "equiv/1.0")
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        // Plain responses and the CGI environment.
        case("plain", "/{p}/plain.sh"),
        case("crlf header block", "/{p}/crlf.sh"),
        case("script's own Content-Length", "/{p}/clen.sh"),
        case("environment", "/{p}/env.pl?a=1&b=two%20words").header("X-Equiv", "hello"),
        case("environment, Proxy header (httpoxy)", "/{p}/env.pl").header("Proxy", "http://evil.example:3128"),
        case("environment, path info", "/{p}/env.pl/some/where%20else?q=1"),
        // Every variable, with header names of every shape: httpd's own
        // names only (a host without mod_rewrite, which adds SCRIPT_URL),
        // then with mod_rewrite's and mod_env's.
        env_dump("decode.equiv", "/{p}/env-dump.pl?x=1"),
        env_dump("127.0.0.1", "/{p}/env-dump-setenv.pl/info"),
        case("environment, Authorization", "/{p}/env.pl").header("Authorization", "Basic dXNlcjpwYXNz"),
        case("environment, Basic auth, CGIPassAuth On", "/{p}/env-passauth.pl")
            .header("Authorization", "Basic dXNlcjpwYXNz"),
        case("Basic auth, no credentials", "/{p}/env-passauth.pl"),
        case("ISINDEX query as argv", "/{p}/argv.sh?word1+word2").documented(Doc {
            row: "an ISINDEX query",
            status: None,
            headers: &[],
            body: true,
        }),
        case("drip-fed output", "/{p}/drip.sh"),
        case("1 MiB output", "/{p}/big.pl"),
        // nph- scripts: their output goes to the client as it is.
        case("nph plain", "/{p}/nph-plain.sh"),
        case("nph with interim 1xx responses", "/{p}/nph-interim.sh"),
        case("nph drip-fed", "/{p}/nph-drip.sh"),
        case("nph folded headers", "/{p}/nph-folded.sh"),
        case("nph with stderr", "/{p}/nph-stderr.sh"),
        case("nph 410, own Content-Length", "/{p}/nph-status.pl"),
        case("nph HEAD", "/{p}/nph-plain.sh").method("HEAD"),
        // Status:
        case("Status with reason", "/{p}/status-reason.sh"),
        case("Status without reason", "/{p}/status-noreason.sh"),
        case("Status unknown code with reason", "/{p}/status-custom.sh"),
        case("Status unknown code without reason", "/{p}/status-custom-noreason.sh"),
        case("Status invalid", "/{p}/status-invalid.sh"),
        case("Status 204 with a body", "/{p}/status-204.sh"),
        case("Status 304 from the script", "/{p}/status-304.sh"),
        // Location:
        case("Location local", "/{p}/location-local.sh"),
        case("Location local, POST", "/{p}/location-local.sh").body(b"k=v".to_vec()),
        case("Location local to a script", "/{p}/location-local-script.sh?orig=1"),
        case("Location absolute", "/{p}/location-absolute.sh"),
        case("Location absolute with Status", "/{p}/location-status.sh"),
        case("Location local with Status 303", "/{p}/location-local-status.sh"),
        // Header oddities.
        case("no Content-Type", "/{p}/no-ctype.sh"),
        case("duplicate headers", "/{p}/dup-headers.pl"),
        case("invalid header names", "/{p}/bad-names.sh").documented(Doc {
            row: "an invalid header name",
            status: Some(500),
            headers: &[],
            body: true,
        }),
        case("folded CGI header", "/{p}/folded.sh"),
        case("400 header lines", "/{p}/many-headers.pl"),
        case("header line of 8000 bytes", "/{p}/long-header.pl?len=8000"),
        case("header line of 10000 bytes", "/{p}/long-header.pl?len=10000").documented(Doc {
            row: "a header line over 8 KiB",
            status: Some(200),
            headers: &["*"],
            body: true,
        }),
        case("header line of 100000 bytes", "/{p}/long-header.pl?len=100000").documented(Doc {
            row: "a header line over 8 KiB",
            status: Some(200),
            headers: &["*"],
            body: true,
        }),
        case("NUL in a header value", "/{p}/nul-header.pl").documented(Doc {
            row: "a NUL byte in a header value",
            status: Some(500),
            headers: &["*"],
            body: true,
        }),
        case("bare CR in a header line", "/{p}/bare-cr.pl").documented(Doc {
            row: "a bare CR inside a header line",
            status: Some(500),
            headers: &["*"],
            body: true,
        }),
        // Broken header blocks: 500.
        case("garbage headers", "/{p}/garbage.sh"),
        case("garbage headers, POST", "/{p}/garbage.sh").body(pattern(1024, 1)),
        case("no blank line after headers", "/{p}/no-blank.sh"),
        case("no blank line, POST", "/{p}/no-blank.sh").body(pattern(1024, 2)),
        case("body without blank line", "/{p}/no-blank-body.sh"),
        case("exit in the middle of a header", "/{p}/exit-mid-headers.sh"),
        case("empty output", "/{p}/empty.sh").documented(FCGIWRAP_NO_OUTPUT),
        case("empty output, POST", "/{p}/empty.sh").body(pattern(300, 3)).documented(FCGIWRAP_NO_OUTPUT),
        case("exit before headers", "/{p}/exit-early.sh").documented(FCGIWRAP_NO_OUTPUT),
        case("exit before headers after stderr", "/{p}/exit-early-stderr.sh"),
        // stderr.
        case("stderr before headers", "/{p}/stderr-before.sh"),
        case("stderr after headers", "/{p}/stderr-after.sh"),
        case("1 MiB of stderr", "/{p}/stderr-huge.py"),
        // HEAD, conditional requests, ranges.
        case("HEAD", "/{p}/plain.sh").method("HEAD"),
        case("HEAD of 1 MiB output", "/{p}/big.pl").method("HEAD"),
        case("HEAD with Last-Modified", "/{p}/lastmod.sh").method("HEAD"),
        case("If-Modified-Since later", "/{p}/lastmod.sh").header("If-Modified-Since", "Sun, 02 Jan 2000 00:00:00 GMT"),
        case("If-Modified-Since earlier", "/{p}/lastmod.sh")
            .header("If-Modified-Since", "Fri, 31 Dec 1999 00:00:00 GMT"),
        case("If-None-Match", "/{p}/lastmod.sh").header("If-None-Match", "\"equiv-1\""),
        case("If-Unmodified-Since earlier", "/{p}/lastmod.sh")
            .header("If-Unmodified-Since", "Fri, 31 Dec 1999 00:00:00 GMT"),
        case("Range on small output", "/{p}/plain.sh").header("Range", "bytes=0-4"),
        case("Range on 1 MiB output", "/{p}/big.pl").header("Range", "bytes=1000-1999"),
        case("Range suffix on 1 MiB output", "/{p}/big.pl").header("Range", "bytes=-100"),
        case("Range unsatisfiable", "/{p}/plain.sh").header("Range", "bytes=5000-6000"),
        // PATH_INFO and AcceptPathInfo.
        case("PATH_INFO", "/{p}/pathinfo.sh/a/b.txt"),
        case("PATH_INFO encoded slash, AllowEncodedSlashes Off", "/{p}/pathinfo.sh/a%2Fb"),
        case("PATH_INFO encoded slash, NoDecode", "/{p}/pathinfo.sh/a%2Fb/c").header("Host", "nodecode.equiv"),
        case("PATH_INFO encoded slash, On", "/{p}/pathinfo.sh/a%2Fb/c").header("Host", "decode.equiv"),
        case("AcceptPathInfo Off, path info", "/{p}/pi-off.sh/extra"),
        case("AcceptPathInfo Off, none", "/{p}/pi-off.sh"),
        case("AcceptPathInfo On, path info", "/{p}/pi-on.sh/extra"),
        case("AcceptPathInfo Default, path info", "/{p}/pi-default.sh/extra"),
        // Other modules in front.
        case("SSI include virtual", "/ssi-{p}.shtml"),
        case("mod_rewrite [PT]", "/rw/{p}/pretty/path?q=rewritten"),
        case("Action handler", "/act-{p}/doc.txt?act=1"),
    ];
    v.push(case("Expect: 100-continue", "/{p}/post-read.py").header("Expect", "100-continue").body(pattern(1024, 7)));
    // Request bodies, read and not read.
    for &n in &[0usize, 1, 255, 256, 257, 1024, 1 << 20] {
        v.push(case(leak(format!("POST {n} bytes, read")), "/{p}/post-read.py").body(pattern(n, n as u64)));
        let c = case(leak(format!("POST {n} bytes, not read")), "/{p}/post-ignore.py").body(pattern(n, n as u64));
        v.push(if n > 64 * 1024 {
            c.documented(Doc {
                row: "a request body over 64 KiB the script never reads",
                status: Some(502),
                headers: &["content-type"],
                body: true,
            })
        } else {
            c
        });
    }
    v
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

// ------------------------------------------------------------------ comparing

/// Rewrites the names that differ by construction to the mod_cgi spelling.
fn normalize(b: &[u8]) -> Vec<u8> {
    let mut out = b.to_vec();
    for (from, to) in [(&b"/fcgi/"[..], &b"/cgi/"[..]), (b"fcgi-bin", b"cgi-bin"), (b"-fcgi", b"-cgi")] {
        out = replace(&out, from, to);
    }
    out
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// One response head (an interim or the final one): the status line and the
/// header lines, exactly as received (line ends included).
struct Head {
    status_line: String,
    headers: Vec<(String, String)>,
}

/// The heads in `raw` (interim responses first), normalized; `cl_delta` is
/// what the body lost to normalization (Content-Length follows it).
fn heads(raw: &[u8], cl_delta: usize) -> Vec<Head> {
    let raw = normalize(raw);
    let mut out = Vec::new();
    let mut cur: Option<Head> = None;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line).into_owned();
        let bare = text.trim_end_matches(['\r', '\n']);
        match cur.as_mut() {
            None => cur = Some(Head { status_line: text.clone(), headers: Vec::new() }),
            Some(_) if bare.is_empty() => out.extend(cur.take()),
            Some(h) => {
                let name = bare.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
                let mut text = text.clone();
                if name == "content-length" && cl_delta > 0 {
                    if let Ok(n) = bare.split(':').nth(1).unwrap_or("").trim().parse::<usize>() {
                        text = format!("Content-Length: {}\r\n", n.saturating_sub(cl_delta));
                    }
                }
                h.headers.push((name, text));
            }
        }
    }
    out.extend(cur);
    out
}

/// Header lines to compare: ignored and skipped names left out, sorted by
/// name (the order of different names is the table's, not the script's),
/// same-name lines in their order.
fn comparable(h: &Head, skip: &[&str], nph: bool) -> Vec<String> {
    let mut v: Vec<&(String, String)> = h
        .headers
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            let framing = FRAMING_HEADERS.contains(&n) && !nph;
            let skipped = IGNORED_HEADERS.contains(&n) || skip.contains(&n) || skip.contains(&"*");
            !(framing || skipped)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(_, t)| t.escape_debug().to_string()).collect()
}

fn short(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 300 {
        format!("{:?}... ({} bytes)", &s[..s.char_indices().nth(300).map_or(s.len(), |(i, _)| i)], b.len())
    } else {
        format!("{s:?}")
    }
}

/// The differences between mod_cgi's answer and ours for one case (empty
/// when equivalent, documented differences aside).
fn compare(c: &Case, cgi: &Response, ours: &Response) -> Vec<String> {
    let mut diffs = Vec::new();
    let doc = c.doc;
    let (skip_headers, skip_body): (&[&str], bool) = doc.map_or((&[], false), |d| (d.headers, d.body));
    let cgi_body = normalize(&cgi.body);
    let our_body = normalize(&ours.body);
    let cgi_heads = heads(&cgi.raw_head, cgi.body.len() - cgi_body.len());
    let our_heads = heads(&ours.raw_head, ours.body.len() - our_body.len());
    if let Some(want) = doc.and_then(|d| d.status) {
        if ours.status != want {
            diffs.push(format!(
                "documented difference {:?} no longer holds: we answer {} (documented: {want}); mod_cgi {}",
                doc.map_or("", |d| d.row),
                ours.status,
                cgi.status
            ));
        }
    }
    if cgi_heads.len() != our_heads.len() {
        diffs.push(format!(
            "number of response heads (interim + final): mod_cgi {}, ours {}",
            cgi_heads.len(),
            our_heads.len()
        ));
    }
    let n = cgi_heads.len().min(our_heads.len());
    for i in 0..n {
        let (a, b) = (&cgi_heads[i], &our_heads[i]);
        let last = i + 1 == cgi_heads.len();
        let status_documented = last && doc.is_some_and(|d| d.status.is_some());
        if a.status_line != b.status_line && !status_documented {
            diffs.push(format!("status line: mod_cgi {:?}, ours {:?}", a.status_line, b.status_line));
        }
        let nph = c.path.contains("/nph-");
        let (ha, hb) = (comparable(a, skip_headers, nph), comparable(b, skip_headers, nph));
        if ha != hb {
            let only_cgi: Vec<&String> = ha.iter().filter(|l| !hb.contains(l)).collect();
            let only_ours: Vec<&String> = hb.iter().filter(|l| !ha.contains(l)).collect();
            diffs.push(format!(
                "headers{}: only mod_cgi {:?}, only ours {:?}",
                if last { "" } else { " (interim)" },
                only_cgi,
                only_ours
            ));
        }
    }
    if !skip_body {
        if cgi_body != our_body {
            diffs.push(format!("body: mod_cgi {}, ours {}", short(&cgi_body), short(&our_body)));
        }
        if cgi.complete != ours.complete {
            diffs.push(format!("body complete: mod_cgi {}, ours {}", cgi.complete, ours.complete));
        }
    }
    // After a complete message: e.g. what an nph- script writes after the
    // head of a HEAD response goes out as it is, through both.
    if normalize(&ours.extra) != normalize(&cgi.extra) {
        diffs.push(format!("bytes after the message: mod_cgi {}, ours {}", short(&cgi.extra), short(&ours.extra)));
    }
    diffs
}

/// Lines the scripts write to stderr that must reach the error log through
/// both gateways (`{p}` as in the paths).
const STDERR_LINES: &[&str] = &[
    "EQUIV-STDERR before headers /{p}/stderr-before.sh",
    "EQUIV-STDERR after headers /{p}/stderr-after.sh",
    "EQUIV-STDERR huge done /{p}/stderr-huge.py",
    "EQUIV-STDERR nph before /{p}/nph-stderr.sh",
    "EQUIV-STDERR nph after /{p}/nph-stderr.sh",
    "EQUIV-STDERR exit-early /{p}/exit-early-stderr.sh",
];

fn run_suite(name: &str, mpm: Mpm) {
    let site = Site::new(name, mpm);
    let mut report = Vec::new();
    let mut passed = 0;
    let all = cases();
    // EQUIV_SHOW=<part of a case name> prints both raw answers of those cases.
    let show = std::env::var("EQUIV_SHOW").ok();
    for c in &all {
        let cgi = site.apache.request(c.request("cgi"));
        let ours = site.apache.request(c.request("fcgi"));
        let diffs = compare(c, &cgi, &ours);
        if show.as_deref().is_some_and(|w| c.name.contains(w)) {
            for (who, r) in [("mod_cgi", &cgi), ("ours", &ours)] {
                eprintln!(
                    "--- [{}] {who}: complete={} extra={}\n{}{}",
                    c.name,
                    r.complete,
                    short(&r.extra),
                    String::from_utf8_lossy(&r.raw_head),
                    String::from_utf8_lossy(&r.body[..r.body.len().min(4096)])
                );
            }
        }
        if diffs.is_empty() {
            passed += 1;
        } else {
            let mut s = format!("[{}] {} {}\n", c.name, c.method, c.path);
            for d in diffs {
                let _ = writeln!(s, "    {d}");
            }
            report.push(s);
        }
    }
    // stderr goes to the error log through both gateways.
    let log_has = |needle: &str| site.apache.wait_for_log(needle, Duration::from_secs(5));
    for line in STDERR_LINES {
        for p in ["cgi", "fcgi"] {
            let want = line.replace("{p}", p);
            if !log_has(&want) {
                report.push(format!("[stderr] the error log lacks {want:?} (through {p})\n"));
            }
        }
    }
    site.apache.assert_alive();
    let summary = format!("{passed} of {} cases equivalent ({mpm:?}); files in {}", all.len(), site.t.path().display());
    // Stop Apache and fcgiwrap before failing: Apache's drop would print the
    // whole error log (megabytes of the huge-stderr case) on a panic. The
    // test directory stays, for the logs named in the message.
    let Site { mut apache, wrap, t } = site;
    let (error_log, wrap_log) = (apache.error_log_path(), wrap.log.clone());
    apache.stop();
    drop(apache);
    drop(wrap);
    assert!(
        report.is_empty(),
        "{} of {} cases differ from mod_cgi ({mpm:?} MPM) beyond docs/behaviour.md's \"Differences from mod_cgi\":\n{}\n\
         (error log: {}; fcgiwrap log: {})",
        report.len(),
        all.len(),
        report.concat(),
        error_log.display(),
        wrap_log.display(),
    );
    eprintln!("{summary}");
    drop(t);
}

#[test]
fn equivalent_to_mod_cgi_event() {
    run_suite("equiv_event", Mpm::Event);
}

#[test]
fn equivalent_to_mod_cgi_prefork() {
    run_suite("equiv_prefork", Mpm::Prefork);
}

/// Every difference the suite allows is a row of docs/behaviour.md's "Differences
/// from mod_cgi" table.
#[test]
fn allowed_differences_are_in_the_readme() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/behaviour.md")).expect("docs/behaviour.md");
    let start = readme
        .find("\n## Differences from mod_cgi\n")
        .expect("docs/behaviour.md has no \"Differences from mod_cgi\" section");
    let rest = &readme[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3)];
    let mut rows: Vec<&str> = cases().iter().filter_map(|c| c.doc.map(|d| d.row)).collect();
    rows.push(FRAMING_ROW);
    for row in rows {
        assert!(
            section.contains(&format!("\n| {row}")),
            "docs/behaviour.md's \"Differences from mod_cgi\" lacks the row {row:?}"
        );
    }
}
