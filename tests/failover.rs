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
