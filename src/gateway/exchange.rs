//! The request loop: one connection, one request id, no multiplexing.

use std::borrow::Cow;
use std::io;
use std::time::{Duration, Instant};

use super::balance;
use super::dynamic::OnDemand;
use super::headers::{block_end, sanitize, MAX_HEADER_BLOCK};
use super::{BodyLength, Client, HeaderVerdict, Outcome, Spool};
use crate::config::{Config, Server};
use crate::log::Level;
use crate::metrics::{Outcome as Cause, Tracker};
use crate::protocol::{
    ProtocolError, RequestEncoder, ResponseDecoder, ResponseEvent, Role, CANT_MPX_CONN, OVERLOADED, REQUEST_COMPLETE,
};
use crate::transport::{self, Conn, Endpoint};

/// Bytes of the request body handled at a time.
const IO_CHUNK: usize = 64 * 1024;
/// Bytes read from the application per system call. Its STDOUT goes to
/// httpd in one pass, and httpd's core output filter writes up to 64 KiB
/// (its FlushMaxThreshold) without ever waiting for the client: a larger
/// pass could wait for a slow client, holding the application.
const INPUT_CHUNK: usize = 64 * 1024;
/// Longest stderr line logged as one message: longer ones are logged in
/// pieces of this size, each with the prefix, so that every piece fits in
/// httpd's log line (MAX_STRING_LEN, 8 KiB, with its own prefix) uncut.
const MAX_STDERR_LINE: usize = 4 * 1024;
/// The request id of our one request on a connection.
const REQUEST_ID: u16 = 1;

/// Runs one FastCGI request against `server` (static or external) for
/// `client`.
pub fn run(client: &mut dyn Client, server: &Server, config: &Config) -> Outcome {
    run_with(client, server, config, None)
}

/// Runs one request; `dynamic` is set for dynamic applications, which are
/// started on demand through the process manager. Counted on the
/// scoreboard (`metrics`) from start to end.
pub(super) fn run_with(
    client: &mut dyn Client,
    server: &Server,
    config: &Config,
    dynamic: Option<&OnDemand>,
) -> Outcome {
    let metrics =
        Tracker::begin(&server.path, dynamic.and_then(|d| d.identity), dynamic.is_some(), config.index_of(server));
    let outcome = respond(client, server, config, dynamic, &metrics);
    let (status, bytes_in, bytes_out) = client.traffic();
    let status = match &outcome {
        Outcome::Status(s) => *s,
        Outcome::LocalRedirect(_) => 302,
        Outcome::Sent => status,
    };
    metrics.finish(status, bytes_in, bytes_out);
    outcome
}

fn respond(
    client: &mut dyn Client,
    server: &Server,
    config: &Config,
    dynamic: Option<&OnDemand>,
    metrics: &Tracker,
) -> Outcome {
    let body = match prepare_body(client, config) {
        Ok(body) => body,
        Err(status) => {
            metrics.cause(if status == 400 { Cause::ClientGone } else { Cause::GatewayError });
            return Outcome::Status(status);
        }
    };
    let mut overrides = Vec::new();
    if let Body::Spooled(spool) = &body {
        overrides.push(("CONTENT_LENGTH".to_string(), spool.len().to_string().into_bytes()));
    }
    let mut head = params_head(client, server, None, overrides);
    let keep = server.options.keep_conn && dynamic.is_none();
    // As in the original and mod_cgi: per request, by the script's name.
    let nph = server.options.nph
        || client
            .filename()
            .is_some_and(|f| memchr::memrchr(b'/', f).map_or(f, |slash| &f[slash + 1..]).starts_with(b"nph-"));
    let mut body = body;
    // A pooled connection may have been closed by the application while it
    // sat idle: then the request is replayed once on a fresh one. A fresh
    // connection that an endpoint closes or resets before any answer, with
    // nothing of the client's body read yet, is tried once on each other
    // endpoint of a server that has several.
    let mut try_pool = keep;
    let mut tried: Vec<Endpoint> = Vec::new();
    loop {
        let pooled = std::mem::take(&mut try_pool);
        let (conn, endpoint) = if pooled {
            match checkout(server, metrics) {
                Some(found) => found,
                None => continue,
            }
        } else {
            match open(client, server, dynamic, metrics, &tried) {
                Ok(found) => found,
                Err(status) => return Outcome::Status(status),
            }
        };
        // Only an attempt that can be replayed needs a copy of the head
        // (in the thread's spare, kept again with the head below).
        let retry_elsewhere = !pooled && dynamic.is_none() && balance::balanced(server, Some(metrics));
        let out = if pooled || retry_elsewhere {
            let mut copy = Spare::Replay.take();
            copy.extend_from_slice(&head);
            copy
        } else {
            std::mem::take(&mut head)
        };
        let phase = if nph { Phase::Nph } else { Phase::Headers(Spare::HeaderBlock.take()) };
        // Kept only where a failed attempt moves on to another endpoint.
        let kept = retry_elsewhere.then(|| endpoint.clone().into_owned());
        let mut exchange = Exchange::new(client, server, conn, endpoint, body, out, dynamic, phase);
        exchange.reused = pooled;
        exchange.retry_elsewhere = retry_elsewhere;
        exchange.metrics = Some(metrics);
        exchange.hold_memory = config.response_buffer;
        exchange.hold_max = config.response_spool_max.max(config.response_buffer);
        match exchange.run() {
            Ok(outcome) => {
                Spare::Replay.keep(head);
                return outcome;
            }
            Err(stale_body) => body = stale_body,
        }
        if let Body::Spooled(spool) = &mut body {
            if spool.rewind().is_err() {
                metrics.cause(Cause::GatewayError);
                return Outcome::Status(500);
            }
        }
        if let Some(endpoint) = kept {
            tried.push(endpoint.clone());
            let others = balance::candidates(server, Some(metrics), false);
            if !others.iter().any(|c| !tried.contains(&*c.endpoint)) {
                let msg = format!(
                    "FastCGI: incomplete headers (0 bytes) received from server \"{}\" (every endpoint closed the connection)",
                    server.path
                );
                client.log(Level::Error, 0, &msg);
                metrics.cause(Cause::IncompleteHeaders);
                return Outcome::Status(500);
            }
            let msg = format!(
                "FastCGI: server \"{}\": {endpoint} closed the connection before answering; trying another endpoint",
                server.path
            );
            client.log(Level::Warn, 0, &msg);
        }
    }
}

