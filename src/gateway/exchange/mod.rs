//! One FastCGI exchange on one connection: the state machine that writes
//! the request's records and body and reads the application's records,
//! from the first byte to END_REQUEST (or a failure mapped to a status).
//! What happens to STDOUT and STDERR on their way to the client and the
//! log is in [`response`].

mod request;
mod response;

use std::borrow::Cow;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::backlog::deliver_backlog;
use super::body::Body;
use super::buffers::{Scratch, Spare};
use super::{Client, Outcome, Spool};
use crate::config::Server;
use crate::log::Level;
use crate::metrics::{Outcome as Cause, Tracker};
use crate::protocol::{ProtocolError, ResponseDecoder, ResponseEvent, CANT_MPX_CONN, OVERLOADED, REQUEST_COMPLETE};
use crate::transport::{Conn, Endpoint, Ready};
use crate::upstream::{self, OnDemand};

/// Longest stderr line logged as one message: longer ones are logged in
/// pieces of this size, each with the prefix, so that every piece fits in
/// httpd's log line (MAX_STRING_LEN, 8 KiB, with its own prefix) uncut.
const MAX_STDERR_LINE: usize = 4 * 1024;

/// The request id for a new request: each differs from the one before it
/// in this process, so the records a buggy application writes after the
/// end of a request on a kept connection carry an id the next request on
/// that connection refuses (a protocol error that closes it): they never
/// become another request's answer.
pub(super) fn next_request_id() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    (NEXT.fetch_add(1, Relaxed) % u32::from(u16::MAX)) as u16 + 1
}

/// The longest a read waits for its low-water mark
/// ([`Exchange::low_water`]) before it takes what came: an application
/// that sends less than the Content-Length it announced, and keeps its
/// connection, has its response with the client this late, not after
/// `-idle-timeout`; one that streams slowly, each piece within it.
const LOW_WATER_PATIENCE: Duration = Duration::from_millis(100);

/// A response that held this much gives its memory back when it ends.
const GIVE_BACK_AFTER: u64 = 256 * 1024;

/// Returns the memory the allocator keeps free to the system when dropped
/// ([`crate::gateway::buffers::give_back_memory`]).
struct GiveBack;

impl Drop for GiveBack {
    fn drop(&mut self) {
        crate::gateway::buffers::give_back_memory();
    }
}

/// Where the response stands.
pub(super) enum Phase {
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

/// How an exchange runs, fixed before it starts.
pub(super) struct Setup<'c> {
    /// The id of this request's records ([`next_request_id`]).
    pub request_id: u16,
    /// The request asked to keep the connection (FCGI_KEEP_CONN): it may
    /// go back to the pool when the request ends cleanly.
    pub keep: bool,
    /// The connection came from the pool.
    pub reused: bool,
    /// A fresh connection whose request may go to another endpoint if this
    /// one closes it before any answer.
    pub retry_elsewhere: bool,
    /// The request's accounting (not for authorizers).
    pub metrics: Option<&'c Tracker>,
    /// `FastCgiResponseBuffer` and `FastCgiResponseSpoolMax` (0: the
    /// application is paced to the client).
    pub hold_memory: u64,
    pub hold_max: u64,
    /// Set for dynamic applications: ask for more instances while waiting.
    pub dynamic: Option<&'c OnDemand>,
    pub phase: Phase,
}

impl<'c> Setup<'c> {
    /// An authorizer's exchange: its whole output collected, nothing held.
    pub(super) fn authorizer(request_id: u16, dynamic: Option<&'c OnDemand>) -> Self {
        Setup {
            request_id,
            keep: false,
            reused: false,
            retry_elsewhere: false,
            metrics: None,
            hold_memory: 0,
            hold_max: 0,
            dynamic,
            phase: Phase::Collect(Vec::new()),
        }
    }
}

