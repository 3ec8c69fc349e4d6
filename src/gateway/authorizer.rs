//! FastCgiAuthenticator, FastCgiAuthorizer and FastCgiAccessChecker: the
//! application runs in the AUTHORIZER role in one of httpd's access phases
//! and its answer decides: `Status: 200` grants (its headers become
//! variables of the request's environment), anything else denies (its
//! headers go to the error response). The body is discarded, as in the
//! original.

use std::time::Instant;

use super::attempt::run_authorizer;
use super::headers::{block_end, fields, sanitize};
use super::Client;
use crate::config::Config;
use crate::log::Level;
use crate::upstream::target;

/// The httpd phase an authorizer application runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthPhase {
    /// `check_user_id`: checks the user and password (Basic auth).
    Authenticator = 0,
    /// `auth_checker`: may this user have this resource.
    Authorizer = 1,
    /// `access_checker`: may this request (address, headers) proceed.
    AccessChecker = 2,
}

impl AuthPhase {
    /// The FCGI_APACHE_ROLE value.
    fn role(self) -> &'static str {
        match self {
            AuthPhase::Authenticator => "AUTHENTICATOR",
            AuthPhase::Authorizer => "AUTHORIZER",
            AuthPhase::AccessChecker => "ACCESS_CHECKER",
        }
    }

    /// The directive, for log lines.
    pub fn directive(self) -> &'static str {
        match self {
            AuthPhase::Authenticator => "FastCgiAuthenticator",
            AuthPhase::Authorizer => "FastCgiAuthorizer",
            AuthPhase::AccessChecker => "FastCgiAccessChecker",
        }
    }
}

/// The application's decision.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthResult {
    /// Status 200: set these variables in the request's environment.
    Granted(Vec<(String, String)>),
    /// Another status: add these headers to the error response (the
    /// status itself is not passed on: the phase answers 401 or 403, as
    /// the original did).
    Denied(Vec<(String, String)>),
    /// Talking to the application failed, or it redirected (logged):
    /// answer with this status.
    Failed(u16),
}

/// Runs the authorizer application `path` (a defined server, else a
/// dynamic application) for this request. `password` is the Basic auth
/// password (authenticator phase, sent as REMOTE_PASSWD); with `compat`
/// only `Variable-*` headers of a grant are kept, as the specification says.
pub fn authorize(
    client: &mut dyn Client,
    path: &str,
    identity: Option<(u32, u32)>,
    phase: AuthPhase,
    password: Option<&str>,
    compat: bool,
    config: &Config,
) -> AuthResult {
    let mut overrides = Vec::new();
    if let Some(pw) = password {
        overrides.push(("REMOTE_PASSWD".to_string(), pw.as_bytes().to_vec()));
    }
    let output = match config.find(path) {
        Some(server) => run_authorizer(client, server, None, phase.role(), overrides),
        None => {
            let (server, on_demand) = target(path, identity, config);
            let began = Instant::now();
            let output = run_authorizer(client, &server, Some(&on_demand), phase.role(), overrides);
            on_demand.done(path, began);
            output
        }
    };
    let output = match output {
        Ok(output) => output,
        Err(status) => return AuthResult::Failed(status),
    };
    // Output without the blank line is all headers; the body is never used.
    let mut head = output[..block_end(&output, 0).unwrap_or(output.len())].to_vec();
    if !head.ends_with(b"\n") {
        head.push(b'\n');
    }
    head.push(b'\n');
    let clean = match sanitize(&mut head, usize::MAX) {
        Ok(end) => &head[..end],
        Err(why) => {
            let msg = format!("FastCGI: comm with server \"{path}\" aborted: error parsing headers: {why}");
            client.log(Level::Error, 0, &msg);
            return AuthResult::Failed(500);
        }
    };
    let mut status = 200;
    let mut headers = Vec::new();
    for (name, value) in fields(clean) {
        let (name, value) = (String::from_utf8_lossy(name), String::from_utf8_lossy(value).into_owned());
        if name.eq_ignore_ascii_case("Status") {
            status = value.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(500);
        } else if name.eq_ignore_ascii_case("Location") {
            client.log(Level::Error, 0, &format!("FastCGI: {} \"{path}\" redirected (not allowed)", phase.directive()));
            return AuthResult::Failed(500);
        } else {
            headers.push((name.into_owned(), value));
        }
    }
    if status != 200 {
        return AuthResult::Denied(headers);
    }
    let granted = headers
        .into_iter()
        .filter_map(|(name, value)| match name.get(..9) {
            Some(prefix) if prefix.eq_ignore_ascii_case("Variable-") => Some((name[9..].to_string(), value)),
            _ if compat => None,
            _ => Some((name, value)),
        })
        .collect();
    AuthResult::Granted(granted)
}
