//! Application hosts on this machine, each in a network namespace of its own
//! (issue 12: balancing, health checks, DNS, connection reuse across hosts).
//!
//! Host k is a namespace `fcgirs-<pid>-<n>` joined to the root namespace by a
//! veth pair: `fr<pid>h<k>` in the root namespace holds 198.18.<k>.1/24 (the
//! address Apache's connections come from), `eth0` inside holds
//! 198.18.<k>.2/24, and `lo` is up inside. For k ≥ 256 the second octet is
//! 19 (the whole 198.18.0.0/15 benchmark range). Nothing else is routed: the
//! namespace has only its connected /24, so its processes can reach
//! 198.18.<k>.1 and nothing else, and these addresses exist only on our veths.
//!
//! k comes from a process-wide counter, skipping any k whose addresses are on
//! an interface already or whose lock (`/run/lock/fcgirs-net.<k>`, flock,
//! released by the kernel when the process dies) another process holds. The
//! first use removes namespaces and veths left by runs whose pid is gone.
//!
//! Everything is removed on drop, also on panic: processes spawned in a
//! namespace are killed, the root end of the veth is deleted (which deletes
//! both ends), the namespace is deleted. A host half built when a step fails
//! is removed the same way. Every `ip`/`tc` call is bounded by a timeout.
//!
//! ```ignore
//! let Some(hosts) = netns::or_skip(TestHosts::new(2)) else { return };
//! let bin = CApp::build(&t);
//! let app = hosts[0].start_echo(&t, &bin, "h0", 9000, &[]);
//! // FastCgiExternalServer ... -host {hosts[0].addr()}:9000
//! ```

use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::ops::Index;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::time::{Duration, Instant};

use super::backends::php_fpm_binary;
use super::util::{self, TestDir};

/// How long any one `ip`/`tc`/`nsenter` command may take.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// The interface name inside each namespace.
pub const INNER_IF: &str = "eth0";
/// Prefix of our namespace names.
pub const NS_PREFIX: &str = "fcgirs-";
/// Prefix of our root-side veth names (`fr<pid>h<k>`, at most 15 bytes).
pub const VETH_PREFIX: &str = "fr";
const LOCK_DIR: &str = "/run/lock";
/// k ranges over 1..MAX_K: 198.18.1.0/24 .. 198.19.255.0/24.
const MAX_K: usize = 512;

static NEXT_K: AtomicUsize = AtomicUsize::new(1);
static NEXT_NS: AtomicUsize = AtomicUsize::new(0);
static STALE_CLEANUP: Once = Once::new();

/// Why hosts could not be built or a link could not be shaped.
#[derive(Debug, Clone)]
pub enum NetError {
    /// This machine cannot do it (not root, no namespaces, no sch_netem):
    /// the test should skip, saying why.
    Unsupported(String),
    /// It should have worked: the test should fail.
    Failed(String),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Unsupported(s) => write!(f, "unsupported here: {s}"),
            NetError::Failed(s) => write!(f, "failed: {s}"),
        }
    }
}

/// `Ok(v)` → `Some(v)`; `Unsupported` → prints a SKIP line and `None`;
/// `Failed` → panics. For `let Some(x) = or_skip(..) else { return };`.
pub fn or_skip<T>(r: Result<T, NetError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(NetError::Unsupported(why)) => {
            eprintln!("SKIP: {why}");
            None
        }
        Err(NetError::Failed(why)) => panic!("{why}"),
    }
}

/// Runs `prog args` with a timeout: stdout on success, else a message with
/// the exit status and stderr. The child is killed (by its pid) on timeout.
pub fn run(prog: &str, args: &[&str], timeout: Duration) -> Result<String, String> {
    let what = format!("{prog} {}", args.join(" "));
    let child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{what}`: {e}"))?;
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(out)) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(Ok(out)) => {
            Err(format!("`{what}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
        }
        Ok(Err(e)) => Err(format!("`{what}`: {e}")),
        Err(_) => {
            // Not reaped yet (the waiting thread has not returned): still ours.
            util::signal(pid, libc::SIGKILL);
            Err(format!("`{what}` timed out after {timeout:?}"))
        }
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args, CMD_TIMEOUT)
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in `fcgirs-<pid>-<n>` or `fr<pid>h<k>`.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = if let Some(r) = name.strip_prefix(NS_PREFIX) {
        r.split('-').next()?
    } else {
        let r = name.strip_prefix(VETH_PREFIX)?;
        let (pid, k) = r.split_once('h')?;
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        pid
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Our namespaces (`ip netns list`).
pub fn our_namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NS_PREFIX) && owner_pid(n).is_some())
        .map(str::to_string)
        .collect()
}

