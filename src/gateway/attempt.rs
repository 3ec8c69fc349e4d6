//! One request's attempts: the body prepared, BEGIN_REQUEST and PARAMS
//! encoded once, then a connection from `upstream` (pooled or new) and an
//! [`Exchange`] on it, again on a fresh connection or another endpoint when
//! the first closed before any answer and the request may be sent again.

use std::borrow::Cow;
use std::ffi::CStr;
use std::time::{Duration, Instant};

use super::body::{prepare_body, Body};
use super::buffers::Spare;
use super::exchange::{next_request_id, Exchange, Phase, Setup};
use super::{Client, Outcome};
use crate::config::{Config, Server};
use crate::log::Level;
use crate::metrics::{Outcome as Cause, Refusal, Tracker};
use crate::protocol::{RequestEncoder, Role};
use crate::transport::{peer_closed, Conn, Endpoint};
use crate::upstream::{self, OnDemand, Refused};

/// Runs one FastCGI request against `server` (static or external) for
/// `client`.
pub fn run(client: &mut dyn Client, server: &Server, config: &Config) -> Outcome {
    run_with(client, server, config, None)
}

/// Runs one request against the dynamic application `path` (an existing,
/// executable file: the caller checked, as the original did). `identity`
/// is the request's suexec uid/gid when a FastCgiWrapper is set and it
/// differs from Apache's own; one application runs per path and identity.
pub fn run_dynamic(client: &mut dyn Client, path: &str, identity: Option<(u32, u32)>, config: &Config) -> Outcome {
    let (server, on_demand) = upstream::target(path, identity, config);
    let began = Instant::now();
    let outcome = run_with(client, &server, config, Some(&on_demand));
    on_demand.done(path, began);
    outcome
}

/// Runs one request; `dynamic` is set for dynamic applications, which are
/// started on demand through the process manager. Counted on the
/// scoreboard (`metrics`) from start to end.
fn run_with(client: &mut dyn Client, server: &Server, config: &Config, dynamic: Option<&OnDemand>) -> Outcome {
    let metrics =
        Tracker::begin(&server.path, dynamic.and_then(|d| d.identity), dynamic.is_some(), config.index_of(server));
    let mut seen = Seen::default();
    let outcome = respond(client, server, config, dynamic, &metrics, &mut seen);
    if config.log_notes {
        seen.note(client, &metrics);
    }
    let (status, bytes_in, bytes_out) = client.traffic();
    let status = match &outcome {
        Outcome::Status(s) => *s,
        Outcome::LocalRedirect(_) => 302,
        Outcome::Sent => status,
    };
    metrics.finish(status, bytes_in, bytes_out);
    outcome
}

