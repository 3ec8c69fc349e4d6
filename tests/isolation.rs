//! Nothing of one request reaches another (issue 24): an authenticator's
//! password and role and a `-pass-header` value stay in their exchange (not
//! in the environment of CGI scripts, SSI or internal redirects that come
//! after), an authorizer's grant does not override the admin's `Require`
//! lines, stray bytes on a kept connection never become another request's
//! answer, and a chunked POST an endpoint closed on is not sent again.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::backends::compile_fcgi_app;
use common::http::basic_auth;
use common::{util, Apache, Body, FaultServer, FlupApp, Request, TestDir};

const AUTH_MODULES: &str = "LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so\n\
     LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so\n\
     LoadModule cgi_module /usr/lib/apache2/modules/mod_cgi.so\n\
     LoadModule include_module /usr/lib/apache2/modules/mod_include.so\n";

/// A printenv CGI script in `dir`.
fn env_cgi(dir: &std::path::Path) {
    let script = dir.join("env.cgi");
    util::write_file(&script, "#!/bin/sh\necho 'Content-Type: text/plain'\necho\nenv | sort\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn assert_clean(what: &str, body: &str) {
    for secret in ["REMOTE_PASSWD", "secret", "FCGI_APACHE_ROLE", "=AUTHENTICATOR", "HTTP_AUTHORIZATION"] {
        assert!(!body.contains(secret), "{what} shows {secret}:\n{body}");
    }
}

#[test]
fn an_authenticators_password_and_role_stay_in_its_exchange() {
    let t = TestDir::new("iso_env");
    let auth = t.htdocs().join("auth.fcgi");
    compile_fcgi_app("authorizer.c", &auth);
    let priv_dir = t.htdocs().join("priv");
    util::mkdir_0755(&priv_dir);
    env_cgi(&priv_dir);
    util::write_file(&priv_dir.join("page.shtml"), "<pre><!--#printenv --></pre>\n");
    util::write_file(&priv_dir.join("flup.fcgi"), "");
    let flup = FlupApp::start(&t, "flup");
    let apache = Apache::builder(&t)
        .config(&format!(
            "{AUTH_MODULES}\
             <Directory {htdocs}>\n  Options +ExecCGI\n</Directory>\n\
             <Directory {priv}>\n  Options +ExecCGI +Includes\n  AddHandler cgi-script .cgi\n  AddOutputFilter INCLUDES .shtml\n\
             \x20 AuthType Basic\n  AuthName test\n  Require valid-user\n  FastCgiAuthenticator {auth}\n</Directory>\n\
             FastCgiExternalServer {priv}/flup.fcgi -socket {sock} -pass-header Authorization\n\
             ErrorDocument 404 /priv/env.cgi\n",
            htdocs = t.htdocs().display(),
            priv = priv_dir.display(),
            auth = auth.display(),
            sock = flup.socket.display(),
        ))
        .start();
    let get = |path: &str| apache.request(Request::get(path).header("Authorization", &basic_auth("alice", "secret")));

    // The responder gets what -pass-header passes (so the checks below can fail).
    let r = get("/priv/flup.fcgi/env");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    assert!(r.text().contains("HTTP_AUTHORIZATION"), "-pass-header did not reach the application: {}", r.text());

    let r = get("/priv/env.cgi");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    assert!(r.text().contains("REMOTE_USER=alice"), "{}", r.text());
    // What the application granted (Variable-*) is the request's, as in the original.
    assert!(r.text().contains("ROLE_SEEN_AUTHENTICATOR=yes"), "the grant's variable is gone: {}", r.text());
    assert_clean("a CGI script after the authenticator", &r.text());

    let r = get("/priv/page.shtml");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("REMOTE_USER=alice"), "SSI printed no environment: {}", r.text());
    assert_clean("SSI after the authenticator", &r.text());

    // httpd's internal redirect (ErrorDocument) copies the environment as REDIRECT_*.
    let r = get("/priv/missing");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("REDIRECT_URL=/priv/missing"), "no internal redirect: {}", r.text());
    assert_clean("an ErrorDocument after the authenticator", &r.text());

    // The application's local redirect: what was passed to it stays with it.
    let r = get("/priv/flup.fcgi/redirect-local?to=/priv/env.cgi");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    assert!(r.text().contains("REMOTE_USER=alice"), "{}", r.text());
    assert_clean("a CGI script after a FastCGI local redirect", &r.text());
    apache.assert_alive();
}