/// Our root-side veths (`ip -o link show`).
pub fn our_veths() -> Vec<String> {
    ip(&["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .filter(|n| n.starts_with(VETH_PREFIX) && owner_pid(n).is_some())
        .map(str::to_string)
        .collect()
}

/// Namespaces and veths of this process still present (for "nothing left"
/// assertions after a `TestHosts` is dropped; other tests of this process
/// may own some, so compare names, not counts).
pub fn leftovers_of(names: &[String]) -> Vec<String> {
    let mut present = our_namespaces();
    present.extend(our_veths());
    present.into_iter().filter(|n| names.contains(n)).collect()
}

/// Removes namespaces and veths whose owning process is gone (a crashed
/// run). Runs once per process before the first host is made.
pub fn cleanup_stale() {
    for ns in our_namespaces() {
        if owner_pid(&ns).map(|p| !pid_alive(p)).unwrap_or(false) {
            eprintln!("netns: removing stale namespace {ns}");
            let _ = ip(&["netns", "del", &ns]);
        }
    }
    for v in our_veths() {
        if owner_pid(&v).map(|p| !pid_alive(p)).unwrap_or(false) {
            eprintln!("netns: removing stale veth {v}");
            let _ = ip(&["link", "del", &v]);
        }
    }
}

/// 198.18.<k>.<last> (198.19.<k-256>.<last> for k ≥ 256).
fn addr_of(k: usize, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18 + (k / 256) as u8, (k % 256) as u8, last)
}

/// A k whose /24 is on no interface, locked for this host's lifetime.
fn allocate_k() -> Result<(usize, fs::File), NetError> {
    let in_use = ip(&["-o", "-4", "addr", "show"]).map_err(NetError::Failed)?;
    for _ in 1..MAX_K {
        let k = NEXT_K.fetch_add(1, Ordering::SeqCst) % MAX_K;
        if k == 0 {
            continue;
        }
        let a = addr_of(k, 0).octets();
        if in_use.contains(&format!("inet {}.{}.{}.", a[0], a[1], a[2])) {
            continue;
        }
        let path = format!("{LOCK_DIR}/fcgirs-net.{k}");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| NetError::Failed(format!("open {path}: {e}")))?;
        // SAFETY: flock on a descriptor we own; no memory involved.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok((k, f));
        }
    }
    Err(NetError::Failed("no free 198.18.0.0/15 subnet for a test host".into()))
}

/// Pids spawned in a namespace and not reaped yet (their handles kill and
/// reap them; the host kills what is still there when it goes).
type Registry = Arc<Mutex<Vec<u32>>>;

/// One application host: a namespace, a veth pair, processes inside.
pub struct Host {
    name: String,
    k: usize,
    outer: String,
    procs: Registry,
    /// Held for the host's lifetime: the flock on its k.
    _lock: fs::File,
    created_ns: bool,
    created_veth: bool,
    link: Link,
    /// With `Link::Tun`: the forwarding threads (and the devices' fds).
    tun: Option<TunLink>,
}

impl Host {
    fn create(link: Link) -> Result<Host, NetError> {
        let (k, lock) = allocate_k()?;
        let pid = std::process::id();
        let n = NEXT_NS.fetch_add(1, Ordering::SeqCst);
        let mut h = Host {
            name: format!("{NS_PREFIX}{pid}-{n}"),
            k,
            outer: format!("{VETH_PREFIX}{pid}h{k}"),
            procs: Arc::new(Mutex::new(Vec::new())),
            _lock: lock,
            created_ns: false,
            created_veth: false,
            link,
            tun: None,
        };
        // From here on, an early return drops `h`, which removes what exists.
        if let Err(e) = ip(&["netns", "add", &h.name]) {
            let unsupported = e.contains("Operation not permitted") || e.contains("Permission denied");
            return Err(if unsupported {
                NetError::Unsupported(format!("cannot create a network namespace: {e}"))
            } else {
                NetError::Failed(e)
            });
        }
        h.created_ns = true;
        let fail = NetError::Failed;
        match link {
            Link::Veth => {
                ip(&["link", "add", &h.outer, "type", "veth", "peer", "name", INNER_IF, "netns", &h.name])
                    .map_err(fail)?;
                h.created_veth = true;
            }
            Link::Tun => h.tun = Some(TunLink::create(&h.outer, &h.name).map_err(fail)?),
        }
        let outer_cidr = format!("{}/24", h.root_addr());
        let inner_cidr = format!("{}/24", h.addr());
        ip(&["addr", "add", &outer_cidr, "dev", &h.outer]).map_err(fail)?;
        ip(&["link", "set", &h.outer, "up"]).map_err(fail)?;
        ip(&["-n", &h.name, "addr", "add", &inner_cidr, "dev", INNER_IF]).map_err(fail)?;
        ip(&["-n", &h.name, "link", "set", INNER_IF, "up"]).map_err(fail)?;
        ip(&["-n", &h.name, "link", "set", "lo", "up"]).map_err(fail)?;
        Ok(h)
    }

