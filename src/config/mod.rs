//! Directives into typed configuration: pure functions, no I/O beyond name
//! resolution of `-host`, errors that name the directive, the option and
//! what was expected, with the original mod_fastcgi's texts.
//!
//! Definitions are global, as in the original: a server defined inside a
//! `<VirtualHost>` serves every vhost that maps a URL onto its path.

mod options;
mod words;

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use options::{parse_options, OptionSet, Parsed};
pub use options::{AppOptions, Balance, DynamicOptions, SpawnOptions};
pub use words::split as split_words;

use crate::transport::{hashed_name, Endpoint};

/// A FastCGI application the gateway can reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// The file-system path requests map onto (absolute, normalised); the
    /// name every log line uses.
    pub path: String,
    /// Where the application listens.
    pub endpoint: Endpoint,
    /// FastCgiExternalServer with several `-host` (or `-socket`) options:
    /// the others, tried in order when `endpoint` cannot be reached.
    pub fallbacks: Vec<Endpoint>,
    /// Per-application options.
    pub options: AppOptions,
    /// FastCgiExternalServer: every `-host` as written, for the process
    /// manager to re-resolve (`-resolve-interval`); `endpoint` and
    /// `fallbacks` hold one endpoint per address found at start-up.
    pub hosts: Vec<String>,
    /// Static servers (FastCgiServer): how the process manager runs them.
    /// None for external servers.
    pub spawn: Option<SpawnOptions>,
}

/// Everything the directives said, frozen at post-config and shared by all
/// requests of a generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Static and external servers, in definition order.
    pub servers: Vec<Server>,
    /// `FastCgiIpcDir`: where relative `-socket` names live.
    pub ipc_dir: PathBuf,
    /// `FastCgiChunkedBodyMax`: the largest chunked request body spooled to
    /// learn its length; 0 refuses chunked bodies with 411, as the original.
    pub chunked_body_max: u64,
    /// `FastCgiResponseBuffer`: response bytes a request keeps in memory
    /// for a client that reads slower than the application writes; 0 paces
    /// the application to the client, as the original did.
    pub response_buffer: u64,
    /// `FastCgiResponseSpoolMax`: the most a request holds for a slow
    /// client, memory and temporary file together; beyond it the
    /// application is paced to the client.
    pub response_spool_max: u64,
    /// `FastCgiConfig`: how dynamic applications are run.
    pub dynamic: DynamicOptions,
    /// `FastCgiScoreboard`: the traffic scoreboard's dynamic application
    /// slots; None when it is off.
    pub scoreboard: Option<u32>,
    /// `FastCgiWrapper`: the program (suexec) that starts applications
    /// under another identity (`SuexecUserGroup`, `-user`/`-group`).
    pub wrapper: Option<PathBuf>,
    /// `FastCgiLogNotes`: set the `fastcgi-*` request notes for the access
    /// log. Off by default: formatting them costs about 2 % of a small
    /// request, paid whether a LogFormat uses them or not.
    pub log_notes: bool,
    /// `FastCgiRequestBuffer`: request body bytes kept in memory while the
    /// body is received before the application is asked (the rest goes to
    /// a temporary file).
    pub request_buffer: u64,
    /// `FastCgiRequestSpoolMax`: the largest body received whole first; a
    /// larger one is streamed to the application as it arrives.
    pub request_spool_max: u64,
    /// `FastCgiTempDir`: where request bodies and held responses spill
    /// (`O_TMPFILE`); None: `$TMPDIR`, else `/tmp`.
    pub temp_dir: Option<std::sync::Arc<Path>>,
    /// `FastCgiSpoolBudget`: the most all children together keep in
    /// temporary files; None: a quarter of the temporary directory's free
    /// space at start-up, at most [`MAX_AUTO_SPOOL_BUDGET`].
    pub spool_budget: Option<u64>,
}

/// What `FastCgiWrapper On` means: Debian's suexec.
pub const DEFAULT_WRAPPER: &str = "/usr/lib/apache2/suexec";

