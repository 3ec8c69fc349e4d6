//! The hooks the shim registers: configuration passes, handler assignment
//! and the content handler.

use std::path::PathBuf;

use super::ffi::{self, apr_pool_t, request_rec, server_rec};
use super::request::ApacheRequest;
use super::{c_bytes, c_str, guard, state};
use crate::gateway::{self, Client, Outcome};
use crate::{pm, status};

/// The handler name, as in the original.
const HANDLER: &std::ffi::CStr = c"fastcgi-script";
/// The status page's handler.
const STATUS_HANDLER: &std::ffi::CStr = c"fastcgi-status";

#[no_mangle]
pub extern "C" fn fcgi_rs_pre_config(pconf: *mut apr_pool_t, _plog: *mut apr_pool_t, _ptemp: *mut apr_pool_t) -> i32 {
    guard(ffi::HTTP_INTERNAL_SERVER_ERROR as i32, || {
        // SAFETY: ap_server_root is set by httpd before any config hook runs.
        let root = unsafe { c_str(ffi::ap_server_root) }.unwrap_or("/");
        // SAFETY: pconf is httpd's live configuration pool; the name is a C literal.
        let ipc = unsafe { ffi::ap_runtime_dir_relative(pconf, c"fastcgi".as_ptr()) };
        // SAFETY: NULL or a pool string.
        let ipc = unsafe { c_str(ipc) }.unwrap_or("/var/run/apache2/fastcgi");
        state::begin(PathBuf::from(root), PathBuf::from(ipc));
        ffi::OK as i32
    })
}