    /// The host's address (inside its namespace): 198.18.<k>.2.
    pub fn addr(&self) -> Ipv4Addr {
        addr_of(self.k, 2)
    }

    /// The root namespace's end of the link, 198.18.<k>.1: connections from
    /// Apache (or the test) to this host come from this address.
    pub fn root_addr(&self) -> Ipv4Addr {
        addr_of(self.k, 1)
    }

    /// `addr():port` as "198.18.k.2:port" (for `-host`).
    pub fn host_port(&self, port: u16) -> String {
        format!("{}:{port}", self.addr())
    }

    /// The namespace's name (for `ip netns exec`, `ip -n`).
    pub fn netns(&self) -> &str {
        &self.name
    }

    /// The root-side veth's name.
    pub fn veth(&self) -> &str {
        &self.outer
    }

    /// How this host is linked to the root namespace.
    pub fn link(&self) -> Link {
        self.link
    }

    /// Every name this host creates (namespace, root veth), for leftover checks.
    pub fn names(&self) -> Vec<String> {
        vec![self.name.clone(), self.outer.clone()]
    }

    /// Adds `ms` milliseconds to every round trip to this host: `tc qdisc
    /// replace dev <root veth> root netem delay <ms>ms` (packets towards the
    /// host wait, so RTT ≈ ms). `ms == 0` removes it. `Unsupported` when the
    /// kernel has no sch_netem (use `Link::Tun` hosts there: on those the
    /// forwarding thread holds each packet towards the host `ms` ms).
    pub fn set_delay(&self, ms: u32) -> Result<(), NetError> {
        if let Some(tun) = &self.tun {
            tun.delay_us.store(u64::from(ms) * 1000, Ordering::SeqCst);
            return Ok(());
        }
        if ms == 0 {
            let _ = run("tc", &["qdisc", "del", "dev", &self.outer, "root"], CMD_TIMEOUT);
            return Ok(());
        }
        let delay = format!("{ms}ms");
        run("tc", &["qdisc", "replace", "dev", &self.outer, "root", "netem", "delay", &delay], CMD_TIMEOUT)
            .map(drop)
            .map_err(|e| {
                if e.contains("qdisc kind is unknown") || e.contains("No such file or directory") {
                    NetError::Unsupported(format!(
                        "tc netem is not available (kernel without sch_netem, CONFIG_NET_SCH_NETEM): {e}"
                    ))
                } else {
                    NetError::Failed(e)
                }
            })
    }

