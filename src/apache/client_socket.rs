//! The client socket as httpd's core input filter reads it (issue 9).
//!
//! httpd seeds each connection's input with APR's socket bucket, which asks
//! `recv` for `APR_BUCKET_BUFF_SIZE` (8000) bytes every time: a 1 MiB request
//! body costs over 130 reads. Through the `insert_network_bucket` hook we put
//! in our own bucket instead. It reads exactly as APR's does (same timeout
//! handling for non-blocking reads, same heap bucket for the data, same empty
//! bucket at the end of the stream), except that how much one `recv` asks for
//! is kept per connection. It stays at APR's 8000, so every connection
//! behaves as stock httpd, except while our handler reads a request body:
//! then it is [`BODY_READ`] ([`widen`]), back to 8000 when the body is done
//! or the handler ends, and at the latest when the request's pool goes (the
//! headers of the next keep-alive request are read as stock).
//!
//! HTTP/2 stream connections do not read a socket, so they have no state and
//! [`widen`] does nothing for them.

use std::mem::size_of;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

use super::ffi::{self, apr_bucket, apr_bucket_alloc_t, apr_bucket_brigade, apr_socket_t, conn_rec, request_rec};
use super::guard;

/// What one `recv` asks for outside request bodies: APR's socket bucket's size.
const DEFAULT_READ: usize = ffi::APR_BUCKET_BUFF_SIZE as usize;

/// What one `recv` asks for while our handler reads a request body: 1 MiB in
/// 16 reads, and a buffer the allocator hands out whole.
const BODY_READ: usize = 64 * 1024;

/// One connection's client socket and the size of its next reads; in the
/// connection's pool, pointed to by its conn_config and by its bucket.
#[repr(C)]
struct ClientSocket {
    socket: *mut apr_socket_t,
    read_size: usize,
}

/// `apr_bucket_type_t` holds raw pointers, which are not `Sync`.
struct BucketType(ffi::apr_bucket_type_t);

// SAFETY: the type is never written after initialisation; its name points to
// a static C string and its functions are plain code, shared by all threads
// as APR's own bucket types are.
unsafe impl Sync for BucketType {}

/// Our bucket type: APR's socket bucket's functions but for `read`.
static CLIENT_SOCKET: BucketType = BucketType(ffi::apr_bucket_type_t {
    name: c"FCGI_RS_SOCKET".as_ptr(),
    num_func: 5,
    is_metadata: ffi::apr_bucket_type_t_APR_BUCKET_DATA,
    destroy: Some(ffi::apr_bucket_destroy_noop),
    read: Some(read),
    setaside: Some(ffi::apr_bucket_setaside_notimpl),
    split: Some(ffi::apr_bucket_split_notimpl),
    copy: Some(ffi::apr_bucket_copy_notimpl),
});

/// A new bucket of our type for `state`, unlinked; NULL when out of memory.
///
/// # Safety
/// SAFETY: the caller guarantees `list` is a live bucket allocator and
/// `state` a `ClientSocket` that outlives the bucket (the connection's).
unsafe fn create(state: *mut ClientSocket, list: *mut apr_bucket_alloc_t) -> *mut apr_bucket {
    // SAFETY: list is live; the block is as large as a bucket and aligned for one.
    let b = unsafe { ffi::apr_bucket_alloc(size_of::<apr_bucket>(), list) }.cast::<apr_bucket>();
    if b.is_null() {
        return b;
    }
    let bucket = apr_bucket {
        // A ring of one, as APR_BUCKET_INIT makes it.
        link: ffi::apr_bucket__bindgen_ty_1 { next: b, prev: b },
        type_: &CLIENT_SOCKET.0,
        length: usize::MAX,
        start: -1,
        data: state.cast(),
        free: Some(ffi::apr_bucket_free),
        list,
    };
    // SAFETY: b is a fresh, writable block of the bucket's size.
    unsafe { b.write(bucket) };
    b
}