#[no_mangle]
pub extern "C" fn fcgi_rs_post_config(
    pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> i32 {
    guard(ffi::HTTP_INTERNAL_SERVER_ERROR as i32, || {
        let (config, warnings) = state::commit();
        for w in warnings {
            super::log_server(s, crate::log::Level::Warn, &w);
        }
        super::scoreboard::setup(s, &config);
        super::pm::start(pconf, s, &config);
        ffi::OK as i32
    })
}

/// Refuses a configuration whose directories would let Apache's user
/// trick root into changing a file it does not own (`pm::dirs`): at
/// start-up and in `configtest`. On a restart the error is logged and the
/// manager, which judges again, leaves such a directory alone: a directory
/// Apache's user can spoil must not be a way to stop Apache.
#[no_mangle]
pub extern "C" fn fcgi_rs_check_config(
    _pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> i32 {
    guard(ffi::HTTP_INTERNAL_SERVER_ERROR as i32, || {
        let owner = super::pm::identity().map(|id| (id.uid, id.gid));
        let checked = state::with_builder(|b| {
            let (mut warnings, mut errors) = pm::dirs::check_config(b.config(), owner);
            let temp = crate::gateway::temp_dir(b.config().temp_dir.as_deref());
            if !temp.is_dir() {
                warnings.push(format!(
                    "FastCGI: FastCgiTempDir \"{}\" is not a directory: request bodies and responses held for slow clients cannot spill to temporary files (500)",
                    temp.display()
                ));
            }
            errors.extend(b.check());
            Ok((warnings, errors))
        });
        let Ok((warnings, errors)) = checked else {
            return ffi::OK as i32;
        };
        for w in &warnings {
            super::log_server(s, crate::log::Level::Warn, w);
        }
        // SAFETY: plain query of httpd's state.
        let restart = unsafe { ffi::ap_state_query(ffi::AP_SQ_CONFIG_GEN as i32) } > 0;
        for e in &errors {
            super::log_server(s, crate::log::Level::Alert, e);
        }
        if errors.is_empty() || restart {
            ffi::OK as i32
        } else {
            ffi::HTTP_INTERNAL_SERVER_ERROR as i32
        }
    })
}

/// Gives the `fastcgi-script` handler to requests for a defined server's
/// path, so they need no SetHandler (as the original did since 2.4.0).
#[no_mangle]
pub extern "C" fn fcgi_rs_fixups(r: *mut request_rec) -> i32 {
    guard(ffi::DECLINED, || {
        // SAFETY: httpd passes the live request.
        let req = unsafe { &mut *r };
        // SAFETY: r->filename is NULL or a pool string (NULL happens: the original crashed on it).
        let Some(filename) = (unsafe { c_bytes(req.filename) }) else {
            return ffi::DECLINED;
        };
        if state::active().is_some_and(|c| c.find(filename).is_some()) {
            req.handler = HANDLER.as_ptr();
        }
        ffi::DECLINED
    })
}

/// The request's suexec identity (`SuexecUserGroup`, `~user`) when it is
/// not Apache's own user and group.
pub(super) fn suexec_identity(req: &request_rec) -> Option<(u32, u32)> {
    // SAFETY: req is the live request; the hook returns NULL or an identity
    // allocated in a pool that outlives the request.
    let id = unsafe { ffi::ap_run_get_suexec_identity(req).as_ref() }?;
    ((id.uid, id.gid) != own_identity()).then_some((id.uid, id.gid))
}

/// Apache's own User and Group.
fn own_identity() -> (u32, u32) {
    // SAFETY: ap_unixd_config is set by the User/Group directives before requests.
    let own = unsafe { std::ptr::addr_of!(ffi::ap_unixd_config).read() };
    (own.user_id, own.group_id)
}

/// The original's checks before a dynamic application runs: ExecCGI (unless
/// ScriptAlias'd), the file exists, is no directory, may be executed.
/// Err: the status, the errno for the log line (0: none) and its text.
fn dynamic_check(req: &mut request_rec, filename: &str) -> Result<(), (i32, i32, String)> {
    // SAFETY: req is the live request; notes is its table; the key is a C literal.
    let forced = unsafe { c_str(ffi::apr_table_get(req.notes, c"alias-forced-type".as_ptr())) };
    // SAFETY: req is the live request.
    let options = unsafe { ffi::ap_allow_options(req) } as u32;
    if options & ffi::OPT_EXECCGI == 0 && forced != Some("cgi-script") {
        return Err((
            ffi::HTTP_FORBIDDEN as i32,
            0,
            format!("FastCGI: \"ExecCGI Option\" is off in this directory: {filename}"),
        ));
    }
    let invalid =
        |why: &str| (ffi::HTTP_FORBIDDEN as i32, 0, format!("FastCGI: invalid (dynamic) server \"{filename}\": {why}"));
    match req.finfo.filetype {
        ffi::apr_filetype_e_APR_NOFILE => {
            // The reason goes as the errno, which httpd writes before the
            // line ("(2)No such file or directory: ..."), as the original's did.
            let errno = std::fs::metadata(filename).err().and_then(|e| e.raw_os_error()).unwrap_or(libc::ENOENT);
            return Err((ffi::HTTP_NOT_FOUND as i32, errno, format!("FastCGI: stat() of \"{filename}\" failed")));
        }
        ffi::apr_filetype_e_APR_DIR => return Err(invalid("script is a directory")),
        _ => {}
    }
    let path = std::ffi::CString::new(filename).map_err(|_| invalid("bad path"))?;
    // SAFETY: path is a valid C string; access(2) checks as this worker's user,
    // the user the application runs as.
    if unsafe { libc::access(path.as_ptr(), libc::X_OK) } != 0 {
        return Err(invalid("script not executable by the server's user"));
    }
    Ok(())
}

#[no_mangle]
pub extern "C" fn fcgi_rs_handler(r: *mut request_rec) -> i32 {
    guard(ffi::HTTP_INTERNAL_SERVER_ERROR as i32, || {
        // SAFETY: httpd passes the live request.
        let req = unsafe { &mut *r };
        if req.handler.is_null() {
            return ffi::DECLINED;
        }
        // SAFETY: a non-NULL handler is a NUL-terminated string (a pool string or a literal).
        let handler = unsafe { std::ffi::CStr::from_ptr(req.handler) };
        if handler != HANDLER && handler != STATUS_HANDLER {
            return ffi::DECLINED;
        }
        let Some(config) = state::active() else {
            return ffi::DECLINED;
        };
        if handler == STATUS_HANDLER {
            // SAFETY: NULL or a pool string.
            let format = status::StatusFormat::from_query(unsafe { c_str(req.args) });
            let (doc, content_type) = status::page(&config, format);
            let mut client = ApacheRequest::new(r);
            client.set_content_type(content_type);
            // A client that went away needs nothing more.
            client.queue(doc.as_bytes());
            let _ = client.pass(true);
            return ffi::OK as i32;
        }
        // SAFETY: NULL or a pool string.
        let name = unsafe { c_bytes(req.filename) }.unwrap_or_default();
        let mut client = ApacheRequest::new(r);
        // `AcceptPathInfo Off` refuses path info, as mod_cgi does (the
        // original ignored it).
        if req.used_path_info == ffi::AP_REQ_REJECT_PATH_INFO as i32 && !req.path_info.is_null() {
            // SAFETY: a non-NULL path_info is a pool string.
            let path_info = unsafe { std::ffi::CStr::from_ptr(req.path_info) }.to_string_lossy();
            if !path_info.is_empty() {
                let msg = format!("FastCGI: AcceptPathInfo off disallows user's path {path_info}");
                client.log(crate::log::Level::Info, 0, &msg);
                return ffi::HTTP_NOT_FOUND as i32;
            }
        }
        // Under a wrapper, a request goes to a defined server only if it runs
        // as the request's identity; otherwise the path runs as a dynamic
        // application under that identity (as the original did).
        let identity = if config.wrapper.is_some() { suexec_identity(req) } else { None };
        let defined = config.find(name).filter(|s| {
            config.wrapper.is_none() || pm::run_as(&config, &s.options, own_identity()).ok().flatten() == identity
        });
        let outcome = match defined {
            Some(server) => gateway::run(&mut client, server, &config),
            None => {
                // A dynamic application's path is a str (not UTF-8: none, as before).
                let filename = std::str::from_utf8(name).unwrap_or_default();
                match dynamic_check(req, filename) {
                    Ok(()) => gateway::run_dynamic(&mut client, filename, identity, &config),
                    Err((status, errno, msg)) => {
                        client.log(crate::log::Level::Error, errno, &msg);
                        return status;
                    }
                }
            }
        };
        match outcome {
            Outcome::Sent => ffi::OK as i32,
            Outcome::Status(status) => i32::from(status),
            Outcome::LocalRedirect(location) => {
                client.internal_redirect(&location);
                ffi::OK as i32
            }
        }
    })
}

/// mod_status's hook: a FastCGI section on `/server-status` (HTML), or
/// machine-readable lines with `?auto` (`AP_STATUS_SHORT`).
#[no_mangle]
pub extern "C" fn fcgi_rs_status_hook(r: *mut request_rec, flags: i32) -> i32 {
    guard(ffi::DECLINED, || {
        let Some(config) = state::active() else { return ffi::DECLINED };
        let short = flags & ffi::AP_STATUS_SHORT as i32 != 0;
        let text = status::mod_status_section(&config, short);
        let Ok(len) = i32::try_from(text.len()) else { return ffi::DECLINED };
        // SAFETY: r is the live request mod_status is answering; text lives across the call.
        unsafe { ffi::ap_rwrite(text.as_ptr().cast(), len, r) };
        ffi::OK as i32
    })
}

/// A new Apache child: when it exits (pchild goes away), its pooled
/// connections close, and the scoreboard's idle gauge learns it.
#[no_mangle]
pub extern "C" fn fcgi_rs_child_init(pchild: *mut apr_pool_t, _s: *mut server_rec) {
    guard((), || {
        // Memory comes back after a burst: glibc raises its mmap threshold
        // each time a large block is freed, so that the 1 MiB backlogs of a
        // burst of slow clients would afterwards live on the heap and stay
        // there. A fixed threshold keeps every block of 256 KiB or more
        // mapped on its own, returned to the system when freed.
        // SAFETY: mallopt only sets the allocator's parameters.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
        // SAFETY: pchild is the child's live pool; the cleanup takes no data.
        unsafe {
            ffi::apr_pool_cleanup_register(
                pchild,
                std::ptr::null(),
                Some(child_exit),
                Some(ffi::apr_pool_cleanup_null),
            );
        }
    })
}

extern "C" fn child_exit(_data: *mut std::os::raw::c_void) -> ffi::apr_status_t {
    guard(0, || {
        let Some(board) = crate::metrics::board() else { return 0 };
        crate::upstream::pool::forget_at_exit(|endpoint, n| {
            let mut name = StackName::default();
            if std::fmt::Write::write_fmt(&mut name, format_args!("{endpoint}")).is_ok() {
                if let (Ok(name), Ok(n)) = (std::str::from_utf8(name.bytes()), i64::try_from(n)) {
                    board.pool_idle(name, -n);
                }
            }
        });
        0
    })
}

/// An endpoint's name written without the heap, for [`child_exit`] (which
/// may run in a signal handler); a longer name than the scoreboard keeps is
/// refused, and then matches no slot anyway.
struct StackName {
    buf: [u8; crate::metrics::layout::ENDPOINT_NAME_BYTES],
    len: usize,
}

impl Default for StackName {
    fn default() -> Self {
        StackName { buf: [0; crate::metrics::layout::ENDPOINT_NAME_BYTES], len: 0 }
    }
}

impl StackName {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackName {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
