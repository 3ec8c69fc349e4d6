//! The request body on its way to the application: none, streamed from
//! the client as it arrives, or spooled first when its length must be
//! known (chunked).

use std::io;

use super::buffers::Scratch;
use super::{BodyLength, Client, Spool};
use crate::config::Config;
use crate::log::Level;

/// Where STDIN comes from.
pub(super) enum Body {
    None,
    /// Straight from the client, as it arrives.
    Streamed,
    /// Spooled first (length unknown until the end), then replayed.
    Spooled(Spool),
}

/// Reads a chunked body into a spool (bounded by `FastCgiChunkedBodyMax`)
/// to learn its length; Err is the status to answer with (logged).
pub(super) fn prepare_body(client: &mut dyn Client, config: &Config) -> Result<Body, u16> {
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
