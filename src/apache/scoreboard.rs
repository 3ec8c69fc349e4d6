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

use std::os::raw::{c_int, c_void};

use super::ffi::{self, apr_pool_t, server_rec};
use super::log_server;
use crate::config::Config;
use crate::log::Level;
use crate::metrics::{self, Board, Plan};

/// The segment, kept as user data of the process pool: httpd unloads and
/// reloads the module on restarts, so a static would not survive them.
#[repr(C)]
struct Segment {
    shm: *mut ffi::apr_shm_t,
    base: *mut u8,
    len: usize,
}

/// The process pool's key for [`Segment`].
const KEY: &std::ffi::CStr = c"fastcgi_rs_scoreboard";

/// The segment made by an earlier generation, if any.
fn saved(pool: *mut apr_pool_t) -> Option<*mut Segment> {
    let mut data: *mut c_void = std::ptr::null_mut();
    // SAFETY: pool is the live process pool; data is a valid out pointer.
    let rv = unsafe { ffi::apr_pool_userdata_get(&mut data, KEY.as_ptr(), pool) };
    (rv == 0 && !data.is_null()).then_some(data.cast::<Segment>())
}

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
    // SAFETY: s is the live main server; its process record and pool live
    // as long as the process.
    let pool = unsafe { (*(*s).process).pool };
    let segment = saved(pool);
    if let Some(seg) = segment {
        // SAFETY: seg is our Segment in the process pool; base/len are the
        // live mapping made below, kept for the process's life, touched
        // only through metrics' atomics.
        let words = unsafe { Board::view((*seg).base, (*seg).len) };
        if let Some(board) = words.and_then(|w| Board::attach(w, &plan, ungraceful())) {
            board.set_spool_budget(spool_budget(config));
            metrics::install(Some(board));
            return;
        }
    }
    // A new layout: a new segment. The old one stays mapped in children of
    // the old generation; the parent lets go of it.
    metrics::install(None);
    if let Some(seg) = segment {
        // SAFETY: seg's shm was made by apr_shm_create below and is
        // destroyed only here, once, as seg.shm is cleared.
        unsafe {
            if !(*seg).shm.is_null() {
                ffi::apr_shm_destroy((*seg).shm);
            }
            (*seg).shm = std::ptr::null_mut();
            (*seg).base = std::ptr::null_mut();
            (*seg).len = 0;
        }
    }
    let bytes = plan.bytes();
    let mut shm: *mut ffi::apr_shm_t = std::ptr::null_mut();
    // SAFETY: shm is a valid out pointer; a NULL file name asks for
    // anonymous shared memory, inherited across fork.
    let rv = unsafe { ffi::apr_shm_create(&mut shm, bytes, std::ptr::null(), pool) };
    if rv != 0 || shm.is_null() {
        let msg = format!(
            "FastCGI: can't create the scoreboard ({bytes} bytes of shared memory, error {rv}); traffic metrics are off"
        );
        log_server(s, Level::Error, &msg);
        return;
    }
    // SAFETY: shm is live; its base address is page-aligned.
    let base = unsafe { ffi::apr_shm_baseaddr_get(shm) }.cast::<u8>();
    // SAFETY: base maps `bytes` bytes until apr_shm_destroy, which only
    // this function calls, after installing a board that no longer uses it.
    let board = unsafe { Board::view(base, bytes) }.and_then(|words| Board::create(words, &plan, unix_now()));
    match &board {
        Some(board) => board.set_spool_budget(spool_budget(config)),
        None => log_server(s, Level::Error, "FastCGI: can't lay out the scoreboard; traffic metrics are off"),
    }
    metrics::install(board);
    let seg = segment.unwrap_or_else(|| {
        // SAFETY: the process pool is live; the record lives as long as it.
        let seg = unsafe { ffi::apr_palloc(pool, std::mem::size_of::<Segment>()) }.cast::<Segment>();
        if !seg.is_null() && seg.align_offset(std::mem::align_of::<Segment>()) == 0 {
            // SAFETY: fresh, aligned pool memory of Segment's size; the key
            // is copied by APR; no cleanup (the pool lives as the process).
            unsafe {
                seg.write(Segment { shm: std::ptr::null_mut(), base: std::ptr::null_mut(), len: 0 });
                ffi::apr_pool_userdata_set(seg.cast(), KEY.as_ptr(), Some(ffi::apr_pool_cleanup_null), pool);
            }
        }
        seg
    });
    if !seg.is_null() {
        // SAFETY: seg is our live, aligned Segment in the process pool.
        unsafe { seg.write(Segment { shm, base, len: bytes }) };
    }
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

/// The budget of temporary files (`FastCgiSpoolBudget`, or a quarter of
/// what is free in the temporary directory now).
fn spool_budget(config: &Config) -> u64 {
    let dir = crate::gateway::temp_dir(config.temp_dir.as_deref());
    let free = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok().map_or(0, |path| {
        // SAFETY: an all-zero statvfs is a valid out value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: path is NUL-terminated; st is a valid out pointer.
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        if rc == 0 {
            u64::from(st.f_bavail).saturating_mul(st.f_frsize)
        } else {
            0
        }
    });
    config.spool_budget_for(free)
}
