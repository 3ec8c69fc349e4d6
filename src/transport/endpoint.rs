//! Where an application listens.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// The longest Unix socket path the kernel accepts (`sun_path` less its NUL).
pub const MAX_UNIX_PATH: usize = 107;

/// An application's listening address, resolved once at configuration time
/// (as the original did), so a request never waits on DNS.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// A Unix domain socket path (absolute).
    Unix(PathBuf),
    /// A TCP `host:port` as written, with the addresses it resolved to; a
    /// connect tries them in order.
    Tcp { spec: String, addrs: Vec<SocketAddr> },
}

/// Two endpoints are the same when written the same: a socket path is
/// compared as bytes (`Path`'s own comparison walks its components, and
/// every pooled or balanced request compares endpoints).
impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Unix(a), Self::Unix(b)) => a.as_os_str() == b.as_os_str(),
            (Self::Tcp { spec: a, addrs: x }, Self::Tcp { spec: b, addrs: y }) => a == b && x == y,
            _ => false,
        }
    }
}

impl Eq for Endpoint {}

/// Consistent with [`PartialEq`]: a socket path hashes as bytes.
impl Hash for Endpoint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Self::Unix(path) => {
                state.write_u8(0);
                path.as_os_str().hash(state);
            }
            Self::Tcp { spec, addrs } => {
                state.write_u8(1);
                spec.hash(state);
                addrs.hash(state);
            }
        }
    }
}

/// Why a `-socket` or `-host` value cannot be an endpoint; the texts are the
/// original's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointError {
    MissingPort,
    BadPort(String),
    Unresolvable(String),
    PathTooLong(String),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingPort => f.write_str("missing port specification"),
            Self::BadPort(p) => write!(f, "bad port number \"{p}\""),
            Self::Unresolvable(h) => write!(f, "failed to resolve \"{h}\" to an IP address"),
            Self::PathTooLong(p) => write!(f, "path \"{p}\" is too long for a Domain socket"),
        }
    }
}

impl Endpoint {
    /// A Unix socket endpoint, checked against `sun_path`.
    pub fn unix(path: PathBuf) -> Result<Self, EndpointError> {
        if path.as_os_str().len() > MAX_UNIX_PATH {
            return Err(EndpointError::PathTooLong(path.display().to_string()));
        }
        Ok(Self::Unix(path))
    }

    /// A TCP endpoint from `host:port`, `[v6]:port` or `v6-literal:port`;
    /// names are resolved now. Unlike the original, IPv6 and names with
    /// several addresses are accepted.
    pub fn tcp(spec: &str) -> Result<Self, EndpointError> {
        let (host, port) = split_host_port(spec)?;
        let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
            Ok(it) => it.collect(),
            Err(_) => Vec::new(),
        };
        if addrs.is_empty() {
            return Err(EndpointError::Unresolvable(host.to_string()));
        }
        Ok(Self::Tcp { spec: spec.to_string(), addrs })
    }
}

/// `host:port` split and checked (the forms [`Endpoint::tcp`] takes).
pub fn split_host_port(spec: &str) -> Result<(&str, u16), EndpointError> {
    let (host, port) = match spec.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h, p),
        _ => return Err(EndpointError::MissingPort),
    };
    let port: u16 = match port.parse() {
        Ok(n) if n > 0 => n,
        _ => return Err(EndpointError::BadPort(port.to_string())),
    };
    Ok((host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host), port))
}

/// Whether `spec` names its host by address (nothing to re-resolve).
pub fn is_literal(spec: &str) -> bool {
    split_host_port(spec).is_ok_and(|(h, _)| h.parse::<std::net::IpAddr>().is_ok())
}

/// The addresses `spec` (`host:port`) resolves to now, each once, in the
/// resolver's order: empty when the lookup fails or finds nothing.
pub fn resolve(spec: &str) -> Result<Vec<SocketAddr>, EndpointError> {
    let (host, port) = split_host_port(spec)?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    if let Ok(it) = (host, port).to_socket_addrs() {
        for a in it {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
    }
    if addrs.is_empty() {
        return Err(EndpointError::Unresolvable(host.to_string()));
    }
    Ok(addrs)
}

impl Endpoint {
    /// One endpoint per address `spec` resolves to (a name with several
    /// A/AAAA records gives several), each named by its address.
    pub fn tcp_each(spec: &str) -> Result<Vec<Endpoint>, EndpointError> {
        Ok(resolve(spec)?.into_iter().map(Endpoint::at).collect())
    }

    /// The TCP endpoint of one address, named by it.
    pub fn at(addr: SocketAddr) -> Endpoint {
        Endpoint::Tcp { spec: addr.to_string(), addrs: vec![addr] }
    }
}

/// A socket file name derived from `key` (FNV-1a, 64 bits, in hex): for
/// sockets named after an application's path, which may hold any byte.
pub fn hashed_name(key: &[u8]) -> String {
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp { spec, .. } => f.write_str(spec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_forms() {
        let Endpoint::Tcp { addrs, .. } = Endpoint::tcp("127.0.0.1:9000").unwrap() else { panic!() };
        assert_eq!(addrs, ["127.0.0.1:9000".parse().unwrap()]);
        let Endpoint::Tcp { addrs, .. } = Endpoint::tcp("[::1]:9000").unwrap() else { panic!() };
        assert_eq!(addrs, ["[::1]:9000".parse().unwrap()]);
        let Endpoint::Tcp { addrs, .. } = Endpoint::tcp("::1:9000").unwrap() else { panic!() };
        assert_eq!(addrs, ["[::1]:9000".parse().unwrap()]);
        assert_eq!(Endpoint::tcp("localhost"), Err(EndpointError::MissingPort));
        assert_eq!(Endpoint::tcp(":80"), Err(EndpointError::MissingPort));
        assert_eq!(Endpoint::tcp("h:0"), Err(EndpointError::BadPort("0".into())));
        assert_eq!(Endpoint::tcp("h:99999"), Err(EndpointError::BadPort("99999".into())));
        assert!(matches!(Endpoint::tcp("no.such.host.invalid:80"), Err(EndpointError::Unresolvable(_))));
    }

    #[test]
    fn unix_path_limit() {
        assert!(Endpoint::unix(PathBuf::from("/".repeat(107))).is_ok());
        assert!(matches!(Endpoint::unix(PathBuf::from("/".repeat(108))), Err(EndpointError::PathTooLong(_))));
    }
}