pub(super) struct Exchange<'c> {
    /// The id of this request's records.
    request_id: u16,
    client: &'c mut dyn Client,
    server: &'c Server,
    /// Set for dynamic applications: ask for more instances while waiting.
    dynamic: Option<&'c OnDemand>,
    /// Whether any byte came from the application yet.
    answered: bool,
    /// The connection came from the pool.
    reused: bool,
    /// The request asked to keep the connection ([`Setup::keep`]).
    keep: bool,
    /// Whether this request, waiting on a fresh connection, has checked
    /// for idle connections that could be keeping it waiting
    /// (`upstream::starving`).
    starve_checked: bool,
    /// A fresh connection whose request may go to another endpoint if
    /// this one closes it before any answer.
    retry_elsewhere: bool,
    /// Which of the server's endpoints the connection reached.
    endpoint: Cow<'c, Endpoint>,
    /// The request's accounting (not for authorizers).
    metrics: Option<&'c Tracker>,
    /// Whether request body bytes went out that the request cannot send
    /// again: read from the client, or spooled but for a method that is
    /// not idempotent (then the request is not replayed).
    body_read: bool,
    /// The application ended the request cleanly with the connection
    /// clean too: it can go back to the pool.
    reusable: bool,
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
    /// The header block whose tail (the first body bytes) is queued: it is
    /// kept until the pass that hands those bytes on, which comes at the
    /// end of the read (so that a response whose end is in the same read
    /// goes out with its length, see [`Self::pass_last`]).
    head: Option<Vec<u8>>,
    /// Passed since the last flush.
    unflushed: bool,
    /// The last pass flushed a response that ended cleanly (`pass_last`):
    /// httpd held nothing before it, so a response with no body for the
    /// client may be flushed again below the filter that ate that flush.
    ended_flushed: bool,
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
    /// Response body bytes the application sent so far, and the length it
    /// announced (Content-Length), asked once a read is about to wait for
    /// more of a body (so never for a response that comes in one read).
    body_seen: u64,
    announced: Option<Option<u64>>,
    stderr: Vec<u8>,
}

impl<'c> Exchange<'c> {
    /// An exchange of `out` (BEGIN_REQUEST, PARAMS) and `body` with
    /// `endpoint` of `server`, over the connection given to [`Self::run`].
    pub(super) fn new(
        client: &'c mut dyn Client,
        server: &'c Server,
        endpoint: Cow<'c, Endpoint>,
        body: Body,
        out: Vec<u8>,
        setup: Setup<'c>,
    ) -> Self {
        let Setup { request_id, keep, reused, retry_elsewhere, metrics, hold_memory, hold_max, dynamic, phase } = setup;
        Exchange {
            request_id,
            client,
            server,
            dynamic,
            answered: false,
            reused,
            keep,
            starve_checked: false,
            retry_elsewhere,
            endpoint,
            metrics,
            body_read: false,
            reusable: false,
            body,
            out,
            out_pos: 0,
            body_len: 0,
            tail: Spare::Tail.take(),
            stdin_done: false,
            write_closed: false,
            phase,
            sent: false,
            head: None,
            unflushed: false,
            ended_flushed: false,
            queued: 0,
            last_pass: 0,
            hold_memory,
            hold_max,
            backlog: None,
            held: 0,
            held_in_file: 0,
            paced: false,
            body_seen: 0,
            announced: None,
            stderr: Vec::new(),
        }
    }

