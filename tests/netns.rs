//! Self-checks of the multi-host harness (`tests/common/netns.rs`, issue 12):
//! hosts in network namespaces joined by veth pairs, the libfcgi echo app
//! and php-fpm on them, Apache reaching them through mod_fastcgi_rs, link
//! down/up, netem delay, a hosts file only Apache sees, and nothing left
//! behind. Root only: skipped, saying so, where namespaces cannot be made.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use common::apache::hosts_text;
use common::netns::{self, connect_time, or_skip, Link, NetError};
use common::util::{self, write_file};
use common::{Apache, CApp, Request, TestDir, TestHosts};

const PORT: u16 = 9000;

/// `FastCgiExternalServer <htdocs>/<name> -host <hostport> ...`.
fn external(t: &TestDir, name: &str, hostport: &str, opts: &str) -> String {
    format!(
        "FastCgiExternalServer {} -host {hostport} -appConnTimeout 1 -idle-timeout 5 {opts}\n",
        t.htdocs().join(name).display()
    )
}

fn get(apache: &Apache, path: &str) -> common::Response {
    apache.request(Request::get(path).timeout(Duration::from_secs(20)))
}

/// `key=<n>` in a /stats body.
fn stat(body: &str, key: &str) -> u64 {
    util::numbers_after(body, &format!("{key}=")).first().copied().unwrap_or_else(|| panic!("no {key} in {body:?}"))
        as u64
}

fn assert_gone(names: &[String]) {
    let left = netns::leftovers_of(names);
    assert!(left.is_empty(), "namespaces/veths left behind: {left:?}");
    let addrs = netns::run("ip", &["-o", "-4", "addr", "show"], netns::CMD_TIMEOUT).unwrap();
    for n in names.iter().filter(|n| n.starts_with(netns::VETH_PREFIX)) {
        assert!(!addrs.contains(n.as_str()), "{n} still has an address:\n{addrs}");
    }
}

/// Two hosts, each with the echo app; Apache reaches each one by its own
/// path; /whoami, X-Echo-Name, /sleep and /stats; link down → 503 on that
/// host only, link up → back; everything removed afterwards.
#[test]
fn two_hosts_through_apache_link_down_and_up() {
    let Some(hosts) = or_skip(TestHosts::new(2)) else { return };
    let names = hosts.names();
    let t = TestDir::new("netns2");
    let bin = CApp::build(&t);
    let mut e1 = hosts[0].start_echo(&t, &bin, "host-one", PORT, &[]);
    let _e2 = hosts[1].start_echo(&t, &bin, "host-two", PORT, &[]);
    assert_ne!(hosts[0].addr(), hosts[1].addr());
    let mut conf = external(&t, "app1", &hosts[0].host_port(PORT), "");
    conf += &external(&t, "app2", &hosts[1].host_port(PORT), "-keep-conn always");
    let apache = Apache::builder(&t).config(&conf).start();

    let r = get(&apache, "/app1/whoami");
    assert_eq!((r.status, r.text()), (200, "host-one\n".to_string()));
    assert_eq!(r.header("X-Echo-Name"), Some("host-one"));
    let r = get(&apache, "/app2/whoami");
    assert_eq!((r.status, r.text()), (200, "host-two\n".to_string()));

    let t0 = Instant::now();
    let r = get(&apache, "/app1/sleep?ms=300");
    assert_eq!((r.status, r.text()), (200, "slept=300\n".to_string()));
    assert!(t0.elapsed() >= Duration::from_millis(300), "/sleep answered after {:?}", t0.elapsed());

    // By default (libfcgi reports no capacity): one connection per request. With -keep-conn always: reused.
    for _ in 0..10 {
        assert_eq!(get(&apache, "/app1/whoami").status, 200);
        assert_eq!(get(&apache, "/app2/whoami").status, 200);
    }
    let s1 = get(&apache, "/app1/stats").text();
    assert_eq!((stat(&s1, "requests"), stat(&s1, "connections")), (13, 13), "{s1}");
    let s2 = get(&apache, "/app2/stats").text();
    assert_eq!(stat(&s2, "requests"), 12, "{s2}");
    assert!(stat(&s2, "connections") <= 2, "-keep-conn should reuse the connection: {s2}");

    // The app killed: refused at once; started again on the same port: back.
    e1.kill();
    assert!(!e1.is_running());
    let r = get(&apache, "/app1/whoami");
    assert_eq!(r.status, 503, "host 1's app is dead: {}", r.text());
    let _e1 = hosts[0].start_echo(&t, &bin, "host-one-again", PORT, &[]);
    assert_eq!(get(&apache, "/app1/whoami").text(), "host-one-again\n");

    hosts[0].link_down();
    let t0 = Instant::now();
    let r = get(&apache, "/app1/whoami");
    assert_eq!(r.status, 503, "host 1 is down: {}", r.text());
    assert!(t0.elapsed() < Duration::from_secs(10), "503 took {:?}", t0.elapsed());
    let r = get(&apache, "/app2/whoami");
    assert_eq!((r.status, r.text()), (200, "host-two\n".to_string()), "host 2 is unaffected");
    assert!(connect_time(SocketAddrV4::new(hosts[0].addr(), PORT), Duration::from_millis(500)).is_err());

    hosts[0].link_up();
    let back = util::wait_until(Duration::from_secs(10), || get(&apache, "/app1/whoami").status == 200);
    assert!(back, "host 1 did not come back after link_up:\n{}", apache.error_log());
    assert_eq!(get(&apache, "/app1/whoami").text(), "host-one-again\n");

    drop(apache);
    drop(hosts);
    assert_gone(&names);
}

