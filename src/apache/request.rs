//! `gateway::Client` over httpd's `request_rec`: the CGI environment from
//! httpd's own functions, the body through `ap_get_client_block`, response
//! headers through httpd's CGI header scanner, output through the filter
//! chain, and logging into the request's error log.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;
use std::os::raw::{c_char, c_int, c_void};

use super::ffi::{self, apr_bucket_brigade, request_rec};
use super::{c_bytes, c_str, client_socket};
use crate::gateway::{BodyLength, Client, ClientGone, HeaderVerdict, Outcome};
use crate::log::Level;
use crate::protocol::ParamsWriter;

/// One request being served; lives for the handler call.
pub(super) struct ApacheRequest {
    r: *mut request_rec,
    bb: *mut apr_bucket_brigade,
    /// The client's socket, once looked up.
    socket: Option<Option<RawFd>>,
    /// For reading the request body, made on first use.
    bb_in: *mut apr_bucket_brigade,
    /// Whether the connection's socket reads are widened for the body.
    body_reads: BodyReads,
}

/// The client socket's read size over the body's life (issue 9).
enum BodyReads {
    /// No body read yet.
    NotYet,
    /// Reading it, with wide reads when the connection has our bucket
    /// (held for its drop, which narrows them).
    Reading { _wide: Option<client_socket::WideReads> },
    /// The body is done (or failed): reads are as stock again.
    Done,
}

impl ApacheRequest {
    fn bb_in(&mut self) -> *mut apr_bucket_brigade {
        if self.bb_in.is_null() {
            // SAFETY: r is the live request; its pool and connection outlive this value.
            self.bb_in = unsafe { ffi::apr_brigade_create((*self.r).pool, (*(*self.r).connection).bucket_alloc) };
        }
        self.bb_in
    }

    pub(super) fn new(r: *mut request_rec) -> Self {
        // SAFETY: r is the live request; its pool and connection outlive this value.
        let bb = unsafe { ffi::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc) };
        ApacheRequest { r, bb, socket: None, bb_in: std::ptr::null_mut(), body_reads: BodyReads::NotYet }
    }

    fn pool_cstr(&self, s: &[u8]) -> *const c_char {
        // SAFETY: the request's pool lives as long as the request.
        unsafe { super::pool_str((*self.r).pool, s) }
    }

    /// The original's authorizer variables, added by hand where
    /// `ap_add_cgi_vars` would run a sub-request.
    fn authorizer_vars(&self, role: &str) -> Vec<(String, Vec<u8>)> {
        // SAFETY: r is live; its strings are NULL or pool strings.
        let r = unsafe { &*self.r };
        // SAFETY: as above.
        let text = |p: *const std::os::raw::c_char| unsafe { c_str(p) }.unwrap_or("").as_bytes().to_vec();
        let uri = text(r.uri);
        let path_info = text(r.path_info);
        let script_name = match uri.strip_suffix(path_info.as_slice()) {
            Some(prefix) if !path_info.is_empty() => prefix.to_vec(),
            _ => uri.clone(),
        };
        let mut vars = vec![
            ("GATEWAY_INTERFACE".to_string(), b"CGI/1.1".to_vec()),
            ("SERVER_PROTOCOL".to_string(), text(r.protocol)),
            ("REQUEST_METHOD".to_string(), text(r.method)),
            ("QUERY_STRING".to_string(), text(r.args)),
            ("REQUEST_URI".to_string(), text(r.unparsed_uri)),
            ("SCRIPT_NAME".to_string(), script_name),
            ("FCGI_APACHE_ROLE".to_string(), role.as_bytes().to_vec()),
        ];
        if !path_info.is_empty() {
            vars.push(("PATH_INFO".to_string(), path_info));
        }
        vars
    }

    /// Adds a variable to the request's environment (what an authorizer
    /// grants to later phases and the handler).
    pub(super) fn set_env(&mut self, name: &str, value: &str) {
        let (k, v) = (self.pool_cstr(name.as_bytes()), self.pool_cstr(value.as_bytes()));
        // SAFETY: r is live; key and value live in its pool, as setn requires.
        unsafe { ffi::apr_table_setn((*self.r).subprocess_env, k, v) };
    }

    /// Adds a header to the error response (an authorizer's denial).
    pub(super) fn add_err_header(&mut self, name: &str, value: &str) {
        let (k, v) = (self.pool_cstr(name.as_bytes()), self.pool_cstr(value.as_bytes()));
        // SAFETY: r is live; key and value live in its pool, as addn requires.
        unsafe { ffi::apr_table_addn((*self.r).err_headers_out, k, v) };
    }

    pub(super) fn log_error(&self, msg: &str) {
        self.log(Level::Error, 0, msg);
    }

    /// Serves `location` instead, as mod_cgi does for `Location: /path` with
    /// status 200: method GET, no request body.
    pub(super) fn internal_redirect(&mut self, location: &str) {
        let loc = self.pool_cstr(location.as_bytes());
        // SAFETY: r is live; the strings are static or in the request pool.
        unsafe {
            (*self.r).method = c"GET".as_ptr();
            (*self.r).method_number = ffi::M_GET as c_int;
            ffi::apr_table_unset((*self.r).headers_in, c"Content-Length".as_ptr());
            ffi::ap_internal_redirect_handler(loc, self.r);
        }
    }
}

