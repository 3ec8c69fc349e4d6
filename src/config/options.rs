//! The `-option value` lists of FastCgiServer, FastCgiExternalServer and
//! FastCgiConfig: names case-insensitive, values validated with the
//! original's error form `<Directive> <path>: invalid value for <opt>: <why>`.

/// Options every kind of application shares: how a request talks to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppOptions {
    /// `-appConnTimeout`: seconds a connect may take; 0 blocks (default 0).
    pub app_conn_timeout: u32,
    /// `-idle-timeout`: seconds without I/O before a request is aborted,
    /// including the wait for the first byte (default 30).
    pub idle_timeout: u32,
    /// `-pass-header`: request headers passed as `HTTP_<NAME>` even when
    /// httpd would withhold them (Authorization).
    pub pass_headers: Vec<String>,
    /// `-flush`: send each piece of output to the client at once.
    pub flush: bool,
    /// `-nph`: the application writes the whole HTTP response itself.
    pub nph: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions { app_conn_timeout: 0, idle_timeout: 30, pass_headers: Vec::new(), flush: false, nph: false }
    }
}

/// How the process manager starts and restarts a static application's
/// processes (FastCgiServer), with the original's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnOptions {
    /// `-processes`: instances kept running (default 1).
    pub processes: u32,
    /// `-initial-env`: the whole environment of the application, as
    /// `NAME=value` (a bare `NAME` copies httpd's own value, or empty).
    pub initial_env: Vec<String>,
    /// `-init-start-delay`: seconds between the first starts of instances (default 1).
    pub init_start_delay: u32,
    /// `-restart-delay`: seconds before a dead instance is restarted (default 5).
    pub restart_delay: u32,
    /// `-min-server-life`: runs shorter than this count toward the
    /// three-strike back-off (default 30).
    pub min_server_life: u32,
    /// `-priority`: nice increment of the application (default 0).
    pub priority: u32,
    /// `-listen-queue-depth`: listen() backlog of its socket (default 100).
    pub listen_queue_depth: u32,
    /// `-user`/`-group`: identity under a FastCgiWrapper.
    pub user: Option<String>,
    /// See `user`.
    pub group: Option<String>,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            processes: 1,
            initial_env: Vec::new(),
            init_start_delay: 1,
            restart_delay: 5,
            min_server_life: 30,
            priority: 0,
            listen_queue_depth: 100,
            user: None,
            group: None,
        }
    }
}

/// Which directive's option list is being parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OptionSet {
    /// FastCgiExternalServer.
    External,
    /// FastCgiServer.
    Static,
}

/// What an option list said; the endpoint options are checked by the
/// caller, which knows which combinations its directive allows.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub app: AppOptions,
    pub spawn: SpawnOptions,
    pub socket: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub bind: Option<String>,
}

/// The most `-initial-env` options one directive may carry (the original's
/// MAX_INIT_ENV_VARS).
const MAX_INITIAL_ENV: usize = 64;

pub(super) fn parse_options(
    directive: &str,
    path: &str,
    words: &[String],
    set: OptionSet,
    httpd_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, String> {
    use OptionSet::{External, Static};
    let mut p = Parsed::default();
    let mut words = words.iter();
    while let Some(opt) = words.next() {
        let invalid = |why: &str| format!("{directive} {path}: invalid value for {opt}: {why}");
        let mut value = || words.next().ok_or_else(|| invalid("missing"));
        let lower = opt.to_ascii_lowercase();
        match (set, lower.as_str()) {
            (_, "-appconntimeout") => p.app.app_conn_timeout = number(value()?, 0).map_err(|w| invalid(&w))?,
            (_, "-idle-timeout") => p.app.idle_timeout = number(value()?, 1).map_err(|w| invalid(&w))?,
            (_, "-pass-header") => {
                let name = value()?;
                if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ':') {
                    return Err(invalid("expected a header name"));
                }
                p.app.pass_headers.push(name.clone());
            }
            (_, "-flush") => p.app.flush = true,
            (_, "-nph") => p.app.nph = true,
            (_, "-socket") => {
                let v = value()?;
                if v.is_empty() {
                    return Err(invalid("empty"));
                }
                p.socket = Some(v.clone());
            }
            (_, "-user") => p.spawn.user = Some(non_empty(value()?).map_err(|w| invalid(w))?),
            (_, "-group") => p.spawn.group = Some(non_empty(value()?).map_err(|w| invalid(w))?),
            (External, "-host") => p.host = Some(value()?.clone()),
            (Static, "-port") => {
                let v = value()?;
                p.port = Some(match v.parse::<u16>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(invalid(&format!("expected a port number 1..65535, got \"{v}\""))),
                });
            }
            (Static, "-bind") => p.bind = Some(non_empty(value()?).map_err(|w| invalid(w))?),
            (Static, "-processes") => p.spawn.processes = number(value()?, 1).map_err(|w| invalid(&w))?,
            (Static, "-init-start-delay") => p.spawn.init_start_delay = number(value()?, 0).map_err(|w| invalid(&w))?,
            (Static, "-restart-delay") => p.spawn.restart_delay = number(value()?, 0).map_err(|w| invalid(&w))?,
            (Static, "-min-server-life") => p.spawn.min_server_life = number(value()?, 0).map_err(|w| invalid(&w))?,
            (Static, "-priority") => p.spawn.priority = number(value()?, 0).map_err(|w| invalid(&w))?,
            (Static, "-listen-queue-depth") => {
                p.spawn.listen_queue_depth = number(value()?, 1).map_err(|w| invalid(&w))?
            }
            (Static, "-initial-env") => {
                if p.spawn.initial_env.len() == MAX_INITIAL_ENV {
                    return Err(invalid(&format!("too many, at most {MAX_INITIAL_ENV}")));
                }
                let v = value()?;
                let entry = match v.split_once('=') {
                    Some(("", _)) => return Err(invalid("expected NAME, NAME= or NAME=value")),
                    Some(_) => v.clone(),
                    None if v.is_empty() => return Err(invalid("expected NAME, NAME= or NAME=value")),
                    None => format!("{v}={}", httpd_env(v).unwrap_or_default()),
                };
                p.spawn.initial_env.push(entry);
            }
            _ => return Err(format!("{directive} {path}: invalid option: {opt}")),
        }
    }
    Ok(p)
}

fn number(word: &str, min: u32) -> Result<u32, String> {
    match word.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("expected a whole number >= {min}, got \"{word}\"")),
    }
}

fn non_empty(word: &str) -> Result<String, &'static str> {
    if word.is_empty() {
        Err("empty")
    } else {
        Ok(word.to_string())
    }
}
