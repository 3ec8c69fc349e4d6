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
    /// `-keep-conn` (new): keep connections open between requests
    /// (FCGI_KEEP_CONN), pooled per Apache child. On by default for
    /// FastCgiExternalServer (then `keep_conn_safe`).
    pub keep_conn: bool,
    /// Reuse within the application's capacity (the default, and
    /// `-keep-conn on`; not `-keep-conn always`): idle connections are kept
    /// only to endpoints that said, through FCGI_MAX_CONNS, that they serve
    /// more than one connection at a time, and never so many that a new
    /// connection would wait behind them.
    pub keep_conn_safe: bool,
    /// `-keep-conn` as written: None when not given.
    pub keep_conn_given: Option<bool>,
    /// `-balance` (new): how requests are spread over several endpoints.
    pub balance: Balance,
    /// `-resolve-interval` (new): seconds between re-resolutions of `-host`
    /// names by the process manager; 0 never (default 30).
    pub resolve_interval: u32,
    /// `-health-check` (new): seconds between FCGI_GET_VALUES probes of
    /// every endpoint by the process manager; 0 off (default).
    pub health_check: u32,
    /// `-user`: under a FastCgiWrapper, the user the server runs as; only
    /// requests of that identity go to it.
    pub user: Option<String>,
    /// `-group`: see `user`.
    pub group: Option<String>,
    /// `-max-in-flight` (new): the most requests of this application in
    /// flight at once, across every Apache child; 0: no limit (default).
    /// What keeps one hung application from taking every Apache worker.
    pub max_in_flight: u32,
    /// `-queue-timeout` (new): milliseconds a request over the limit waits
    /// for a place before it gets 503 (default 1 s; given in seconds).
    pub queue_timeout_ms: u32,
    /// `-max-queued` (new): the most requests waiting for a place; more are
    /// refused at once (default: `-max-in-flight`), so that waiting
    /// requests, which hold Apache workers too, stay bounded.
    pub max_queued: Option<u32>,
}

/// `-balance`: which endpoint a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// The endpoint with the fewest requests in flight across all children.
    LeastBusy,
    /// Each endpoint in turn.
    RoundRobin,
    /// The first one that answers, in configuration order.
    Failover,
}

impl Balance {
    pub fn name(self) -> &'static str {
        match self {
            Balance::LeastBusy => "least-busy",
            Balance::RoundRobin => "round-robin",
            Balance::Failover => "failover",
        }
    }
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            app_conn_timeout: 0,
            idle_timeout: 30,
            pass_headers: Vec::new(),
            flush: false,
            nph: false,
            keep_conn: false,
            keep_conn_safe: false,
            keep_conn_given: None,
            balance: Balance::LeastBusy,
            resolve_interval: 30,
            health_check: 0,
            user: None,
            group: None,
            max_in_flight: 0,
            queue_timeout_ms: DEFAULT_QUEUE_TIMEOUT_MS,
            max_queued: None,
        }
    }
}

/// `-queue-timeout`'s default: one second, a short wait that rides out a
/// burst but not a hung application.
pub const DEFAULT_QUEUE_TIMEOUT_MS: u32 = 1000;

impl AppOptions {
    /// The most requests that may wait for a place (0 without a limit).
    pub fn queue_bound(&self) -> u32 {
        if self.max_in_flight == 0 {
            0
        } else {
            self.max_queued.unwrap_or(self.max_in_flight)
        }
    }

    /// The `Retry-After` of a refusal, in whole seconds (at least 1).
    pub fn retry_after(&self) -> u32 {
        self.queue_timeout_ms.div_ceil(1000).max(1)
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
        }
    }
}

/// FastCgiConfig's tuning of dynamic applications, with the original's
/// defaults: global, one set for all dynamic applications.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicOptions {
    /// How requests talk to dynamic applications.
    pub app: AppOptions,
    /// How their processes are run.
    pub spawn: SpawnOptions,
    /// `-maxProcesses`: dynamic instances of all applications together (50).
    pub max_processes: u32,
    /// `-minProcesses`: the kill policy stops at this many instances (5).
    pub min_processes: u32,
    /// `-maxClassProcesses`: instances of one application (10).
    pub max_class_processes: u32,
    /// `-killInterval`: seconds between runs of the kill policy (300).
    pub kill_interval: u32,
    /// `-updateInterval`: seconds between load smoothings (300).
    pub update_interval: u32,
    /// `-gainValue`: weight of the newest period in the smoothing (0.5).
    pub gain: f64,
    /// `-singleThreshold`: load % under which the last instance may be
    /// killed; 0 never (0).
    pub single_threshold: u32,
    /// `-multiThreshold`: load % under which one of several instances is
    /// killed (50).
    pub multi_threshold: u32,
    /// `-startDelay`: seconds a request waits before asking for another
    /// instance (3).
    pub start_delay: u32,
    /// `-processSlack`: run the kill policy early when this close to
    /// `-maxProcesses` (5).
    pub process_slack: u32,
    /// `-restart`: always restart dynamic applications that exit.
    pub restart: bool,
    /// `-autoUpdate`: restart an application whose file is newer than its
    /// running instances.
    pub auto_update: bool,
}

