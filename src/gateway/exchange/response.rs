//! STDOUT and STDERR of an exchange: the CGI header block, the body
//! passed to httpd's filters (batched, flushed when the application
//! pauses), a backlog while the client is slower than the application,
//! pacing when the backlog is full, and STDERR lines to the error log.

use std::io;

use super::{Exchange, Phase, Stop, MAX_STDERR_LINE};
use crate::gateway::backlog::{CORE_MIN_WRITE, FEED_PIECE};
use crate::gateway::buffers::Spare;
use crate::gateway::headers::{block_end, sanitize, MAX_HEADER_BLOCK};
use crate::gateway::spool::over_budget;
use crate::gateway::{HeaderVerdict, Spool};
use crate::log::Level;
use crate::metrics::Outcome as Cause;
use crate::transport;

impl Exchange<'_> {
    /// Whether the client has not taken what it was given, so that more
    /// for it must wait in a backlog: httpd still holds output after being
    /// handed enough to write at once (a write found the socket full), or
    /// holds a little and the socket is full. A little held output with
    /// room in the socket is flushed now, so that the next pass starts
    /// from nothing held and never waits.
    pub(super) fn client_behind(&mut self) -> bool {
        if !self.client.holding() {
            return false;
        }
        if self.last_pass >= CORE_MIN_WRITE || self.client.behind() {
            return true;
        }
        self.unflushed = false;
        self.client.pass(true).is_err() || self.client.holding()
    }

    pub(super) fn start_backlog(&mut self) {
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
            // Over the budget with nothing held (a FastCgiResponseBuffer
            // smaller than a read): the bytes go to the client, paced.
            Err(e) if over_budget(&e).is_some() && backlog.unread() == 0 => {
                self.backlog = None;
                self.queue(data);
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
    pub(super) fn feed(&mut self, spare: &mut [u8]) -> Result<(), Stop> {
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
    pub(super) fn pace(&mut self, spare: &mut [u8]) -> Result<(), Stop> {
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

    /// The server-wide budget of temporary files is used up: the client
    /// gets held bytes (waiting for it as httpd's `Timeout` allows) until
    /// the backlog has room for `need` more again, at the latest once it is
    /// empty and back in memory. Meanwhile the application waits.
    pub(super) fn pace_for_budget(&mut self, spare: &mut [u8], need: usize) -> Result<(), Stop> {
        if !self.paced {
            self.paced = true;
            if crate::metrics::spool_refusal_to_log() {
                let msg = format!(
                    "FastCGI: the budget of temporary files (FastCgiSpoolBudget) is used up; pacing server \"{}\" to its slow client instead of holding more of its response",
                    self.server.path
                );
                self.log(Level::Warn, 0, &msg);
            }
        }
        while let Some(backlog) = self.backlog.as_mut() {
            if backlog.room_for(need) || backlog.unread() == 0 {
                return Ok(());
            }
            let n = backlog.read(spare).map_err(|e| self.spool_failed(&e))?;
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

    pub(super) fn on_stdout(&mut self, data: &[u8]) -> Result<(), Stop> {
        match &mut self.phase {
            Phase::Collect(output) => {
                if output.len() + data.len() > MAX_HEADER_BLOCK {
                    return Err(self.bad_headers(&format!("authorizer output exceeds {MAX_HEADER_BLOCK} bytes")));
                }
                output.extend_from_slice(data);
                Ok(())
            }
            Phase::Body => {
                self.body_seen += data.len() as u64;
                self.deliver(data)
            }
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
                        self.body_seen = rest.len() as u64;
                        // `rest` lives in the block, not in the read buffer:
                        // the block is kept until the pass at the end of
                        // this read hands it on (moving the Vec leaves its
                        // bytes where they are).
                        self.queue(rest);
                        self.head = Some(block);
                        return Ok(());
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
    pub(super) fn pass(&mut self) -> Result<(), Stop> {
        self.pass_with(false)
    }

    /// [`Self::pass`], with a flush in the same pass if `flush`.
    fn pass_with(&mut self, flush: bool) -> Result<(), Stop> {
        if self.queued == 0 && !flush {
            self.release_head();
            return Ok(());
        }
        self.last_pass = std::mem::take(&mut self.queued);
        self.sent = true;
        self.unflushed = !flush;
        let passed = self.client.pass(flush);
        // The queued bytes of the header block are handed on (a filter
        // that keeps them made its own copy).
        self.release_head();
        passed.map_err(|_| Stop::ClientGone)?;
        // `-flush`: each piece reaches the client at once (while it keeps up).
        if self.server.options.flush && !flush {
            self.flush()?;
        }
        Ok(())
    }

    fn release_head(&mut self) {
        if let Some(block) = self.head.take() {
            Spare::HeaderBlock.keep(block);
        }
    }

    /// The last pass of a response the application ended cleanly
    /// (END_REQUEST) in the read just decoded.
    ///
    /// Why it differs from the other passes: httpd's core output filter
    /// holds less than THRESHOLD_MIN_WRITE bytes until a flush, and without
    /// one the MPM writes them only after the handler has returned and
    /// httpd's check for a pipelined request (`ap_check_pipeline` in
    /// `ap_process_request_after_handler`) has found nothing, since the
    /// client had no answer yet. A keep-alive connection then goes back to
    /// the event MPM's listener (epoll, a queue, a worker woken) for every
    /// small request. Flushed here, the whole response is on its way while
    /// the handler and httpd finish the request, and a client's next
    /// request is usually there when httpd looks, so the same worker reads
    /// it (the original module flushes at this point too, `ap_rflush`).
    ///
    /// For the client the response is complete only with its end: a
    /// response whose head has not gone out yet has its whole body queued
    /// here, so it gets the Content-Length httpd's own filter would give it
    /// had the body and EOS come in one pass (which mod_cgi's pipe bucket
    /// does for a script that has finished), instead of chunks whose last
    /// one follows only with EOS. EOS itself is not passed here: with it,
    /// httpd's byte-range filter would apply Range headers to our
    /// responses, which it never did, and mod_cgi's does not.
    ///
    /// The flush never makes the handler wait for the client: it is made
    /// only when httpd held nothing before this pass (so the client took
    /// everything so far) and this pass is small; larger ones httpd writes
    /// at once without waiting, and what it cannot write goes out as
    /// before, after the handler.
    pub(super) fn pass_last(&mut self) -> Result<(), Stop> {
        if !matches!(self.phase, Phase::Body) || self.backlog.is_some() {
            return self.pass();
        }
        let head_pending = !self.sent;
        if head_pending {
            self.client.set_length(self.queued as u64);
        }
        let flush = self.queued < CORE_MIN_WRITE && (self.queued > 0 || head_pending) && !self.client.holding();
        self.ended_flushed = flush;
        self.pass_with(flush)
    }

    /// Flushes what was passed since the last flush: called when the
    /// application has nothing more ready (so a slow application's output
    /// reaches the client without delay while a fast one's is batched), and
    /// after each piece under `-flush`. A flush waits until the client has
    /// taken everything: a client that is behind gets a backlog instead.
    pub(super) fn flush(&mut self) -> Result<(), Stop> {
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
    pub(super) fn on_stderr(&mut self, data: &[u8]) {
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

    pub(super) fn flush_stderr(&mut self) {
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
}
