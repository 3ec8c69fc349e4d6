//! A fault-injecting FastCGI application, in-process: a thread listening on
//! a Unix socket (socket mode 0777 in a 0755 directory, so Apache's
//! `www-data` workers reach it), built on the application side of
//! `mod_fastcgi_rs::protocol`. It records what each request carried (params,
//! body digest) for the tests to inspect, and its behaviour is chosen per
//! request by the first segment of PATH_INFO:
//!
//! | PATH_INFO              | behaviour |
//! | ---------------------- | --------- |
//! | `/ok` (and anything else) | a normal response: `fault-backend ok` |
//! | `/echo`                | body digest: `sha256=..`, `length=..`, `content_length=..` |
//! | `/mirror`              | the request body itself, with its Content-Length |
//! | `/params`              | every param as `NAME=value` lines |
//! | `/stderr`              | `fault-stderr-<QUERY_STRING>` on FCGI_STDERR, then a normal response |
//! | `/stall`               | no output at all; holds the connection until the server closes it |
//! | `/close`               | closes the connection without any output (0 bytes) |
//! | `/half-headers`        | half a header block (`Content-Type: text/plain\r\nX-Half: ye`), then closes |
//! | `/garbage`             | a record with version 2, type 99; holds the connection up to 5 s |
//! | `/huge-headers`        | 1 MiB of header lines (then a blank line, a body, END_REQUEST) |
//! | `/die-mid-record`      | headers + 10000 body bytes, then a STDOUT record cut short, then closes |
//! | `/stall-after-headers` | `Content-Length: 100000`, 5000 body bytes, then stalls |
//! | `/eof-no-end`          | a complete response, then EOF with neither empty STDOUT nor END_REQUEST |
//! | `/drip`                | headers + `first\n`, 1.5 s pause, `second\n`, end |
//! | `/sleep?ms=N`          | waits N ms (default 200), then a normal response `slept` |
//! | `/stream-forever`      | 16 KiB of body every 5 ms until the server closes the connection |
//! | `/nph`                 | a whole HTTP response (status line included), for `-nph` |
//! | `/big?rec=N`           | [`big_body`] (10 MB) in STDOUT records of N bytes (default 1000) |
//! | `/announced?len=L&send=S&piece=P&ms=M` | `Content-Length: L` (default 1 MiB), then the first S bytes (default L) of [`big_body`] in records of P bytes (default 8192), each its own write, M ms apart |
//! | `/hdr?CASE`            | the header block [`header_case`] gives for CASE, then `hdr body\n` |
//! | `/stderr-long?N`       | one stderr line of N bytes (`0123456789` repeated), then a normal response |
//! | `/late?TOKEN`          | `token=TOKEN`, then (a buggy app) a second whole response `token=LATE-TOKEN` for the same request id, written on the kept connection just before the answer to the next request on it |
//!
//! In the AUTHORIZER role every request is granted, with the variables
//! [`header_case`] gives for `auth-CASE` in the query string (none without).

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mod_fastcgi_rs::protocol::{
    encode_get_values_result, encode_raw_record, encode_unknown_type, ParamsDecoder, RequestDecoder, RequestEvent,
    ResponseEncoder,
};

use super::sha256::{self, Sha256};
use super::util;

/// Size of the `/big` response body.
pub const BIG_LEN: usize = 10_000_000;

/// The `/big` response body (deterministic, computed once).
pub fn big_body() -> &'static [u8] {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    BODY.get_or_init(|| sha256::pattern(BIG_LEN, 0x5eed_b16))
}

/// What one request carried, as the backend decoded it.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    pub role: u16,
    pub keep_conn: bool,
    pub request_id: u16,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub stdin_len: usize,
    pub stdin_sha256: String,
    /// The body itself, kept for `/mirror` only (empty in [`FaultServer::requests`]).
    pub stdin: Vec<u8>,
}