/// A new connection to `server` (a dynamic one through the manager), with
/// failovers and failures logged; Err is the status to answer with.
fn open<'s>(
    client: &mut dyn Client,
    server: &'s Server,
    dynamic: Option<&OnDemand>,
    metrics: &Tracker,
    tried: &[Endpoint],
) -> Result<(Conn, Cow<'s, Endpoint>), u16> {
    let mut log = |level: Level, errno: i32, msg: &str| client.log(level, errno, msg);
    let connected = match dynamic {
        None => connect_excluding(server, Some(metrics), tried, &mut log),
        Some(d) => d.connect(server),
    };
    match connected {
        Ok((conn, endpoint, note)) => {
            if let Some(note) = note {
                client.log(Level::Warn, 0, &note);
            }
            Ok((conn, endpoint))
        }
        Err((errno, msg)) => {
            client.log(Level::Error, errno, &msg);
            metrics.cause(Cause::ConnectRefused);
            Err(503)
        }
    }
}

/// A pooled connection to one of `server`'s endpoints, healthy ones first;
/// for a balanced server only to the endpoint the balancer picks next.
fn checkout<'s>(server: &'s Server, metrics: &Tracker) -> Option<(Conn, Cow<'s, Endpoint>)> {
    if balance::balanced(server, Some(metrics)) {
        let first = balance::candidates(server, Some(metrics), false).into_iter().next()?;
        let (conn, left) = transport::pool::checkout_counted(&first.endpoint);
        metrics.left_pool(first.order, left);
        let conn = conn?;
        metrics.reused(first.order);
        return Some((conn, first.endpoint));
    }
    // Not balanced: the server's one endpoint.
    let (conn, left) = transport::pool::checkout_counted(&server.endpoint);
    metrics.left_pool(0, left);
    let conn = conn?;
    metrics.reused(0);
    Some((conn, Cow::Borrowed(&server.endpoint)))
}

/// Whether a connection that ended its request cleanly may wait in the
/// pool. With reuse on by default (`keep_conn_safe`) only when the
/// endpoint serves several connections at once (FCGI_MAX_CONNS, learned
/// by the manager) and one stays free for a new connection from any
/// child after this one goes idle: an idle connection pins a worker.
fn may_pool(server: &Server, metrics: Option<&Tracker>) -> bool {
    if !server.options.keep_conn_safe {
        return true;
    }
    let Some((board, ep)) = metrics.and_then(Tracker::current_endpoint) else { return false };
    let capacity = board.capacity(ep);
    if capacity < 2 || capacity == crate::metrics::layout::endpoint::CAPACITY_NONE {
        return false;
    }
    let (idle, busy) = board.idle_and_busy(ep);
    // This request still counts as busy: after it, idle + 1 and busy - 1.
    idle + busy < capacity
}

/// Runs an AUTHORIZER-role request (`role`: the FCGI_APACHE_ROLE value) and
/// returns the application's whole output (bounded), or the status to
/// answer with when talking to it failed (already logged).
pub(super) fn run_authorizer(
    client: &mut dyn Client,
    server: &Server,
    dynamic: Option<&OnDemand>,
    role: &str,
    overrides: Vec<(String, Vec<u8>)>,
) -> Result<Vec<u8>, u16> {
    let head = params_head(client, server, Some(role), overrides);
    let (conn, endpoint) = open(client, server, dynamic, &Tracker::off(), &[])?;
    Exchange::new(client, server, conn, endpoint, Body::None, head, dynamic, Phase::Collect(Vec::new())).collect()
}

/// BEGIN_REQUEST and the PARAMS stream: the responder's CGI variables, or
/// with `auth_role` the authorizer's, plus `-pass-header` values and
/// `overrides`. FCGI_KEEP_CONN for responders of `-keep-conn` servers.
fn params_head(
    client: &mut dyn Client,
    server: &Server,
    auth_role: Option<&str>,
    mut overrides: Vec<(String, Vec<u8>)>,
) -> Vec<u8> {
    for name in &server.options.pass_headers {
        if let Some(value) = client.request_header(name) {
            overrides.push((cgi_header_name(name), value));
        }
    }
    let enc = RequestEncoder::new(REQUEST_ID);
    let mut out = Spare::Records.take();
    out.reserve(4096);
    let role = if auth_role.is_some() { Role::Authorizer } else { Role::Responder };
    enc.begin_request(&mut out, role, server.options.keep_conn && auth_role.is_none());
    let mut params = enc.params(&mut out);
    client.cgi_vars(auth_role, &overrides, &mut params);
    params.finish();
    out
}

/// A connection made: the connection, the endpoint it reached (borrowed
/// from the configuration unless it is an address learned since), and a
/// failover to log.
pub(super) type Connected<'s> = (Conn, Cow<'s, Endpoint>, Option<String>);

/// Connects to `server`: its endpoint, or with several each in turn, in
/// the order `-balance` and the endpoints' health give (`balance`). Ok
/// gives the connection, the endpoint it reached and, after a failover, a
/// line to log; Err the errno and the original's log line. Each attempt is
/// counted on `metrics`; an endpoint going down is logged through `log`,
/// once for all children.
pub(super) fn connect<'s>(
    server: &'s Server,
    metrics: Option<&Tracker>,
    log: &mut dyn FnMut(Level, i32, &str),
) -> Result<Connected<'s>, (i32, String)> {
    connect_excluding(server, metrics, &[], log)
}

