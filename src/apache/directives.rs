//! The directive entry point: every mod_fastcgi directive arrives here as
//! raw arguments and goes to `config::Builder`.

use std::os::raw::{c_char, c_int};

use super::ffi::{self, cmd_parms};
use super::{c_str, guard, state};

/// Directive ids; the shim's `enum fcgi_directive` has the same values.
const STATIC_SERVER: c_int = 1;
const EXTERNAL_SERVER: c_int = 2;
const DYNAMIC_CONFIG: c_int = 3;
const WRAPPER: c_int = 5;
/// Authorizer directives: AUTH + 2 * phase, + 1 for `...Authoritative`
/// (three phases).
const AUTH: c_int = 10;
const AUTH_END: c_int = AUTH + 6;
const IPC_DIR: c_int = 4;
const CHUNKED_BODY_MAX: c_int = 6;
const RESPONSE_BUFFER: c_int = 7;
const RESPONSE_SPOOL_MAX: c_int = 8;
const SCOREBOARD: c_int = 9;
const LOG_NOTES: c_int = 16;
const REQUEST_BUFFER: c_int = 17;
const REQUEST_SPOOL_MAX: c_int = 18;
const TEMP_DIR: c_int = 19;
const SPOOL_BUDGET: c_int = 21;
/// Per directory, as the authorizers.
const REQUEST_BUFFERING: c_int = 20;

/// Called by the shim for each directive; returns NULL or an error message
/// allocated in the configuration pool (httpd prints it and fails the
/// configuration test).
#[no_mangle]
pub extern "C" fn fcgi_rs_directive(
    cmd: *mut cmd_parms,
    dir_config: *mut std::os::raw::c_void,
    which: c_int,
    args: *const c_char,
) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: httpd passes a valid cmd_parms for the directive being read.
        let cmd = unsafe { &*cmd };
        // SAFETY: cmd->cmd is this directive's command_rec; its name is a static C string.
        let name = unsafe { cmd.cmd.as_ref().and_then(|c| c_str(c.name)) }.unwrap_or("FastCGI");
        // SAFETY: RAW_ARGS hands over a NUL-terminated string valid during the call.
        let args = unsafe { c_str(args) }.unwrap_or("");
        let result = if (AUTH..AUTH_END).contains(&which) || which == REQUEST_BUFFERING {
            // SAFETY: for ACCESS_CONF directives httpd passes the section's
            // config made by fcgi_rs_create_dir_config (at server level, the
            // server's defaults).
            match unsafe { super::auth::dir_config_mut(dir_config) } {
                Some(dir) if which == REQUEST_BUFFERING => crate::config::Builder::request_buffering(dir, name, args),
                Some(dir) => apply_auth(dir, which - AUTH, name, args),
                None => Err(format!("{name}: no directory configuration")),
            }
        } else {
            apply(cmd, which, name, args)
        };
        match result {
            Ok(()) => std::ptr::null(),
            // SAFETY: cmd.pool is httpd's live configuration pool.
            Err(msg) => unsafe { super::pool_str(cmd.pool, msg.as_bytes()) },
        }
    })
}

fn apply(cmd: &cmd_parms, which: c_int, name: &str, args: &str) -> Result<(), String> {
    let context = match which {
        STATIC_SERVER | EXTERNAL_SERVER => ffi::NOT_IN_DIR_LOC_FILE,
        _ => ffi::GLOBAL_ONLY,
    };
    // SAFETY: cmd is the live cmd_parms of this directive.
    let err = unsafe { ffi::ap_check_cmd_context(cmd as *const _ as *mut _, context) };
    // SAFETY: ap_check_cmd_context returns NULL or a pool string.
    if let Some(msg) = unsafe { c_str(err) } {
        return Err(msg.to_string());
    }
    state::with_builder(|b| match which {
        STATIC_SERVER => b.static_server(name, args),
        EXTERNAL_SERVER => b.external_server(name, args),
        DYNAMIC_CONFIG => b.dynamic_config(name, args),
        WRAPPER => b.wrapper(name, args),
        IPC_DIR => b.ipc_dir(name, args),
        CHUNKED_BODY_MAX => b.chunked_body_max(name, args),
        RESPONSE_BUFFER => b.response_buffer(name, args),
        RESPONSE_SPOOL_MAX => b.response_spool_max(name, args),
        SCOREBOARD => b.scoreboard(name, args),
        LOG_NOTES => b.log_notes(name, args),
        REQUEST_BUFFER => b.request_buffer(name, args),
        REQUEST_SPOOL_MAX => b.request_spool_max(name, args),
        TEMP_DIR => b.temp_dir(name, args),
        SPOOL_BUDGET => b.spool_budget(name, args),
        _ => Err(format!("{name}: not supported by mod_fastcgi_rs yet")),
    })
}

fn apply_auth(dir: &mut crate::config::DirConfig, n: c_int, name: &str, args: &str) -> Result<(), String> {
    let phase = usize::try_from(n / 2).unwrap_or(usize::MAX);
    if n % 2 == 1 {
        return crate::config::Builder::auth_authoritative(dir, phase, name, args);
    }
    state::with_builder(|b| b.auth_app(dir, phase, name, args))
}
