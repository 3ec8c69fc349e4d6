//! One FastCGI exchange for one request: spool a chunked body if its length
//! must be known, connect, send BEGIN_REQUEST + PARAMS + STDIN, stream STDOUT
//! back as it arrives, STDERR to the log, and map every failure to an HTTP
//! status (before the headers went out) or a clean truncation (after) with
//! the original mod_fastcgi's log texts.
//!
//! The HTTP side is the [`Client`] trait, implemented over `request_rec` by
//! the `apache` layer and by in-memory fakes in tests, so this module never
//! touches FFI.

mod attempt;
mod authorizer;
mod backlog;
mod body;
mod buffers;
mod environment;
mod exchange;
mod headers;
mod spool;

use std::io;

pub use attempt::{run, run_dynamic};
pub use authorizer::{authorize, AuthPhase, AuthResult};
pub use environment::variable as cgi_variable;
pub use spool::{temp_dir, Spool};

use crate::log::Level;
use crate::protocol::ParamsWriter;

/// How the request body is framed, as httpd's input filters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// No body.
    None,
    /// `Content-Length` bytes follow.
    Known(u64),
    /// Chunked (or HTTP/2 without a length): the length is known only at the end.
    Unknown,
}

/// The client went away while we were sending to it.
#[derive(Debug)]
pub struct ClientGone;

/// What httpd made of the application's CGI header block.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderVerdict {
    /// Headers applied to the response: send the body that follows.
    Body,
    /// Headers mean no body goes to the client: read the application's
    /// output to its end, discard it, then finish with this outcome.
    Discard(Outcome),
    /// httpd could not take the block as it is (the reason, for the log):
    /// the request fails with 500 rather than pass on something else.
    Refused(&'static str),
}

/// How a request ended, for the handler to return to httpd.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The response went to the client (or was cleanly truncated).
    Sent,
    /// Nothing was sent: httpd answers with this status and its error page.
    Status(u16),
    /// The application asked for this local URL with status 200: httpd
    /// serves it instead (an internal redirect, method GET).
    LocalRedirect(String),
}

/// The HTTP side of one request.
pub trait Client {
    /// The value of request header `name` (case-insensitive), for `-pass-header`.
    fn request_header(&self, name: &str) -> Option<Vec<u8>>;
    /// The file the request maps to (`r->filename`): a script whose name
    /// starts with `nph-` writes its own HTTP response, as with mod_cgi.
    /// Bytes: a file name need not be UTF-8.
    fn filename(&self) -> Option<&[u8]>;
    /// Writes to `params` each CGI variable httpd computes for the request
    /// (`ap_add_common_vars` + `ap_add_cgi_vars`), after setting `overrides`,
    /// named as [`cgi_variable`] says.
    /// With `auth_role` (an authorizer phase: `AUTHENTICATOR`,
    /// `AUTHORIZER`, `ACCESS_CHECKER`) the original's authorizer variant:
    /// no PATH_TRANSLATED (its sub-request would run the auth phases again),
    /// and FCGI_APACHE_ROLE.
    fn cgi_vars(&mut self, auth_role: Option<&str>, overrides: &[(String, Vec<u8>)], params: &mut ParamsWriter<'_>);
    /// Whether the request's method is idempotent (GET, HEAD, PUT, DELETE,
    /// OPTIONS, TRACE): only such a request may be sent again after some of
    /// its body went to an application that then closed without answering.
    fn idempotent(&self) -> bool;
    /// Prepares to read the body; `Err(status)` for a request httpd rejects.
    fn body_length(&mut self) -> Result<BodyLength, u16>;
    /// httpd's `LimitRequestBody` for the request, when one is set.
    fn body_limit(&self) -> Option<u64>;
    /// Whether the body is received whole before the application is asked
    /// (`FastCgiRequestBuffering` of the request's sections, On by default).
    fn buffers_body(&self) -> bool;
    /// Reads request body bytes (de-chunked); `Ok(0)` at its end. Without
    /// `wait`, `WouldBlock` when none have arrived yet.
    fn read_body(&mut self, buf: &mut [u8], wait: bool) -> io::Result<usize>;
    /// Hands a complete CGI header block (ending with its blank line) to
    /// httpd's header scanner.
    fn apply_headers(&mut self, block: &[u8]) -> HeaderVerdict;
    /// Sets the response's Content-Type (pages the module writes itself).
    fn set_content_type(&mut self, content_type: &str);
    /// For `-nph`: the output is a whole HTTP response; bypass httpd's
    /// protocol filters.
    fn start_nph(&mut self);
    /// The length of the body the application's headers announced (a
    /// Content-Length httpd's scanner took), when the status has a body.
    fn announced_length(&self) -> Option<u64>;
    /// Sets the response's Content-Length to `len` (the whole body, known
    /// before the head goes out), as httpd's content-length filter does
    /// when it sees a whole response; unchanged when it says so already.
    fn set_length(&mut self, len: u64);
    /// Adds response body bytes to what the next [`Client::pass`] hands to
    /// httpd's filters; `data` must stay unchanged until then (it is not
    /// copied unless a filter keeps it).
    fn queue(&mut self, data: &[u8]);
    /// Hands what was queued to httpd's output filters in one pass, then a
    /// flush if `flush`.
    fn pass(&mut self, flush: bool) -> Result<(), ClientGone>;
    /// The client has not taken what was passed so far: httpd holds output
    /// it could not write and the client's socket is full, so passing more
    /// now could block until the client reads.
    fn behind(&mut self) -> bool;
    /// Whether httpd holds response output it has not written yet.
    fn holding(&self) -> bool;
    /// The client's socket, to wait until it can take more (None where the
    /// connection has no socket of its own).
    fn socket(&mut self) -> Option<std::os::fd::RawFd>;
    /// Ends a response that has no body for the client (HEAD, 204, 304)
    /// and whose application ended cleanly, as httpd would after the
    /// handler, and puts its head on the wire unless the client is behind:
    /// so the worker that answered reads a keep-alive client's next
    /// request. Leaves any other response as it is.
    fn end_bodiless(&mut self);
    /// Ends a response whose headers already went out as broken: the client
    /// sees a truncated reply, not a complete-looking one.
    fn send_broken(&mut self);
    /// For the scoreboard, once the request is done: the response status,
    /// request body bytes read and response body bytes sent.
    fn traffic(&self) -> (u16, u64, u64) {
        (200, 0, 0)
    }
    /// Writes `msg` to the request's error log; `errno` (0 for none) adds
    /// httpd's "(N)text:" prefix.
    fn log(&self, level: Level, errno: i32, msg: &str);
    /// Adds `Retry-After: seconds` to the error response httpd sends (a
    /// refusal under `-max-in-flight`).
    fn retry_after(&mut self, seconds: u32);
    /// Sets the request note `name` to `value`, for `%{name}n` in a
    /// LogFormat ([`attempt`]'s `fastcgi-*` notes).
    fn note(&mut self, name: &'static std::ffi::CStr, value: &str);
}