#[test]
fn an_authorizers_grant_does_not_override_the_require_lines() {
    let t = TestDir::new("iso_authz");
    let auth = t.htdocs().join("auth.fcgi");
    compile_fcgi_app("authorizer.c", &auth);
    let mut conf = format!("{AUTH_MODULES}<Directory {}>\n  Options +ExecCGI\n</Directory>\n", t.htdocs().display());
    for (dir, who) in [("bob", "bob"), ("alice", "alice")] {
        let d = t.htdocs().join(dir);
        util::mkdir_0755(&d);
        env_cgi(&d);
        conf.push_str(&format!(
            "<Directory {d}>\n  Options +ExecCGI\n  AddHandler cgi-script .cgi\n  AuthType Basic\n  AuthName test\n\
             \x20 FastCgiAuthenticator {auth}\n  FastCgiAuthorizer {auth}\n\
             \x20 <RequireAll>\n    Require ip 127.0.0.1\n    Require user {who}\n  </RequireAll>\n</Directory>\n",
            d = d.display(),
            auth = auth.display(),
        ));
    }
    let apache = Apache::builder(&t).config(&conf).start();
    let alice = basic_auth("alice", "secret");
    // The application grants alice everywhere; the admin allows only bob here.
    let r = apache.request(Request::get("/bob/env.cgi").header("Authorization", &alice));
    assert!(matches!(r.status, 401 | 403), "alice passed `Require user bob` on the authorizer's word: {}", r.status);
    let r = apache.request(Request::get("/alice/env.cgi").header("Authorization", &alice));
    assert_eq!(r.status, 200, "a grant and a matching Require: {}\n{}", r.text(), apache.error_log());
    assert!(r.text().contains("ROLE_SEEN_AUTHORIZER=yes"), "the authorizer was not asked: {}", r.text());
    apache.assert_alive();
}

#[test]
fn stray_records_on_a_kept_connection_never_answer_another_request() {
    let t = TestDir::new("iso_late");
    let fault = FaultServer::start(&t.sock("late.sock"));
    util::write_file(&t.htdocs().join("late.fcgi"), "");
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiExternalServer {} -socket {} -keep-conn always -idle-timeout 5\n",
            t.htdocs().join("late.fcgi").display(),
            fault.path().display()
        ))
        .start();
    const N: usize = 40;
    let (mut ok, mut refused) = (0, 0);
    for i in 0..N {
        let token = format!("user{i:02}");
        let r = apache.get(&format!("/late.fcgi/late?{token}"));
        let body = r.text();
        assert!(!body.contains("LATE-"), "request {i} got an earlier request's answer: {body:?}");
        if r.status == 200 {
            assert_eq!(body, format!("token={token}\n"), "request {i}");
            ok += 1;
        } else {
            refused += 1;
        }
    }
    // Reuse happened (so stray records were there to be read), and the
    // requests that met them failed instead of taking them.
    assert!(fault.connections() < N, "no connection was kept: {} connections", fault.connections());
    assert!(ok > 0, "no request succeeded ({refused} refused)\n{}", apache.error_log());
    assert!(
        refused == 0 || apache.error_log().contains("protocol error"),
        "{refused} requests failed without a protocol error logged:\n{}",
        apache.error_log()
    );
    apache.assert_alive();
}

#[test]
fn a_chunked_post_an_endpoint_closed_on_is_not_sent_again() {
    let t = TestDir::new("iso_replay");
    let (a, b) = (FaultServer::start(&t.sock("a.sock")), FaultServer::start(&t.sock("b.sock")));
    util::write_file(&t.htdocs().join("bal.fcgi"), "");
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiExternalServer {} -socket {} -socket {} -idle-timeout 5\n",
            t.htdocs().join("bal.fcgi").display(),
            a.path().display(),
            b.path().display()
        ))
        .start();
    let seen = || {
        [&a, &b].iter().flat_map(|f| f.requests()).filter(|r| r.param("PATH_INFO").as_deref() == Some("/close")).count()
    };
    // An idempotent request with no body is tried on the other endpoint:
    // the replay this test guards against exists.
    let r = apache.get("/bal.fcgi/close");
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(seen(), 2, "a GET was not tried on the other endpoint");
    // A chunked POST went out whole before the endpoint closed: the
    // application may have acted on it, so it is not sent again.
    let r = apache.request(Request::post("/bal.fcgi/close", Body::chunked(b"charge the card once", 5)));
    assert!(r.status >= 500, "{}", r.text());
    assert_eq!(seen(), 3, "the POST reached {} endpoints", seen() - 2);
    apache.assert_alive();
}