    /// Runs the exchange over `conn`; Err gives the body back when a pooled
    /// connection was stale and the request can be replayed.
    pub(super) fn run(mut self, conn: Conn) -> Result<Outcome, Body> {
        let result = self.pump(conn);
        self.flush_stderr();
        if let Err(Stop::Stale) = result {
            return Err(self.body);
        }
        if let Err(Stop::ClientGone) = result {
            self.note(Cause::ClientGone);
        }
        let metrics = self.metrics;
        let Exchange {
            client, server, backlog, sent, ended_flushed, phase, held, held_in_file, paced, out, tail, ..
        } = self;
        Spare::Records.keep(out);
        Spare::Tail.keep(tail);
        // A large backlog's memory goes back to the system when the request
        // ends, whichever way (the guard drops last). Not `then_some`: that
        // would make, and drop, a guard for every request.
        let _give_back = if held >= GIVE_BACK_AFTER { Some(GiveBack) } else { None };
        if held > 0 {
            metrics.inspect(|m| m.held(held, held_in_file, paced));
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
        // A response with no body for the client (HEAD, 204, 304) is ended
        // here, its head on the wire before httpd looks for the client's
        // next request (see `pass_last` for why): the flush of the last
        // pass never reaches the client for it (httpd's header filter eats
        // it), and a HEAD or a 304 of httpd's conditions passes nothing at
        // all. Only when httpd held nothing before this response's head, so
        // the flush is of that head alone.
        let quiet = if sent { ended_flushed } else { !client.holding() };
        Ok(match phase {
            Phase::Discard(outcome) => {
                if quiet && matches!(outcome, Outcome::Sent) {
                    client.end_bodiless();
                }
                outcome
            }
            Phase::Body => {
                if quiet {
                    client.end_bodiless();
                }
                Outcome::Sent
            }
            _ => Outcome::Sent,
        })
    }

    /// Runs an authorizer exchange over `conn` to its end: the collected
    /// output, or the status to answer with.
    pub(super) fn collect(mut self, conn: Conn) -> Result<Vec<u8>, u16> {
        let result = self.pump(conn);
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

    /// Moves the request and the response over `conn` until the
    /// application is done, then lets the connection go before the last
    /// pass to the client: an application that closes its connection waits
    /// until we close ours (libfcgi's and php-fpm's close read it to the
    /// end), and that pass may write to the client and flush. The pass
    /// still comes from the read buffer, so it is made before the buffers
    /// go back to the thread.
    fn pump(&mut self, conn: Conn) -> Result<(), Stop> {
        let mut scratch = Scratch::take();
        let Scratch { input, body, held } = &mut *scratch;
        let ended = self.records(&conn, input, body, held);
        if self.reusable && upstream::may_pool(self.server, self.metrics) {
            let (kept, closed) = upstream::pool::checkin(&self.endpoint, conn);
            self.metrics.inspect(|m| m.pooled(kept, closed));
        } else {
            drop(conn);
        }
        // A stale pooled connection: the request is replayed on another,
        // still holding its place.
        if !matches!(ended, Err(Stop::Stale)) {
            self.metrics.inspect(|m| m.app_done());
        }
        if ended? {
            self.pass_last()?;
        }
        Ok(())
    }

    /// [`Self::pump`]'s loop: true when the application ended cleanly in
    /// the last read, whose output waits for its last pass
    /// ([`Self::pass_last`]) in `input`.
    fn records(&mut self, conn: &Conn, input: &mut [u8], body: &mut [u8], held: &mut [u8]) -> Result<bool, Stop> {
        let idle = Duration::from_secs(self.server.options.idle_timeout.into());
        let mut decoder = ResponseDecoder::new(self.request_id);
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
        // What a read that waited brought (`Conn::read_within`).
        let mut read_now = None;
        // The last read filled the buffer and the next one waits for the
        // next full buffer of an announced body: the application did not
        // pause, so no flush before that wait.
        let mut batching = false;
        loop {
            if self.backlog.as_ref().is_some_and(|b| b.unread() >= self.hold_max) {
                self.pace(held)?;
                // The application waited on purpose: that is no idle time.
                last_io = None;
            }
            // What the next read brings must fit the server-wide budget of
            // temporary files; until it does, the application waits.
            if self.backlog.as_mut().is_some_and(|b| !b.room_for(input.len())) {
                self.pace_for_budget(held, input.len())?;
                last_io = None;
            }
            if self.out_pos == self.out_len() && !self.stdin_done && !self.write_closed {
                self.refill_stdin(body)?;
            }
            let want_write = self.out_pos < self.out_len() && !self.write_closed;
            if want_write && may_write {
                let parts = [&self.out[..], &body[..self.body_len], &self.tail[..]];
                match conn.write_parts(&parts, self.out_pos) {
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
                // so far goes to the client now (when batching, httpd
                // wrote the buffer's worth it was given at once).
                if !batching {
                    self.flush()?;
                }
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
                let mut slice = match self.dynamic {
                    Some(d) if !self.answered => left.min(d.start_delay),
                    _ => left,
                };
                // A fresh connection to a server that keeps connections may
                // be waiting behind idle ones: checked once, after a
                // connect timeout without an answer.
                let starve_at = self.starve_deadline(last_io);
                if let Some(at) = starve_at {
                    slice = slice.min(at.saturating_duration_since(now));
                }
                // Output waiting for a slow client goes on as it takes it.
                let watch = self.backlog.as_ref().is_some_and(|b| b.unread() > 0 || self.client.holding());
                let other = if watch { self.client.socket() } else { None };
                let polled = want_write || other.is_some();
                // A read that waits itself may wait for a full buffer; a
                // poll would not see what came below the mark (TCP).
                let low = if polled { 1 } else { self.low_water(input.len()) };
                conn.set_low_water(low).map_err(|e| self.comm_failed("setsockopt() failed", &e))?;
                if low > 1 {
                    slice = slice.min(LOW_WATER_PATIENCE);
                }
                let ready = if polled {
                    conn.wait_with(want_write, other, slice, now).map_err(|e| self.comm_failed("poll() failed", &e))?
                } else {
                    // Only the answer is awaited: the read itself waits.
                    match conn.read_within(input, slice) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ready::default(),
                        got => {
                            read_now = Some(got);
                            Ready { readable: true, ..Ready::default() }
                        }
                    }
                };
                if ready.other_writable {
                    self.feed(held)?;
                }
                if !ready.readable && !ready.writable {
                    if ready.other_writable {
                        continue;
                    }
                    if starve_at.is_some_and(|at| Instant::now() >= at) {
                        self.check_starving();
                        continue;
                    }
                    if low > 1 && last_io.is_some_and(|t| t.elapsed() < idle) {
                        // The application paused: flushed before the next wait.
                        batching = false;
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
                        upstream::endpoint_silent(self.server, m, &self.endpoint, &mut |l, e, t| {
                            self.client.log(l, e, t)
                        });
                    }
                    return Err(Stop::Failed(504));
                }
                may_write |= ready.writable;
                may_read = ready.readable;
                if !may_read {
                    continue;
                }
            }
            let n = match read_now.take().unwrap_or_else(|| conn.read(input)) {
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
                Ok(0) => return self.end_of_output().map(|()| false),
                Ok(n) => {
                    last_io = None;
                    if let Some(m) = self.metrics.filter(|_| !self.answered) {
                        m.first_byte(Instant::now());
                        upstream::endpoint_answered(self.server, m, &self.endpoint, &mut |l, e, t| {
                            self.client.log(l, e, t)
                        });
                    }
                    self.answered = true;
                    // A full buffer: more is likely waiting, unless the
                    // next read waits for a full buffer anyway (once the
                    // request is written: until then the wait is a poll).
                    let full = n == input.len();
                    batching = full && self.stdin_done && self.low_water(input.len()) > 1;
                    may_read = full && !batching;
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    may_read = false;
                    batching = false;
                    continue;
                }
                Err(_) if self.replayable() => return Err(Stop::Stale),
                // An application that dies with request bytes unread resets
                // the connection instead of closing it: before the headers
                // that is the same incomplete answer as a close.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset && matches!(self.phase, Phase::Headers(_)) => {
                    return self.end_of_output().map(|()| false)
                }
                Err(e) => return Err(self.comm_failed("read failed", &e)),
            };
            // A client that has not taken what it got so far gets the rest
            // through a backlog, so the application never waits for it.
            if self.backlog.is_none() && self.hold_memory > 0 && self.sent && self.client_behind() {
                self.start_backlog();
            }
            // Everything this read brought goes to httpd's filters in one
            // pass, also when the response fails inside it; when it ends
            // there, the pass is the caller's.
            let ended = self.on_input(&mut decoder, &input[..n]);
            if matches!(ended, Ok(true)) {
                return Ok(true);
            }
            let passed = self.pass();
            ended?;
            passed?;
            if self.backlog.is_some() {
                self.feed(held)?;
            }
        }
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
                    self.reusable = self.keep
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
            // A dynamic application gone without a byte may have failed at
            // once: then the manager says how it ended, as it does to the
            // requests that come after (503).
            if let Some(why) = self.dynamic.filter(|_| !self.answered).and_then(|d| d.refusal(&self.server.path)) {
                let msg = format!("FastCGI: failed to connect to (dynamic) server \"{}\": {why}", self.server.path);
                self.log(Level::Error, 0, &msg);
                self.note(Cause::ConnectRefused);
                return Err(Stop::Failed(503));
            }
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
        // The last pass flushes a small response that ended cleanly
        // (`pass_last`); what is left httpd writes after the handler.
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

    /// How many bytes the next read from the application waits for: a
    /// buffer's worth while the body it announced still owes at least
    /// that much (fewer, fuller reads, each one write to the client), else
    /// whatever has come. Not under `-flush`, which sends each piece on at
    /// once.
    fn low_water(&mut self, buffer: usize) -> usize {
        if !matches!(self.phase, Phase::Body) || self.server.options.flush {
            return 1;
        }
        let announced = *self.announced.get_or_insert_with(|| self.client.announced_length());
        match announced {
            Some(len) if len.saturating_sub(self.body_seen) >= buffer as u64 => buffer,
            _ => 1,
        }
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

    /// When this request checks whether idle kept connections are keeping
    /// it waiting ([`Self::check_starving`]): a fresh connection that may be
    /// kept (others are, then), no answer yet, [`upstream::starve_wait`]
    /// after the wait began (`since`, the idle clock's start).
    fn starve_deadline(&self, since: Option<Instant>) -> Option<Instant> {
        if !self.keep || self.reused || self.answered || self.starve_checked {
            return None;
        }
        Some(since? + upstream::starve_wait(self.server))
    }

    /// A request that got no answer on a fresh connection for a connect
    /// timeout: when connections to its endpoint sit idle in the pools,
    /// they may hold every application process, so they are closed (here
    /// at once, in the other children as they use their pools) and the
    /// request goes on waiting for the process one of them frees.
    fn check_starving(&mut self) {
        self.starve_checked = true;
        let Some(m) = self.metrics else { return };
        if let Some(closed) = upstream::starving(self.server, m, &self.endpoint) {
            let msg = format!(
                "FastCGI: server \"{}\": a request waited {} s on a new connection while connections to the application are kept; closing the idle ones ({closed} in this process) and keeping none for a while",
                self.server.path,
                upstream::starve_wait(self.server).as_secs()
            );
            self.log(Level::Info, 0, &msg);
        }
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