    /// Takes the host's side of the link down: the host vanishes from the
    /// network. Packets to it are dropped, so new connections get no answer
    /// (connect times out, or fails with "no route to host" once ARP gives
    /// up) and open connections hang: what a powered-off machine looks like.
    pub fn link_down(&self) {
        ip(&["-n", &self.name, "link", "set", INNER_IF, "down"]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Brings the link back (address and route come back with it).
    pub fn link_up(&self) {
        ip(&["-n", &self.name, "link", "set", INNER_IF, "up"]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `cmd` inside the namespace (setns in the child before exec, so
    /// the pid is the program's own), in a session of its own, output to
    /// `log`. The handle kills it by pid on `kill()`/`stop()`/drop.
    pub fn spawn(&self, mut cmd: Command, log: &Path) -> NsProcess {
        let ns_path = format!("/run/netns/{}", self.name);
        let ns = fs::File::open(&ns_path).unwrap_or_else(|e| panic!("open {ns_path}: {e}"));
        let ns_fd = ns.as_raw_fd();
        if let Some(dir) = log.parent() {
            util::mkdir_0755(dir);
        }
        let out = fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: setns and setsid are system calls (async-signal-safe);
        // ns_fd stays open in the parent until spawn() returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::setsid();
                Ok(())
            });
        }
        let what = format!("{cmd:?}");
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what} in {}: {e}", self.name));
        drop(ns);
        self.procs.lock().unwrap().push(child.id());
        NsProcess { child: Some(child), log: log.to_path_buf(), what, procs: self.procs.clone() }
    }

    /// `tests/apps/echo.c` (built with `CApp::build`) listening on
    /// `addr():port`, answering `/whoami` with `name` (`ECHO_NAME`; its
    /// responses also carry `X-Echo-Name: name`); `env` adds variables
    /// (e.g. `("ECHO_STALL", "1")`). Returns once the port accepts.
    pub fn start_echo(&self, dir: &TestDir, bin: &Path, name: &str, port: u16, env: &[(&str, &str)]) -> NsProcess {
        let mut cmd = Command::new(bin);
        cmd.arg(self.host_port(port)).env("ECHO_NAME", name);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = dir.join(&format!("logs/echo-{}-{port}.log", self.name));
        let mut p = self.spawn(cmd, &log);
        p.wait_port(SocketAddrV4::new(self.addr(), port));
        p
    }

    /// An echo.c that accepts connections on `addr():port` and never
    /// answers (`ECHO_STALL=1`).
    pub fn start_stalling(&self, dir: &TestDir, bin: &Path, port: u16) -> NsProcess {
        self.start_echo(dir, bin, "stall", port, &[("ECHO_STALL", "1")])
    }

    /// php-fpm with one pool on `addr():port` (www-data when root, static
    /// with `children` workers, `listen.allowed_clients` = `root_addr()`),
    /// its own config, pid file and logs under `dir`. Returns once the port
    /// accepts.
    pub fn start_php_fpm(&self, dir: &TestDir, port: u16, children: u32) -> NsProcess {
        let tag = format!("{}-{port}", self.name);
        let conf = dir.join(&format!("conf/php-fpm-{tag}.conf"));
        let log = dir.join(&format!("logs/php-fpm-{tag}.log"));
        let user = if util::is_root() { "user = www-data\ngroup = www-data\n" } else { "" };
        util::write_file(
            &conf,
            format!(
                "[global]\nerror_log = {log}\ndaemonize = no\npid = {pid}\n\n\
                 [{pool}]\nlisten = {listen}\nlisten.allowed_clients = {client}\n{user}\
                 pm = static\npm.max_children = {children}\ncatch_workers_output = yes\n\
                 clear_env = no\nenv[FCGIRS_HOST] = {host}\n",
                log = log.display(),
                pid = dir.join(&format!("run/php-fpm-{tag}.pid")).display(),
                pool = self.name,
                listen = self.host_port(port),
                client = self.root_addr(),
                host = self.addr(),
            ),
        );
        let mut cmd = Command::new(php_fpm_binary());
        cmd.arg("-F").arg("-y").arg(&conf);
        let mut p = self.spawn(cmd, &dir.join(&format!("logs/php-fpm-{tag}.out")));
        p.wait_port(SocketAddrV4::new(self.addr(), port));
        p
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Processes first: a process inside keeps the namespace alive. Only
        // pids not reaped yet are listed, so they are still our children.
        let pids: Vec<u32> = std::mem::take(&mut *self.procs.lock().unwrap_or_else(|e| e.into_inner()));
        for pid in pids {
            util::signal(-(pid as i32), libc::SIGKILL);
            util::signal(pid as i32, libc::SIGKILL);
        }
        // Closing a tun device's fd removes the device.
        drop(self.tun.take());
        if self.created_veth {
            // Deleting one end of a veth deletes both.
            if let Err(e) = ip(&["link", "del", &self.outer]) {
                eprintln!("netns: {e}");
            }
        }
        if self.created_ns {
            if let Err(e) = ip(&["netns", "del", &self.name]) {
                eprintln!("netns: {e}");
            }
        }
    }
}

/// A process running in a host's namespace, killed by pid when dropped.
pub struct NsProcess {
    child: Option<Child>,
    log: PathBuf,
    what: String,
    procs: Registry,
}

impl NsProcess {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log(&self) -> String {
        util::read_lossy(&self.log)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Still running (not exited, not killed)?
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn forget(&mut self, pid: u32) {
        self.procs.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| *p != pid);
    }

