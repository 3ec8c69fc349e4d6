//! What goes to the application: BEGIN_REQUEST and PARAMS (encoded once
//! per request, before the exchange), then the request body as STDIN
//! records built around the body buffer, so that the body is not copied
//! again in Apache, and the end of STDIN.

use super::{Exchange, Stop};
use crate::gateway::body::{fill_from_client, Body, STDIN_PIECE};
use crate::log::Level;
use crate::metrics::Outcome as Cause;
use crate::protocol::RequestEncoder;

impl Exchange<'_> {
    /// Bytes of the current write to the application (see `out`).
    #[inline]
    pub(super) fn out_len(&self) -> usize {
        self.out.len() + self.body_len + self.tail.len()
    }

    /// Appends the next piece of the request body, as STDIN records, to
    /// what is still to be written: what the client has sent so far, up to
    /// one record's worth, so the application gets few large writes; the
    /// end of the body goes in the same write when it has come.
    pub(super) fn refill_stdin(&mut self, buf: &mut [u8]) -> Result<(), Stop> {
        if self.out_pos == self.out_len() {
            self.out.clear();
            self.tail.clear();
            self.body_len = 0;
            self.out_pos = 0;
        }
        let piece = STDIN_PIECE.min(buf.len());
        let buf = &mut buf[..piece];
        let (n, end) = match &mut self.body {
            Body::None => (0, true),
            Body::Streamed => {
                self.body_read = true;
                fill_from_client(&mut *self.client, buf).map_err(|e| {
                    self.log(
                        Level::Info,
                        e.raw_os_error().unwrap_or(0),
                        "FastCGI: client stopped connection before send body completed",
                    );
                    self.note(Cause::ClientGone);
                    Stop::Failed(400)
                })?
            }
            // A spooled body can be read again, but what went out may have
            // been acted on: it counts as sent unless the method is
            // idempotent. Read a piece at a time into the thread's buffer,
            // it costs no memory of its own however many requests wait
            // with a received body.
            Body::Spooled(spool) => match spool.read(buf) {
                Ok(n) => {
                    if n > 0 && !self.client.idempotent() {
                        self.body_read = true;
                    }
                    (n, spool.unread() == 0)
                }
                Err(e) => {
                    let msg = "FastCGI: reading the received request body failed";
                    self.log(Level::Error, e.raw_os_error().unwrap_or(0), msg);
                    self.note(Cause::GatewayError);
                    return Err(Stop::Failed(500));
                }
            },
        };
        // The record's header ends `out`, its content stays in `buf`, and
        // its padding (and the end of STDIN) follow in `tail`.
        let enc = RequestEncoder::new(self.request_id);
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
}
