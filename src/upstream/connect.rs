//! Connecting a request to its server: the one endpoint, or each of a
//! balanced server's in the order [`super::balance`] gives, with failover,
//! endpoint health and the original's log lines; a dynamic application
//! through the process manager ([`super::dynamic`]).

use std::borrow::Cow;
use std::io;
use std::time::Duration;

use super::{balance, dynamic::OnDemand, health};
use crate::config::Server;
use crate::log::Level;
use crate::metrics::{Outcome as Cause, Tracker};
use crate::transport::{self, Conn, Endpoint};

/// A connection made: the connection, the endpoint it reached (borrowed
/// from the configuration unless it is an address learned since), and a
/// failover to log.
pub type Connected<'s> = (Conn, Cow<'s, Endpoint>, Option<String>);

/// A new connection to `server` (a dynamic one through the manager),
/// leaving out the endpoints in `tried`; a failover is logged through `log`
/// as a warning. Err gives the errno and the original's log line.
pub fn open<'s>(
    server: &'s Server,
    dynamic: Option<&OnDemand>,
    metrics: &Tracker,
    tried: &[Endpoint],
    log: &mut dyn FnMut(Level, i32, &str),
) -> Result<(Conn, Cow<'s, Endpoint>), (i32, String)> {
    let (conn, endpoint, note) = match dynamic {
        None => connect_excluding(server, Some(metrics), tried, log)?,
        Some(d) => d.connect(server)?,
    };
    if let Some(note) = note {
        log(Level::Warn, 0, &note);
    }
    Ok((conn, endpoint))
}

/// Connects to `server`: its endpoint, or with several each in turn, in
/// the order `-balance` and the endpoints' health give (`balance`). Ok
/// gives the connection, the endpoint it reached and, after a failover, a
/// line to log; Err the errno and the original's log line. Each attempt is
/// counted on `metrics`; an endpoint going down is logged through `log`,
/// once for all children.
pub fn connect<'s>(
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
                // The socket or address, which the server's path does not say
                // (php-fpm's socket behind /usr/lib/cgi-bin/php-fcgi).
                let tried = [server.endpoint.to_string()];
                let last = (e.raw_os_error().unwrap_or(0), connect_failure(server, &e));
                Err(not_connected(server, metrics, Some(&tried), last))
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
                health::mark_up(endpoint);
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
                health::mark_down(endpoint);
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
pub fn endpoint_answered(
    server: &Server,
    metrics: &Tracker,
    endpoint: &Endpoint,
    log: &mut dyn FnMut(Level, i32, &str),
) {
    let Some((board, ep)) = metrics.current_endpoint() else { return };
    if metrics.was_down() && board.endpoint_down(ep) && board.endpoint_ok(ep, crate::metrics::now_ms()) {
        log(Level::Warn, 0, &format!("FastCGI: server \"{}\" endpoint {endpoint} is up again", server.path));
    }
}

/// A new connection's request got no byte within `-idle-timeout`: the
/// endpoint is down for everyone (logged once), so no other request
/// waits on it until it answers again.
pub fn endpoint_silent(server: &Server, metrics: &Tracker, endpoint: &Endpoint, log: &mut dyn FnMut(Level, i32, &str)) {
    if !balance::balanced(server, Some(metrics)) {
        return;
    }
    let Some((board, ep)) = metrics.current_endpoint() else { return };
    if board.endpoint_failed(ep, crate::metrics::now_ms(), crate::metrics::layout::endpoint::DOWN_SILENT, true) {
        let msg = format!(
            "FastCGI: server \"{}\" endpoint {endpoint} is down (no answer within the idle timeout, {} sec)",
            server.path, server.options.idle_timeout
        );
        log(Level::Error, 0, &msg);
    }
}