/// [`connect`], leaving out the endpoints in `tried` (a request that is
/// tried again elsewhere).
fn connect_excluding<'s>(
    server: &'s Server,
    metrics: Option<&Tracker>,
    tried: &[Endpoint],
    log: &mut dyn FnMut(Level, i32, &str),
) -> Result<Connected<'s>, (i32, String)> {
    let timeout = match server.options.app_conn_timeout {
        0 => None,
        n => Some(Duration::from_secs(n.into())),
    };
    let balanced = balance::balanced(server, metrics);
    // Not balanced: the server's one endpoint, with no list to build.
    if !balanced {
        if tried.contains(&server.endpoint) {
            return Err(not_connected(server, metrics, None, (libc::EADDRNOTAVAIL, NO_ENDPOINT.into())));
        }
        return match transport::connect(&server.endpoint, timeout) {
            Ok(conn) => {
                metrics.inspect(|m| m.connected(0, 0));
                Ok((conn, Cow::Borrowed(&server.endpoint), None))
            }
            Err(e) => {
                metrics.inspect(|m| m.connect_failed(0, e.kind() == io::ErrorKind::TimedOut));
                Err(not_connected(server, metrics, None, (e.raw_os_error().unwrap_or(0), connect_failure(server, &e))))
            }
        };
    }
    let candidates = balance::candidates(server, metrics, true);
    let mut failed = Vec::new();
    let mut last = (libc::EADDRNOTAVAIL, Cow::Borrowed(NO_ENDPOINT));
    for c in candidates.iter().filter(|c| !tried.contains(&*c.endpoint)) {
        let (i, endpoint) = (c.order, &c.endpoint);
        match transport::connect(endpoint, timeout) {
            Ok(conn) => {
                transport::health::mark_up(endpoint);
                metrics.inspect(|m| m.connected(i, failed.len()));
                metrics.inspect(|m| m.chose_down(c.was_down));
                let note = (!failed.is_empty()).then(|| {
                    format!(
                        "FastCGI: server \"{}\" failed over to {endpoint} ({} unreachable)",
                        server.path,
                        failed.join(", ")
                    )
                });
                return Ok((conn, endpoint.clone(), note));
            }
            Err(e) => {
                transport::health::mark_down(endpoint);
                metrics.inspect(|m| m.connect_failed(i, e.kind() == io::ErrorKind::TimedOut));
                let why = connect_failure(server, &e);
                let board = metrics.and_then(Tracker::board_slot).map(|(b, _)| b);
                if let (Some(b), Some(ep)) = (board, c.slot) {
                    if b.endpoint_failed(
                        ep,
                        crate::metrics::now_ms(),
                        crate::metrics::layout::endpoint::DOWN_UNREACHABLE,
                        c.retry,
                    ) {
                        let msg =
                            format!("FastCGI: server \"{}\" endpoint {endpoint} is down ({why}: {e})", server.path);
                        log(Level::Error, e.raw_os_error().unwrap_or(0), &msg);
                    }
                }
                failed.push(endpoint.to_string());
                last = (e.raw_os_error().unwrap_or(0), why);
            }
        }
    }
    Err(not_connected(server, metrics, Some(&failed), last))
}

/// The reason [`connect_excluding`] gives when no endpoint is left to try.
const NO_ENDPOINT: &str = "no endpoint in its address set";

/// What a failed connect() is called in the original's log line.
fn connect_failure(server: &Server, e: &io::Error) -> Cow<'static, str> {
    if e.kind() == io::ErrorKind::TimedOut {
        Cow::Owned(format!("connect() timed out (appConnTimeout={}sec)", server.options.app_conn_timeout))
    } else {
        Cow::Borrowed("connect() failed")
    }
}

/// The errno and the original's log line for a request no endpoint took,
/// after the last failure `last` (`failed`: the endpoints of a balanced
/// server that were tried).
fn not_connected(
    server: &Server,
    metrics: Option<&Tracker>,
    failed: Option<&[String]>,
    last: (i32, Cow<'_, str>),
) -> (i32, String) {
    let (errno, why) = last;
    if why.starts_with("connect() timed out") {
        metrics.inspect(|m| m.cause(Cause::ConnectTimeout));
    }
    let tried = failed.map(|f| format!(" (tried {})", f.join(", "))).unwrap_or_default();
    (errno, format!("FastCGI: failed to connect to server \"{}\": {why}{tried}", server.path))
}

/// The endpoint the request is connected to answered: if it was down it
/// is up again (logged once, by the child that flips it).
fn endpoint_answered(server: &Server, metrics: &Tracker, endpoint: &Endpoint, client: &mut dyn Client) {
    let Some((board, ep)) = metrics.current_endpoint() else { return };
    if metrics.was_down() && board.endpoint_down(ep) && board.endpoint_ok(ep, crate::metrics::now_ms()) {
        client.log(Level::Warn, 0, &format!("FastCGI: server \"{}\" endpoint {endpoint} is up again", server.path));
    }
}

/// A new connection's request got no byte within `-idle-timeout`: the
/// endpoint is down for everyone (logged once), so no other request
/// waits on it until it answers again.
fn endpoint_silent(server: &Server, metrics: &Tracker, endpoint: &Endpoint, client: &mut dyn Client) {
    if !balance::balanced(server, Some(metrics)) {
        return;
    }
    let Some((board, ep)) = metrics.current_endpoint() else { return };
    if board.endpoint_failed(ep, crate::metrics::now_ms(), crate::metrics::layout::endpoint::DOWN_SILENT, true) {
        let msg = format!(
            "FastCGI: server \"{}\" endpoint {endpoint} is down (no answer within the idle timeout, {} sec)",
            server.path, server.options.idle_timeout
        );
        client.log(Level::Error, 0, &msg);
    }
}

/// `-pass-header Name` travels as `HTTP_NAME`: upper case, every other
/// non-alphanumeric character as `_` (what `ap_create_environment` does).
fn cgi_header_name(header: &str) -> String {
    let mut name = String::with_capacity(5 + header.len());
    name.push_str("HTTP_");
    name.extend(header.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }));
    name
}

/// Where STDIN comes from.
enum Body {
    None,
    /// Straight from the client, as it arrives.
    Streamed,
    /// Spooled first (length unknown until the end), then replayed.
    Spooled(Spool),
}

fn prepare_body(client: &mut dyn Client, config: &Config) -> Result<Body, u16> {
    match client.body_length()? {
        BodyLength::None | BodyLength::Known(0) => Ok(Body::None),
        BodyLength::Known(_) => Ok(Body::Streamed),
        BodyLength::Unknown if config.chunked_body_max == 0 => Err(411),
        BodyLength::Unknown => {
            let mut spool = Spool::default();
            let mut scratch = Scratch::take();
            let buf = scratch.body.as_mut_slice();
            loop {
                let n = match client.read_body(buf, true) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        client.log(
                            Level::Info,
                            e.raw_os_error().unwrap_or(0),
                            "FastCGI: client stopped connection before send body completed",
                        );
                        return Err(400);
                    }
                };
                if spool.len() + n as u64 > config.chunked_body_max {
                    client.log(
                        Level::Error,
                        0,
                        &format!(
                            "FastCGI: chunked request body larger than FastCgiChunkedBodyMax ({} bytes)",
                            config.chunked_body_max
                        ),
                    );
                    return Err(413);
                }
                if let Err(e) = spool.write(&buf[..n]) {
                    client.log(
                        Level::Error,
                        e.raw_os_error().unwrap_or(0),
                        "FastCGI: cannot spool the chunked request body",
                    );
                    return Err(500);
                }
            }
            spool.rewind().map_err(|_| 500u16)?;
            Ok(Body::Spooled(spool))
        }
    }
}

