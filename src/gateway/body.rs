//! The request body on its way to the application: none, streamed from
//! the client as it arrives, or received whole first (a spool: memory,
//! then a temporary file). Received first by default, so that a slow
//! upload never holds an application process (most serve one request at
//! a time, and many read the whole body before they run); always for a
//! chunked body, whose length the application needs.

use std::io;

use super::buffers::Scratch;
use super::spool::{over_budget, temp_dir};
use super::{BodyLength, Client, Spool};
use crate::config::{Config, Server};
use crate::log::Level;
use crate::metrics::Tracker;

/// Where STDIN comes from.
pub(super) enum Body {
    None,
    /// Straight from the client, as it arrives.
    Streamed,
    /// Received whole first, then replayed.
    Spooled(Spool),
}

/// Decides where the body comes from, receiving it first unless it is
/// larger than `FastCgiRequestSpoolMax` or buffering is off for the
/// request; Err is the status to answer with (logged). Nothing of the
/// request reaches an application before this returns.
pub(super) fn prepare_body(
    client: &mut dyn Client,
    config: &Config,
    server: &Server,
    metrics: &Tracker,
) -> Result<Body, u16> {
    let memory = usize::try_from(config.request_buffer).unwrap_or(usize::MAX);
    let spool = || Spool::in_dir(memory, config.temp_dir.clone());
    match client.body_length()? {
        BodyLength::None | BodyLength::Known(0) => Ok(Body::None),
        BodyLength::Known(n) if n <= config.request_spool_max && client.buffers_body() => {
            // The whole length is taken from the budget of temporary files
            // first: a body that cannot have it is streamed instead.
            let mut spool = spool();
            if n > memory as u64 {
                if let Err(e) = spool.charge(n) {
                    if over_budget(&e).is_some_and(|o| o.first) {
                        let msg = format!(
                            "FastCGI: the budget of temporary files (FastCgiSpoolBudget) is used up; streaming the request body to server \"{}\" as it arrives",
                            server.path
                        );
                        client.log(Level::Warn, 0, &msg);
                    }
                    return Ok(Body::Streamed);
                }
            }
            receive(client, config, spool, None, metrics).map(Body::Spooled)
        }
        BodyLength::Known(_) => Ok(Body::Streamed),
        BodyLength::Unknown if config.chunked_body_max == 0 => Err(411),
        BodyLength::Unknown => {
            let max = client.body_limit().map_or(config.chunked_body_max, |limit| limit.min(config.chunked_body_max));
            receive(client, config, spool(), Some(max), metrics).map(Body::Spooled)
        }
    }
}

/// Reads the whole body into `spool`, bounded by `max` for a chunked one
/// (the smaller of FastCgiChunkedBodyMax and LimitRequestBody; httpd
/// bounds the rest: `LimitRequestBody`, `Timeout`, mod_reqtimeout).
fn receive(
    client: &mut dyn Client,
    config: &Config,
    mut spool: Spool,
    max: Option<u64>,
    metrics: &Tracker,
) -> Result<Spool, u16> {
    let mut scratch = Scratch::take();
    let Scratch { input, body, held } = &mut *scratch;
    // The thread's three I/O buffers are filled in turn and written out
    // together: one write to the temporary file per 192 KiB.
    let mut bufs = [body.as_mut_slice(), held.as_mut_slice(), input.as_mut_slice()];
    let mut ended = false;
    while !ended {
        let mut lens = [0usize; 3];
        'fill: for (buf, len) in bufs.iter_mut().zip(lens.iter_mut()) {
            while *len < buf.len() {
                match client.read_body(&mut buf[*len..], true) {
                    Ok(0) => {
                        ended = true;
                        break 'fill;
                    }
                    Ok(n) => *len += n,
                    Err(e) => {
                        client.log(
                            Level::Info,
                            e.raw_os_error().unwrap_or(0),
                            "FastCGI: client stopped connection before send body completed",
                        );
                        return Err(400);
                    }
                }
            }
        }
        let got: usize = lens.iter().sum();
        if let Some(max) = max.filter(|&max| spool.len() + got as u64 > max) {
            let msg = format!(
                "FastCGI: chunked request body larger than FastCgiChunkedBodyMax or LimitRequestBody ({max} bytes)"
            );
            client.log(Level::Error, 0, &msg);
            return Err(413);
        }
        let parts = [&bufs[0][..lens[0]], &bufs[1][..lens[1]], &bufs[2][..lens[2]]];
        let parts = &parts[..lens.iter().filter(|&&n| n > 0).count()];
        if let Err(e) = spool.write_parts(parts) {
            if let Some(o) = over_budget(&e) {
                if o.first {
                    client.log(
                        Level::Warn,
                        0,
                        "FastCGI: the budget of temporary files (FastCgiSpoolBudget) is used up; a chunked request body is refused with 503",
                    );
                }
                client.retry_after(1);
                return Err(503);
            }
            let msg = format!(
                "FastCGI: cannot write the request body to a temporary file in {} (FastCgiTempDir); nothing was sent to the application",
                temp_dir(config.temp_dir.as_deref()).display()
            );
            client.log(Level::Error, e.raw_os_error().unwrap_or(0), &msg);
            return Err(500);
        }
    }
    metrics.received(spool.len(), spool.in_file());
    Ok(spool)
}

/// Request body bytes per STDIN write: the most one record holds, rounded
/// down to a multiple of 8 so it needs no padding.
pub(super) const STDIN_PIECE: usize = 65528;

/// Reads what the client has sent of the body into `buf`: waits for the
/// first bytes, then takes what has already arrived. The count, and whether
/// the body ended.
pub(super) fn fill_from_client(client: &mut dyn Client, buf: &mut [u8]) -> io::Result<(usize, bool)> {
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