    /// SIGKILL to the process and its process group (the app dies at once,
    /// as in a crash), then reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id();
            if let Ok(None) = c.try_wait() {
                util::signal(-(pid as i32), libc::SIGKILL);
                let _ = c.kill();
            }
            let _ = c.wait();
            self.forget(pid);
        }
    }

    /// SIGTERM, up to 5 s, then SIGKILL (process group too).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id();
            util::stop_child(&mut c, Duration::from_secs(5), true);
            self.forget(pid);
        }
    }

    /// Waits (15 s at most) until `addr` accepts a TCP connection from the
    /// root namespace; panics with the log if the process exits or it does
    /// not come up.
    pub fn wait_port(&mut self, addr: SocketAddrV4) {
        let mut exited = None;
        let ok = util::wait_until(Duration::from_secs(15), || {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                exited = Some(st);
                return true;
            }
            TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_millis(500)).is_ok()
        });
        if let Some(st) = exited {
            panic!("{} exited before listening on {addr} ({st}):\n{}", self.what, self.log());
        }
        if !ok {
            panic!("{} does not accept on {addr} after 15 s:\n{}", self.what, self.log());
        }
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// N hosts; removed (processes, veths, namespaces) when dropped.
pub struct TestHosts {
    hosts: Vec<Host>,
}

impl TestHosts {
    /// Creates `n` hosts. `Unsupported` when not root or when this machine
    /// cannot create network namespaces; `Failed` for anything else. Hosts
    /// built before a failure are removed.
    pub fn new(n: usize) -> Result<TestHosts, NetError> {
        TestHosts::with_link(n, Link::Veth)
    }

    /// `n` hosts whose `set_delay` works on this kernel: veth pairs with
    /// netem where the kernel has sch_netem, else `Link::Tun`.
    pub fn new_delayable(n: usize) -> Result<TestHosts, NetError> {
        let link = if netem_available()? { Link::Veth } else { Link::Tun };
        TestHosts::with_link(n, link)
    }

    /// `n` hosts linked by `link`.
    pub fn with_link(n: usize, link: Link) -> Result<TestHosts, NetError> {
        if !util::is_root() {
            return Err(NetError::Unsupported("network namespace tests need root (ip netns add, veth pairs)".into()));
        }
        if run("ip", &["-V"], CMD_TIMEOUT).is_err() {
            return Err(NetError::Unsupported("the `ip` command (iproute2) is missing: run `make deps`".into()));
        }
        STALE_CLEANUP.call_once(cleanup_stale);
        let mut hosts = Vec::with_capacity(n);
        for _ in 0..n {
            // On error, `hosts` is dropped: what was built is removed.
            hosts.push(Host::create(link)?);
        }
        Ok(TestHosts { hosts })
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Host> {
        self.hosts.iter()
    }

    /// Every namespace and veth name of these hosts.
    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().flat_map(Host::names).collect()
    }

    /// `set_delay(ms)` on every host.
    pub fn set_delay(&self, ms: u32) -> Result<(), NetError> {
        self.hosts.iter().try_for_each(|h| h.set_delay(ms))
    }
}

impl Index<usize> for TestHosts {
    type Output = Host;
    fn index(&self, i: usize) -> &Host {
        &self.hosts[i]
    }
}

/// Connects from the root namespace and returns how long the TCP handshake
/// took (one round trip), or the error.
pub fn connect_time(addr: SocketAddrV4, timeout: Duration) -> std::io::Result<Duration> {
    let t0 = Instant::now();
    let s = TcpStream::connect_timeout(&SocketAddr::V4(addr), timeout)?;
    let d = t0.elapsed();
    drop(s);
    Ok(d)
}

/// How a host is joined to the root namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// A veth pair; `set_delay` uses `tc ... netem`.
    Veth,
    /// Two tun devices (`fr<pid>h<k>` in the root namespace, `eth0` inside,
    /// same addresses as with veth) and threads of the test process copying
    /// IP packets between them: `set_delay` holds packets towards the host
    /// in the thread, so it works on kernels without sch_netem. Slower than
    /// veth (every packet crosses user space), plenty for thousands of
    /// requests. `link_down`/`link_up` work the same.
    Tun,
}

