//! The scoreboard's shared memory: an anonymous `apr_shm` segment made by
//! Apache's parent at post-config, in the process pool (it outlives the
//! configuration pools), before the process manager and the children fork,
//! so every one of them inherits the mapping.
//!
//! On a restart or graceful restart the parent reads the configuration
//! again: when the set of defined applications (and the sizes) did not
//! change, the same segment is kept and its counters go on; otherwise a new
//! one starts from zero (children of the old generation finish their
//! requests on the old one). After a hard restart, which kills the requests
//! in flight, the in-flight gauges are reset.

use std::os::raw::c_int;
use std::sync::{Mutex, PoisonError};

use super::ffi::{self, server_rec};
use super::log_server;
use crate::config::Config;
use crate::log::Level;
use crate::metrics::{self, Board, Plan};

/// The parent's segment: (apr_shm_t, base, bytes). Only the parent's
/// post-config touches it.
struct Segment(*mut ffi::apr_shm_t, *mut u8, usize);

// SAFETY: the pointers are only used by the parent's post-config, one
// thread; the Mutex is there for the static, not for sharing.
unsafe impl Send for Segment {}

static SEGMENT: Mutex<Option<Segment>> = Mutex::new(None);

/// Sets up the scoreboard for `config` (or none, `FastCgiScoreboard Off`).
/// Skips the first (configuration check) pass, as the process manager does.
pub(super) fn setup(s: *mut server_rec, config: &Config) {
    // SAFETY: plain queries of httpd's state.
    let (state, mode) = unsafe {
        (ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as c_int), ffi::ap_state_query(ffi::AP_SQ_RUN_MODE as c_int))
    };
    if state == ffi::AP_SQ_MS_CREATE_PRE_CONFIG as c_int || mode != ffi::AP_SQ_RM_NORMAL as c_int {
        return;
    }
    let Some(plan) = Plan::for_config(config) else {
        metrics::install(None);
        return;
    };
    let mut segment = SEGMENT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(Segment(_, base, len)) = segment.as_ref() {
        // SAFETY: base/len are the live mapping made below, kept for the
        // process's life, touched only through metrics' atomics.
        if let Some(words) = unsafe { Board::view(*base, *len) } {
            if let Some(board) = Board::attach(words, &plan, ungraceful()) {
                metrics::install(Some(board));
                return;
            }
        }
    }
    // A new layout: a new segment. The old one stays mapped in children of
    // the old generation; the parent lets go of it.
    if let Some(Segment(shm, ..)) = segment.take() {
        metrics::install(None);
        // SAFETY: shm was made by apr_shm_create below and not destroyed yet.
        unsafe { ffi::apr_shm_destroy(shm) };
    }
    let bytes = plan.bytes();
    // SAFETY: s is the live main server; its process record and pool live
    // as long as the process.
    let pool = unsafe { (*(*s).process).pool };
    let mut shm: *mut ffi::apr_shm_t = std::ptr::null_mut();
    // SAFETY: shm is a valid out pointer; a NULL file name asks for
    // anonymous shared memory, inherited across fork.
    let rv = unsafe { ffi::apr_shm_create(&mut shm, bytes, std::ptr::null(), pool) };
    if rv != 0 || shm.is_null() {
        let msg = format!("FastCGI: can't create the scoreboard ({bytes} bytes of shared memory, error {rv}); traffic metrics are off");
        log_server(s, Level::Error, &msg);
        metrics::install(None);
        return;
    }
    // SAFETY: shm is live; its base address is page-aligned.
    let base = unsafe { ffi::apr_shm_baseaddr_get(shm) }.cast::<u8>();
    // SAFETY: base maps `bytes` bytes until apr_shm_destroy, which only
    // this function calls, after installing a board that no longer uses it.
    let board = unsafe { Board::view(base, bytes) }.and_then(|words| Board::create(words, &plan, unix_now()));
    if board.is_none() {
        log_server(s, Level::Error, "FastCGI: can't lay out the scoreboard; traffic metrics are off");
    }
    metrics::install(board);
    *segment = Some(Segment(shm, base, bytes));
}

/// Whether the restart that led here was a hard one (its children, and
/// the requests they had, are gone).
fn ungraceful() -> bool {
    // SAFETY: the unixd MPMs' retained data lives for the process; NULL
    // for an MPM without it.
    unsafe { ffi::ap_unixd_mpm_get_retained_data().as_ref() }.is_some_and(|r| r.is_ungraceful != 0)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
