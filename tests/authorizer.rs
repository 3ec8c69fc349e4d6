//! FastCgiAuthenticator, FastCgiAuthorizer and FastCgiAccessChecker in front
//! of a CGI script, with a libfcgi authorizer run as a dynamic application:
//! grants pass variables on, denials answer 401/403 with the application's
//! headers (never its body) and the original's log lines.

mod common;

use common::backends::compile_fcgi_app;
use common::http::basic_auth;
use common::{util, Apache, Request, TestDir};

fn site(t: &TestDir, dir_extra: &str) -> Apache {
    let auth = t.htdocs().join("auth.fcgi");
    compile_fcgi_app("authorizer.c", &auth);
    let priv_dir = t.htdocs().join("priv");
    util::mkdir_0755(&priv_dir);
    let script = priv_dir.join("env.cgi");
    util::write_file(&script, "#!/bin/sh\necho 'Content-Type: text/plain'\necho\nenv | grep -E '^(ROLE_SEEN|PLAIN_HEADER|Plain|REMOTE_USER)' | sort\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    Apache::builder(t)
        .config(&format!(
            "LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so\n\
             LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so\n\
             LoadModule cgi_module /usr/lib/apache2/modules/mod_cgi.so\n\
             <Directory {htdocs}>\n  Options +ExecCGI\n</Directory>\n\
             <Directory {priv}>\n  Options +ExecCGI\n  AddHandler cgi-script .cgi\n  AuthType Basic\n  AuthName test\n  Require valid-user\n\
             \x20 FastCgiAuthenticator {auth}\n  FastCgiAuthorizer {auth}\n  FastCgiAccessChecker {auth}\n{dir_extra}</Directory>",
            htdocs = t.htdocs().display(),
            priv = priv_dir.display(),
            auth = auth.display(),
        ))
        .start()
}

#[test]
fn all_three_phases_grant_and_pass_variables() {
    let t = TestDir::new("auth_grant");
    let apache = site(&t, "");
    let r = apache.request(Request::get("/priv/env.cgi").header("Authorization", &basic_auth("alice", "secret")));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    let body = r.text();
    for role in ["AUTHENTICATOR", "AUTHORIZER", "ACCESS_CHECKER"] {
        assert!(body.contains(&format!("ROLE_SEEN_{role}=yes")), "{role} missing:\n{body}");
    }
    // Without -compat every header of a grant becomes a variable (httpd's
    // environment turns the dash into an underscore).
    assert!(body.contains("Plain_Header=kept"), "{body}");
    assert!(body.contains("REMOTE_USER=alice"), "{body}");
}

#[test]
fn denials_answer_401_and_403_with_the_original_log_lines() {
    let t = TestDir::new("auth_deny");
    let apache = site(&t, "");
    let r = apache.request(Request::get("/priv/env.cgi").header("Authorization", &basic_auth("alice", "wrong")));
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").is_some_and(|h| h.contains("Basic")), "{:?}", r.headers);
    assert_eq!(r.header("X-Why"), Some("AUTHENTICATOR said no"));
    assert!(!r.text().contains("secret body"), "the authorizer's body reached the client");
    assert!(apache.error_log().contains("FastCGI: authentication failed for user \"alice\": /priv/env.cgi"));

    let r = apache.request(Request::get("/priv/env.cgi").header("Authorization", &basic_auth("bob", "secret")));
    assert_eq!(r.status, 401, "bob fails the authenticator too");

    let r = apache.request(
        Request::get("/priv/env.cgi").header("Authorization", &basic_auth("alice", "secret")).header("X-Deny", "1"),
    );
    assert_eq!(r.status, 403);
    assert!(apache.error_log().contains("FastCGI: access denied: /priv/env.cgi"));

    let r = apache.request(
        Request::get("/priv/env.cgi").header("Authorization", &basic_auth("alice", "secret")).header("X-Redirect", "1"),
    );
    assert_eq!(r.status, 500);
    assert!(apache.error_log().contains("FastCGI: FastCgiAccessChecker \""), "{}", apache.error_log());
    assert!(apache.error_log().contains("redirected (not allowed)"));
    apache.assert_alive();
}

#[test]
fn compat_keeps_only_variable_headers_and_non_authoritative_declines() {
    let t = TestDir::new("auth_compat");
    let auth = t.htdocs().join("auth.fcgi");
    let apache = site(&t, &format!("  FastCgiAuthorizer {} -compat\n", auth.display()));
    let r = apache.request(Request::get("/priv/env.cgi").header("Authorization", &basic_auth("alice", "secret")));
    assert_eq!(r.status, 200, "{}", apache.error_log());
    assert!(r.text().contains("ROLE_SEEN_AUTHORIZER=yes"), "{}", r.text());
    let t2 = TestDir::new("auth_nonauth");
    let apache2 = site(&t2, "  FastCgiAccessCheckerAuthoritative Off\n");
    let r = apache2.request(
        Request::get("/priv/env.cgi").header("Authorization", &basic_auth("alice", "secret")).header("X-Deny", "1"),
    );
    assert_eq!(r.status, 200, "Off lets the request through when the checker denies: {}", apache2.error_log());
}

#[test]
fn bad_authorizer_directives_fail_configtest() {
    let t = TestDir::new("auth_cfg");
    let b = Apache::builder(&t)
        .config(&format!("<Directory {}>\nFastCgiAuthenticator /bin/true -bogus\n</Directory>", t.htdocs().display()));
    let (code, out) = b.configtest();
    assert_ne!(code, 0);
    assert!(out.contains("FastCgiAuthenticator: unknown option: \"-bogus\""), "{out}");
    let b = Apache::builder(&t).config("FastCgiAuthorizer /bin/true");
    let (code, out) = b.configtest();
    assert_ne!(code, 0, "not allowed at server level: {out}");
}