/// Request body bytes per STDIN write: the most one record holds, rounded
/// down to a multiple of 8 so it needs no padding.
const STDIN_PIECE: usize = 65528;

/// Reads what the client has sent of the body into `buf`: waits for the
/// first bytes, then takes what has already arrived. The count, and whether
/// the body ended.
fn fill_from_client(client: &mut dyn Client, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let mut n = client.read_body(buf, true)?;
    if n == 0 {
        return Ok((0, true));
    }
    while n < buf.len() {
        match client.read_body(&mut buf[n..], false) {
            Ok(0) => return Ok((n, true)),
            Ok(more) => n += more,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok((n, false))
}

/// httpd's core output filter writes at once when handed this much
/// (THRESHOLD_MIN_WRITE), and holds smaller amounts until more or a flush.
const CORE_MIN_WRITE: usize = 4096;

/// What a backlog hands httpd at a time while the application still writes:
/// small enough that writing it never makes a request wait long for a slow
/// client.
const FEED_PIECE: usize = 16 * 1024;

/// Sends a backlog's bytes to the client once the application is done,
/// waiting for the client as long as httpd's `Timeout` allows. Err when the
/// client went away or the backlog could not be read (logged).
fn deliver_backlog(client: &mut dyn Client, server: &Server, mut backlog: Spool) -> Result<(), ()> {
    let mut scratch = Scratch::take();
    loop {
        let n = match backlog.read(&mut scratch.held) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) => {
                let msg =
                    format!("FastCGI: comm with server \"{}\" aborted: reading the held response failed", server.path);
                client.log(Level::Error, e.raw_os_error().unwrap_or(0), &msg);
                client.send_broken();
                return Err(());
            }
        };
        client.queue(&scratch.held[..n]);
        client.pass(false).map_err(|_| ())?;
    }
}

/// The two I/O buffers of an exchange, kept per thread between requests so
/// that no request allocates or zero-fills them.
struct Scratch {
    /// What one read from the application brings.
    input: Vec<u8>,
    /// One piece of the request body, written to the application from
    /// here (STDIN records are built around it, not copied).
    body: Vec<u8>,
    /// One piece of a held response on its way to the client.
    held: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Box<Scratch>>> = const { std::cell::Cell::new(None) };
}

impl Scratch {
    /// This thread's buffers (new ones when they are in use or not made
    /// yet); they go back when the guard drops.
    fn take() -> ScratchGuard {
        let kept = SCRATCH.try_with(|cell| cell.take()).ok().flatten();
        ScratchGuard(Some(kept.unwrap_or_else(|| {
            Box::new(Scratch { input: vec![0; INPUT_CHUNK], body: vec![0; IO_CHUNK], held: vec![0; IO_CHUNK] })
        })))
    }
}

/// Borrowed [`Scratch`], returned to the thread on drop.
struct ScratchGuard(Option<Box<Scratch>>);

