//! The response backlog's last part: what a slow client had not taken when
//! the application finished goes out after the application is free. (How
//! bytes enter and leave a backlog during the exchange is in
//! `exchange::response`; the storage is [`super::Spool`].)

use super::buffers::Scratch;
use super::{Client, Spool};
use crate::config::Server;
use crate::log::Level;

/// httpd's core output filter writes at once when handed this much
/// (THRESHOLD_MIN_WRITE), and holds smaller amounts until more or a flush.
pub(super) const CORE_MIN_WRITE: usize = 4096;

/// What a backlog hands httpd at a time while the application still writes:
/// small enough that writing it never makes a request wait long for a slow
/// client.
pub(super) const FEED_PIECE: usize = 16 * 1024;

/// Sends a backlog's bytes to the client once the application is done,
/// waiting for the client as long as httpd's `Timeout` allows. Err when the
/// client went away or the backlog could not be read (logged).
pub(super) fn deliver_backlog(client: &mut dyn Client, server: &Server, mut backlog: Spool) -> Result<(), ()> {
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
