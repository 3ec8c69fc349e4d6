//! Directives into typed configuration: pure functions, no I/O beyond name
//! resolution of `-host`, errors that name the directive, the option and
//! what was expected, with the original mod_fastcgi's texts.
//!
//! Definitions are global, as in the original: a server defined inside a
//! `<VirtualHost>` serves every vhost that maps a URL onto its path.

mod options;
mod words;

use std::path::{Component, Path, PathBuf};

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
}

/// What `FastCgiWrapper On` means: Debian's suexec.
pub const DEFAULT_WRAPPER: &str = "/usr/lib/apache2/suexec";

/// Default for `FastCgiChunkedBodyMax`: 128 MiB.
pub const DEFAULT_CHUNKED_BODY_MAX: u64 = 128 << 20;
/// Default for `FastCgiScoreboard`: 64 dynamic application slots.
pub const DEFAULT_SCOREBOARD_SLOTS: u32 = 64;
/// The most `FastCgiScoreboard` takes.
pub const MAX_SCOREBOARD_SLOTS: u32 = 65_536;
/// Default for `FastCgiResponseBuffer`: 1 MiB.
pub const DEFAULT_RESPONSE_BUFFER: u64 = 1 << 20;
/// Default for `FastCgiResponseSpoolMax`: 1 GiB (nginx's
/// `fastcgi_max_temp_file_size` default).
pub const DEFAULT_RESPONSE_SPOOL_MAX: u64 = 1 << 30;

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

/// What a directory (`<Directory>`, `<Location>`, `<Files>`) says about
/// authorizers. There is no merging, as in the original: a section that
/// uses any of these directives starts from the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirConfig {
    /// Indexed by phase: authenticator, authorizer, access checker.
    pub apps: [Option<AuthApp>; 3],
    /// `...Authoritative`: a denial is final (On, the default) or lets other
    /// modules try (Off).
    pub authoritative: [bool; 3],
}

impl Default for DirConfig {
    fn default() -> Self {
        DirConfig { apps: [None, None, None], authoritative: [true; 3] }
    }
}

/// Collects directives during one configuration read.
pub struct Builder {
    config: Config,
    ipc_dir_set: bool,
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
            config: Config {
                servers: Vec::new(),
                ipc_dir: default_ipc_dir,
                chunked_body_max: DEFAULT_CHUNKED_BODY_MAX,
                response_buffer: DEFAULT_RESPONSE_BUFFER,
                response_spool_max: DEFAULT_RESPONSE_SPOOL_MAX,
                dynamic: DynamicOptions::default(),
                scoreboard: Some(DEFAULT_SCOREBOARD_SLOTS),
                wrapper: None,
            },
            ipc_dir_set: false,
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
        // Reuse is on by default towards TCP hosts, with the capacity rules.
        if !parsed.hosts.is_empty() && parsed.app.keep_conn_given.is_none() {
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
        if let Some(slot) = dir.apps.get_mut(phase) {
            *slot = Some(AuthApp { path, compat });
        }
        Ok(())
    }

    /// `FastCgiAuthenticatorAuthoritative On|Off` and its two siblings.
    pub fn auth_authoritative(dir: &mut DirConfig, phase: usize, directive: &str, args: &str) -> Result<(), String> {
        let on = match one_word(directive, args)?.to_ascii_lowercase().as_str() {
            "on" => true,
            "off" => false,
            _ => return Err(format!("{directive} must be On or Off")),
        };
        if let Some(slot) = dir.authoritative.get_mut(phase) {
            *slot = on;
        }
        Ok(())
    }