impl std::ops::Deref for ScratchGuard {
    type Target = Scratch;
    fn deref(&self) -> &Scratch {
        self.0.as_deref().unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl std::ops::DerefMut for ScratchGuard {
    fn deref_mut(&mut self) -> &mut Scratch {
        self.0.as_deref_mut().unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        let buffers = self.0.take();
        let _ = SCRATCH.try_with(|cell| cell.set(buffers));
    }
}

/// The buffers that go with one request from start to end (its PARAMS and
/// STDIN records, the end of STDIN, the header block), kept per thread
/// between requests so that a request allocates none. [`Scratch`] holds
/// those one run of the pump borrows.
#[derive(Clone, Copy)]
enum Spare {
    Records,
    Tail,
    HeaderBlock,
    /// The copy of BEGIN_REQUEST and PARAMS that a replayable attempt sends.
    Replay,
}

/// A spare buffer grown past this goes (a huge environment or header block
/// is no reason to keep memory).
const SPARE_MAX: usize = 16 * 1024;

thread_local! {
    static SPARES: [std::cell::Cell<Vec<u8>>; 4] = const {
        [const { std::cell::Cell::new(Vec::new()) }; 4]
    };
}

impl Spare {
    /// An empty buffer: the thread's spare when it has one.
    fn take(self) -> Vec<u8> {
        SPARES.try_with(|spares| spares[self as usize].take()).unwrap_or_default()
    }

    /// Keeps `buf` as the thread's spare, emptied (one with no memory would
    /// only take the place of one that has some).
    fn keep(self, mut buf: Vec<u8>) {
        if (1..=SPARE_MAX).contains(&buf.capacity()) {
            buf.clear();
            let _ = SPARES.try_with(|spares| spares[self as usize].set(buf));
        }
    }
}

/// Where the response stands.
enum Phase {
    /// An authorizer: keep the whole output (bounded) for the caller.
    Collect(Vec<u8>),
    /// Collecting the CGI header block.
    Headers(Vec<u8>),
    /// Streaming the body to the client.
    Body,
    /// Reading the application's output to its end without sending it.
    Discard(Outcome),
    /// `-nph`: everything goes to the client as is.
    Nph,
}

/// Why the loop stops early.
enum Stop {
    /// The client went away; nothing more to send.
    ClientGone,
    /// A pooled connection turned out closed before any answer, and the
    /// request can be replayed on a new one.
    Stale,
    /// The application misbehaved; already logged. The status applies if
    /// nothing was sent yet.
    Failed(u16),
}

struct Exchange<'c> {
    client: &'c mut dyn Client,
    server: &'c Server,
    /// Set for dynamic applications: ask for more instances while waiting.
    dynamic: Option<&'c OnDemand>,
    /// Whether any byte came from the application yet.
    answered: bool,
    /// The connection came from the pool.
    reused: bool,
    /// A fresh connection whose request may go to another endpoint if
    /// this one closes it before any answer.
    retry_elsewhere: bool,
    /// Which of the server's endpoints the connection reached.
    endpoint: Cow<'c, Endpoint>,
    /// The request's accounting (not for authorizers).
    metrics: Option<&'c Tracker>,
    /// Whether request body bytes were read from the client (then the
    /// request cannot be replayed).
    body_read: bool,
    /// The application ended the request cleanly with the connection
    /// clean too: it can go back to the pool.
    reusable: bool,
    conn: Conn,
    body: Body,
    /// What goes to the application, in order: `out` (records, ending
    /// with a STDIN record's header), `body_len` bytes of the body buffer
    /// (that record's content), then `tail` (its padding, the end of
    /// STDIN); written up to `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    body_len: usize,
    tail: Vec<u8>,
    stdin_done: bool,
    /// The application stopped reading (it answered without the whole body).
    write_closed: bool,
    phase: Phase,
    /// Whether any response byte has been passed to httpd's filters.
    sent: bool,
    /// Passed since the last flush.
    unflushed: bool,
    /// Bytes queued for the client but not passed yet, and how many the
    /// last pass handed on.
    queued: usize,
    last_pass: usize,
    /// `FastCgiResponseBuffer` and `FastCgiResponseSpoolMax` (0: the
    /// application is paced to the client).
    hold_memory: u64,
    hold_max: u64,
    /// Set while the client is slower than the application: response bytes
    /// wait here instead of in the application's socket.
    backlog: Option<Spool>,
    /// Bytes that waited in a backlog, and the most that went to its file.
    held: u64,
    held_in_file: u64,
    /// The backlog reached `hold_max` (logged once).
    paced: bool,
    stderr: Vec<u8>,
}

impl<'c> Exchange<'c> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        client: &'c mut dyn Client,
        server: &'c Server,
        conn: Conn,
        endpoint: Cow<'c, Endpoint>,
        body: Body,
        out: Vec<u8>,
        dynamic: Option<&'c OnDemand>,
        phase: Phase,
    ) -> Self {
        Exchange {
            client,
            server,
            dynamic,
            answered: false,
            reused: false,
            retry_elsewhere: false,
            endpoint,
            metrics: None,
            body_read: false,
            reusable: false,
            conn,
            body,
            out,
            out_pos: 0,
            body_len: 0,
            tail: Spare::Tail.take(),
            stdin_done: false,
            write_closed: false,
            phase,
            sent: false,
            unflushed: false,
            queued: 0,
            last_pass: 0,
            hold_memory: 0,
            hold_max: 0,
            backlog: None,
            held: 0,
            held_in_file: 0,
            paced: false,
            stderr: Vec::new(),
        }
    }

    /// Runs the exchange; Err gives the body back when a pooled connection
    /// was stale and the request can be replayed.
    fn run(mut self) -> Result<Outcome, Body> {
        let result = self.pump();
        self.flush_stderr();
        if let Err(Stop::Stale) = result {
            return Err(self.body);
        }
        if let Err(Stop::ClientGone) = result {
            self.note(Cause::ClientGone);
        }
        let metrics = self.metrics;
        let Exchange {
            client,
            server,
            conn,
            reusable,
            endpoint,
            backlog,
            sent,
            phase,
            held,
            held_in_file,
            paced,
            out,
            tail,
            ..
        } = self;
        Spare::Records.keep(out);
        Spare::Tail.keep(tail);
        if held > 0 {
            metrics.inspect(|m| m.held(held, held_in_file, paced));
        }
        // The application is free before the client has its answer.
        if reusable && may_pool(server, metrics) {
            let dropped = transport::pool::checkin(&endpoint, conn);
            metrics.inspect(|m| m.pooled(dropped));
        } else {
            drop(conn);
        }
        let failed = match result {
            Ok(()) => false,
            Err(Stop::ClientGone) => return Ok(Outcome::Sent),
            Err(Stop::Failed(status)) if !sent => return Ok(Outcome::Status(status)),
            Err(Stop::Failed(_) | Stop::Stale) => true,
        };
        if let Some(backlog) = backlog {
            if deliver_backlog(client, server, backlog).is_err() {
                return Ok(Outcome::Sent);
            }
            let msg = format!(
                "FastCGI: server \"{}\": the client read slower than the application wrote; {held} bytes waited for it ({held_in_file} in a temporary file)",
                server.path
            );
            client.log(Level::Info, 0, &msg);
        }
        if failed {
            client.send_broken();
            return Ok(Outcome::Sent);
        }
        Ok(match phase {
            Phase::Discard(outcome) => outcome,
            _ => Outcome::Sent,
        })
    }

    /// Runs an authorizer exchange to its end: the collected output, or the
    /// status to answer with.
    fn collect(mut self) -> Result<Vec<u8>, u16> {
        let result = self.pump();
        self.flush_stderr();
        match (result, std::mem::replace(&mut self.phase, Phase::Body)) {
            (Ok(()), Phase::Collect(output)) if !output.is_empty() => Ok(output),
            (Ok(()), _) => {
                let msg =
                    format!("FastCGI: incomplete headers (0 bytes) received from server \"{}\"", self.server.path);
                self.log(Level::Error, 0, &msg);
                Err(500)
            }
            (Err(Stop::Failed(status)), _) => Err(status),
            (Err(Stop::ClientGone | Stop::Stale), _) => Err(400),
        }
    }

    fn pump(&mut self) -> Result<(), Stop> {
        let idle = Duration::from_secs(self.server.options.idle_timeout.into());
        let mut decoder = ResponseDecoder::new(REQUEST_ID);
        let mut scratch = Scratch::take();
        let Scratch { input, body, held } = &mut *scratch;
        let (input, body, held) = (input.as_mut_slice(), body.as_mut_slice(), held.as_mut_slice());
        // BEGIN_REQUEST, PARAMS and the first piece of STDIN (all of it for
        // a request without a body) go out in one write. Not on a pooled
        // connection with a body: if it turns out closed, the request is
        // replayed, which needs the body unread.
        if !self.reused || matches!(self.body, Body::None) {
            self.refill_stdin(body)?;
        }
        // Readiness as last seen: a new connection takes a first write; the
        // application has nothing to read before it got the request, and
        // more is likely waiting after a read that filled the buffer.
        let (mut may_write, mut may_read) = (true, false);
        // When the application last made progress: read from the clock
        // only when about to wait (None: progress since the last wait).
        let mut last_io: Option<Instant> = None;
        loop {
            if self.backlog.as_ref().is_some_and(|b| b.unread() >= self.hold_max) {
                self.pace(held)?;
                // The application waited on purpose: that is no idle time.
                last_io = None;
            }
            if self.out_pos == self.out_len() && !self.stdin_done && !self.write_closed {
                self.refill_stdin(body)?;
            }
            let want_write = self.out_pos < self.out_len() && !self.write_closed;
            if want_write && may_write {
                let parts = [&self.out[..], &body[..self.body_len], &self.tail[..]];
                match self.conn.write_parts(&parts, self.out_pos) {
                    Ok(n) => {
                        self.out_pos += n;
                        last_io = None;
                        may_write = self.out_pos == self.out_len();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => may_write = false,
                    // The application closed its side: it answers without
                    // the rest of the body. Keep reading its reply.
                    Err(_) => self.write_closed = true,
                }
                if may_write && !self.stdin_done && !may_read {
                    continue;
                }
            }
            if !may_read {
                // About to wait: the application paused, so what it sent
                // so far goes to the client now.
                self.flush()?;
                let want_write = self.out_pos < self.out_len() && !self.write_closed;
                let now = Instant::now();
                let left = match last_io {
                    Some(since) => idle.saturating_sub(now - since),
                    None => {
                        last_io = Some(now);
                        idle
                    }
                };
                // A dynamic application that keeps a request waiting gets help:
                // every -startDelay the manager is asked for another instance.
                let slice = match self.dynamic {
                    Some(d) if !self.answered => left.min(d.start_delay),
                    _ => left,
                };
                // Output waiting for a slow client goes on as it takes it.
                let watch = self.backlog.as_ref().is_some_and(|b| b.unread() > 0 || self.client.holding());
                let other = if watch { self.client.socket() } else { None };
                let ready = self
                    .conn
                    .wait_with(want_write, other, slice, now)
                    .map_err(|e| self.comm_failed("poll() failed", &e))?;
                if ready.other_writable {
                    self.feed(held)?;
                }
                if !ready.readable && !ready.writable {
                    if ready.other_writable {
                        continue;
                    }
                    if let Some(d) = self.dynamic.filter(|_| last_io.is_some_and(|t| t.elapsed() < idle)) {
                        d.more(&self.server.path);
                        continue;
                    }
                    let msg = match self.dynamic {
                        Some(_) if !self.answered => format!(
                            "FastCGI: comm with (dynamic) server \"{}\" aborted: (first read) idle timeout ({} sec)",
                            self.server.path, self.server.options.idle_timeout
                        ),
                        _ => format!(
                            "FastCGI: comm with server \"{}\" aborted: idle timeout ({} sec)",
                            self.server.path, self.server.options.idle_timeout
                        ),
                    };
                    self.log(Level::Error, 0, &msg);
                    self.note(Cause::IdleTimeout);
                    if let Some(m) = self.metrics.filter(|_| !self.answered && !self.reused) {
                        endpoint_silent(self.server, m, &self.endpoint, &mut *self.client);
                    }
                    return Err(Stop::Failed(504));
                }
                may_write |= ready.writable;
                may_read = ready.readable;
                if !may_read {
                    continue;
                }
            }
            let n = match self.conn.read(input) {
                Ok(0) if decoder.in_record() => {
                    let msg = format!(
                        "FastCGI: comm with server \"{}\" aborted: the connection closed in the middle of a record",
                        self.server.path
                    );
                    self.log(Level::Error, 0, &msg);
                    self.note(Cause::ProtocolError);
                    return Err(Stop::Failed(502));
                }
                Ok(0) if self.replayable() => return Err(Stop::Stale),
                Ok(0) => return self.end_of_output(),
                Ok(n) => {
                    last_io = None;
                    if let Some(m) = self.metrics.filter(|_| !self.answered) {
                        m.first_byte(Instant::now());
                        endpoint_answered(self.server, m, &self.endpoint, &mut *self.client);
                    }
                    self.answered = true;
                    may_read = n == input.len();
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    may_read = false;
                    continue;
                }
                Err(_) if self.replayable() => return Err(Stop::Stale),
                // An application that dies with request bytes unread resets
                // the connection instead of closing it: before the headers
                // that is the same incomplete answer as a close.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset && matches!(self.phase, Phase::Headers(_)) => {
                    return self.end_of_output()
                }
                Err(e) => return Err(self.comm_failed("read failed", &e)),
            };
            // A client that has not taken what it got so far gets the rest
            // through a backlog, so the application never waits for it.
            if self.backlog.is_none() && self.hold_memory > 0 && self.sent && self.client_behind() {
                self.start_backlog();
            }
            // Everything this read brought goes to httpd's filters in one
            // pass, also when the response ends or fails inside it.
            let ended = self.on_input(&mut decoder, &input[..n]);
            let passed = self.pass();
            if ended? {
                return passed;
            }
            passed?;
            if self.backlog.is_some() {
                self.feed(held)?;
            }
        }
    }

    /// Whether the client has not taken what it was given, so that more
    /// for it must wait in a backlog: httpd still holds output after being
    /// handed enough to write at once (a write found the socket full), or
    /// holds a little and the socket is full. A little held output with
    /// room in the socket is flushed now, so that the next pass starts
    /// from nothing held and never waits.
    fn client_behind(&mut self) -> bool {
        if !self.client.holding() {
            return false;
        }
        if self.last_pass >= CORE_MIN_WRITE || self.client.behind() {
            return true;
        }
        self.unflushed = false;
        self.client.pass(true).is_err() || self.client.holding()
    }

    /// Bytes of the current write to the application (see `out`).
    fn out_len(&self) -> usize {
        self.out.len() + self.body_len + self.tail.len()
    }

    fn start_backlog(&mut self) {
        self.backlog = Some(Spool::new(usize::try_from(self.hold_memory).unwrap_or(usize::MAX)));
    }

    /// Response bytes for the client: passed on with the next pass, or held
    /// in the backlog while the client is behind.
    fn deliver(&mut self, data: &[u8]) -> Result<(), Stop> {
        let Some(backlog) = self.backlog.as_mut() else {
            self.queue(data);
            return Ok(());
        };
        match backlog.write(data) {
            Ok(()) => {
                self.held += data.len() as u64;
                self.held_in_file = self.held_in_file.max(backlog.in_file());
                Ok(())
            }
            Err(e) => {
                let msg = format!(
                    "FastCGI: comm with server \"{}\" aborted: cannot hold the response for a slow client",
                    self.server.path
                );
                self.log(Level::Error, e.raw_os_error().unwrap_or(0), &msg);
                self.note(Cause::GatewayError);
                Err(Stop::Failed(500))
            }
        }
    }

    /// Moves held bytes on to the client as far as it takes them without
    /// waiting: httpd is given one piece at a time, and a piece only when
    /// it has written the previous one. Leaves the backlog once it is empty
    /// and httpd holds nothing.
    fn feed(&mut self, spare: &mut [u8]) -> Result<(), Stop> {
        let piece = spare.len().min(FEED_PIECE);
        loop {
            if self.client.holding() {
                // An empty pass: httpd writes what it holds, without waiting.
                self.client.pass(false).map_err(|_| Stop::ClientGone)?;
                if self.client.holding() {
                    if self.client.socket().is_some_and(|fd| !transport::writable_now(fd)) {
                        return Ok(());
                    }
                    // The socket has room, so what httpd still holds is less
                    // than it writes on its own (THRESHOLD_MIN_WRITE): a
                    // flush of it does not wait.
                    self.client.pass(true).map_err(|_| Stop::ClientGone)?;
                    if self.client.holding() {
                        return Ok(());
                    }
                }
            }
            let Some(backlog) = self.backlog.as_mut() else { return Ok(()) };
            let n = backlog.read(&mut spare[..piece]).map_err(|e| self.spool_failed(&e))?;
            if n == 0 {
                self.backlog = None;
                self.unflushed = false;
                return Ok(());
            }
            self.client.queue(&spare[..n]);
            self.client.pass(false).map_err(|_| Stop::ClientGone)?;
        }
    }

    /// The backlog is full (`FastCgiResponseSpoolMax`): the client gets
    /// held bytes, waiting for it as long as httpd's `Timeout` allows, until
    /// there is room again. Meanwhile the application waits: it is paced.
    fn pace(&mut self, spare: &mut [u8]) -> Result<(), Stop> {
        if !self.paced {
            self.paced = true;
            let msg = format!(
                "FastCGI: server \"{}\": the response for a slow client exceeds FastCgiResponseSpoolMax ({} bytes); pacing the application",
                self.server.path, self.hold_max
            );
            self.log(Level::Info, 0, &msg);
        }
        while let Some(backlog) = self.backlog.as_mut().filter(|b| b.unread() >= self.hold_max) {
            let n = backlog.read(spare).map_err(|e| self.spool_failed(&e))?;
            if n == 0 {
                break;
            }
            self.client.queue(&spare[..n]);
            self.client.pass(true).map_err(|_| Stop::ClientGone)?;
        }
        Ok(())
    }

    fn spool_failed(&self, e: &io::Error) -> Stop {
        let msg =
            format!("FastCGI: comm with server \"{}\" aborted: reading the held response failed", self.server.path);
        self.log(Level::Error, e.raw_os_error().unwrap_or(0), &msg);
        self.note(Cause::GatewayError);
        Stop::Failed(500)
    }

    /// Decodes one read's worth of records, queueing STDOUT for the client;
    /// true when the response ended (END_REQUEST).
    fn on_input(&mut self, decoder: &mut ResponseDecoder, mut input: &[u8]) -> Result<bool, Stop> {
        while !input.is_empty() {
            let (used, event) = match decoder.decode(input) {
                Ok(r) => r,
                Err(e) => return Err(self.protocol_error(&e)),
            };
            input = &input[used..];
            match event {
                None => {}
                Some(ResponseEvent::Stdout(data)) => self.on_stdout(data)?,
                Some(ResponseEvent::Stderr(data)) => self.on_stderr(data),
                Some(ResponseEvent::EndRequest { protocol_status, .. }) => {
                    self.reusable = self.server.options.keep_conn
                        && input.is_empty()
                        && !decoder.in_record()
                        && self.stdin_done
                        && self.out_pos == self.out_len()
                        && !self.write_closed;
                    self.on_end_request(protocol_status)?;
                    return Ok(true);
                }
                Some(ResponseEvent::StdoutEnd)
                | Some(ResponseEvent::StderrEnd)
                | Some(ResponseEvent::GetValuesResult(_))
                | Some(ResponseEvent::UnknownType(_)) => {}
            }
        }
        Ok(false)
    }

    /// Appends the next piece of the request body, as STDIN records, to
    /// what is still to be written: what the client has sent so far, up to
    /// one record's worth, so the application gets few large writes; the
    /// end of the body goes in the same write when it has come.
    fn refill_stdin(&mut self, buf: &mut [u8]) -> Result<(), Stop> {
        if self.out_pos == self.out_len() {
            self.out.clear();
            self.tail.clear();
            self.body_len = 0;
            self.out_pos = 0;
        }
        let piece = STDIN_PIECE.min(buf.len());
        let buf = &mut buf[..piece];
        let (n, end) = match &mut self.body {
            Body::None => Ok((0, true)),
            Body::Streamed => {
                self.body_read = true;
                fill_from_client(&mut *self.client, buf)
            }
            Body::Spooled(spool) => spool.read(buf).map(|n| (n, n == 0)),
        }
        .map_err(|e| {
            self.log(
                Level::Info,
                e.raw_os_error().unwrap_or(0),
                "FastCGI: client stopped connection before send body completed",
            );
            self.note(Cause::ClientGone);
            Stop::Failed(400)
        })?;
        // The record's header ends `out`, its content stays in `buf`, and
        // its padding (and the end of STDIN) follow in `tail`.
        let enc = RequestEncoder::new(REQUEST_ID);
        if n > 0 {
            let padding = enc.stdin_header(&mut self.out, n);
            self.body_len = n;
            self.tail.extend_from_slice(&[0; 8][..padding]);
        }
        if end {
            enc.stdin_end(&mut self.tail);
            self.stdin_done = true;
        }
        Ok(())
    }

    fn on_stdout(&mut self, data: &[u8]) -> Result<(), Stop> {
        match &mut self.phase {
            Phase::Collect(output) => {
                if output.len() + data.len() > MAX_HEADER_BLOCK {
                    return Err(self.bad_headers(&format!("authorizer output exceeds {MAX_HEADER_BLOCK} bytes")));
                }
                output.extend_from_slice(data);
                Ok(())
            }
            Phase::Body => self.deliver(data),
            Phase::Discard(_) => Ok(()),
            Phase::Nph => {
                if !self.sent {
                    self.client.start_nph();
                }
                self.deliver(data)
            }
            Phase::Headers(block) => {
                let searched = block.len();
                block.extend_from_slice(data);
                let Some(end) = block_end(block, searched) else {
                    if block.len() > MAX_HEADER_BLOCK {
                        return Err(self.bad_headers(&format!("header block exceeds {MAX_HEADER_BLOCK} bytes")));
                    }
                    return Ok(());
                };
                let mut block = std::mem::take(block);
                let end = match sanitize(&mut block, end) {
                    Ok(end) => end,
                    Err(why) => return Err(self.bad_headers(&why)),
                };
                let (head, rest) = block.split_at(end);
                let applied = match self.client.apply_headers(head) {
                    HeaderVerdict::Body => {
                        self.phase = Phase::Body;
                        // `rest` lives in the block, not in the read buffer:
                        // it goes now, ahead of anything queued after it.
                        self.queue(rest);
                        self.pass()
                    }
                    HeaderVerdict::Discard(outcome) => {
                        self.phase = Phase::Discard(outcome);
                        Ok(())
                    }
                    HeaderVerdict::Refused(why) => Err(self.bad_headers(why)),
                };
                Spare::HeaderBlock.keep(block);
                applied
            }
        }
    }

    /// Queues response bytes for the client; they must stay unchanged
    /// until the next [`Self::pass`].
    fn queue(&mut self, data: &[u8]) {
        if !data.is_empty() {
            self.client.queue(data);
            self.queued += data.len();
        }
    }

    /// Hands what was queued to httpd's filters in one pass (with a flush
    /// under `-flush`).
    fn pass(&mut self) -> Result<(), Stop> {
        if self.queued == 0 {
            return Ok(());
        }
        self.last_pass = std::mem::take(&mut self.queued);
        self.sent = true;
        self.unflushed = true;
        self.client.pass(false).map_err(|_| Stop::ClientGone)?;
        // `-flush`: each piece reaches the client at once (while it keeps up).
        if self.server.options.flush {
            self.flush()?;
        }
        Ok(())
    }

    /// Flushes what was passed since the last flush: called when the
    /// application has nothing more ready (so a slow application's output
    /// reaches the client without delay while a fast one's is batched), and
    /// after each piece under `-flush`. A flush waits until the client has
    /// taken everything: a client that is behind gets a backlog instead.
    fn flush(&mut self) -> Result<(), Stop> {
        if !self.unflushed || self.backlog.is_some() {
            return Ok(());
        }
        if self.hold_memory > 0 && self.client_behind() {
            self.start_backlog();
            return Ok(());
        }
        self.unflushed = false;
        self.client.pass(true).map_err(|_| Stop::ClientGone)
    }

    /// Logs STDERR line by line with the original's prefix.
    fn on_stderr(&mut self, data: &[u8]) {
        self.stderr.extend_from_slice(data);
        while let Some(nl) = memchr::memchr(b'\n', &self.stderr) {
            let line: Vec<u8> = self.stderr.drain(..=nl).collect();
            self.log_stderr_line(&line[..nl]);
        }
        if self.stderr.len() > MAX_STDERR_LINE {
            let line = std::mem::take(&mut self.stderr);
            self.log_stderr_line(&line);
        }
    }

    fn flush_stderr(&mut self) {
        if !self.stderr.is_empty() {
            let line = std::mem::take(&mut self.stderr);
            self.log_stderr_line(&line);
        }
    }

    fn log_stderr_line(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        for piece in line.chunks(MAX_STDERR_LINE) {
            let text = String::from_utf8_lossy(piece);
            self.log(Level::Error, 0, &format!("FastCGI: server \"{}\" stderr: {text}", self.server.path));
        }
    }

    fn on_end_request(&mut self, protocol_status: u8) -> Result<(), Stop> {
        if protocol_status != REQUEST_COMPLETE {
            self.log(
                Level::Error,
                0,
                &format!(
                    "FastCGI: comm with server \"{}\" aborted: protocol error: invalid FCGI_END_REQUEST status: {protocol_status} != FCGI_REQUEST_COMPLETE({REQUEST_COMPLETE})",
                    self.server.path
                ),
            );
            let status = if matches!(protocol_status, CANT_MPX_CONN | OVERLOADED) { 503 } else { 502 };
            self.note(Cause::ProtocolError);
            return Err(Stop::Failed(status));
        }
        self.end_of_output()
    }

    /// The application finished (END_REQUEST or end of stream).
    fn end_of_output(&mut self) -> Result<(), Stop> {
        if let Phase::Headers(block) = &self.phase {
            let msg = format!(
                "FastCGI: incomplete headers ({} bytes) received from server \"{}\"",
                block.len(),
                self.server.path
            );
            self.log(Level::Error, 0, &msg);
            let status = self.no_answer_status(500);
            self.note(if status == 503 { Cause::ConnectRefused } else { Cause::IncompleteHeaders });
            return Err(Stop::Failed(status));
        }
        // No flush of our own at the end: httpd flushes when it finishes
        // the request (and the event MPM then writes without a worker).
        Ok(())
    }

    /// A header block that cannot be passed on: 500, as with the original
    /// and mod_cgi.
    fn bad_headers(&self, why: &str) -> Stop {
        let msg = format!("FastCGI: comm with server \"{}\" aborted: error parsing headers: {why}", self.server.path);
        self.log(Level::Error, 0, &msg);
        self.note(Cause::BadHeaders);
        Stop::Failed(500)
    }

    fn protocol_error(&self, e: &ProtocolError) -> Stop {
        self.log(
            Level::Error,
            0,
            &format!("FastCGI: comm with server \"{}\" aborted: protocol error: {e}", self.server.path),
        );
        self.note(Cause::ProtocolError);
        Stop::Failed(502)
    }

    fn comm_failed(&self, what: &str, e: &io::Error) -> Stop {
        self.log(
            Level::Error,
            e.raw_os_error().unwrap_or(0),
            &format!("FastCGI: comm with server \"{}\" aborted: {what}", self.server.path),
        );
        self.note(Cause::ProtocolError);
        Stop::Failed(self.no_answer_status(502))
    }

    /// A pooled connection that closed before any answer, when nothing of
    /// the client's body was consumed.
    fn replayable(&self) -> bool {
        (self.reused || self.retry_elsewhere) && !self.answered && !self.body_read
    }

    /// A dynamic application that went away without a byte could not start
    /// (or crashed at once): unavailable, 503. Otherwise `status`.
    fn no_answer_status(&self, status: u16) -> u16 {
        if self.dynamic.is_some() && !self.answered {
            503
        } else {
            status
        }
    }

    fn log(&self, level: Level, errno: i32, msg: &str) {
        self.client.log(level, errno, msg);
    }

    /// Why the gateway answers this request itself, for the scoreboard.
    fn note(&self, cause: Cause) {
        if let Some(m) = self.metrics {
            m.cause(cause);
        }
    }
}
