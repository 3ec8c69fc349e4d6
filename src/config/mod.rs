//! Directives into typed configuration: pure functions, no I/O beyond name
//! resolution of `-host`, errors that name the directive, the option and
//! what was expected, with the original mod_fastcgi's texts.
//!
//! Definitions are global, as in the original: a server defined inside a
//! `<VirtualHost>` serves every vhost that maps a URL onto its path.

mod options;
mod words;

use std::path::{Component, Path, PathBuf};

pub use options::AppOptions;
use options::{parse_options, OptionSet};
pub use words::split as split_words;

use crate::transport::Endpoint;

/// A FastCGI application the gateway can reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// The file-system path requests map onto (absolute, normalised); the
    /// name every log line uses.
    pub path: String,
    /// Where the application listens.
    pub endpoint: Endpoint,
    /// Per-application options.
    pub options: AppOptions,
}

/// Everything the directives said, frozen at post-config and shared by all
/// requests of a generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Static and external servers, in definition order.
    pub servers: Vec<Server>,
    /// `FastCgiIpcDir`: where relative `-socket` names live.
    pub ipc_dir: PathBuf,
    /// `FastCgiChunkedBodyMax`: the largest chunked request body spooled to
    /// learn its length; 0 refuses chunked bodies with 411, as the original.
    pub chunked_body_max: u64,
}

/// Default for `FastCgiChunkedBodyMax`: 128 MiB.
pub const DEFAULT_CHUNKED_BODY_MAX: u64 = 128 << 20;

impl Config {
    /// The server a request's `r->filename` maps to: a server path that is
    /// the whole filename or a prefix of it ending at a `/` (the rest becomes
    /// PATH_INFO), as the original matched.
    pub fn find(&self, filename: &str) -> Option<&Server> {
        self.servers.iter().find(|s| covers(&s.path, filename))
    }
}