impl Recorded {
    /// The value of param `name` (lossy UTF-8); None when not sent.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// All params as (name, value) strings, for failure messages.
    pub fn params_lossy(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.params.iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect()
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    requests: Mutex<Vec<Recorded>>,
    /// Protocol errors the backend saw in what the web server sent.
    errors: Mutex<Vec<String>>,
    connections: AtomicUsize,
    /// BEGIN_REQUEST records received (the web server's capacity probes,
    /// FCGI_GET_VALUES, are connections without one).
    begun: AtomicUsize,
    /// Stalled connections that the web server closed.
    stalls_released: AtomicUsize,
}

pub struct FaultServer {
    path: PathBuf,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Listens on `socket` (a path in a 0755 directory).
    pub fn start(socket: &Path) -> FaultServer {
        let _ = std::fs::remove_file(socket);
        let listener =
            UnixListener::bind(socket).unwrap_or_else(|e| panic!("fault backend: bind {}: {e}", socket.display()));
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o777)).expect("chmod fault socket");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let shared = Arc::new(Shared::default());
        let s2 = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, s2));
        FaultServer { path: socket.to_path_buf(), shared, accept: Some(accept) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every request decoded so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits for a request matching `pred` (e.g. by QUERY_STRING marker).
    pub fn wait_request(&self, timeout: Duration, pred: impl Fn(&Recorded) -> bool) -> Option<Recorded> {
        let mut found = None;
        util::wait_until(timeout, || {
            found = self.requests().into_iter().find(|r| pred(r));
            found.is_some()
        });
        found
    }

    /// The request whose QUERY_STRING is `q`.
    pub fn request_with_query(&self, q: &str) -> Option<Recorded> {
        self.wait_request(Duration::from_secs(5), |r| r.param("QUERY_STRING").as_deref() == Some(q))
    }

    pub fn protocol_errors(&self) -> Vec<String> {
        self.shared.errors.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests that have begun (BEGIN_REQUEST arrived), finished or not.
    pub fn begun(&self) -> usize {
        self.shared.begun.load(Ordering::SeqCst)
    }

    pub fn stalls_released(&self) -> usize {
        self.shared.stalls_released.load(Ordering::SeqCst)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let s = shared.clone();
                workers.push(std::thread::spawn(move || {
                    let _ = serve_connection(stream, &s);
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
        workers.retain(|w| !w.is_finished());
    }
    for w in workers {
        let _ = w.join();
    }
}

/// Owned copy of a decoder event.
enum Ev {
    Begin { id: u16, role: u16, keep_conn: bool },
    Params(Vec<u8>),
    ParamsEnd,
    Stdin(Vec<u8>),
    StdinEnd(u16),
    Abort(u16),
    GetValues,
    Unknown(u8),
    Other,
}

struct Pending {
    rec: Recorded,
    params: Option<ParamsDecoder>,
    sha: Option<Sha256>,
    /// `/mirror` keeps the body to send it back.
    keep_body: bool,
}

enum Next {
    /// Keep reading (the request is not complete, or keep_conn).
    Continue,
    Close,
}

fn serve_connection(mut stream: UnixStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    stream.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut dec = RequestDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut cur: Option<Pending> = None;
    // `/late`'s stray response, written before the next request's answer.
    let mut late: Option<Vec<u8>> = None;
    loop {
        let n = match read_some(&mut stream, &mut buf, shared) {
            Some(0) | None => return Ok(()),
            Some(n) => n,
        };
        let mut input = &buf[..n];
        while !input.is_empty() {
            let (used, ev) = match dec.decode(input) {
                Ok((used, ev)) => (used, ev.map(own)),
                Err(e) => {
                    if let Ok(mut errs) = shared.errors.lock() {
                        errs.push(e.to_string());
                    }
                    return Ok(());
                }
            };
            input = &input[used..];
            let Some(ev) = ev else { continue };
            match on_event(ev, &mut cur, &mut late, &mut stream, shared) {
                Next::Continue => {}
                Next::Close => return Ok(()),
            }
        }
    }
}

fn own(ev: RequestEvent<'_>) -> Ev {
    match ev {
        RequestEvent::BeginRequest { request_id, role, keep_conn } => Ev::Begin { id: request_id, role, keep_conn },
        RequestEvent::Params { data, .. } => Ev::Params(data.to_vec()),
        RequestEvent::ParamsEnd { .. } => Ev::ParamsEnd,
        RequestEvent::Stdin { data, .. } => Ev::Stdin(data.to_vec()),
        RequestEvent::StdinEnd { request_id } => Ev::StdinEnd(request_id),
        RequestEvent::AbortRequest { request_id } => Ev::Abort(request_id),
        RequestEvent::GetValues(_) => Ev::GetValues,
        RequestEvent::UnknownType(t) => Ev::Unknown(t),
        _ => Ev::Other,
    }
}

/// Reads with a short timeout, checking the stop flag; None when stopping
/// or on an error.
fn read_some(stream: &mut UnixStream, buf: &mut [u8], shared: &Shared) -> Option<usize> {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        match stream.read(buf) {
            Ok(n) => return Some(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return None,
        }
    }
}

/// Holds the connection, discarding input, until the peer closes it (counted
/// in `stalls_released`), the server stops, or `limit` passes.
fn hold(stream: &mut UnixStream, shared: &Shared, limit: Option<Duration>) {
    let start = Instant::now();
    let mut buf = [0u8; 8192];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if let Some(l) = limit {
            if start.elapsed() >= l {
                return;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                shared.stalls_released.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => {
                shared.stalls_released.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

fn on_event(
    ev: Ev,
    cur: &mut Option<Pending>,
    late: &mut Option<Vec<u8>>,
    stream: &mut UnixStream,
    shared: &Shared,
) -> Next {
    match ev {
        Ev::Begin { id, role, keep_conn } => {
            shared.begun.fetch_add(1, Ordering::SeqCst);
            *cur = Some(Pending {
                rec: Recorded { role, keep_conn, request_id: id, ..Default::default() },
                params: Some(ParamsDecoder::new(16 << 20)),
                sha: Some(Sha256::new()),
                keep_body: false,
            });
            Next::Continue
        }
        Ev::Params(data) => {
            if let Some(p) = cur.as_mut().and_then(|c| c.params.as_mut()) {
                if let Err(e) = p.feed(&data) {
                    if let Ok(mut errs) = shared.errors.lock() {
                        errs.push(format!("params: {e}"));
                    }
                    return Next::Close;
                }
            }
            Next::Continue
        }
        Ev::ParamsEnd => {
            if let Some(c) = cur.as_mut() {
                if let Some(p) = c.params.take() {
                    match p.finish() {
                        Ok(v) => {
                            c.rec.params = v;
                            c.keep_body = c.rec.param("PATH_INFO").is_some_and(|p| p.starts_with("/mirror"));
                        }
                        Err(e) => {
                            if let Ok(mut errs) = shared.errors.lock() {
                                errs.push(format!("params: {e}"));
                            }
                            return Next::Close;
                        }
                    }
                }
            }
            Next::Continue
        }
        Ev::Stdin(data) => {
            if let Some(c) = cur.as_mut() {
                c.rec.stdin_len += data.len();
                if c.keep_body {
                    c.rec.stdin.extend_from_slice(&data);
                }
                if let Some(s) = c.sha.as_mut() {
                    s.update(&data);
                }
            }
            Next::Continue
        }
        Ev::StdinEnd(id) => {
            let Some(mut c) = cur.take() else { return Next::Close };
            if let Some(s) = c.sha.take() {
                c.rec.stdin_sha256 = sha256::hex(&s.finish());
            }
            let rec = c.rec;
            if let Ok(mut v) = shared.requests.lock() {
                v.push(Recorded { stdin: Vec::new(), ..rec.clone() });
            }
            if let Some(stray) = late.take() {
                if !send(stream, &stray) {
                    return Next::Close;
                }
            }
            respond(&rec, id, late, stream, shared)
        }
        Ev::Abort(id) => {
            let enc = ResponseEncoder::new(id);
            let mut out = Vec::new();
            enc.end_request(&mut out, 1, 0);
            let _ = stream.write_all(&out);
            *cur = None;
            Next::Close
        }
        Ev::GetValues => {
            let mut out = Vec::new();
            encode_get_values_result(
                &mut out,
                &[(b"FCGI_MAX_CONNS", b"16"), (b"FCGI_MAX_REQS", b"16"), (b"FCGI_MPXS_CONNS", b"0")],
            );
            let _ = stream.write_all(&out);
            Next::Continue
        }
        Ev::Unknown(t) => {
            let mut out = Vec::new();
            encode_unknown_type(&mut out, t);
            let _ = stream.write_all(&out);
            Next::Continue
        }
        Ev::Other => Next::Continue,
    }
}

/// Writes `out`; false when the peer is gone.
fn send(stream: &mut UnixStream, out: &[u8]) -> bool {
    stream.write_all(out).and_then(|_| stream.flush()).is_ok()
}

/// The header lines (each ending in CRLF, no blank line) of a `/hdr` case,
/// for the response header tests; None for an unknown case.
pub fn header_case(case: &str) -> Option<Vec<u8>> {
    let line = |name: &str, value: &[u8]| [name.as_bytes(), b": ", value, b"\r\n"].concat();
    Some(match case {
        // One line of 10 KiB: over httpd's 8 KiB scanner buffer.
        "long10k" => line("X-Long", &vec![b'L'; 10 * 1024]),
        "cookie60k" => {
            [line("Set-Cookie", &[b"big=", &vec![b'c'; 60_000][..]].concat()), line("Set-Cookie", b"small=1")].concat()
        }
        // Over the 128 KiB header block limit in one line.
        "line200k" => line("X-Huge", &vec![b'H'; 200 * 1024]),
        // Bytes 8190.. of the line spell a header of their own: a reader
        // that cuts lines at 8190 bytes would pass it as one.
        "inject" => [b"X-Pad: ".to_vec(), vec![b'p'; 8190 - 7], b"X-Injected: 1\r\n".to_vec()].concat(),
        "many" => (0..1000).flat_map(|i| line(&format!("X-Many-{i:04}"), format!("v{i}").as_bytes())).collect(),
        "nul" => line("X-Bad", b"a\0b"),
        // A bare CR inside a value: dropped, as httpd's line reader for mod_cgi does.
        "cr" => line("X-Cr", b"a\rSet-Cookie: evil=1"),
        // An obs-fold continuation line.
        "fold" => [line("X-Fold", b"a"), b"  continued: yes\r\n".to_vec()].concat(),
        "nocolon" => b"this is no header\r\n".to_vec(),
        "status" => [line("Status", b"299 Fine Thanks"), line("X-Status", b"set")].concat(),
        // For conditional GETs: httpd answers 304 to `If-None-Match: "v1"`.
        "etag" => line("ETag", b"\"v1\""),
        // Statuses whose responses have no body (httpd drops the script's).
        "s304" => line("Status", b"304 Not Modified"),
        "s204" => line("Status", b"204 No Content"),
        "location" => line("Location", format!("http://example.test/{}", "q".repeat(12 * 1024)).as_bytes()),
        "auth-long" => line("Variable-Long", &vec![b'V'; 10 * 1024]),
        "auth-nul" => line("Variable-Nul", b"a\0b"),
        "auth-cr" => line("Variable-Cr", b"a\rb"),
        _ => return None,
    })
}

/// The number after `key=` in a route's query (`a=1&b=2`), or `default`.
fn query_arg(query: &str, key: &str, default: usize) -> usize {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn respond(rec: &Recorded, id: u16, late: &mut Option<Vec<u8>>, stream: &mut UnixStream, shared: &Shared) -> Next {
    let enc = ResponseEncoder::new(id);
    let path = rec.param("PATH_INFO").unwrap_or_default();
    let query = rec.param("QUERY_STRING").unwrap_or_default();
    let mut out = Vec::new();
    let finish = |out: &mut Vec<u8>| {
        enc.stdout_end(out);
        enc.end_request(out, 0, 0);
    };
    if rec.role == 2 {
        let vars = query.split('&').find(|q| q.starts_with("auth-")).and_then(header_case).unwrap_or_default();
        enc.stdout(&mut out, &[b"Status: 200\r\n", &vars[..], b"\r\n"].concat());
        finish(&mut out);
        send(stream, &out);
        return Next::Close;
    }
    // Route by the first segment of PATH_INFO (`/ok/deeper` is `/ok`).
    let route = match path.strip_prefix('/') {
        Some(rest) => format!("/{}", rest.split('/').next().unwrap_or("")),
        None => path.clone(),
    };
    match route.as_str() {
        "/stall" => {
            hold(stream, shared, None);
            return Next::Close;
        }
        "/close" => return Next::Close,
        "/half-headers" => {
            enc.stdout(&mut out, b"Content-Type: text/plain\r\nX-Half: ye");
            send(stream, &out);
            return Next::Close;
        }
        "/garbage" => {
            encode_raw_record(&mut out, 2, 99, id, b"this is not FastCGI 1.0", 1);
            send(stream, &out);
            hold(stream, shared, Some(Duration::from_secs(5)));
            return Next::Close;
        }
        "/huge-headers" => {
            let value = "a".repeat(1000);
            let mut block = Vec::with_capacity(1 << 21);
            block.extend_from_slice(b"Content-Type: text/plain\r\n");
            let mut i = 0;
            while block.len() < 1 << 20 {
                block.extend_from_slice(format!("X-Filler-{i:05}: {value}\r\n").as_bytes());
                i += 1;
            }
            block.extend_from_slice(b"\r\nhuge headers body\n");
            enc.stdout(&mut out, &block);
            finish(&mut out);
            send(stream, &out);
            return Next::Close;
        }
        "/die-mid-record" => {
            enc.stdout(&mut out, b"Content-Type: text/plain\r\n\r\n");
            enc.stdout(&mut out, &vec![b'd'; 10_000]);
            // A STDOUT record header promising 4000 bytes, and only 1000 of them.
            let mut cut = Vec::new();
            encode_raw_record(&mut cut, 1, 6, id, &vec![b'e'; 4000], 0);
            cut.truncate(8 + 1000);
            out.extend_from_slice(&cut);
            send(stream, &out);
            std::thread::sleep(Duration::from_millis(100));
            return Next::Close;
        }
        "/stall-after-headers" => {
            enc.stdout(&mut out, b"Content-Type: text/plain\r\nContent-Length: 100000\r\n\r\n");
            enc.stdout(&mut out, &vec![b's'; 5000]);
            send(stream, &out);
            hold(stream, shared, None);
            return Next::Close;
        }
        "/sleep" => {
            let ms = query_arg(&query, "ms", 200) as u64;
            std::thread::sleep(Duration::from_millis(ms));
            enc.stdout(&mut out, b"Content-Type: text/plain\r\n\r\nslept\n");
            finish(&mut out);
        }
        "/drip" => {
            enc.stdout(&mut out, b"Content-Type: text/plain\r\n\r\nfirst\n");
            if !send(stream, &out) {
                return Next::Close;
            }
            out.clear();
            std::thread::sleep(Duration::from_millis(1500));
            enc.stdout(&mut out, b"second\n");
            finish(&mut out);
        }
        "/stream-forever" => {
            enc.stdout(&mut out, b"Content-Type: text/plain\r\n\r\n");
            let chunk = vec![b'f'; 16 * 1024];
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            loop {
                enc.stdout(&mut out, &chunk);
                let mut off = 0;
                while off < out.len() {
                    if shared.stop.load(Ordering::SeqCst) {
                        return Next::Close;
                    }
                    match stream.write(&out[off..]) {
                        Ok(0) => off = usize::MAX,
                        Ok(n) => off += n,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => off = usize::MAX,
                    }
                }
                if off == usize::MAX {
                    // The web server closed the connection.
                    shared.stalls_released.fetch_add(1, Ordering::SeqCst);
                    return Next::Close;
                }
                out.clear();
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        "/nph" => {
            enc.stdout(
                &mut out,
                b"HTTP/1.1 203 Non-Authoritative Information\r\nContent-Type: text/plain\r\n\
                  X-Nph: yes\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnph body\n",
            );
            finish(&mut out);
        }
        "/eof-no-end" => {
            enc.stdout(&mut out, b"Content-Type: text/plain\r\n\r\n");
            enc.stdout(&mut out, b"complete body without END_REQUEST\n");
            send(stream, &out);
            return Next::Close;
        }
        "/big" => {
            let rec_len = query_arg(&query, "rec", 1000).clamp(1, 65535);
            enc.stdout(&mut out, b"Content-Type: application/octet-stream\r\n\r\n");
            for piece in big_body().chunks(rec_len) {
                enc.stdout(&mut out, piece);
                if out.len() >= 64 * 1024 {
                    if !send(stream, &out) {
                        return Next::Close;
                    }
                    out.clear();
                }
            }
            finish(&mut out);
        }
        // A body announced with `Content-Length: len`, of which `send`
        // bytes (of `big_body`) come, in records of `piece` bytes, each
        // its own write, `ms` apart; the connection kept if asked.
        "/announced" => {
            let arg = |key: &str, default: usize| query_arg(&query, key, default);
            let (len, piece, ms) = (arg("len", 1 << 20), arg("piece", 8192).clamp(1, 65535), arg("ms", 0));
            let sent = arg("send", len).min(BIG_LEN);
            enc.stdout(
                &mut out,
                format!("Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
            );
            for chunk in big_body()[..sent].chunks(piece) {
                enc.stdout(&mut out, chunk);
                if !send(stream, &out) {
                    return Next::Close;
                }
                out.clear();
                std::thread::sleep(Duration::from_millis(ms as u64));
            }
            finish(&mut out);
        }
        "/late" => {
            enc.stdout(&mut out, format!("Content-Type: text/plain\r\n\r\ntoken={query}\n").as_bytes());
            finish(&mut out);
            let mut stray = Vec::new();
            enc.stdout(&mut stray, format!("Content-Type: text/plain\r\n\r\ntoken=LATE-{query}\n").as_bytes());
            enc.stdout_end(&mut stray);
            enc.end_request(&mut stray, 0, 0);
            *late = Some(stray);
        }
        "/mirror" => {
            let head = format!("Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n", rec.stdin.len());
            enc.stdout(&mut out, head.as_bytes());
            enc.stdout(&mut out, &rec.stdin);
            finish(&mut out);
        }
        "/echo" => {
            enc.stdout(&mut out, b"Content-Type: text/plain\r\n\r\n");
            let body = format!(
                "sha256={}\nlength={}\ncontent_length={}\n",
                rec.stdin_sha256,
                rec.stdin_len,
                rec.param("CONTENT_LENGTH").unwrap_or_else(|| "<unset>".into())
            );
            enc.stdout(&mut out, body.as_bytes());
            finish(&mut out);
        }
        "/params" => {
            enc.stdout(&mut out, b"Content-Type: text/plain\r\n\r\n");
            let mut body = Vec::new();
            for (k, v) in &rec.params {
                body.extend_from_slice(k);
                body.push(b'=');
                body.extend_from_slice(v);
                body.push(b'\n');
            }
            enc.stdout(&mut out, &body);
            finish(&mut out);
        }
        "/hdr" => {
            let case = query.split('&').next().unwrap_or_default();
            let block = header_case(case).unwrap_or_default();
            enc.stdout(&mut out, &[b"Content-Type: text/plain\r\n", &block[..], b"\r\nhdr body\n"].concat());
            finish(&mut out);
        }
        "/stderr-long" => {
            let n: usize = query.parse().unwrap_or(20_000);
            let line: Vec<u8> = b"0123456789".iter().copied().cycle().take(n).chain([b'\n']).collect();
            enc.stderr(&mut out, &line);
            enc.stdout(&mut out, b"Content-Type: text/plain\r\n\r\nstderr sent\n");
            finish(&mut out);
        }
        "/stderr" => {
            enc.stderr(&mut out, format!("fault-stderr-{query}\n").as_bytes());
            enc.stderr_end(&mut out);
            enc.stdout(&mut out, b"Content-Type: text/plain\r\n\r\nstderr sent\n");
            finish(&mut out);
        }
        _ => {
            enc.stdout(&mut out, b"Content-Type: text/plain\r\n\r\nfault-backend ok\n");
            finish(&mut out);
        }
    }
    if !send(stream, &out) {
        return Next::Close;
    }
    if rec.keep_conn {
        Next::Continue
    } else {
        Next::Close
    }
}

/// An Apache in front of one fault backend, reached as each of `paths`
/// (`FastCgiExternalServer <htdocs>/PATH -socket ... -idle-timeout 5`), for
/// tests that read raw responses and the error log.
pub struct FaultSite {
    // Field order is drop order: Apache first, then the backend, then the dir.
    pub apache: super::Apache,
    pub fault: FaultServer,
    pub t: super::TestDir,
}

impl FaultSite {
    /// `extra` adds configuration (given the test dir), at `log_level`.
    pub fn start(name: &str, paths: &[&str], extra: impl FnOnce(&super::TestDir) -> String, log_level: &str) -> Self {
        let t = super::TestDir::new(name);
        let fault = FaultServer::start(&t.sock("fault.sock"));
        let mut conf = String::new();
        for path in paths {
            conf.push_str(&format!(
                "FastCgiExternalServer {} -socket {} -idle-timeout 5\n",
                t.htdocs().join(path).display(),
                fault.path().display()
            ));
        }
        conf.push_str(&extra(&t));
        let apache = super::Apache::builder(&t).log_level(log_level).config(&conf).start();
        FaultSite { apache, fault, t }
    }

    /// The server path `<htdocs>/rel`, as log lines name it.
    pub fn path(&self, rel: &str) -> String {
        self.t.htdocs().join(rel).display().to_string()
    }

    /// Every byte of the response to `GET path` (HTTP/1.1, then closed).
    pub fn raw_get(&self, path: &str) -> Vec<u8> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        super::http::raw(self.apache.port, req.as_bytes(), Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Waits up to 5 s for the error log to hold `needle`.
    pub fn assert_log(&self, needle: &str) {
        let found = util::wait_until(Duration::from_secs(5), || self.apache.error_log().contains(needle));
        assert!(found, "no log line {needle:?} in:\n{}", self.apache.error_log());
    }
}