impl Default for DynamicOptions {
    fn default() -> Self {
        DynamicOptions {
            app: AppOptions::default(),
            spawn: SpawnOptions::default(),
            max_processes: 50,
            min_processes: 5,
            max_class_processes: 10,
            kill_interval: 300,
            update_interval: 300,
            gain: 0.5,
            single_threshold: 0,
            multi_threshold: 50,
            start_delay: 3,
            process_slack: 5,
            restart: false,
            auto_update: false,
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
    /// FastCgiConfig.
    Dynamic,
}

/// What an option list said; the endpoint options are checked by the
/// caller, which knows which combinations its directive allows.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub app: AppOptions,
    pub spawn: SpawnOptions,
    pub dynamic: DynamicOptions,
    /// Every `-socket` given (FastCgiExternalServer: failover order).
    pub sockets: Vec<String>,
    /// Every `-host` given (failover order).
    pub hosts: Vec<String>,
    pub port: Option<u16>,
    pub bind: Option<String>,
}

/// The most `-initial-env` options one directive may carry (the original's
/// MAX_INIT_ENV_VARS).
const MAX_INITIAL_ENV: usize = 64;

/// Applies `words` to `p` (FastCgiConfig starts from what earlier lines
/// set; the server directives from defaults). `path` is empty for
/// FastCgiConfig.
pub(super) fn parse_options(
    directive: &str,
    path: &str,
    words: &[String],
    set: OptionSet,
    httpd_env: &dyn Fn(&str) -> Option<String>,
    p: &mut Parsed,
) -> Result<(), String> {
    use OptionSet::{Dynamic, External, Static};
    let who = if path.is_empty() { directive.to_string() } else { format!("{directive} {path}") };
    let mut words = words.iter();
    // -queue-timeout or -max-queued, to refuse them without -max-in-flight.
    let mut queue_option: Option<&str> = None;
    while let Some(opt) = words.next() {
        let invalid = |why: &str| format!("{who}: invalid value for {opt}: {why}");
        let mut value = || words.next().ok_or_else(|| invalid("missing"));
        let lower = opt.to_ascii_lowercase();
        let d = &mut p.dynamic;
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
            (Static | External, "-nph") => p.app.nph = true,
            (Static | External, "-keep-conn") => {
                // An optional on/off/always follows; a bare -keep-conn is on.
                let mode = match words.clone().next().map(|w| w.to_ascii_lowercase()) {
                    Some(w) if w == "on" || w == "off" || w == "always" => {
                        words.next();
                        w
                    }
                    _ => "on".to_string(),
                };
                let on = mode != "off";
                p.app.keep_conn_given = Some(on);
                p.app.keep_conn = on;
                // `always`: reuse without the capacity checks, asked for by
                // name (the pitfall of mod_proxy_fcgi's enablereuse).
                p.app.keep_conn_safe = mode == "on";
            }
            (External, "-balance") => {
                let v = value()?;
                p.app.balance = match v.to_ascii_lowercase().as_str() {
                    "least-busy" => Balance::LeastBusy,
                    "round-robin" => Balance::RoundRobin,
                    "failover" => Balance::Failover,
                    _ => return Err(invalid(&format!("expected least-busy, round-robin or failover, got \"{v}\""))),
                };
            }
            (_, "-max-in-flight") => p.app.max_in_flight = number(value()?, 1).map_err(|w| invalid(&w))?,
            (_, "-max-queued") => {
                p.app.max_queued = Some(number(value()?, 0).map_err(|w| invalid(&w))?);
                queue_option = Some("-max-queued");
            }
            (_, "-queue-timeout") => {
                p.app.queue_timeout_ms = millis(value()?).map_err(|w| invalid(&w))?;
                queue_option = Some("-queue-timeout");
            }
            (External, "-resolve-interval") => p.app.resolve_interval = number(value()?, 0).map_err(|w| invalid(&w))?,
            (External, "-health-check") => p.app.health_check = number(value()?, 0).map_err(|w| invalid(&w))?,
            (Static | External, "-socket") => {
                let v = value()?;
                if v.is_empty() {
                    return Err(invalid("empty"));
                }
                p.sockets.push(v.clone());
            }
            (Static | External, "-user") => p.app.user = Some(non_empty(value()?).map_err(invalid)?),
            (Static | External, "-group") => p.app.group = Some(non_empty(value()?).map_err(invalid)?),
            (External, "-host") => p.hosts.push(value()?.clone()),
            (Static, "-port") => {
                let v = value()?;
                p.port = Some(match v.parse::<u16>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(invalid(&format!("expected a port number 1..65535, got \"{v}\""))),
                });
            }
            (Static, "-bind") => p.bind = Some(non_empty(value()?).map_err(invalid)?),
            (Static, "-processes") => p.spawn.processes = number(value()?, 1).map_err(|w| invalid(&w))?,
            (Static | Dynamic, "-init-start-delay") => {
                p.spawn.init_start_delay = number(value()?, 0).map_err(|w| invalid(&w))?
            }
            (Static | Dynamic, "-restart-delay") => {
                p.spawn.restart_delay = number(value()?, 0).map_err(|w| invalid(&w))?
            }
            (Static | Dynamic, "-min-server-life") => {
                p.spawn.min_server_life = number(value()?, 0).map_err(|w| invalid(&w))?
            }
            (Static | Dynamic, "-priority") => p.spawn.priority = number(value()?, 0).map_err(|w| invalid(&w))?,
            (Static | Dynamic, "-listen-queue-depth") => {
                p.spawn.listen_queue_depth = number(value()?, 1).map_err(|w| invalid(&w))?
            }
            (Static | Dynamic, "-initial-env") => {
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
            (Dynamic, "-maxprocesses") => d.max_processes = number(value()?, 1).map_err(|w| invalid(&w))?,
            (Dynamic, "-minprocesses") => d.min_processes = number(value()?, 0).map_err(|w| invalid(&w))?,
            (Dynamic, "-maxclassprocesses") => d.max_class_processes = number(value()?, 1).map_err(|w| invalid(&w))?,
            (Dynamic, "-killinterval") => d.kill_interval = number(value()?, 1).map_err(|w| invalid(&w))?,
            (Dynamic, "-updateinterval") => d.update_interval = number(value()?, 1).map_err(|w| invalid(&w))?,
            (Dynamic, "-gainvalue") => {
                let v = value()?;
                d.gain = match v.parse::<f64>() {
                    Ok(g) if (0.0..=1.0).contains(&g) => g,
                    _ => return Err(invalid(&format!("expected a number from 0 to 1, got \"{v}\""))),
                };
            }
            (Dynamic, "-singlethreshold" | "-singlethreshhold") => {
                d.single_threshold = number(value()?, 0).map_err(|w| invalid(&w))?
            }
            (Dynamic, "-multithreshold" | "-multithreshhold") => {
                d.multi_threshold = number(value()?, 0).map_err(|w| invalid(&w))?
            }
            (Dynamic, "-startdelay") => d.start_delay = number(value()?, 1).map_err(|w| invalid(&w))?,
            (Dynamic, "-processslack") => d.process_slack = number(value()?, 1).map_err(|w| invalid(&w))?,
            (Dynamic, "-restart") => d.restart = true,
            (Dynamic, "-autoupdate") => d.auto_update = true,
            _ => return Err(format!("{who}: invalid option: {opt}")),
        }
    }
    if let Some(opt) = queue_option.filter(|_| p.app.max_in_flight == 0) {
        return Err(format!("{who}: {opt} needs -max-in-flight"));
    }
    if set == Dynamic && p.dynamic.process_slack > p.dynamic.max_processes {
        return Err(format!(
            "processSlack ({}) must be less than maxProcesses ({}) + 1",
            p.dynamic.process_slack, p.dynamic.max_processes
        ));
    }
    Ok(())
}

fn number(word: &str, min: u32) -> Result<u32, String> {
    match word.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("expected a whole number >= {min}, got \"{word}\"")),
    }
}

/// Seconds, with up to three decimals, as milliseconds (at most an hour).
fn millis(word: &str) -> Result<u32, String> {
    let bad = || format!("expected seconds from 0 to 3600 (decimals allowed), got \"{word}\"");
    let (whole, frac) = word.split_once('.').unwrap_or((word, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 3
        || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u32 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let frac: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().map_err(|_| bad())? };
    match whole.checked_mul(1000).and_then(|ms| ms.checked_add(frac)) {
        Some(ms) if ms <= 3_600_000 => Ok(ms),
        _ => Err(bad()),
    }
}

fn non_empty(word: &str) -> Result<String, &'static str> {
    if word.is_empty() {
        Err("empty")
    } else {
        Ok(word.to_string())
    }
}