/// A delay on the link: a TCP handshake from the root namespace takes about
/// the delay longer, and so does a request through Apache. netem on a veth
/// where the kernel has sch_netem, the tun link elsewhere.
#[test]
fn delay_adds_to_the_round_trip() {
    let Some(hosts) = or_skip(TestHosts::new_delayable(1)) else { return };
    let names = hosts.names();
    eprintln!("delay on a {:?} link", hosts[0].link());
    let t = TestDir::new("netnsdelay");
    let bin = CApp::build(&t);
    let _e = hosts[0].start_echo(&t, &bin, "slow", PORT, &[]);
    let target = SocketAddrV4::new(hosts[0].addr(), PORT);
    let min_rtt = || (0..5).map(|_| connect_time(target, Duration::from_secs(2)).expect("connect")).min().unwrap();
    let before = min_rtt();
    assert!(before < Duration::from_millis(3), "a handshake took {before:?} without delay");
    let conf = external(&t, "app", &hosts[0].host_port(PORT), "");
    let apache = Apache::builder(&t).config(&conf).start();
    assert_eq!(get(&apache, "/app/whoami").text(), "slow\n");

    hosts[0].set_delay(5).unwrap();
    let during = min_rtt();
    assert!(
        during >= Duration::from_millis(5) && during < Duration::from_millis(100),
        "with 5 ms delay the handshake took {during:?}"
    );
    // connect + one exchange: two round trips at least.
    let t0 = Instant::now();
    assert_eq!(get(&apache, "/app/whoami").text(), "slow\n");
    assert!(t0.elapsed() >= Duration::from_millis(10), "a request over a 5 ms link took {:?}", t0.elapsed());

    hosts[0].set_delay(0).unwrap();
    let after = min_rtt();
    assert!(after < Duration::from_millis(3), "delay removed, yet the handshake took {after:?}");
    drop(apache);
    drop(hosts);
    assert_gone(&names);
}

/// The tun link (the stand-in for veth + netem): hosts reach each other's
/// apps through Apache, link down gives 503, link up brings it back.
#[test]
fn tun_link_hosts_through_apache() {
    let Some(hosts) = or_skip(TestHosts::with_link(2, Link::Tun)) else { return };
    let names = hosts.names();
    let t = TestDir::new("netnstun");
    let bin = CApp::build(&t);
    let _e1 = hosts[0].start_echo(&t, &bin, "tun-one", PORT, &[]);
    let _e2 = hosts[1].start_echo(&t, &bin, "tun-two", PORT, &[]);
    let mut conf = external(&t, "app1", &hosts[0].host_port(PORT), "");
    conf += &external(&t, "app2", &hosts[1].host_port(PORT), "");
    let apache = Apache::builder(&t).config(&conf).start();
    assert_eq!(get(&apache, "/app1/whoami").text(), "tun-one\n");
    assert_eq!(get(&apache, "/app2/whoami").text(), "tun-two\n");
    let r = get(&apache, "/app1/bytes?200000");
    assert_eq!((r.status, r.body.len()), (200, 200000));
    hosts[1].link_down();
    assert_eq!(get(&apache, "/app2/whoami").status, 503);
    assert_eq!(get(&apache, "/app1/whoami").text(), "tun-one\n");
    hosts[1].link_up();
    assert!(util::wait_until(Duration::from_secs(10), || get(&apache, "/app2/whoami").status == 200));
    drop(apache);
    drop(hosts);
    assert_gone(&names);
}

