//! The same smoke test under mpm_prefork and mpm_event: the tutorial's flup
//! app (GET, POST echo, chunked POST, concurrent requests), a fault, and
//! restarts (httpd unloads and reloads the module).

mod common;

use std::time::Duration;

use common::sha256::{pattern, sha256_hex};
use common::{Apache, Body, FaultServer, FlupApp, Mpm, Request, TestDir};

fn smoke(mpm: Mpm) {
    let t = TestDir::new(&format!("mpm_{mpm:?}"));
    let app = FlupApp::start(&t, "flup");
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let apache = Apache::builder(&t)
        .mpm(mpm)
        .config(&format!(
            "FastCgiExternalServer {} -socket {}\nFastCgiExternalServer {} -socket {} -idle-timeout 2",
            t.htdocs().join("app.py").display(),
            app.socket.display(),
            t.htdocs().join("fault").display(),
            fault.path().display()
        ))
        .start();
    let check = |apache: &Apache| {
        let r = apache.get("/app.py");
        assert_eq!(r.status, 200, "{mpm:?} GET: {}", r.text());
        assert!(r.text().contains("<h1>Hello world!</h1>"), "{mpm:?}: {}", r.text());
        let body = pattern(1 << 20, 5);
        let r = apache.request(Request::post("/app.py/echo", Body::Fixed(body.clone())));
        assert_eq!(r.status, 200, "{mpm:?} POST: {}", r.text());
        assert!(r.text().contains(&format!("sha256={}\n", sha256_hex(&body))), "{mpm:?}: {}", r.text());
        assert!(r.text().contains("length=1048576\n"), "{mpm:?}: {}", r.text());
        let r = apache.request(Request::post("/app.py/echo", Body::chunked(&body, 10_000)));
        assert_eq!(r.status, 200, "{mpm:?} chunked POST: {}", r.text());
        assert!(r.text().contains(&format!("sha256={}\n", sha256_hex(&body))), "{mpm:?}: {}", r.text());
    };
    check(&apache);

    // Concurrent clients.
    std::thread::scope(|sc| {
        for i in 0..6 {
            let apache = &apache;
            sc.spawn(move || {
                for j in 0..5 {
                    let body = pattern(10_000 + i * 1000 + j, (i * 10 + j) as u64);
                    let r = apache.request(Request::post("/app.py/echo", Body::Fixed(body.clone())));
                    assert_eq!(r.status, 200, "{mpm:?} concurrent POST");
                    assert!(r.text().contains(&format!("sha256={}\n", sha256_hex(&body))));
                }
            });
        }
    });

    // A fault, then normal service.
    let r = apache.get("/fault/close");
    assert_eq!(r.status, 500, "{mpm:?}: {}", r.text());
    let r = apache.request(Request::get("/fault/stall").timeout(Duration::from_secs(15)));
    assert_eq!(r.status, 504, "{mpm:?}: {}", r.text());
    apache.assert_alive();
    check(&apache);

    // Restart and graceful restart: the module is unloaded and loaded again.
    apache.restart(libc::SIGHUP);
    check(&apache);
    apache.restart(libc::SIGUSR1);
    check(&apache);
    apache.assert_alive();
}

#[test]
fn smoke_under_prefork() {
    smoke(Mpm::Prefork);
}

#[test]
fn smoke_under_event() {
    smoke(Mpm::Event);
}
