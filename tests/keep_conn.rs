//! `-keep-conn`: FCGI_KEEP_CONN, connections pooled per Apache child and
//! reused; a pooled connection the application closed is never used, and a
//! request that finds its connection closed before any answer is replayed
//! once on a new one.

mod common;

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
        let learned = common::util::wait_until(std::time::Duration::from_secs(10), || {
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