/// A host that accepts and never answers: the connection is taken, bytes
/// are read, nothing ever comes back, and it is not closed either.
#[test]
fn stalling_host_accepts_and_never_answers() {
    let Some(hosts) = or_skip(TestHosts::new(1)) else { return };
    let t = TestDir::new("netnsstall");
    let bin = CApp::build(&t);
    let stall = hosts[0].start_stalling(&t, &bin, PORT);
    let mut s = TcpStream::connect((hosts[0].addr(), PORT)).expect("connect to the stalling host");
    // An FCGI_BEGIN_REQUEST record (responder, keep-conn off).
    s.write_all(&[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut buf = [0u8; 16];
    let t0 = Instant::now();
    loop {
        match s.read(&mut buf) {
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            // A signal may interrupt the wait: wait out the rest.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                if t0.elapsed() >= Duration::from_millis(700) {
                    break;
                }
            }
            other => panic!("a stalling host answered or closed: {other:?}"),
        }
    }
    assert!(t0.elapsed() >= Duration::from_millis(600), "waited only {:?}", t0.elapsed());
    assert!(
        util::wait_until(Duration::from_secs(2), || stall.log().contains("accepted connection")),
        "{}",
        stall.log()
    );
}

/// A name from a hosts file only Apache sees: resolved to host 2 at start;
/// `set_hosts` moves it to host 1, seen by a restart (the module resolves
/// `-host` names when it reads its configuration) and by lookups inside
/// Apache's mount namespace; the system's /etc/hosts never changes.
#[test]
fn hosts_file_names_only_apache_sees() {
    let Some(hosts) = or_skip(TestHosts::new(2)) else { return };
    let t = TestDir::new("netnshosts");
    let bin = CApp::build(&t);
    let _e1 = hosts[0].start_echo(&t, &bin, "host-one", PORT, &[]);
    let _e2 = hosts[1].start_echo(&t, &bin, "host-two", PORT, &[]);
    let system_hosts = std::fs::read("/etc/hosts").unwrap();
    const NAME: &str = "app.fcgirs.test";
    let hosts_path = t.join("conf/hosts");
    write_file(&hosts_path, hosts_text(&[(NAME, &hosts[1].addr().to_string())]));
    let conf = external(&t, "named", &format!("{NAME}:{PORT}"), "");
    let apache = Apache::builder(&t).hosts_file(&hosts_path).config(&conf).start();

    assert_eq!(get(&apache, "/named/whoami").text(), "host-two\n");
    assert!(format!("{NAME}:{PORT}").to_socket_addrs().is_err(), "the test process must not resolve {NAME}");

    let pid = apache.pid().unwrap();
    let lookup = || {
        netns::run("nsenter", &[&format!("--mount=/proc/{pid}/ns/mnt"), "getent", "ahostsv4", NAME], netns::CMD_TIMEOUT)
            .unwrap_or_default()
    };
    assert!(lookup().contains(&hosts[1].addr().to_string()), "{}", lookup());

    // Two addresses for the name, then only host 1.
    let both = hosts_text(&[(NAME, &hosts[1].addr().to_string()), (NAME, &hosts[0].addr().to_string())]);
    apache.set_hosts(&both);
    let l = lookup();
    assert!(l.contains(&hosts[0].addr().to_string()) && l.contains(&hosts[1].addr().to_string()), "{l}");
    apache.set_hosts(&hosts_text(&[(NAME, &hosts[0].addr().to_string())]));
    let l = lookup();
    assert!(l.contains(&hosts[0].addr().to_string()) && !l.contains(&hosts[1].addr().to_string()), "{l}");
    apache.restart(libc::SIGHUP);
    assert_eq!(get(&apache, "/named/whoami").text(), "host-one\n");

    assert_eq!(std::fs::read("/etc/hosts").unwrap(), system_hosts, "the system's /etc/hosts changed");
}