/// The bucket's `read`: APR's `socket_bucket_read` with the connection's
/// read size. On data, the bucket becomes a heap bucket holding it, followed
/// by a new bucket of ours; at the end of the stream, an empty immortal one.
///
/// # Safety
/// SAFETY: APR calls it, through our bucket type only, with a live bucket of
/// that type and writable `str_` and `len`.
unsafe extern "C" fn read(
    b: *mut apr_bucket,
    str_: *mut *const c_char,
    len: *mut ffi::apr_size_t,
    block: ffi::apr_read_type_e,
) -> ffi::apr_status_t {
    guard(ffi::APR_EGENERAL as ffi::apr_status_t, || {
        // SAFETY: APR calls read with a live bucket of our type (its data is
        // the connection's ClientSocket) and valid out pointers.
        unsafe { read_into(b, str_, len, block) }
    })
}

/// The body of [`read`].
///
/// # Safety
/// SAFETY: the caller guarantees `b` is a live bucket of our type in a
/// brigade (or alone) and `str_`, `len` are writable.
unsafe fn read_into(
    b: *mut apr_bucket,
    str_: *mut *const c_char,
    len: *mut ffi::apr_size_t,
    block: ffi::apr_read_type_e,
) -> ffi::apr_status_t {
    // SAFETY: per this function's contract, b is live and its data is our
    // state, which lives in the connection's pool.
    let (state, list) = unsafe { ((*b).data.cast::<ClientSocket>(), (*b).list) };
    // SAFETY: as above.
    let (socket, size) = unsafe { ((*state).socket, (*state).read_size) };
    let nonblock = block == ffi::apr_read_type_e_APR_NONBLOCK_READ;
    let mut timeout: ffi::apr_interval_time_t = 0;
    // SAFETY: str_ and len are writable, per the contract.
    unsafe {
        *str_ = ptr::null();
        *len = 0;
    }
    // SAFETY: list is the bucket's live allocator.
    let buf = unsafe { ffi::apr_bucket_alloc(size, list) }.cast::<c_char>();
    if buf.is_null() {
        return ffi::APR_ENOMEM as ffi::apr_status_t;
    }
    let mut n = size;
    // SAFETY: socket is the connection's live client socket; buf holds
    // `size` writable bytes; the timeout is put back as it was found.
    let rv = unsafe {
        if nonblock {
            ffi::apr_socket_timeout_get(socket, &mut timeout);
            ffi::apr_socket_timeout_set(socket, 0);
        }
        let rv = ffi::apr_socket_recv(socket, buf, &mut n);
        if nonblock {
            ffi::apr_socket_timeout_set(socket, timeout);
        }
        rv
    };
    if rv != ffi::APR_SUCCESS as ffi::apr_status_t && rv != ffi::APR_EOF as ffi::apr_status_t {
        // SAFETY: buf came from apr_bucket_alloc and nothing refers to it.
        unsafe { ffi::apr_bucket_free(buf.cast()) };
        return rv;
    }
    if n > 0 {
        // SAFETY: b is live; heap_make takes ownership of buf (freed with
        // apr_bucket_free) and turns b into a heap bucket whose data is an
        // apr_bucket_heap; alloc_len notes the real buffer size, as APR does.
        // The next bucket (ours, same state and allocator) goes right after b.
        unsafe {
            let heap = ffi::apr_bucket_heap_make(b, buf, n, Some(ffi::apr_bucket_free));
            (*(*heap).data.cast::<ffi::apr_bucket_heap>()).alloc_len = size;
            *str_ = buf;
            *len = n;
            let next = create(state, list);
            if !next.is_null() {
                ffi::fcgi_shim_bucket_insert_after(heap, next);
            }
        }
    } else {
        // SAFETY: buf is unused and unshared; b is live and becomes an empty
        // immortal bucket over a static string.
        unsafe {
            ffi::apr_bucket_free(buf.cast());
            let empty = ffi::apr_bucket_immortal_make(b, c"".as_ptr(), 0);
            *str_ = (*empty).data as *const c_char;
        }
    }
    ffi::APR_SUCCESS as ffi::apr_status_t
}