fn respond(
    client: &mut dyn Client,
    server: &Server,
    config: &Config,
    dynamic: Option<&OnDemand>,
    metrics: &Tracker,
    seen: &mut Seen,
) -> Outcome {
    let body = match prepare_body(client, config, server, metrics) {
        Ok(body) => body,
        Err(status) => {
            metrics.cause(if status == 400 { Cause::ClientGone } else { Cause::GatewayError });
            return Outcome::Status(status);
        }
    };
    // The client's socket is looked up only if the request has to wait.
    let admitted = upstream::admit(&server.options, metrics, &mut || client.socket().is_some_and(peer_closed));
    match admitted {
        Ok(waited) => seen.waited = waited,
        Err(refused) => return refuse(client, server, refused, seen),
    }
    if config.log_notes {
        metrics.connecting();
    }
    let mut overrides = Vec::new();
    if let Body::Spooled(spool) = &body {
        overrides.push(("CONTENT_LENGTH".to_string(), spool.len().to_string().into_bytes()));
    }
    let request_id = next_request_id();
    let keep = dynamic.is_none() && upstream::may_keep(server, metrics);
    let mut head = params_head(client, server, None, overrides, request_id, keep);
    // As in the original and mod_cgi: per request, by the script's name.
    let nph = server.options.nph
        || client
            .filename()
            .is_some_and(|f| memchr::memrchr(b'/', f).map_or(f, |slash| &f[slash + 1..]).starts_with(b"nph-"));
    let mut body = body;
    // A pooled connection may have been closed by the application while it
    // sat idle: then the request is replayed once on a fresh one. A fresh
    // connection that an endpoint closes or resets before any answer, with
    // nothing of the client's body read yet, is tried once on each other
    // endpoint of a server that has several.
    let mut try_pool = keep;
    let mut tried: Vec<Endpoint> = Vec::new();
    loop {
        let pooled = std::mem::take(&mut try_pool);
        let (conn, endpoint) = if pooled {
            match upstream::checkout(server, metrics) {
                Some(found) => found,
                None => continue,
            }
        } else {
            match open(client, server, dynamic, metrics, &tried) {
                Ok(found) => found,
                Err(status) => return Outcome::Status(status),
            }
        };
        // Only an attempt that can be replayed needs a copy of the head
        // (in the thread's spare, kept again with the head below).
        let retry_elsewhere = !pooled && dynamic.is_none() && upstream::balanced(server, Some(metrics));
        let out = if pooled || retry_elsewhere {
            let mut copy = Spare::Replay.take();
            copy.extend_from_slice(&head);
            copy
        } else {
            std::mem::take(&mut head)
        };
        let phase = if nph { Phase::Nph } else { Phase::Headers(Spare::HeaderBlock.take()) };
        // Kept only where a failed attempt moves on to another endpoint.
        let kept = retry_elsewhere.then(|| endpoint.clone().into_owned());
        if config.log_notes {
            seen.endpoint = Some(endpoint.to_string());
        }
        let setup = Setup {
            request_id,
            keep,
            reused: pooled,
            retry_elsewhere,
            metrics: Some(metrics),
            hold_memory: config.response_buffer,
            hold_max: config.response_spool_max.max(config.response_buffer),
            dynamic,
            phase,
        };
        match Exchange::new(client, server, endpoint, body, out, setup).run(conn) {
            Ok(outcome) => {
                Spare::Replay.keep(head);
                return outcome;
            }
            Err(stale_body) => body = stale_body,
        }
        if let Body::Spooled(spool) = &mut body {
            if spool.rewind().is_err() {
                metrics.cause(Cause::GatewayError);
                return Outcome::Status(500);
            }
        }
        if let Some(endpoint) = kept {
            tried.push(endpoint.clone());
            let others = upstream::candidates(server, Some(metrics), false);
            if !others.iter().any(|c| !tried.contains(&*c.endpoint)) {
                let msg = format!(
                    "FastCGI: incomplete headers (0 bytes) received from server \"{}\" (every endpoint closed the connection)",
                    server.path
                );
                client.log(Level::Error, 0, &msg);
                metrics.cause(Cause::IncompleteHeaders);
                return Outcome::Status(500);
            }
            let msg = format!(
                "FastCGI: server \"{}\": {endpoint} closed the connection before answering; trying another endpoint",
                server.path
            );
            client.log(Level::Warn, 0, &msg);
        }
    }
}

/// What the access log's `fastcgi-*` notes tell of a request, beside the
/// tracker's times.
#[derive(Default)]
struct Seen {
    /// The endpoint of the last attempt.
    endpoint: Option<String>,
    /// The wait for a place under `-max-in-flight`.
    waited: Duration,
    refused: Option<Refusal>,
}

impl Seen {
    /// Sets the request's notes: `fastcgi-endpoint`, the times in seconds
    /// (`fastcgi-queue-time`, `-connect-time`, `-header-time`,
    /// `-response-time`) and `fastcgi-refused`; what did not happen is
    /// left unset (a LogFormat shows "-").
    fn note(&self, client: &mut dyn Client, metrics: &Tracker) {
        const NOTES: [&CStr; 4] =
            [c"fastcgi-queue-time", c"fastcgi-connect-time", c"fastcgi-header-time", c"fastcgi-response-time"];
        if let Some(endpoint) = &self.endpoint {
            client.note(c"fastcgi-endpoint", endpoint);
        }
        if let Some(why) = self.refused {
            client.note(c"fastcgi-refused", why.name());
        }
        let times = metrics.times();
        let values =
            [Some(self.waited), times.and_then(|t| t.connect), times.and_then(|t| t.header), times.map(|t| t.response)];
        for (name, value) in NOTES.iter().zip(values) {
            if let Some(d) = value {
                let ms = d.as_millis();
                client.note(name, &format!("{}.{:03}", ms / 1000, ms % 1000));
            }
        }
    }
}