/// php-fpm in a namespace, reached through the classic Action recipe; the
/// script sees the namespace's addresses, so it ran there.
#[test]
fn php_fpm_on_a_host() {
    let Some(hosts) = or_skip(TestHosts::new(1)) else { return };
    let names = hosts.names();
    let t = TestDir::new("netnsphp");
    let _fpm = hosts[0].start_php_fpm(&t, PORT, 2);
    write_file(
        &t.htdocs().join("where.php"),
        "<?php header('Content-Type: text/plain'); echo 'php ', PHP_VERSION, \"\\n\", file_get_contents('/proc/net/fib_trie');\n",
    );
    let conf = format!(
        "AddType application/x-httpd-fastphp .php\n\
         Action application/x-httpd-fastphp /php-fcgi virtual\n\
         Alias /php-fcgi {cgi}/php-fcgi\n\
         FastCgiExternalServer {cgi}/php-fcgi -host {hp} -appConnTimeout 2\n\
         <Directory {cgi}>\n    Require all granted\n</Directory>\n",
        cgi = t.join("cgi-bin").display(),
        hp = hosts[0].host_port(PORT),
    );
    let apache = Apache::builder(&t).config(&conf).start();
    let r = get(&apache, "/where.php");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    let body = r.text();
    assert!(body.starts_with("php "), "{body}");
    assert!(body.contains(&format!("|-- {}\n", hosts[0].addr())), "not run in the host's namespace:\n{body}");
    drop(apache);
    drop(_fpm);
    drop(hosts);
    assert_gone(&names);
}

/// A panic while hosts exist (with a process running inside) still removes
/// every namespace and veth: Drop runs on unwind.
#[test]
fn everything_removed_on_panic() {
    if !util::is_root() {
        eprintln!("SKIP: network namespace tests need root");
        return;
    }
    let t = TestDir::new("netnspanic");
    let bin = CApp::build(&t);
    let names = std::sync::Mutex::new(Vec::new());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let hosts = match TestHosts::new(2) {
            Ok(h) => h,
            Err(NetError::Unsupported(_)) => return,
            Err(e) => panic!("{e}"),
        };
        *names.lock().unwrap() = hosts.names();
        let _e = hosts[1].start_echo(&t, &bin, "doomed", PORT, &[]);
        panic!("deliberate panic with hosts up");
    }));
    let names = names.into_inner().unwrap();
    if names.is_empty() {
        eprintln!("SKIP: cannot create network namespaces");
        return;
    }
    assert!(r.is_err());
    assert_gone(&names);
}

/// What a crashed run leaves (a namespace and a veth named after a pid that
/// is gone) is removed; what a live process owns is not.
#[test]
fn stale_leftovers_are_removed() {
    let Some(hosts) = or_skip(TestHosts::new(1)) else { return };
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let ns = format!("{}{dead}-0", netns::NS_PREFIX);
    let veth = format!("{}{dead}h999", netns::VETH_PREFIX);
    let ip = |args: &[&str]| netns::run("ip", args, netns::CMD_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    ip(&["netns", "add", &ns]);
    ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
    let stale = vec![ns.clone(), veth.clone()];
    assert_eq!(netns::leftovers_of(&stale).len(), 2);
    netns::cleanup_stale();
    let left = netns::leftovers_of(&stale);
    if !left.is_empty() {
        let _ = netns::run("ip", &["link", "del", &veth], netns::CMD_TIMEOUT);
        let _ = netns::run("ip", &["netns", "del", &ns], netns::CMD_TIMEOUT);
        panic!("stale {left:?} not removed");
    }
    assert!(netns::leftovers_of(&hosts.names()).len() == 2, "a live host was removed");
}

/// Load across three hosts (16 clients, 600 requests, each host by its own
/// path) on the delayable link with 2 ms: every request answered by the
/// host its path names.
#[test]
fn sixteen_clients_across_three_delayed_hosts() {
    let Some(hosts) = or_skip(TestHosts::new_delayable(3)) else { return };
    let t = TestDir::new("netnsload");
    let bin = CApp::build(&t);
    let mut conf = String::new();
    let mut apps = Vec::new();
    for i in 0..3 {
        apps.push(hosts[i].start_echo(&t, &bin, &format!("h{i}"), PORT, &[]));
        conf += &external(&t, &format!("app{i}"), &hosts[i].host_port(PORT), "");
    }
    hosts.set_delay(2).unwrap();
    let apache = Apache::builder(&t).config(&conf).start();
    let t0 = Instant::now();
    let bad = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for c in 0..16 {
            let (apache, bad) = (&apache, &bad);
            s.spawn(move || {
                for n in 0..600 / 16 {
                    let i = (c + n) % 3;
                    let r = get(apache, &format!("/app{i}/whoami"));
                    if r.status != 200 || r.text() != format!("h{i}\n") {
                        bad.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    eprintln!("600 requests over {:?} links (2 ms) in {:?}", hosts[0].link(), t0.elapsed());
    assert_eq!(bad.into_inner(), 0, "{}", apache.error_log());
}