fn covers(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Collects directives during one configuration read.
#[derive(Debug)]
pub struct Builder {
    config: Config,
    ipc_dir_set: bool,
    server_root: PathBuf,
}

impl Builder {
    /// A builder for one configuration pass; `default_ipc_dir` is the
    /// original's default (`<runtime dir>/fastcgi`), `server_root` anchors
    /// relative paths.
    pub fn new(server_root: PathBuf, default_ipc_dir: PathBuf) -> Self {
        Builder {
            config: Config {
                servers: Vec::new(),
                ipc_dir: default_ipc_dir,
                chunked_body_max: DEFAULT_CHUNKED_BODY_MAX,
            },
            ipc_dir_set: false,
            server_root,
        }
    }

    /// `FastCgiExternalServer path -socket name | -host host:port [options]`.
    pub fn external_server(&mut self, directive: &str, args: &str) -> Result<(), String> {
        let words = split_words(args);
        let Some((path, opts)) = words.split_first() else {
            return Err(format!(
                "{directive} requires a path and either a -socket or -host option"
            ));
        };
        let path = self.absolute(path);
        let parsed = parse_options(directive, &path, opts, OptionSet::External)?;
        let endpoint = match (parsed.socket, parsed.host) {
            (Some(_), Some(_)) => {
                return Err("-host and -socket are mutually exclusive options".into())
            }
            (None, None) => return Err("-socket or -host option missing".into()),
            (Some(sock), None) => Endpoint::unix(self.socket_path(&sock)),
            (None, Some(host)) => Endpoint::tcp(&host),
        }
        .map_err(|e| format!("{directive} {path}: {e}"))?;
        if self
            .config
            .servers
            .iter()
            .any(|s| covers(&s.path, &path) || covers(&path, &s.path))
        {
            return Err(format!(
                "{directive}: redefinition of previously defined class \"{path}\""
            ));
        }
        self.config.servers.push(Server {
            path,
            endpoint,
            options: parsed.app,
        });
        Ok(())
    }

    /// `FastCgiIpcDir dir`: once, and before any server definition.
    pub fn ipc_dir(&mut self, directive: &str, args: &str) -> Result<(), String> {
        let dir = one_word(directive, args)?;
        if self.ipc_dir_set {
            return Err(format!(
                "{directive} {dir}: already defined as \"{}\"",
                self.config.ipc_dir.display()
            ));
        }
        if !self.config.servers.is_empty() {
            return Err(format!(
                "The {directive} command must preceed static FastCGI server definitions"
            ));
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
        let word = one_word(directive, args)?;
        self.config.chunked_body_max = word
            .parse()
            .map_err(|_| format!("{directive}: expected a number of bytes (0 refuses chunked bodies), got \"{word}\""))?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> Builder {
        Builder::new("/etc/apache2".into(), "/run/apache2/fastcgi".into())
    }

    #[test]
    fn external_server_unix_and_tcp() {
        let mut b = builder();
        b.external_server(
            "FastCgiExternalServer",
            "/var/www/php-fcgi -socket /run/php.sock -pass-header Authorization",
        )
        .unwrap();
        b.external_server(
            "ExternalAppClass",
            "rel/app -host 127.0.0.1:9000 -IDLE-TIMEOUT 5 -flush",
        )
        .unwrap();
        b.external_server("FastCgiExternalServer", "/x/y -socket relative.sock")
            .unwrap();
        let c = b.build();
        assert_eq!(c.servers[0].path, "/var/www/php-fcgi");
        assert_eq!(
            c.servers[0].endpoint,
            Endpoint::Unix("/run/php.sock".into())
        );
        assert_eq!(c.servers[0].options.pass_headers, ["Authorization"]);
        assert_eq!(c.servers[0].options.idle_timeout, 30);
        assert_eq!(c.servers[0].options.app_conn_timeout, 0);
        assert_eq!(c.servers[1].path, "/etc/apache2/rel/app");
        assert_eq!(c.servers[1].options.idle_timeout, 5);
        assert!(c.servers[1].options.flush);
        assert_eq!(
            c.servers[2].endpoint,
            Endpoint::Unix("/run/apache2/fastcgi/relative.sock".into())
        );
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
        let e = |b: &mut Builder, args: &str| {
            b.external_server("FastCgiExternalServer", args)
                .unwrap_err()
        };
        assert_eq!(
            e(&mut b, "/x -foo"),
            "FastCgiExternalServer /x: invalid option: -foo"
        );
        assert_eq!(
            e(&mut b, "/x -socket a -host h:1"),
            "-host and -socket are mutually exclusive options"
        );
        assert_eq!(e(&mut b, "/x"), "-socket or -host option missing");
        assert_eq!(
            e(&mut b, ""),
            "FastCgiExternalServer requires a path and either a -socket or -host option"
        );
        assert!(e(&mut b, "/x -socket s -idle-timeout abc")
            .starts_with("FastCgiExternalServer /x: invalid value for -idle-timeout:"));
        assert!(
            e(&mut b, "/x -socket s -idle-timeout 0").contains("invalid value for -idle-timeout")
        );
        assert!(e(&mut b, "/x -socket").contains("invalid value for -socket: missing"));
        assert_eq!(
            e(&mut b, "/x -host nohostport"),
            "FastCgiExternalServer /x: missing port specification"
        );
        b.external_server("FastCgiExternalServer", "/a -socket /s")
            .unwrap();
        assert!(
            e(&mut b, "/a -socket /t").contains("redefinition of previously defined class \"/a\"")
        );
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
        assert_eq!(
            builder().ipc_dir("FastCgiIpcDir", "a b").unwrap_err(),
            "FastCgiIpcDir takes one argument"
        );
    }

    #[test]
    fn paths_are_normalised() {
        let b = builder();
        assert_eq!(b.absolute("/a/./b//c/../d"), "/a/b/d");
        assert_eq!(b.absolute("x/../../y"), "/etc/y");
    }

    #[test]
    fn chunked_body_max() {
        let mut b = builder();
        b.chunked_body_max("FastCgiChunkedBodyMax", "1048576")
            .unwrap();
        assert!(b
            .chunked_body_max("FastCgiChunkedBodyMax", "lots")
            .unwrap_err()
            .contains("expected a number of bytes"));
        assert_eq!(b.build().chunked_body_max, 1 << 20);
    }
}