/// Default for `FastCgiChunkedBodyMax`: 64 MiB (as FastCgiRequestSpoolMax).
pub const DEFAULT_CHUNKED_BODY_MAX: u64 = 64 << 20;
/// Default for `FastCgiScoreboard`: 64 dynamic application slots.
pub const DEFAULT_SCOREBOARD_SLOTS: u32 = 64;
/// The most `FastCgiScoreboard` takes.
pub const MAX_SCOREBOARD_SLOTS: u32 = 65_536;
/// Default for `FastCgiResponseBuffer`: 1 MiB.
pub const DEFAULT_RESPONSE_BUFFER: u64 = 1 << 20;
/// Default for `FastCgiResponseSpoolMax`: 64 MiB per response (the
/// server-wide bound is `FastCgiSpoolBudget`).
pub const DEFAULT_RESPONSE_SPOOL_MAX: u64 = 64 << 20;
/// Default for `FastCgiRequestBuffer`: 64 KiB (mod_fcgid's
/// `FcgidMaxRequestInMem`).
pub const DEFAULT_REQUEST_BUFFER: u64 = 64 << 10;
/// Default for `FastCgiRequestSpoolMax`: 64 MiB, what nginx deployments
/// usually allow as `client_max_body_size` for PHP uploads.
pub const DEFAULT_REQUEST_SPOOL_MAX: u64 = 64 << 20;

impl Config {
    /// The configuration no directive changed, with `ipc_dir`.
    pub fn new(ipc_dir: PathBuf) -> Config {
        Config {
            servers: Vec::new(),
            ipc_dir,
            chunked_body_max: DEFAULT_CHUNKED_BODY_MAX,
            response_buffer: DEFAULT_RESPONSE_BUFFER,
            response_spool_max: DEFAULT_RESPONSE_SPOOL_MAX,
            dynamic: DynamicOptions::default(),
            scoreboard: Some(DEFAULT_SCOREBOARD_SLOTS),
            wrapper: None,
            log_notes: false,
            request_buffer: DEFAULT_REQUEST_BUFFER,
            request_spool_max: DEFAULT_REQUEST_SPOOL_MAX,
            temp_dir: None,
            spool_budget: None,
        }
    }

    /// The budget of temporary files, given the free bytes of the
    /// temporary directory.
    pub fn spool_budget_for(&self, free: u64) -> u64 {
        self.spool_budget.unwrap_or((free / 4).min(MAX_AUTO_SPOOL_BUDGET))
    }
}

/// The most `FastCgiSpoolBudget auto` takes: 4 GiB.
pub const MAX_AUTO_SPOOL_BUDGET: u64 = 4 << 30;

impl Server {
    /// Every endpoint, in failover order.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        std::iter::once(&self.endpoint).chain(&self.fallbacks)
    }
}

impl Config {
    /// The server a request's `r->filename` maps to: a server path that is
    /// the whole filename or a prefix of it ending at a `/` (the rest becomes
    /// PATH_INFO), as the original matched.
    pub fn find(&self, filename: impl AsRef<[u8]>) -> Option<&Server> {
        let filename = filename.as_ref();
        self.servers.iter().find(|s| covers(&s.path, filename))
    }
}

impl Config {
    /// The position of `server` in `servers` when it is one of them (not a
    /// copy): O(1), by address.
    pub fn index_of(&self, server: &Server) -> Option<usize> {
        let range = self.servers.as_ptr_range();
        let at = server as *const Server;
        range.contains(&at).then(|| (at as usize - range.start as usize) / std::mem::size_of::<Server>())
    }
}

fn covers(prefix: &str, path: &[u8]) -> bool {
    path.strip_prefix(prefix.as_bytes()).is_some_and(|rest| rest.first().is_none_or(|&b| b == b'/'))
}

/// What the configuration needs to know of the machine: kept behind a
/// trait so that parsing stays pure and testable.
pub trait Host {
    /// Ok when `path` is a file the application user may execute; the
    /// error says why not.
    fn check_executable(&self, path: &str) -> Result<(), String>;
    /// httpd's own environment variable `name` (for a bare `-initial-env NAME`).
    fn env(&self, name: &str) -> Option<String>;
}

