//! The authorizer phases: per-directory configuration (created by httpd for
//! each section) and the `check_user_id`, `auth_checker` and
//! `access_checker` hooks, which run the configured application through
//! `gateway::authorize`.

use std::os::raw::{c_char, c_int, c_void};

use super::ffi::{self, apr_pool_t, request_rec};
use super::request::ApacheRequest;
use super::{c_str, guard, state};
use crate::config::DirConfig;
use crate::gateway::{self, AuthPhase, AuthResult};

/// Drops a DirConfig placed in a pool when the pool goes: its shared
/// applications lose a reference, and nothing is freed (the pool's memory
/// goes with the pool; see [`DirConfig`] for why).
extern "C" fn drop_dir_config(data: *mut c_void) -> ffi::apr_status_t {
    guard(0, || {
        // SAFETY: data was written by place_dir_config in memory of the
        // pool this cleanup belongs to, and the cleanup runs once.
        unsafe { std::ptr::drop_in_place(data as *mut DirConfig) };
        0
    })
}

// apr_palloc aligns to 8 bytes.
const _: () = assert!(std::mem::align_of::<DirConfig>() <= 8);

/// Puts `dir` in memory of `p`, dropped with it; NULL if `p` has no memory.
fn place_dir_config(p: *mut apr_pool_t, dir: DirConfig) -> *mut c_void {
    // SAFETY: p is a live pool; the block is fresh and at least as aligned
    // as DirConfig (checked above).
    let raw = unsafe { ffi::apr_palloc(p, std::mem::size_of::<DirConfig>()) }.cast::<DirConfig>();
    if raw.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: raw is a fresh block of the right size and alignment; the
    // cleanup drops the value once, when p goes.
    unsafe {
        raw.write(dir);
        ffi::apr_pool_cleanup_register(p, raw.cast(), Some(drop_dir_config), Some(ffi::apr_pool_cleanup_null));
    }
    raw.cast()
}

/// httpd's create_dir_config: a default DirConfig owned by `p`.
#[no_mangle]
pub extern "C" fn fcgi_rs_create_dir_config(p: *mut apr_pool_t) -> *mut c_void {
    guard(std::ptr::null_mut(), || place_dir_config(p, DirConfig::default()))
}

/// httpd's merge_dir_config: `add` over `base` ([`DirConfig::merge`]),
/// owned by `p`; it allocates nothing but the pool's memory.
#[no_mangle]
pub extern "C" fn fcgi_rs_merge_dir_config(p: *mut apr_pool_t, base: *mut c_void, add: *mut c_void) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        // SAFETY: httpd passes two configs made by fcgi_rs_create_dir_config
        // (or merged here), alive in pools that outlive `p`.
        let (base, add) = unsafe { ((base as *const DirConfig).as_ref(), (add as *const DirConfig).as_ref()) };
        let merged = match (base, add) {
            (Some(b), Some(a)) => DirConfig::merge(b, a),
            (Some(one), None) | (None, Some(one)) => one.clone(),
            (None, None) => DirConfig::default(),
        };
        place_dir_config(p, merged)
    })
}

/// The DirConfig behind httpd's per-directory pointer.
///
/// # Safety
/// SAFETY: the caller guarantees `p` is NULL or a pointer returned by `fcgi_rs_create_dir_config` whose
/// pool is alive, used by one thread at a time (configuration reading).
pub(super) unsafe fn dir_config_mut<'a>(p: *mut c_void) -> Option<&'a mut DirConfig> {
    // SAFETY: per the contract.
    unsafe { (p as *mut DirConfig).as_mut() }
}

fn run(r: *mut request_rec, phase: AuthPhase) -> c_int {
    let index = phase as usize;
    // SAFETY: r is the live request; its per-dir config is ours or NULL.
    let dir = unsafe { (ffi::fcgi_shim_dir_config(r) as *const DirConfig).as_ref() };
    let Some(app) = dir.and_then(|d| d.apps.get(index).cloned().flatten()) else { return ffi::DECLINED as c_int };
    let authoritative = dir.is_none_or(|d| d.authoritative.get(index).copied().unwrap_or(true));
    let Some(config) = state::active() else { return ffi::DECLINED as c_int };
    let mut password = None;
    if phase == AuthPhase::Authenticator {
        let mut pw: *const c_char = std::ptr::null();
        // SAFETY: r is live; pw receives a pool string. This also sets r->user.
        let rc = unsafe { ffi::ap_get_basic_auth_pw(r, &mut pw) };
        if rc != ffi::OK as c_int {
            return rc;
        }
        // SAFETY: NULL or a pool string.
        password = Some(unsafe { c_str(pw) }.unwrap_or("").to_string());
    }
    // SAFETY: r is live.
    let req = unsafe { &mut *r };
    let identity = if config.wrapper.is_some() { super::hooks::suexec_identity(req) } else { None };
    let mut client = ApacheRequest::new(r);
    let result = gateway::authorize(&mut client, &app.path, identity, phase, password.as_deref(), app.compat, &config);
    match result {
        AuthResult::Granted(vars) => {
            for (name, value) in vars {
                client.set_env(&name, &value);
            }
            // An authorizer's grant is one voice, not the verdict: httpd's
            // own authorization (mod_authz_core, after us) still applies
            // the admin's Require lines, so `Require user bob` keeps alice
            // out whatever the application says. A denial stays final.
            if phase == AuthPhase::Authorizer {
                return ffi::DECLINED as c_int;
            }
            ffi::OK as c_int
        }
        AuthResult::Denied(headers) => {
            for (name, value) in headers {
                client.add_err_header(&name, &value);
            }
            // SAFETY: NULL or pool strings of the live request.
            let (user, uri) = unsafe { (c_str(req.user).unwrap_or(""), c_str(req.uri).unwrap_or("")) };
            let msg = match phase {
                AuthPhase::Authenticator => format!("FastCGI: authentication failed for user \"{user}\": {uri}"),
                AuthPhase::Authorizer => format!("FastCGI: authorization failed for user \"{user}\": {uri}"),
                AuthPhase::AccessChecker => format!("FastCGI: access denied: {uri}"),
            };
            client.log_error(&msg);
            if !authoritative {
                return ffi::DECLINED as c_int;
            }
            if phase == AuthPhase::AccessChecker {
                return ffi::HTTP_FORBIDDEN as c_int;
            }
            // SAFETY: r is live; adds the WWW-Authenticate challenge.
            unsafe { ffi::ap_note_auth_failure(r) };
            ffi::HTTP_UNAUTHORIZED as c_int
        }
        AuthResult::Failed(status) => c_int::from(status),
    }
}

#[no_mangle]
pub extern "C" fn fcgi_rs_check_user_id(r: *mut request_rec) -> c_int {
    guard(ffi::HTTP_INTERNAL_SERVER_ERROR as c_int, || run(r, AuthPhase::Authenticator))
}

#[no_mangle]
pub extern "C" fn fcgi_rs_auth_checker(r: *mut request_rec) -> c_int {
    guard(ffi::HTTP_INTERNAL_SERVER_ERROR as c_int, || run(r, AuthPhase::Authorizer))
}

#[no_mangle]
pub extern "C" fn fcgi_rs_access_checker(r: *mut request_rec) -> c_int {
    guard(ffi::HTTP_INTERNAL_SERVER_ERROR as c_int, || run(r, AuthPhase::AccessChecker))
}
