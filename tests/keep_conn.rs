//! `-keep-conn`: FCGI_KEEP_CONN, connections pooled per Apache child and
//! reused; a pooled connection the application closed is never used, and a
//! request that finds its connection closed before any answer is replayed
//! once on a new one.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::backends::{CAddr, CApp};
use common::{Apache, FaultServer, Request, TestDir};

fn site(t: &TestDir, fault: &FaultServer, opts: &str) -> Apache {
    Apache::builder(t)
        .config(&format!(
            "FastCgiExternalServer {} -socket {} -idle-timeout 5 {opts}",
            t.htdocs().join("fault").display(),
            fault.path().display()
        ))
        .start()
}

#[test]
fn connections_are_reused_unless_off() {
    let t = TestDir::new("keepconn");
    let fault = FaultServer::start(&t.sock("f.sock"));
    let apache = site(&t, &fault, "-keep-conn always");
    for i in 0..20 {
        let r = apache.request(Request::get(&format!("/fault/echo?n={i}")));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let requests = fault.requests();
    assert_eq!(requests.len(), 20);
    assert!(requests.iter().all(|r| r.keep_conn), "FCGI_KEEP_CONN not set");
    // Sequential requests: one or two Apache children, a few connections.
    assert!(fault.connections() <= 4, "{} connections for 20 requests", fault.connections());

    let t2 = TestDir::new("nokeepconn");
    let fault2 = FaultServer::start(&t2.sock("f.sock"));
    let apache2 = site(&t2, &fault2, "-keep-conn off");
    for _ in 0..5 {
        assert_eq!(apache2.get("/fault/echo").status, 200);
    }
    assert!(fault2.requests().iter().all(|r| !r.keep_conn));
    assert_eq!(fault2.connections(), 5, "with -keep-conn off every request has its own connection");
}

/// Issue 25: on a Unix socket too, reuse is on by default within the
/// capacity the application reports (the fault backend answers
/// FCGI_MAX_CONNS 16; the manager's upkeep asks it at start): requests ask
/// for FCGI_KEEP_CONN once the capacity is known, and connections are
/// reused. `-keep-conn on` is the same rule.
#[test]
fn unix_sockets_reuse_within_the_reported_capacity_by_default() {
    for opts in ["", "-keep-conn on"] {
        let t = TestDir::new("keepconn_default");
        let fault = FaultServer::start(&t.sock("f.sock"));
        let apache = site(&t, &fault, opts);
        // The capacity is learned by the manager's upkeep, asynchronously.
        let learned = common::util::wait_until(Duration::from_secs(10), || {
            apache.get("/fault/echo").status == 200 && fault.requests().last().is_some_and(|r| r.keep_conn)
        });
        assert!(learned, "{opts:?}: FCGI_KEEP_CONN never set:\n{}", apache.error_log());
        let before = fault.connections();
        for _ in 0..20 {
            assert_eq!(apache.get("/fault/echo").status, 200);
        }
        let used = fault.connections() - before;
        assert!(used <= 4, "{opts:?}: {used} connections for 20 sequential requests");
        apache.assert_alive();
    }
}

#[test]
fn a_closed_pooled_connection_is_not_used_and_a_stale_one_is_replayed_once() {
    let t = TestDir::new("keepconn_stale");
    let sock = t.sock("f.sock");
    let fault = FaultServer::start(&sock);
    let apache = site(&t, &fault, "-keep-conn always");
    assert_eq!(apache.get("/fault/echo").status, 200);
    // The application restarts: its end of the pooled connection closes.
    drop(fault);
    let fault = FaultServer::start(&sock);
    let r = apache.get("/fault/echo");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    let before = fault.connections();
    // An application that closes without answering: the request, on a
    // pooled connection, is tried once more on a new one, then fails.
    let r = apache.get("/fault/close");
    assert_eq!(r.status, 500, "{}", r.text());
    let used = fault.connections() - before;
    assert!((1..=2).contains(&used), "{used} connections for one request");
    assert_eq!(apache.get("/fault/echo").status, 200);
    apache.assert_alive();
}

/// A number from the status page's JSON: the first `"name":` value.
fn status_number(status: &str, name: &str) -> Option<u64> {
    let key = format!("\"{name}\":");
    let at = status.find(&key)? + key.len();
    status[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Issue 25: a libfcgi program answers FCGI_GET_VALUES with
/// FCGI_MAX_CONNS 1, for itself; a pool of them shares one socket. The
/// manager counts the connections the pool answers at once: 4 processes
/// are reused by default within that capacity, with 16 clients and no
/// request waiting behind a kept connection (libfcgi's idle timeout would
/// show as a 500 and an `idle timeout` line); a single process is counted
/// as 1, and every request has its own connection, as before.
#[test]
fn a_pool_of_libfcgi_processes_is_counted_and_reused_within_its_size() {
    for procs in [4u64, 1] {
        let t = TestDir::new(&format!("keepconn_libfcgi{procs}"));
        let sock = t.sock("echo.sock");
        let _app = CApp::start_with(&t, CAddr::Unix(sock.clone()), &[("ECHO_PROCS", &procs.to_string())]);
        let apache = Apache::builder(&t)
            .config(&format!(
                "FastCgiExternalServer {} -socket {} -idle-timeout 5\n\
                 <Location /fcgi-status>\n    SetHandler fastcgi-status\n</Location>\n",
                t.htdocs().join("echo").display(),
                sock.display()
            ))
            .start();
        let mut status = String::new();
        let counted = common::util::wait_until(Duration::from_secs(10), || {
            status = apache.get("/fcgi-status?json").text();
            status_number(&status, "capacity").is_some()
        });
        assert!(counted, "{procs} processes: no capacity learned:\n{status}\n{}", apache.error_log());
        assert_eq!(status_number(&status, "capacity"), Some(procs), "{status}");

        // One client: every request after the first can reuse.
        for _ in 0..100 {
            assert_eq!(apache.get("/echo/body").status, 200);
        }
        let status = apache.get("/fcgi-status?json").text();
        let sequential = status_number(&status, "pool_reused").expect("pool_reused");
        // Sixteen: more requests than processes.
        let total = 1600;
        let next = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let port = apache.port;
        let clients: Vec<_> = (0..16)
            .map(|_| {
                let (next, failed) = (next.clone(), failed.clone());
                std::thread::spawn(move || {
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        // The body-reading branch: libfcgi keeps a
                        // connection only when the input was read to its end.
                        let r = Request::get("/echo/body").timeout(Duration::from_secs(20)).send(port);
                        match r {
                            Ok(r) if r.status == 200 => {}
                            Ok(r) => failed.lock().unwrap().push(format!("{} {}", r.status, r.text())),
                            Err(e) => failed.lock().unwrap().push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        let failed = failed.lock().unwrap();
        assert!(failed.is_empty(), "{procs} processes: {} failed: {:?}", failed.len(), &failed[..failed.len().min(3)]);
        let status = apache.get("/fcgi-status?json").text();
        let reused = status_number(&status, "pool_reused").expect("pool_reused") - sequential;
        eprintln!(
            "{procs} libfcgi processes: {sequential} of 100 sequential requests and {reused} of {total} from 16 \
             clients reused a connection"
        );
        if procs == 1 {
            assert_eq!(sequential + reused, 0, "a single libfcgi process must not be held by a kept connection");
        } else {
            assert!(sequential >= 95 && reused > 0, "{sequential} of 100, {reused} of {total} reused:\n{status}");
        }
        let log = apache.error_log();
        assert!(!log.contains("idle timeout"), "{log}");
        apache.assert_alive();
    }
}