/// httpd's `insert_network_bucket` hook, run once per connection when the
/// core input filter first reads: seeds `bb` with our bucket over the client
/// socket. 0 lets the core insert APR's own (no socket, a secondary
/// connection, or no memory).
#[no_mangle]
pub extern "C" fn fcgi_rs_insert_network_bucket(
    c: *mut conn_rec,
    bb: *mut apr_bucket_brigade,
    socket: *mut apr_socket_t,
) -> c_int {
    guard(0, || {
        if c.is_null() || bb.is_null() || socket.is_null() {
            return 0;
        }
        // SAFETY: httpd passes the live connection.
        let conn = unsafe { &mut *c };
        if !conn.master.is_null() {
            return 0;
        }
        // SAFETY: the connection's pool is live; the block is sized and (8-byte)
        // aligned for a ClientSocket and initialised before use.
        let state = unsafe { ffi::apr_palloc(conn.pool, size_of::<ClientSocket>()) }.cast::<ClientSocket>();
        if state.is_null() {
            return 0;
        }
        // SAFETY: state is a fresh writable block; the bucket allocator is
        // the connection's; the state lives in the connection's pool, as
        // long as any bucket of the connection.
        unsafe {
            state.write(ClientSocket { socket, read_size: DEFAULT_READ });
            let b = create(state, conn.bucket_alloc);
            if b.is_null() {
                return 0;
            }
            ffi::fcgi_shim_set_conn_state(c, state.cast());
            ffi::fcgi_shim_brigade_insert_tail(bb, b);
        }
        1
    })
}

/// Reads of a connection's socket widened to [`BODY_READ`] for one request's
/// body; narrowed back when dropped, or by the request pool's cleanup if it
/// never is.
pub(super) struct WideReads {
    state: *mut ClientSocket,
    pool: *mut ffi::apr_pool_t,
}

/// Widens the reads of `r`'s connection while our handler reads its body.
/// None when the connection has no state of ours (HTTP/2 streams, or a
/// connection whose bucket another module inserted).
pub(super) fn widen(r: *mut request_rec) -> Option<WideReads> {
    // SAFETY: r is the live request; its connection is live.
    let (conn, pool) = unsafe { ((*r).connection, (*r).pool) };
    // SAFETY: conn is live; our slot in its conn_config is NULL or our state.
    let state = unsafe { ffi::fcgi_shim_conn_state(conn) }.cast::<ClientSocket>();
    if state.is_null() {
        return None;
    }
    // SAFETY: state lives in the connection's pool, which outlives the
    // request's; the cleanup runs at the latest when the request pool goes.
    unsafe {
        (*state).read_size = BODY_READ;
        ffi::apr_pool_cleanup_register(pool, state.cast(), Some(narrow), Some(ffi::apr_pool_cleanup_null));
    }
    Some(WideReads { state, pool })
}

impl Drop for WideReads {
    fn drop(&mut self) {
        // SAFETY: the request pool is alive while the handler holds this value
        // (its cleanup has not run); killing the cleanup keeps a late pool
        // destruction (pipelined requests) from narrowing another request's
        // reads. state lives in the connection's pool.
        unsafe {
            ffi::apr_pool_cleanup_kill(self.pool, self.state.cast(), Some(narrow));
            (*self.state).read_size = DEFAULT_READ;
        }
    }
}

/// The request pool's cleanup: back to APR's read size.
///
/// # Safety
/// SAFETY: APR calls it with the `data` [`widen`] registered: the
/// connection's `ClientSocket`, which outlives the request's pool.
unsafe extern "C" fn narrow(data: *mut c_void) -> ffi::apr_status_t {
    guard(0, || {
        // SAFETY: data is the connection's ClientSocket (registered by widen);
        // the connection's pool outlives the request's.
        unsafe { (*data.cast::<ClientSocket>()).read_size = DEFAULT_READ };
        0
    })
}