/// A decimal number of ASCII digits; None when empty, when another byte
/// is in it, or when it overflows.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let d = if d.is_ascii_digit() { d - b'0' } else { return None };
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Apache's own TZ, read once: httpd does not change its process
/// environment while serving.
fn process_tz() -> Option<&'static [u8]> {
    static TZ: std::sync::OnceLock<Option<Box<[u8]>>> = std::sync::OnceLock::new();
    TZ.get_or_init(|| std::env::var_os("TZ").map(|v| v.into_encoded_bytes().into_boxed_slice())).as_deref()
}

/// Feeds httpd's header scanner one line at a time from the header block.
///
/// The scanner asks for lines of at most `MAX_STRING_LEN - 1` bytes, but
/// always into the buffer its caller passed; that buffer is ours and sized
/// for the block's longest line, so a long line (a big Set-Cookie or CSP)
/// reaches the client whole, as with the original module. A line is never
/// split in two: that would turn its tail into a header line of its own.
struct Lines<'a> {
    rest: &'a [u8],
    /// Our buffer, and how many bytes it holds.
    buf: *mut c_char,
    cap: usize,
    /// A line did not fit the buffer the scanner passed (not ours).
    refused: bool,
}

thread_local! {
    /// The header scanner's line buffer, kept for the thread's next request.
    static SCAN_BUFFER: Cell<Vec<c_char>> = const { Cell::new(Vec::new()) };
}