/// Whether `tc qdisc ... netem` works here (probed once on a throwaway
/// veth host; `Unsupported` when no host can be created at all).
pub fn netem_available() -> Result<bool, NetError> {
    static PROBE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if let Some(v) = PROBE.get() {
        return Ok(*v);
    }
    let hosts = TestHosts::with_link(1, Link::Veth)?;
    let v = match hosts[0].set_delay(1) {
        Ok(()) => true,
        Err(NetError::Unsupported(_)) => false,
        Err(e) => return Err(e),
    };
    Ok(*PROBE.get_or_init(|| v))
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Opens a new tun device `name` in the calling thread's network namespace.
fn open_tun(name: &str) -> Result<fs::File, String> {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| format!("open /dev/net/tun: {e}"))?;
    // struct ifreq: 16 bytes of name, then the flags (the union is 24 bytes).
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq (40 bytes) we own.
    if unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) } != 0 {
        return Err(format!("TUNSETIFF {name}: {}", std::io::Error::last_os_error()));
    }
    Ok(f)
}

/// The tun pair of a `Link::Tun` host and the threads that forward between
/// them. Dropping it stops the threads and closes the fds (removing both
/// devices).
struct TunLink {
    stop: Arc<std::sync::atomic::AtomicBool>,
    delay_us: Arc<std::sync::atomic::AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The last references, dropped here after the threads: a thread's
    /// own final close would complete after join() returns.
    fds: Vec<Arc<fs::File>>,
    outer: String,
}

impl TunLink {
    fn create(outer: &str, ns: &str) -> Result<TunLink, String> {
        // Test threads stay in the root namespace; the inner device is
        // opened by a short-lived thread that joins the host's namespace.
        let outer_fd = Arc::new(open_tun(outer)?);
        let ns_path = format!("/run/netns/{ns}");
        let inner_fd = std::thread::spawn(move || -> Result<fs::File, String> {
            let nsf = fs::File::open(&ns_path).map_err(|e| format!("open {ns_path}: {e}"))?;
            // SAFETY: setns on this thread only (network namespaces may be
            // joined by one thread of a multithreaded process).
            if unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns {ns_path}: {}", std::io::Error::last_os_error()));
            }
            open_tun(INNER_IF)
        })
        .join()
        .map_err(|_| "tun thread panicked".to_string())??;
        let inner_fd = Arc::new(inner_fd);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let delay_us = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut threads = Vec::new();
        // Towards the host: read, stamp with a deadline, a writer thread
        // sends each packet when its time comes (constant delay: FIFO).
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        {
            let (src, stop, delay) = (outer_fd.clone(), stop.clone(), delay_us.clone());
            threads.push(std::thread::spawn(move || {
                pump(&src, &stop, |pkt| {
                    let at = Instant::now() + Duration::from_micros(delay.load(Ordering::Relaxed));
                    let _ = tx.send((at, pkt.to_vec()));
                })
            }));
        }
        {
            let dst = inner_fd.clone();
            threads.push(std::thread::spawn(move || {
                for (at, pkt) in rx {
                    let now = Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    }
                    let _ = (&*dst).write(&pkt);
                }
            }));
        }
        // From the host: straight through.
        {
            let (src, dst, stop) = (inner_fd.clone(), outer_fd.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                pump(&src, &stop, |pkt| {
                    let _ = (&*dst).write(pkt);
                })
            }));
        }
        Ok(TunLink { stop, delay_us, threads, fds: vec![outer_fd, inner_fd], outer: outer.to_string() })
    }
}

use std::io::{Read as _, Write as _};

/// Reads packets from `src` until `stop`, handing each to `f`.
fn pump(src: &fs::File, stop: &std::sync::atomic::AtomicBool, mut f: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd { fd: src.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd we own, 100 ms timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n <= 0 || pfd.revents & libc::POLLIN == 0 {
            if n > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        match (&*src).read(&mut buf) {
            Ok(n) if n > 0 => f(&buf[..n]),
            _ => {}
        }
    }
}

impl Drop for TunLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.fds.clear();
        let gone = util::wait_until(Duration::from_secs(5), || ip(&["link", "show", "dev", &self.outer]).is_err());
        if !gone {
            eprintln!("netns: tun device {} still present after its fd was closed", self.outer);
        }
    }
}