/// Answers a request that got no place under `-max-in-flight`: 503 with
/// `Retry-After`, logged at most once a second per application.
fn refuse(client: &mut dyn Client, server: &Server, refused: Refused, seen: &mut Seen) -> Outcome {
    seen.refused = Some(refused.why);
    seen.waited = refused.waited;
    let options = &server.options;
    if let Some((in_flight, waiting, total)) = refused.log {
        let why = match refused.why {
            Refusal::QueueFull if options.queue_timeout_ms == 0 || options.queue_bound() == 0 => {
                "no request may wait".to_string()
            }
            Refusal::QueueFull => format!("{} requests already wait (-max-queued)", options.queue_bound()),
            Refusal::Timeout => {
                format!("no place came free within {:.1} s (-queue-timeout)", refused.waited.as_secs_f64())
            }
            Refusal::ClientGone => format!("the client left after waiting {:.1} s", refused.waited.as_secs_f64()),
        };
        let msg = format!(
            "FastCGI: server \"{}\" is at its limit of {} requests in flight (-max-in-flight; {in_flight} now, {waiting} waiting): request refused with 503, {why}; {total} refused so far (logged at most once a second)",
            server.path, options.max_in_flight
        );
        client.log(Level::Warn, 0, &msg);
    }
    client.retry_after(options.retry_after());
    Outcome::Status(503)
}

/// A new connection to `server` (a dynamic one through the manager),
/// failovers and failures logged; Err is the status to answer with.
fn open<'s>(
    client: &mut dyn Client,
    server: &'s Server,
    dynamic: Option<&OnDemand>,
    metrics: &Tracker,
    tried: &[Endpoint],
) -> Result<(Conn, Cow<'s, Endpoint>), u16> {
    let mut log = |level: Level, errno: i32, msg: &str| client.log(level, errno, msg);
    upstream::open(server, dynamic, metrics, tried, &mut log).map_err(|(errno, msg)| {
        client.log(Level::Error, errno, &msg);
        metrics.cause(Cause::ConnectRefused);
        503
    })
}

/// Runs an AUTHORIZER-role request (`role`: the FCGI_APACHE_ROLE value) and
/// returns the application's whole output (bounded), or the status to
/// answer with when talking to it failed (already logged).
pub(super) fn run_authorizer(
    client: &mut dyn Client,
    server: &Server,
    dynamic: Option<&OnDemand>,
    role: &str,
    overrides: Vec<(String, Vec<u8>)>,
) -> Result<Vec<u8>, u16> {
    let request_id = next_request_id();
    let head = params_head(client, server, Some(role), overrides, request_id, false);
    let (conn, endpoint) = open(client, server, dynamic, &Tracker::off(), &[])?;
    Exchange::new(client, server, endpoint, Body::None, head, Setup::authorizer(request_id, dynamic)).collect(conn)
}

/// BEGIN_REQUEST and the PARAMS stream: the responder's CGI variables, or
/// with `auth_role` the authorizer's, plus `-pass-header` values and
/// `overrides`, as records of `request_id`. FCGI_KEEP_CONN with `keep`
/// (responders whose connection may be pooled, `upstream::may_keep`).
fn params_head(
    client: &mut dyn Client,
    server: &Server,
    auth_role: Option<&str>,
    mut overrides: Vec<(String, Vec<u8>)>,
    request_id: u16,
    keep: bool,
) -> Vec<u8> {
    for name in &server.options.pass_headers {
        if let Some(value) = client.request_header(name) {
            overrides.push((cgi_header_name(name), value));
        }
    }
    let enc = RequestEncoder::new(request_id);
    let mut out = Spare::Records.take();
    out.reserve(4096);
    let role = if auth_role.is_some() { Role::Authorizer } else { Role::Responder };
    enc.begin_request(&mut out, role, keep && auth_role.is_none());
    let mut params = enc.params(&mut out);
    client.cgi_vars(auth_role, &overrides, &mut params);
    params.finish();
    out
}

/// `-pass-header Name` travels as `HTTP_NAME`: upper case, every other
/// non-alphanumeric character as `_` (what `ap_create_environment` does).
fn cgi_header_name(header: &str) -> String {
    let mut name = String::with_capacity(5 + header.len());
    name.push_str("HTTP_");
    name.extend(header.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }));
    name
}
