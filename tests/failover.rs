//! FastCgiExternalServer with several `-socket` or `-host` options: a request
//! fails over to the next endpoint when one cannot be reached, and gets 503
//! only when none can.

mod common;

use common::backends::CAddr;
use common::{util, Apache, CApp, FlupApp, TestDir};

#[test]
fn unix_sockets_fail_over_in_order() {
    let t = TestDir::new("failover_unix");
    let app = FlupApp::start(&t, "flup");
    let missing = t.sock("missing.sock");
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiExternalServer {}/app.py -socket {} -socket {}",
            t.htdocs().display(),
            missing.display(),
            app.socket.display()
        ))
        .start();
    for _ in 0..5 {
        let r = apache.get("/app.py");
        assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
        assert!(r.text().contains("Hello world"));
    }
    let log = apache.error_log();
    assert!(log.contains(&format!("failed over to unix:{}", app.socket.display())), "{log}");
    assert!(log.contains(&format!("unix:{} unreachable", missing.display())), "{log}");
}

#[test]
fn tcp_hosts_fail_over_and_all_down_is_503() {
    let t = TestDir::new("failover_tcp");
    let port = util::free_port();
    let app = CApp::start(&t, CAddr::Tcp(port));
    let dead = util::free_port();
    let dead2 = util::free_port();
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiExternalServer {h}/echo -host 127.0.0.1:{dead} -host 127.0.0.1:{port}\n\
             FastCgiExternalServer {h}/none -host 127.0.0.1:{dead} -host 127.0.0.1:{dead2}",
            h = t.htdocs().display()
        ))
        .start();
    let r = apache.get("/echo");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    let r = apache.get("/none");
    assert_eq!(r.status, 503);
    let log = apache.error_log();
    assert!(
        log.contains(&format!(
            "FastCGI: failed to connect to server \"{}/none\": connect() failed (tried",
            t.htdocs().display()
        )),
        "{log}"
    );
    drop(app);
}

/// An endpoint that accepts and closes the connection before answering:
/// requests that had not been answered, with no request body read yet, go
/// to the other endpoint instead (each tried once); when every endpoint
/// closes, 500 as for any missing headers.
#[test]
fn an_endpoint_that_closes_before_answering_is_tried_elsewhere() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let t = TestDir::new("failover_close");
    let app = FlupApp::start(&t, "flup");
    let closer_path = t.sock("closer.sock");
    let closer = std::os::unix::net::UnixListener::bind(&closer_path).unwrap();
    std::fs::set_permissions(&closer_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let count = closed.clone();
    std::thread::spawn(move || {
        for stream in closer.incoming() {
            let Ok(mut s) = stream else { break };
            // Take the request, then close without a byte of answer.
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let _ = s.read(&mut buf);
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiExternalServer {h}/app.py -socket {c} -socket {a} -balance round-robin\n\
             FastCgiExternalServer {h}/both -socket {c} -socket {c2} -balance round-robin",
            h = t.htdocs().display(),
            c = closer_path.display(),
            a = app.socket.display(),
            c2 = closer_path.display(),
        ))
        .start();
    for _ in 0..10 {
        let r = apache.get("/app.py");
        assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    }
    assert!(closed.load(Ordering::SeqCst) >= 1, "round-robin never sent a request to the closing endpoint");
    assert!(apache.error_log().contains("closed the connection before answering; trying another endpoint"));
    let r = apache.get("/both");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(apache.error_log().contains("(every endpoint closed the connection)"), "{}", apache.error_log());
    apache.assert_alive();
}

/// Draining: a graceful restart after an endpoint left the configuration
/// lets the requests in flight on it finish, and sends it no new one.
#[test]
fn a_removed_endpoint_is_drained_by_a_graceful_restart() {
    use common::FaultServer;
    use std::time::Duration;

    let t = TestDir::new("failover_drain");
    let a = FaultServer::start(&t.sock("a.sock"));
    let b = FaultServer::start(&t.sock("b.sock"));
    let line = |sockets: &str| {
        format!("FastCgiExternalServer {}/fault {sockets} -balance round-robin\n", t.htdocs().display())
    };
    let both = line(&format!("-socket {} -socket {}", a.path().display(), b.path().display()));
    let apache = Apache::builder(&t).config(&both).start();
    let port = apache.port;
    // Two slow requests: round-robin puts one on each endpoint.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                common::Request::get("/fault/sleep?ms=2500")
                    .timeout(Duration::from_secs(20))
                    .send(port)
                    .map(|r| r.status)
            })
        })
        .collect();
    assert!(util::wait_until(Duration::from_secs(5), || !a.requests().is_empty() && !b.requests().is_empty()));
    let conf = apache.root().join("conf/httpd.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let only_b = line(&format!("-socket {}", b.path().display()));
    std::fs::write(&conf, text.replace(&both, &only_b)).unwrap();
    let old = apache.workers();
    apache.restart(libc::SIGUSR1);
    for s in slow {
        assert_eq!(s.join().unwrap().ok(), Some(200), "a request in flight did not finish\n{}", apache.error_log());
    }
    assert!(apache.wait_gone(&old, Duration::from_secs(15)), "children {old:?} of the old generation still run");
    let on_a = a.requests().len();
    for _ in 0..10 {
        assert_eq!(apache.get("/fault/ok").status, 200);
    }
    assert_eq!(a.requests().len(), on_a, "the removed endpoint got new requests");
    apache.assert_alive();
}
