//! The only room that touches httpd: bindgen bindings, the `extern "C"`
//! entry points the shim calls (each under [`guard`], so no panic crosses
//! FFI), and the [`request::ApacheRequest`] implementation of the gateway's
//! `Client` over `request_rec`.

mod auth;
mod client_socket;
mod directives;
mod ffi;
mod hooks;
mod pm;
mod request;
mod scoreboard;
mod state;

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs an entry point's body, turning a panic into `fallback`: unwinding
/// into C is undefined behaviour, and an Apache child must survive a bug.
fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// A C string from httpd as `&str`, None for NULL or invalid UTF-8.
///
/// # Safety
/// SAFETY: the caller guarantees `p` is NULL or a NUL-terminated string that outlives `'a`.
unsafe fn c_str<'a>(p: *const c_char) -> Option<&'a str> {
    // SAFETY: as this function's contract.
    unsafe { c_bytes(p) }.and_then(|b| std::str::from_utf8(b).ok())
}

/// A C string from httpd as bytes (a file name need not be UTF-8), None
/// for NULL.
///
/// # Safety
/// SAFETY: the caller guarantees `p` is NULL or a NUL-terminated string that outlives `'a`.
unsafe fn c_bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated, per this function's contract.
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// A copy of `bytes` in `pool`, NUL-terminated.
///
/// # Safety
/// SAFETY: the caller guarantees `pool` is a live APR pool.
unsafe fn pool_str(pool: *mut ffi::apr_pool_t, bytes: &[u8]) -> *const c_char {
    // SAFETY: apr_pstrmemdup copies exactly bytes.len() bytes from a live
    // slice into the live pool and adds the terminator.
    unsafe { ffi::apr_pstrmemdup(pool, bytes.as_ptr().cast(), bytes.len()) }
}

/// A log message as the C string httpd's loggers take; a NUL inside shows
/// as `\0` instead of cutting the line.
fn log_text(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).unwrap_or_default()
}

/// Logs `msg` to the main server's error log.
fn log_server(s: *mut ffi::server_rec, level: crate::log::Level, msg: &str) {
    let text = log_text(msg);
    // SAFETY: s is the live main server; text is NUL-terminated.
    unsafe { ffi::fcgi_shim_log_s(s, level as c_int, 0, text.as_ptr()) };
}