    /// `FastCgiIpcDir dir`: once, and before any server definition.
    pub fn ipc_dir(&mut self, directive: &str, args: &str) -> Result<(), String> {
        let dir = one_word(directive, args)?;
        if self.ipc_dir_set {
            return Err(format!("{directive} {dir}: already defined as \"{}\"", self.config.ipc_dir.display()));
        }
        if !self.config.servers.is_empty() {
            return Err(format!("The {directive} command must preceed static FastCGI server definitions"));
        }
        let mut path = self.absolute(&dir);
        while path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        self.config.ipc_dir = PathBuf::from(path);
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
mod tests {
    use super::*;

    struct FakeHost;

    impl Host for FakeHost {
        fn check_executable(&self, path: &str) -> Result<(), String> {
            match path {
                p if p.ends_with(".dir") => Err("is a directory".into()),
                p if p.contains("missing") => Err("stat() failed: No such file or directory".into()),
                _ => Ok(()),
            }
        }
        fn env(&self, name: &str) -> Option<String> {
            (name == "HOME").then(|| "/root".to_string())
        }
    }

    fn builder() -> Builder {
        Builder::new("/etc/apache2".into(), "/run/apache2/fastcgi".into(), Box::new(FakeHost))
    }

    #[test]
    fn external_server_unix_and_tcp() {
        let mut b = builder();
        b.external_server(
            "FastCgiExternalServer",
            "/var/www/php-fcgi -socket /run/php.sock -pass-header Authorization",
        )
        .unwrap();
        b.external_server("ExternalAppClass", "rel/app -host 127.0.0.1:9000 -IDLE-TIMEOUT 5 -flush").unwrap();
        b.external_server("FastCgiExternalServer", "/x/y -socket relative.sock").unwrap();
        let c = b.build();
        assert_eq!(c.servers[0].path, "/var/www/php-fcgi");
        assert_eq!(c.servers[0].endpoint, Endpoint::Unix("/run/php.sock".into()));
        assert_eq!(c.servers[0].options.pass_headers, ["Authorization"]);
        assert_eq!(c.servers[0].options.idle_timeout, 30);
        assert_eq!(c.servers[0].options.app_conn_timeout, 0);
        assert_eq!(c.servers[1].path, "/etc/apache2/rel/app");
        assert_eq!(c.servers[1].options.idle_timeout, 5);
        assert!(c.servers[1].options.flush);
        assert_eq!(c.servers[2].endpoint, Endpoint::Unix("/run/apache2/fastcgi/relative.sock".into()));
    }

    #[test]
    fn mapping_by_prefix_at_slash() {
        let mut b = builder();
        b.external_server("E", "/srv/app.fcgi -socket /s").unwrap();
        let c = b.build();
        assert!(c.find("/srv/app.fcgi").is_some());
        assert!(c.find("/srv/app.fcgi/path/info").is_some());
        assert!(c.find("/srv/app.fcgix").is_none());
        assert!(c.find("/srv").is_none());
    }

    #[test]
    fn errors_name_directive_and_option() {
        let mut b = builder();
        let e = |b: &mut Builder, args: &str| b.external_server("FastCgiExternalServer", args).unwrap_err();
        assert_eq!(e(&mut b, "/x -foo"), "FastCgiExternalServer /x: invalid option: -foo");
        assert_eq!(e(&mut b, "/x -socket a -host h:1"), "-host and -socket are mutually exclusive options");
        assert_eq!(e(&mut b, "/x"), "-socket or -host option missing");
        assert_eq!(e(&mut b, ""), "FastCgiExternalServer requires a path and either a -socket or -host option");
        assert!(e(&mut b, "/x -socket s -idle-timeout abc")
            .starts_with("FastCgiExternalServer /x: invalid value for -idle-timeout:"));
        assert!(e(&mut b, "/x -socket s -idle-timeout 0").contains("invalid value for -idle-timeout"));
        assert!(e(&mut b, "/x -socket").contains("invalid value for -socket: missing"));
        assert_eq!(e(&mut b, "/x -host nohostport"), "FastCgiExternalServer /x: missing port specification");
        b.external_server("FastCgiExternalServer", "/a -socket /s").unwrap();
        assert!(e(&mut b, "/a -socket /t").contains("redefinition of previously defined class \"/a\""));
        assert!(e(&mut b, "/a/b -socket /t").contains("redefinition"));
        let long = format!("/x -socket /{}", "s".repeat(200));
        assert!(e(&mut b, &long).contains("is too long for a Domain socket"));
    }

    #[test]
    fn ipc_dir_rules() {
        let mut b = builder();
        b.ipc_dir("FastCgiIpcDir", "run/fcgi//").unwrap();
        assert!(b
            .ipc_dir("FastCgiIpcDir", "/other")
            .unwrap_err()
            .contains("already defined as \"/etc/apache2/run/fcgi\""));
        let mut b = builder();
        b.external_server("E", "/a -socket s").unwrap();
        assert_eq!(
            b.ipc_dir("FastCgiIpcDir", "/x").unwrap_err(),
            "The FastCgiIpcDir command must preceed static FastCGI server definitions"
        );
        assert_eq!(builder().ipc_dir("FastCgiIpcDir", "a b").unwrap_err(), "FastCgiIpcDir takes one argument");
    }

    #[test]
    fn paths_are_normalised() {
        let b = builder();
        assert_eq!(b.absolute("/a/./b//c/../d"), "/a/b/d");
        assert_eq!(b.absolute("x/../../y"), "/etc/y");
    }

    #[test]
    fn static_server_defaults_and_options() {
        let mut b = builder();
        b.static_server("FastCgiServer", "/var/www/app.py -processes 4 -socket /tmp/fcgi.sock").unwrap();
        b.static_server(
            "AppClass",
            "/srv/b.fcgi -port 9001 -initial-env PATH=/usr/bin -initial-env HOME -initial-env EMPTY= -Restart-Delay 0",
        )
        .unwrap();
        b.static_server("FastCgiServer", "/srv/c.fcgi -port 9002 -bind ::1 -priority 5 -listen-queue-depth 7").unwrap();
        b.static_server("FastCgiServer", "/srv/d.fcgi").unwrap();
        let c = b.build();
        let a = c.servers[0].spawn.as_ref().unwrap();
        assert_eq!((a.processes, a.init_start_delay, a.restart_delay, a.min_server_life), (4, 1, 5, 30));
        assert_eq!((a.priority, a.listen_queue_depth), (0, 100));
        assert_eq!(c.servers[0].endpoint, Endpoint::Unix("/tmp/fcgi.sock".into()));
        let s = c.servers[1].spawn.as_ref().unwrap();
        assert_eq!(s.initial_env, ["PATH=/usr/bin", "HOME=/root", "EMPTY="]);
        assert_eq!(s.restart_delay, 0);
        assert_eq!(c.servers[1].endpoint, Endpoint::tcp("127.0.0.1:9001").unwrap());
        assert_eq!(c.servers[2].endpoint, Endpoint::tcp("[::1]:9002").unwrap());
        let Endpoint::Unix(p) = &c.servers[3].endpoint else { panic!("unix expected") };
        assert!(p.starts_with("/run/apache2/fastcgi/") && p.extension().is_some_and(|e| e == "sock"));
    }

    #[test]
    fn static_server_errors() {
        let mut b = builder();
        let e = |b: &mut Builder, args: &str| b.static_server("FastCgiServer", args).unwrap_err();
        assert_eq!(e(&mut b, ""), "FastCgiServer requires a pathname!?");
        assert_eq!(e(&mut b, "/a -port 1 -socket s"), "-port and -socket are mutually exclusive options");
        assert!(e(&mut b, "/a -port 0").contains("invalid value for -port"));
        assert!(e(&mut b, "/a -processes 0").contains("invalid value for -processes"));
        assert_eq!(e(&mut b, "/a -host h:1"), "FastCgiServer /a: invalid option: -host");
        assert!(e(&mut b, "/missing.fcgi").contains("stat() failed"));
        assert!(e(&mut b, "/x.dir").contains("is a directory"));
        assert!(e(&mut b, "/a -bind 127.0.0.1").contains("-bind needs -port"));
        b.static_server("FastCgiServer", "/a -user www").unwrap();
        assert_eq!(b.take_warnings(), ["FastCGI: there is no fastcgi wrapper set, user/group options are ignored"]);
        assert!(e(&mut b, "/a").contains("redefinition of a previously defined FastCGI server \"/a\""));
        assert!(b.external_server("E", "/a -socket s").unwrap_err().contains("redefinition"));
        assert!(e(&mut b, "/b -initial-env =x").contains("invalid value for -initial-env"));
    }

    #[test]
    fn dynamic_config_defaults_aliases_and_last_write_wins() {
        let mut b = builder();
        assert_eq!(b.config.dynamic.max_class_processes, 10);
        b.dynamic_config("FastCgiConfig", "-maxClassProcesses 3 -singleThreshhold 7 -gainValue 0.25 -restart").unwrap();
        b.dynamic_config("FCGIConfig", "-multiThreshhold 20 -idle-timeout 9 -initial-env PATH=/bin -priority 2")
            .unwrap();
        b.dynamic_config("FastCgiConfig", "-maxClassProcesses 4 -autoUpdate -flush -pass-header Authorization")
            .unwrap();
        let d = b.build().dynamic;
        assert_eq!((d.max_class_processes, d.single_threshold, d.multi_threshold), (4, 7, 20));
        assert_eq!((d.max_processes, d.min_processes, d.start_delay, d.process_slack), (50, 5, 3, 5));
        assert_eq!((d.kill_interval, d.update_interval), (300, 300));
        assert!(d.gain == 0.25 && d.restart && d.auto_update && d.app.flush);
        assert_eq!(d.app.idle_timeout, 9);
        assert_eq!(d.app.pass_headers, ["Authorization"]);
        assert_eq!(d.spawn.initial_env, ["PATH=/bin"]);
        assert_eq!(d.spawn.priority, 2);
    }

    #[test]
    fn dynamic_config_errors() {
        let mut b = builder();
        let e = |b: &mut Builder, args: &str| b.dynamic_config("FastCgiConfig", args).unwrap_err();
        assert_eq!(e(&mut b, "-foo"), "FastCgiConfig: invalid option: -foo");
        assert_eq!(e(&mut b, "-nph"), "FastCgiConfig: invalid option: -nph");
        assert!(e(&mut b, "-gainValue 2").starts_with("FastCgiConfig: invalid value for -gainValue:"));
        assert!(e(&mut b, "-maxProcesses 0").contains("invalid value for -maxProcesses"));
        assert_eq!(
            e(&mut b, "-maxProcesses 4 -processSlack 5"),
            "processSlack (5) must be less than maxProcesses (4) + 1"
        );
    }

    #[test]
    fn wrapper_rules() {
        let mut b = builder();
        b.wrapper("FastCgiWrapper", "Off").unwrap();
        b.wrapper("FastCgiSuexec", "bin/suexec").unwrap();
        assert_eq!(b.config.wrapper.as_deref(), Some(Path::new("/etc/apache2/bin/suexec")));
        assert!(b.wrapper("FastCgiWrapper", "On").unwrap_err().contains("was already set to"));
        b.static_server("FastCgiServer", "/a -user www").unwrap();
        assert!(b.take_warnings().is_empty(), "-user means something with a wrapper");
        let mut b = builder();
        b.external_server("E", "/a -socket s").unwrap();
        assert_eq!(
            b.wrapper("FastCgiWrapper", "On").unwrap_err(),
            "The FastCgiWrapper command must preceed static FastCGI server definitions"
        );
        assert!(builder().wrapper("FastCgiWrapper", "/missing/suexec").unwrap_err().contains("stat() failed"));
    }

    #[test]
    fn authorizer_directives() {
        let mut b = builder();
        b.external_server("E", "/srv/auth -socket /s").unwrap();
        let mut dir = DirConfig::default();
        b.auth_app(&mut dir, 0, "FastCgiAuthenticator", "/srv/auth").unwrap();
        b.auth_app(&mut dir, 2, "FastCgiAccessChecker", "/usr/bin/check -COMPAT").unwrap();
        assert_eq!(dir.apps[0], Some(AuthApp { path: "/srv/auth".into(), compat: false }));
        assert_eq!(dir.apps[2], Some(AuthApp { path: "/usr/bin/check".into(), compat: true }));
        assert_eq!(dir.apps[1], None);
        assert_eq!(
            b.auth_app(&mut dir, 1, "FastCgiAuthorizer", "/srv/auth -x").unwrap_err(),
            "FastCgiAuthorizer: unknown option: \"-x\""
        );
        assert!(b.auth_app(&mut dir, 1, "FastCgiAuthorizer", "/missing/app").unwrap_err().contains("stat() failed"));
        assert_eq!(dir.authoritative, [true; 3]);
        Builder::auth_authoritative(&mut dir, 1, "FastCgiAuthorizerAuthoritative", "off").unwrap();
        assert_eq!(dir.authoritative, [true, false, true]);
        assert!(Builder::auth_authoritative(&mut dir, 1, "X", "maybe").unwrap_err().contains("On or Off"));
    }

    #[test]
    fn external_server_failover_list() {
        let mut b = builder();
        b.external_server("E", "/a -host 127.0.0.1:9001 -host [::1]:9002 -host localhost:9003").unwrap();
        b.external_server("E", "/b -socket one.sock -socket /run/two.sock").unwrap();
        let c = b.build();
        assert_eq!(c.servers[0].endpoint, Endpoint::tcp("127.0.0.1:9001").unwrap());
        // localhost may give ::1 and 127.0.0.1: one endpoint each.
        assert!(c.servers[0].fallbacks.len() >= 2);
        assert!(c.servers[0].options.keep_conn && c.servers[0].options.keep_conn_safe);
        assert!(!c.servers[1].options.keep_conn);
        assert_eq!(c.servers[1].fallbacks, [Endpoint::Unix("/run/two.sock".into())]);
        assert_eq!(
            builder().external_server("E", "/c -host h:1 -socket s").unwrap_err(),
            "-host and -socket are mutually exclusive options"
        );
    }

    #[test]
    fn chunked_body_max() {
        let mut b = builder();
        b.chunked_body_max("FastCgiChunkedBodyMax", "1048576").unwrap();
        assert!(b
            .chunked_body_max("FastCgiChunkedBodyMax", "lots")
            .unwrap_err()
            .contains("expected a number of bytes"));
        assert_eq!(b.build().chunked_body_max, 1 << 20);
    }

    #[test]
    fn response_buffering_sizes() {
        let mut b = builder();
        assert_eq!(b.config.response_buffer, 1 << 20);
        assert_eq!(b.config.response_spool_max, 1 << 30);
        b.response_buffer("FastCgiResponseBuffer", "256K").unwrap();
        b.scoreboard("FastCgiScoreboard", "Off").unwrap();
        assert_eq!(b.config.scoreboard, None);
        b.scoreboard("FastCgiScoreboard", "200").unwrap();
        assert_eq!(b.config.scoreboard, Some(200));
        b.scoreboard("FastCgiScoreboard", "on").unwrap();
        assert_eq!(b.config.scoreboard, Some(DEFAULT_SCOREBOARD_SLOTS));
        assert!(b.scoreboard("FastCgiScoreboard", "lots").unwrap_err().contains("expected On, Off"));
        b.response_spool_max("FastCgiResponseSpoolMax", "8m").unwrap();
        let err = b.response_spool_max("FastCgiResponseSpoolMax", "99999999999G").unwrap_err();
        assert!(err.starts_with("FastCgiResponseSpoolMax: expected a number of bytes"), "{err}");
        assert!(b.response_buffer("FastCgiResponseBuffer", "1 2").is_err());
        let c = b.build();
        assert_eq!((c.response_buffer, c.response_spool_max), (256 << 10, 8 << 20));
    }
}