/// An authorizer application of a directory (FastCgiAuthenticator,
/// FastCgiAuthorizer, FastCgiAccessChecker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthApp {
    /// The application: a defined server's path, or a dynamic one.
    pub path: String,
    /// `-compat`: only `Variable-*` headers of a grant become variables.
    pub compat: bool,
}

/// The authorizer applications of a section, indexed by phase:
/// authenticator, authorizer, access checker.
pub type AuthApps = [Option<AuthApp>; 3];

/// What a directory (`<Directory>`, `<Location>`, `<Files>`) says about
/// authorizers and request buffering.
///
/// httpd merges sections for every request, into the request's pool, and
/// under prefork may destroy that pool from a signal handler (a hard
/// restart's `just_die`), possibly in the middle of a `malloc`. So a merge
/// allocates nothing: the applications are shared ([`Arc`]) with the
/// sections they come from, which live in the configuration's pool, and
/// the defaults share one set that is never freed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirConfig {
    /// The section's authorizer applications, shared.
    pub apps: Arc<AuthApps>,
    /// `...Authoritative`: a denial is final (On, the default) or lets other
    /// modules try (Off).
    pub authoritative: [bool; 3],
    /// Whether this section used any authorizer directive.
    pub auth_set: bool,
    /// `FastCgiRequestBuffering`; None: as the enclosing section (On).
    pub request_buffering: Option<bool>,
}

impl Default for DirConfig {
    fn default() -> Self {
        static NONE: OnceLock<Arc<AuthApps>> = OnceLock::new();
        let apps = Arc::clone(NONE.get_or_init(|| Arc::new([None, None, None])));
        DirConfig { apps, authoritative: [true; 3], auth_set: false, request_buffering: None }
    }
}

impl DirConfig {
    /// `add` (a section) over `base` (the sections around it). The
    /// authorizer directives do not merge, as in the original: a section
    /// that uses any of them starts from the defaults; one that uses none
    /// keeps the enclosing section's. Request buffering is inherited.
    pub fn merge(base: &DirConfig, add: &DirConfig) -> DirConfig {
        let auth = if add.auth_set { add } else { base };
        DirConfig {
            apps: Arc::clone(&auth.apps),
            authoritative: auth.authoritative,
            auth_set: auth.auth_set,
            request_buffering: add.request_buffering.or(base.request_buffering),
        }
    }

    /// Whether request bodies are received whole before the application
    /// is asked (On unless a section says Off).
    pub fn buffers_requests(&self) -> bool {
        self.request_buffering.unwrap_or(true)
    }
}

