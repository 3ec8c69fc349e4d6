//! The only room that touches httpd: bindgen bindings, the `extern "C"`
//! entry points the shim calls (each under [`guard`], so no panic crosses
//! FFI), and the [`request::ApacheRequest`] implementation of the gateway's
//! `Client` over `request_rec`.

mod auth;
mod directives;
mod ffi;
mod hooks;
mod pm;
mod request;
mod state;

use std::ffi::CStr;
use std::os::raw::c_char;
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
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated, per this function's contract.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}
