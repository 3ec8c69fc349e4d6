//! Requests to dynamic applications: any file handled by `fastcgi-script`
//! that no FastCgiServer or FastCgiExternalServer defines. Its instances
//! listen on a socket named after its path in `<FastCgiIpcDir>/dynamic/`;
//! when none answers, the process manager is asked to start one and the
//! request waits for its answer (no polling of the file system, as the
//! original did).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::connect::{connect, Connected};
use crate::config::{Config, Server};
use crate::pm::{self, control};
use crate::transport::Endpoint;

/// How long a request waits for the manager to start an instance.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request that got no answer waits to learn why.
const WHY_TIMEOUT: Duration = Duration::from_secs(1);

/// What a request needs to talk to the manager.
pub struct OnDemand {
    control: PathBuf,
    /// The uid/gid the application runs as through the wrapper.
    pub identity: Option<(u32, u32)>,
    /// `-startDelay`.
    pub start_delay: Duration,
    auto_update: bool,
}

/// The server record and manager channel of the dynamic application
/// `path` run as `identity`.
pub fn target(path: &str, identity: Option<(u32, u32)>, config: &Config) -> (Server, OnDemand) {
    let dir = pm::dynamic_dir(config);
    let key = control::class_key(path.as_bytes(), identity);
    let server = Server {
        path: path.to_string(),
        endpoint: Endpoint::Unix(control::socket_path(&dir, &key)),
        fallbacks: Vec::new(),
        options: config.dynamic.app.clone(),
        hosts: Vec::new(),
        spawn: None,
    };
    let on_demand = OnDemand {
        control: dir.join(control::CONTROL_NAME),
        identity,
        start_delay: Duration::from_secs(config.dynamic.start_delay.into()),
        auto_update: config.dynamic.auto_update,
    };
    (server, on_demand)
}

impl OnDemand {
    fn tell(&self, op: control::Op, path: &str, micros: u64) -> Result<(), String> {
        let request = control::Request { op, micros, identity: self.identity, path: path.as_bytes().to_vec() };
        control::ask(&self.control, &request, START_TIMEOUT).map(drop)
    }

    /// A request that began at `began` finished: load statistics for the
    /// kill policy (the answer does not matter).
    pub fn done(&self, path: &str, began: Instant) {
        let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = self.tell(control::Op::Done, path, micros);
    }

    /// Why the application `path` is refused now, when the manager says it
    /// is (its last instance failed: how it ended): asked when an instance
    /// went away without answering. None when it is not, or the manager
    /// cannot say.
    pub fn refusal(&self, path: &str) -> Option<String> {
        let request = control::Request {
            op: control::Op::Why,
            micros: 0,
            identity: self.identity,
            path: path.as_bytes().to_vec(),
        };
        let why = control::ask(&self.control, &request, WHY_TIMEOUT).ok()?;
        (!why.is_empty()).then(|| String::from_utf8_lossy(&why).into_owned())
    }

    /// A request waited `-startDelay`: ask for another instance.
    pub fn more(&self, path: &str) {
        let _ = self.tell(control::Op::More, path, 0);
    }

    /// Connects to a running instance, having the manager start one (or
    /// replace outdated ones, `-autoUpdate`) first when needed.
    pub fn connect<'s>(&self, server: &'s Server) -> Result<Connected<'s>, (i32, String)> {
        let Endpoint::Unix(socket) = &server.endpoint else { return connect(server, None, &mut |_, _, _| {}) };
        let refused =
            |why: String| (0, format!("FastCGI: failed to connect to (dynamic) server \"{}\": {why}", server.path));
        if self.auto_update && newer(Path::new(&server.path), socket) {
            self.tell(control::Op::Restart, &server.path, 0).map_err(refused)?;
        }
        match connect(server, None, &mut |_, _, _| {}) {
            Ok(conn) => return Ok(conn),
            Err((errno, _)) if errno == libc::ENOENT || errno == libc::ECONNREFUSED => {}
            Err(e) => return Err(e),
        }
        self.tell(control::Op::Start, &server.path, 0).map_err(refused)?;
        connect(server, None, &mut |_, _, _| {}).map_err(|(errno, _)| match self.refusal(&server.path) {
            // It was started and failed before this request reached it.
            Some(why) => refused(why),
            None => {
                (errno, format!("FastCGI: failed to connect to (dynamic) server \"{}\": connect() failed", server.path))
            }
        })
    }
}

/// Whether the application file changed after its socket was made.
fn newer(app: &Path, socket: &Path) -> bool {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((mtime(app), mtime(socket)), (Some(a), Some(s)) if a > s)
}