/// Collects directives during one configuration read.
pub struct Builder {
    config: Config,
    ipc_dir_set: bool,
    /// Socket names that live in the IPC directory, by server index and
    /// place (0: the endpoint, k: fallback k - 1): resolved again when a
    /// later `FastCgiIpcDir` moves it.
    in_ipc_dir: Vec<(usize, usize, String)>,
    server_root: PathBuf,
    host: Box<dyn Host + Send>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Builder {
    /// A builder for one configuration pass; `default_ipc_dir` is the
    /// original's default (`<runtime dir>/fastcgi`), `server_root` anchors
    /// relative paths.
    pub fn new(server_root: PathBuf, default_ipc_dir: PathBuf, host: Box<dyn Host + Send>) -> Self {
        Builder {
            config: Config::new(default_ipc_dir),
            ipc_dir_set: false,
            in_ipc_dir: Vec::new(),
            server_root,
            host,
            warnings: Vec::new(),
        }
    }

    /// `FastCgiServer path [options]`: a static application the process
    /// manager starts. The path must be an executable file.
    pub fn static_server(&mut self, directive: &str, args: &str) -> Result<(), String> {
        let words = split_words(args);
        let Some((path, opts)) = words.split_first() else {
            return Err(format!("{directive} requires a pathname!?"));
        };
        let path = self.absolute(path);
        self.host.check_executable(&path).map_err(|why| format!("{directive}: \"{path}\" {why}"))?;
        let host = &self.host;
        let mut parsed = Parsed::default();
        parse_options(directive, &path, opts, OptionSet::Static, &|n| host.env(n), &mut parsed)?;
        if parsed.bind.is_some() && parsed.port.is_none() {
            return Err(format!("{directive} {path}: -bind needs -port"));
        }
        let endpoint = match (parsed.sockets.last(), parsed.port) {
            (Some(_), Some(_)) => return Err("-port and -socket are mutually exclusive options".into()),
            (Some(sock), None) => Endpoint::unix(self.socket_path(sock)),
            (None, Some(port)) => {
                let bind = parsed.bind.as_deref().unwrap_or("127.0.0.1");
                let bind =
                    if bind.contains(':') && !bind.starts_with('[') { format!("[{bind}]") } else { bind.to_string() };
                Endpoint::tcp(&format!("{bind}:{port}"))
            }
            // Named after the path, stable across restarts.
            (None, None) => Endpoint::unix(self.config.ipc_dir.join(format!("{}.sock", hashed_name(path.as_bytes())))),
        }
        .map_err(|e| format!("{directive} {path}: {e}"))?;
        if self.config.servers.iter().any(|s| covers(&s.path, path.as_bytes()) || covers(&path, s.path.as_bytes())) {
            return Err(format!("{directive}: redefinition of a previously defined FastCGI server \"{path}\""));
        }
        self.note_identity(&parsed.app);
        let in_ipc = match (parsed.sockets.last(), parsed.port) {
            (Some(sock), None) => Path::new(sock).is_relative().then(|| sock.clone()),
            (None, None) => Some(format!("{}.sock", hashed_name(path.as_bytes()))),
            _ => None,
        };
        if let Some(name) = in_ipc {
            self.in_ipc_dir.push((self.config.servers.len(), 0, name));
        }
        self.config.servers.push(Server {
            path,
            endpoint,
            fallbacks: Vec::new(),
            options: parsed.app,
            hosts: Vec::new(),
            spawn: Some(parsed.spawn),
        });
        Ok(())
    }

    /// Warnings collected so far (logged by the caller at start-up).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// `-user`/`-group` mean something only under a wrapper.
    fn note_identity(&mut self, app: &AppOptions) {
        if self.config.wrapper.is_none() && (app.user.is_some() || app.group.is_some()) {
            self.warnings.push("FastCGI: there is no fastcgi wrapper set, user/group options are ignored".into());
        }
    }

    /// `FastCgiExternalServer path -socket name | -host host:port [options]`.
    pub fn external_server(&mut self, directive: &str, args: &str) -> Result<(), String> {
        let words = split_words(args);
        let Some((path, opts)) = words.split_first() else {
            return Err(format!("{directive} requires a path and either a -socket or -host option"));
        };
        let path = self.absolute(path);
        let host = &self.host;
        let mut parsed = Parsed::default();
        parse_options(directive, &path, opts, OptionSet::External, &|n| host.env(n), &mut parsed)?;
        let endpoints: Result<Vec<Endpoint>, _> = match (parsed.sockets.is_empty(), parsed.hosts.is_empty()) {
            (false, false) => return Err("-host and -socket are mutually exclusive options".into()),
            (true, true) => return Err("-socket or -host option missing".into()),
            (false, true) => parsed.sockets.iter().map(|s| Endpoint::unix(self.socket_path(s))).collect(),
            (true, false) => {
                let mut all: Vec<Endpoint> = Vec::new();
                for h in &parsed.hosts {
                    for e in Endpoint::tcp_each(h).map_err(|e| format!("{directive} {path}: {e}"))? {
                        if !all.contains(&e) {
                            all.push(e);
                        }
                    }
                }
                Ok(all)
            }
        };
        let endpoints = endpoints.map_err(|e| format!("{directive} {path}: {e}"))?;
        // Reuse is on by default, with the capacity rules: towards TCP hosts
        // and Unix sockets alike (an application that does not report a
        // capacity of 2 or more keeps its connection per request).
        if parsed.app.keep_conn_given.is_none() {
            parsed.app.keep_conn = true;
            parsed.app.keep_conn_safe = true;
        }
        if self.config.servers.iter().any(|s| covers(&s.path, path.as_bytes()) || covers(&path, s.path.as_bytes())) {
            return Err(format!("{directive}: redefinition of previously defined class \"{path}\""));
        }
        self.note_identity(&parsed.app);
        let mut endpoints = endpoints.into_iter();
        let Some(endpoint) = endpoints.next() else { return Err("-socket or -host option missing".into()) };
        let fallbacks = endpoints.collect();
        let hosts = parsed.hosts.clone();
        let index = self.config.servers.len();
        for (place, sock) in parsed.sockets.iter().enumerate() {
            if Path::new(sock).is_relative() {
                self.in_ipc_dir.push((index, place, sock.clone()));
            }
        }
        self.config.servers.push(Server { path, endpoint, fallbacks, options: parsed.app, hosts, spawn: None });
        Ok(())
    }

    /// `FastCgiConfig options`: the tuning of dynamic applications. Each
    /// option changes only itself; a later line wins.
    pub fn dynamic_config(&mut self, directive: &str, args: &str) -> Result<(), String> {
        let words = split_words(args);
        let current = &self.config.dynamic;
        let mut parsed = Parsed {
            app: current.app.clone(),
            spawn: current.spawn.clone(),
            dynamic: current.clone(),
            ..Parsed::default()
        };
        let host = &self.host;
        parse_options(directive, "", &words, OptionSet::Dynamic, &|n| host.env(n), &mut parsed)?;
        let mut dynamic = parsed.dynamic;
        dynamic.app = parsed.app;
        dynamic.spawn = parsed.spawn;
        self.config.dynamic = dynamic;
        Ok(())
    }

    /// `FastCgiWrapper On | Off | path` (alias `FastCgiSuexec`): once, and
    /// before any server definition.
    pub fn wrapper(&mut self, directive: &str, args: &str) -> Result<(), String> {
        let word = one_word(directive, args)?;
        if let Some(w) = &self.config.wrapper {
            return Err(format!("{directive} was already set to \"{}\"", w.display()));
        }
        if !self.config.servers.is_empty() {
            return Err(format!("The {directive} command must preceed static FastCGI server definitions"));
        }
        let path = match word.to_ascii_lowercase().as_str() {
            "off" => return Ok(()),
            "on" => DEFAULT_WRAPPER.to_string(),
            _ => self.absolute(&word),
        };
        self.host.check_executable(&path).map_err(|why| format!("{directive}: \"{path}\" {why}"))?;
        self.config.wrapper = Some(PathBuf::from(path));
        Ok(())
    }

    /// `FastCgiAuthenticator path [-compat]` and its two siblings (`phase`
    /// 0, 1, 2): the path must be a defined server or an executable file.
    pub fn auth_app(&self, dir: &mut DirConfig, phase: usize, directive: &str, args: &str) -> Result<(), String> {
        let words = split_words(args);
        let (path, compat) = match words.as_slice() {
            [path] => (path, false),
            [path, opt] if opt.eq_ignore_ascii_case("-compat") => (path, true),
            [_, opt] => return Err(format!("{directive}: unknown option: \"{opt}\"")),
            _ => return Err(format!("{directive} takes a path and an optional -compat")),
        };
        let path = self.absolute(path);
        if self.config.find(&path).is_none() {
            self.host.check_executable(&path).map_err(|why| format!("{directive}: \"{path}\" {why}"))?;
        }
        if let Some(slot) = Arc::make_mut(&mut dir.apps).get_mut(phase) {
            *slot = Some(AuthApp { path, compat });
        }
        dir.auth_set = true;
        Ok(())
    }

    /// `FastCgiAuthenticatorAuthoritative On|Off` and its two siblings.
    pub fn auth_authoritative(dir: &mut DirConfig, phase: usize, directive: &str, args: &str) -> Result<(), String> {
        let on = on_off(directive, args)?;
        if let Some(slot) = dir.authoritative.get_mut(phase) {
            *slot = on;
        }
        dir.auth_set = true;
        Ok(())
    }

    /// `FastCgiIpcDir dir`: once (the same directory again is no error, as
    /// when the old package's configuration is read beside ours), and
    /// wherever it stands: the sockets of servers defined before it move
    /// into it.
    pub fn ipc_dir(&mut self, directive: &str, args: &str) -> Result<(), String> {
        let dir = one_word(directive, args)?;
        let mut path = self.absolute(&dir);
        while path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        let path = PathBuf::from(path);
        if self.ipc_dir_set {
            if path == self.config.ipc_dir {
                return Ok(());
            }
            return Err(format!("{directive} {dir}: already defined as \"{}\"", self.config.ipc_dir.display()));
        }
        for (index, place, name) in &self.in_ipc_dir {
            let endpoint = Endpoint::unix(path.join(name)).map_err(|e| format!("{directive} {dir}: {e}"))?;
            if let Some(server) = self.config.servers.get_mut(*index) {
                match place {
                    0 => server.endpoint = endpoint,
                    k => {
                        if let Some(slot) = server.fallbacks.get_mut(k - 1) {
                            *slot = endpoint;
                        }
                    }
                }
            }
        }
        self.config.ipc_dir = path;
        self.ipc_dir_set = true;
        Ok(())
    }

    /// `FastCgiChunkedBodyMax bytes`.
    pub fn chunked_body_max(&mut self, directive: &str, args: &str) -> Result<(), String> {
        self.config.chunked_body_max = bytes(directive, args, "0 refuses chunked bodies")?;
        Ok(())
    }

    /// `FastCgiResponseBuffer bytes`.
    pub fn response_buffer(&mut self, directive: &str, args: &str) -> Result<(), String> {
        self.config.response_buffer = bytes(directive, args, "0 paces the application to the client")?;
        Ok(())
    }

    /// `FastCgiRequestBuffer bytes`.
    pub fn request_buffer(&mut self, directive: &str, args: &str) -> Result<(), String> {
        self.config.request_buffer = bytes(directive, args, "every byte goes to the temporary file")?;
        Ok(())
    }

    /// `FastCgiRequestSpoolMax bytes`.
    pub fn request_spool_max(&mut self, directive: &str, args: &str) -> Result<(), String> {
        self.config.request_spool_max = bytes(directive, args, "0 streams every body")?;
        Ok(())
    }

    /// `FastCgiSpoolBudget bytes | auto`.
    pub fn spool_budget(&mut self, directive: &str, args: &str) -> Result<(), String> {
        if one_word(directive, args)?.eq_ignore_ascii_case("auto") {
            self.config.spool_budget = None;
            return Ok(());
        }
        self.config.spool_budget = Some(bytes(directive, args, "nothing goes to temporary files")?);
        Ok(())
    }

    /// `FastCgiTempDir dir`: an absolute directory (checked when a file is
    /// made there: a missing one answers 500 and says so).
    pub fn temp_dir(&mut self, directive: &str, args: &str) -> Result<(), String> {
        let dir = one_word(directive, args)?;
        if !Path::new(&dir).is_absolute() {
            return Err(format!("{directive}: \"{dir}\" is not an absolute path"));
        }
        self.config.temp_dir = Some(std::sync::Arc::from(Path::new(&dir)));
        Ok(())
    }

    /// `FastCgiRequestBuffering On | Off` in `dir` (a section, or the
    /// server's defaults).
    pub fn request_buffering(dir: &mut DirConfig, directive: &str, args: &str) -> Result<(), String> {
        dir.request_buffering = Some(on_off(directive, args)?);
        Ok(())
    }

    /// `FastCgiResponseSpoolMax bytes`.
    pub fn response_spool_max(&mut self, directive: &str, args: &str) -> Result<(), String> {
        self.config.response_spool_max = bytes(directive, args, "memory and temporary file together")?;
        Ok(())
    }

    /// `FastCgiScoreboard On | Off | slots`: the traffic scoreboard, with
    /// this many slots for dynamic applications (On: 64).
    pub fn scoreboard(&mut self, directive: &str, args: &str) -> Result<(), String> {
        let word = one_word(directive, args)?;
        self.config.scoreboard = match word.to_ascii_lowercase().as_str() {
            "on" => Some(DEFAULT_SCOREBOARD_SLOTS),
            "off" => None,
            n => match n.parse::<u32>() {
                Ok(n) if n <= MAX_SCOREBOARD_SLOTS => Some(n),
                _ => {
                    return Err(format!(
                        "{directive}: expected On, Off or a number of dynamic application slots (0 to {MAX_SCOREBOARD_SLOTS}), got \"{word}\""
                    ))
                }
            },
        };
        Ok(())
    }

    /// The configuration read so far (for the checks before it is built).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `FastCgiLogNotes On | Off`.
    pub fn log_notes(&mut self, directive: &str, args: &str) -> Result<(), String> {
        self.config.log_notes = on_off(directive, args)?;
        Ok(())
    }

    /// What the configuration as a whole gets wrong, whatever the order of
    /// its directives: `-max-in-flight` counts across children on the
    /// scoreboard, so it needs one.
    pub fn check(&self) -> Vec<String> {
        let config = &self.config;
        if config.scoreboard.is_some() {
            return Vec::new();
        }
        let limited = config.servers.iter().map(|s| (s.path.as_str(), &s.options));
        let dynamic = std::iter::once(("FastCgiConfig", &config.dynamic.app));
        limited
            .chain(dynamic)
            .filter(|(_, o)| o.max_in_flight > 0)
            .map(|(who, _)| {
                format!("FastCGI: {who}: -max-in-flight is counted on the scoreboard, which FastCgiScoreboard Off turns off")
            })
            .collect()
    }

    /// The finished configuration.
    pub fn build(self) -> Config {
        self.config
    }

    /// `path` made absolute against ServerRoot, with `.`, `..` and `//`
    /// removed, as the original did before comparing paths.
    fn absolute(&self, path: &str) -> String {
        let joined = self.server_root.join(path);
        let mut out = PathBuf::from("/");
        for c in joined.components() {
            match c {
                Component::Normal(n) => out.push(n),
                Component::ParentDir => {
                    out.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        out.to_string_lossy().into_owned()
    }

    fn socket_path(&self, name: &str) -> PathBuf {
        if Path::new(name).is_absolute() {
            PathBuf::from(name)
        } else {
            self.config.ipc_dir.join(name)
        }
    }
}

/// The one argument of a directive that takes `On` or `Off`.
fn on_off(directive: &str, args: &str) -> Result<bool, String> {
    match one_word(directive, args)?.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{directive} must be On or Off")),
    }
}

fn one_word(directive: &str, args: &str) -> Result<String, String> {
    let mut words = split_words(args);
    match words.len() {
        1 => Ok(words.remove(0)),
        _ => Err(format!("{directive} takes one argument")),
    }
}

/// The one argument of a directive that takes a size in bytes (`K`, `M`
/// and `G` suffixes accepted, as powers of 1024); `zero` says what 0 means.
fn bytes(directive: &str, args: &str, zero: &str) -> Result<u64, String> {
    let word = one_word(directive, args)?;
    let word = word.as_str();
    let (digits, shift) = match word.as_bytes().last() {
        Some(b'k' | b'K') => (&word[..word.len() - 1], 10),
        Some(b'm' | b'M') => (&word[..word.len() - 1], 20),
        Some(b'g' | b'G') => (&word[..word.len() - 1], 30),
        _ => (word, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{directive}: expected a number of bytes ({zero}), got \"{word}\""))
}

#[cfg(test)]
mod tests;