/// The `getsfunc` of `ap_scan_script_header_err_core_ex`: copies the next
/// line (with its newline) and NUL-terminates it; 0 when the block is used
/// up or the line does not fit.
extern "C" fn next_line(buf: *mut c_char, len: c_int, data: *mut c_void) -> c_int {
    super::guard(0, || {
        // SAFETY: data is the &mut Lines passed by apply_headers for this call.
        let lines = unsafe { &mut *(data as *mut Lines<'_>) };
        let room = if buf == lines.buf { lines.cap } else { usize::try_from(len).unwrap_or(0) };
        if lines.rest.is_empty() || room < 2 || buf.is_null() {
            return 0;
        }
        let line_len = memchr::memchr(b'\n', lines.rest).map_or(lines.rest.len(), |i| i + 1);
        if line_len > room - 1 {
            lines.refused = true;
            return 0;
        }
        let (line, rest) = lines.rest.split_at(line_len);
        // SAFETY: buf holds `room` writable bytes (our own buffer of `cap`
        // bytes, or the scanner's `len`); we write line_len <= room - 1
        // bytes plus a NUL.
        unsafe {
            std::ptr::copy_nonoverlapping(line.as_ptr(), buf.cast::<u8>(), line_len);
            *buf.add(line_len) = 0;
        }
        lines.rest = rest;
        1
    })
}

impl Client for ApacheRequest {
    fn filename(&self) -> Option<&[u8]> {
        // SAFETY: r is live; filename is NULL or a pool string that outlives self.
        unsafe { c_bytes((*self.r).filename) }
    }

    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        let name = CString::new(name).ok()?;
        // SAFETY: headers_in is the live request's table; the key is a live C string.
        let v = unsafe { ffi::apr_table_get((*self.r).headers_in, name.as_ptr()) };
        // SAFETY: NULL or a pool string.
        (!v.is_null()).then(|| unsafe { CStr::from_ptr(v) }.to_bytes().to_vec())
    }

    fn cgi_vars(&mut self, auth_role: Option<&str>, overrides: &[(String, Vec<u8>)], params: &mut ParamsWriter<'_>) {
        // SAFETY: r is live; subprocess_env is its table.
        let own = unsafe { (*self.r).subprocess_env };
        // Every name httpd's helpers write is already a clean CGI name (they
        // are literals, or `HTTP_` + a header name whose every byte is an
        // ASCII letter, digit or `-`, turned into `_`); so when they fill
        // an empty table and nothing else is added, no name is checked.
        // SAFETY: own is the request's live table.
        let httpds_own = overrides.is_empty() && auth_role.is_none() && unsafe { ffi::apr_is_empty_table(own) } != 0;
        // Nothing of this exchange may stay in the request's environment,
        // where later handlers, SSI, logs and internal redirects would see
        // it: an authorizer's variables (REMOTE_PASSWD, the role) and the
        // `-pass-header` values go into a copy, as the original restored
        // its saved table after an authorizer. A responder leaves what
        // mod_cgi leaves (httpd's CGI variables).
        // SAFETY: r is live; the helpers fill r->subprocess_env from the
        // request, and a copy lives in the request's pool.
        let env = unsafe {
            if auth_role.is_some() {
                (*self.r).subprocess_env = ffi::apr_table_copy((*self.r).pool, own);
            }
            ffi::ap_add_common_vars(self.r);
            if auth_role.is_none() {
                ffi::ap_add_cgi_vars(self.r);
            }
            let env = (*self.r).subprocess_env;
            (*self.r).subprocess_env = own;
            if auth_role.is_none() && !overrides.is_empty() {
                ffi::apr_table_copy((*self.r).pool, env)
            } else {
                env
            }
        };
        let mut vars: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(role) = auth_role {
            vars = self.authorizer_vars(role);
        }
        for (name, value) in vars.iter().chain(overrides) {
            let (k, v) = (self.pool_cstr(name.as_bytes()), self.pool_cstr(value));
            // SAFETY: key and value live in the request pool, as setn requires.
            unsafe { ffi::apr_table_setn(env, k, v) };
        }
        // The original's exact environment, as ap_create_environment would
        // give it (TZ from Apache's own environment when the table has
        // none), encoded straight from the table.
        if let Some(tz) = process_tz() {
            // SAFETY: env is the live table; the key is a C literal.
            if unsafe { ffi::apr_table_get(env, c"TZ".as_ptr()) }.is_null() {
                params.pair(b"TZ", tz);
            }
        }
        let mut scratch = Vec::new();
        // SAFETY: env is the live table; apr_table_elts gives its entry array.
        let arr = unsafe { &*ffi::apr_table_elts(env) };
        let entries = arr.elts as *const ffi::apr_table_entry_t;
        for i in 0..usize::try_from(arr.nelts).unwrap_or(0) {
            // SAFETY: i < nelts, so the entry is inside the array.
            let entry = unsafe { &*entries.add(i) };
            if entry.key.is_null() {
                continue;
            }
            // SAFETY: keys and values of a live table are NULL or pool strings.
            let key = unsafe { CStr::from_ptr(entry.key) }.to_bytes();
            // SAFETY: as above.
            let val = if entry.val.is_null() { &[][..] } else { unsafe { CStr::from_ptr(entry.val) }.to_bytes() };
            if httpds_own {
                params.pair(key, val);
            } else {
                crate::gateway::cgi_variable(key, val, &mut scratch, |name, value| params.pair(name, value));
            }
        }
    }

    fn idempotent(&self) -> bool {
        // SAFETY: r is the live request.
        let method = u32::try_from(unsafe { (*self.r).method_number }).unwrap_or(u32::MAX);
        matches!(method, ffi::M_GET | ffi::M_PUT | ffi::M_DELETE | ffi::M_OPTIONS | ffi::M_TRACE)
    }

    fn body_length(&mut self) -> Result<BodyLength, u16> {
        // SAFETY: r is live; this reads the request line and headers already parsed.
        let rc = unsafe { ffi::ap_setup_client_block(self.r, ffi::REQUEST_CHUNKED_DECHUNK as c_int) };
        if rc != ffi::OK as c_int {
            return Err(u16::try_from(rc).unwrap_or(400));
        }
        // SAFETY: r is live.
        let r = unsafe { &*self.r };
        Ok(if r.read_chunked != 0 {
            BodyLength::Unknown
        } else if r.remaining > 0 {
            BodyLength::Known(r.remaining as u64)
        } else {
            BodyLength::None
        })
    }

    fn body_limit(&self) -> Option<u64> {
        // SAFETY: r is live; this reads its per-dir core configuration.
        let limit = unsafe { ffi::ap_get_limit_req_body(self.r) };
        (limit > 0).then_some(limit as u64)
    }

    fn buffers_body(&self) -> bool {
        // SAFETY: r is live; its per-dir config is ours (or NULL).
        let dir = unsafe { (ffi::fcgi_shim_dir_config(self.r) as *const crate::config::DirConfig).as_ref() };
        dir.is_none_or(crate::config::DirConfig::buffers_requests)
    }

    fn read_body(&mut self, buf: &mut [u8], wait: bool) -> io::Result<usize> {
        if let BodyReads::NotYet = self.body_reads {
            self.body_reads = BodyReads::Reading { _wide: client_socket::widen(self.r) };
        }
        // SAFETY: r is live; the input brigade is ours (emptied by every
        // call); buf is a live writable region of buf.len() bytes.
        let n = unsafe {
            ffi::fcgi_shim_read_body(self.r, self.bb_in(), buf.as_mut_ptr().cast(), buf.len(), c_int::from(wait))
        };
        if n != -2 && n <= 0 {
            // Drops the widening: the next request's headers are read as stock.
            self.body_reads = BodyReads::Done;
        }
        match n {
            -2 => Err(io::ErrorKind::WouldBlock.into()),
            n => usize::try_from(n)
                .map_err(|_| io::Error::new(io::ErrorKind::ConnectionAborted, "reading the request body failed")),
        }
    }

    fn apply_headers(&mut self, block: &[u8]) -> HeaderVerdict {
        // At least MAX_STRING_LEN (= HUGE_STRING_LEN), the scanner's contract;
        // one more byte than the longest line, for its NUL (no line is
        // longer than a block shorter than that). Not zeroed: the scanner
        // only reads what next_line wrote.
        let least = ffi::HUGE_STRING_LEN as usize;
        let longest = match block.len() {
            n if n < least => 0,
            _ => block.split(|&b| b == b'\n').map(|l| l.len() + 1).max().unwrap_or(0),
        };
        let cap = (longest + 1).max(least);
        // The thread's buffer from an earlier request, grown if need be.
        let mut scratch = SCAN_BUFFER.try_with(Cell::take).unwrap_or_default();
        scratch.clear();
        scratch.reserve(cap);
        let mut lines = Lines { rest: block, buf: scratch.as_mut_ptr(), cap, refused: false };
        // SAFETY: r is live; scratch has room for `cap` bytes (>= MAX_STRING_LEN,
        // as the scanner requires) and lives across the call; next_line reads
        // `lines`, which outlives the call.
        let rc = unsafe {
            ffi::ap_scan_script_header_err_core_ex(
                self.r,
                lines.buf,
                Some(next_line),
                &mut lines as *mut Lines<'_> as *mut c_void,
                ffi::fcgi_shim_module_index(),
            )
        };
        let refused = lines.refused;
        if scratch.capacity() <= 2 * ffi::HUGE_STRING_LEN as usize {
            let _ = SCAN_BUFFER.try_with(|kept| kept.set(scratch));
        }
        if refused {
            return HeaderVerdict::Refused("a header line longer than httpd's CGI scanner takes");
        }
        // SAFETY: r is live.
        let r = unsafe { &mut *self.r };
        if rc == ffi::HTTP_NOT_MODIFIED as c_int {
            r.status = rc;
            return HeaderVerdict::Discard(Outcome::Sent);
        }
        if rc != ffi::OK as c_int {
            return HeaderVerdict::Discard(Outcome::Status(u16::try_from(rc).unwrap_or(500)));
        }
        // SAFETY: headers_out is the live request's table.
        let location = unsafe { c_str(ffi::apr_table_get(r.headers_out, c"Location".as_ptr())) };
        if let (Some(loc), 200) = (location, r.status) {
            return HeaderVerdict::Discard(if loc.starts_with('/') {
                Outcome::LocalRedirect(loc.to_string())
            } else {
                Outcome::Status(302)
            });
        }
        if r.header_only != 0 {
            return HeaderVerdict::Discard(Outcome::Sent);
        }
        HeaderVerdict::Body
    }

    fn announced_length(&self) -> Option<u64> {
        // SAFETY: r is live.
        let r = unsafe { &*self.r };
        match r.status {
            204 | 205 => None,
            // SAFETY: headers_out is the live request's table; the key is a C literal.
            200..=299 => unsafe { c_bytes(ffi::apr_table_get(r.headers_out, c"Content-Length".as_ptr())) }
                .and_then(parse_decimal),
            _ => None,
        }
    }

    fn set_content_type(&mut self, content_type: &str) {
        let ct = self.pool_cstr(content_type.as_bytes());
        // SAFETY: r is live; ct lives in its pool.
        unsafe { ffi::ap_set_content_type(self.r, ct) };
    }

    fn start_nph(&mut self) {
        // SAFETY: r and its connection are live.
        unsafe {
            ffi::fcgi_shim_skip_protocol_filters(self.r);
            (*(*self.r).connection).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
        }
    }

    fn set_length(&mut self, len: u64) {
        // SAFETY: r is live; headers_out is its table; the key is a C literal.
        let given = unsafe { c_bytes(ffi::apr_table_get((*self.r).headers_out, c"Content-Length".as_ptr())) };
        // The application's own header, when right, is left as it is: the
        // usual case costs a look-up, not a number written out.
        if given.and_then(parse_decimal) == Some(len) {
            return;
        }
        let Ok(len) = ffi::apr_off_t::try_from(len) else { return };
        // SAFETY: r is live; httpd writes the header into its pool.
        unsafe { ffi::ap_set_content_length(self.r, len) };
    }

    fn queue(&mut self, data: &[u8]) {
        // SAFETY: r and bb are live; the caller keeps data unchanged until
        // the next pass, which hands the transient bucket on (filters that
        // keep it copy it).
        unsafe { ffi::fcgi_shim_queue(self.r, self.bb, data.as_ptr().cast(), data.len()) };
    }

    fn pass(&mut self, flush: bool) -> Result<(), ClientGone> {
        // SAFETY: r and bb are live; every queued bucket's data is still
        // unchanged (the queue contract).
        let rv = unsafe { ffi::fcgi_shim_pass(self.r, self.bb, c_int::from(flush)) };
        if rv == 0 {
            Ok(())
        } else {
            Err(ClientGone)
        }
    }

    fn behind(&mut self) -> bool {
        self.holding() && self.socket().is_some_and(|fd| !crate::transport::writable_now(fd))
    }

    fn holding(&self) -> bool {
        // SAFETY: r and its connection are live; the core output filter
        // keeps this flag (set while it holds output it could not write).
        unsafe { (*(*self.r).connection).data_in_output_filters != 0 }
    }

    fn socket(&mut self) -> Option<RawFd> {
        *self.socket.get_or_insert_with(|| {
            // SAFETY: r and its connection are live; the socket (NULL for a
            // connection without one) lives as long as the connection.
            let sock = unsafe { ffi::ap_get_conn_socket((*self.r).connection) };
            if sock.is_null() {
                return None;
            }
            let mut fd: ffi::apr_os_sock_t = -1;
            // SAFETY: sock is live; fd is a valid place for the descriptor.
            let rv = unsafe { ffi::apr_os_sock_get(&mut fd, sock) };
            (rv == 0 && fd >= 0).then_some(fd)
        })
    }

    fn end_bodiless(&mut self) {
        // SAFETY: r and bb are live.
        let ended = unsafe { ffi::fcgi_shim_end_bodiless(self.r, self.bb) } != 0;
        // The head now waits below the request's filters; written at once
        // unless the client has not taken what came before.
        if ended && !self.behind() {
            // SAFETY: r and bb are live; no request filter holds output any
            // more (EOS went through them).
            unsafe { ffi::fcgi_shim_flush_connection(self.r, self.bb) };
        }
    }

    fn send_broken(&mut self) {
        // SAFETY: r and bb are live.
        unsafe { ffi::fcgi_shim_send_broken(self.r, self.bb) };
    }

    fn traffic(&self) -> (u16, u64, u64) {
        // SAFETY: r is live; httpd keeps these fields as the request runs.
        let r = unsafe { &*self.r };
        let bytes = |n: i64| u64::try_from(n).unwrap_or(0);
        (u16::try_from(r.status).unwrap_or(0), bytes(r.read_length), bytes(r.bytes_sent))
    }

    fn log(&self, level: Level, errno: i32, msg: &str) {
        let text = super::log_text(msg);
        // SAFETY: r is live; text is a NUL-terminated string.
        unsafe { ffi::fcgi_shim_log_r(self.r, level as c_int, errno, text.as_ptr()) };
    }

    fn retry_after(&mut self, seconds: u32) {
        self.add_err_header("Retry-After", &seconds.to_string());
    }

    fn note(&mut self, name: &'static std::ffi::CStr, value: &str) {
        let v = self.pool_cstr(value.as_bytes());
        // SAFETY: r is live; the key is static and the value lives in the
        // request's pool, as setn requires.
        unsafe { ffi::apr_table_setn((*self.r).notes, name.as_ptr(), v) };
    }
}
