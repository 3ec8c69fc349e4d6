//! Directive parsing through `apache2 -t`: bad FastCgiExternalServer lines
//! fail the config check with the original's message forms; good ones pass.

mod common;

use common::{Apache, TestDir};

/// `apache2 -t` with `directives` added to a complete config.
fn configtest(name: &str, directives: &str) -> (i32, String) {
    let t = TestDir::new(name);
    Apache::builder(&t).config(directives).configtest()
}

fn assert_rejected(name: &str, directives: &str, needles: &[&str]) {
    let (code, out) = configtest(name, directives);
    assert_ne!(code, 0, "apache2 -t accepted {directives:?}:\n{out}");
    assert!(!out.contains("Syntax OK"), "{out}");
    for n in needles {
        assert!(out.contains(n), "apache2 -t output for {directives:?} lacks {n:?}:\n{out}");
    }
}

fn assert_accepted(name: &str, directives: &str) {
    let (code, out) = configtest(name, directives);
    assert_eq!(code, 0, "apache2 -t rejected {directives:?}:\n{out}");
    assert!(out.contains("Syntax OK"), "{out}");
}

#[test]
fn good_config_passes() {
    assert_accepted(
        "cfg_good",
        "FastCgiExternalServer /srv/app/a.fcgi -socket /tmp/a.sock\n\
         FastCgiExternalServer /srv/app/b.fcgi -host 127.0.0.1:9000 -appConnTimeout 3 -idle-timeout 60 \
         -pass-header Authorization -pass-header X-Forwarded-For -flush\n\
         FastCgiExternalServer /srv/app/c.fcgi -host localhost:9001 -nph\n\
         <IfModule mod_fastcgi.c>\n    AddHandler fastcgi-script .fcgi\n</IfModule>\n\
         <IfModule fastcgi_module>\n    FastCgiExternalServer /srv/app/d.fcgi -socket /tmp/d.sock\n</IfModule>",
    );
}

/// `<IfModule mod_fastcgi.c>` must match our module, or old configs
/// silently lose their FastCGI sections: put a broken directive inside and
/// the check must fail.
#[test]
fn ifmodule_mod_fastcgi_c_matches() {
    assert_rejected(
        "cfg_ifmod",
        "<IfModule mod_fastcgi.c>\n    FastCgiExternalServer /x -foo\n</IfModule>",
        &["invalid option: -foo"],
    );
}

#[test]
fn invalid_option() {
    assert_rejected("cfg_badopt", "FastCgiExternalServer /x -foo", &["FastCgiExternalServer /x: invalid option: -foo"]);
}

#[test]
fn host_and_socket_are_exclusive() {
    assert_rejected(
        "cfg_excl",
        "FastCgiExternalServer /x -host 127.0.0.1:9000 -socket /tmp/x.sock",
        &["-host and -socket are mutually exclusive options"],
    );
}

#[test]
fn socket_or_host_required() {
    assert_rejected("cfg_missing", "FastCgiExternalServer /x -idle-timeout 5", &["-socket or -host option missing"]);
    assert_rejected("cfg_missing2", "FastCgiExternalServer /x", &["-socket or -host option missing"]);
}

#[test]
fn invalid_idle_timeout() {
    assert_rejected(
        "cfg_idle",
        "FastCgiExternalServer /x -socket /tmp/x.sock -idle-timeout abc",
        &["FastCgiExternalServer /x", "invalid value for -idle-timeout"],
    );
}

#[test]
fn host_without_port() {
    assert_rejected("cfg_noport", "FastCgiExternalServer /x -host nohostport", &["missing port"]);
}

#[test]
fn option_missing_its_value() {
    let (code, out) = configtest("cfg_noval", "FastCgiExternalServer /x -socket");
    assert_ne!(code, 0, "a -socket without a value was accepted:\n{out}");
    assert!(out.contains("FastCgiExternalServer"), "the message names the directive:\n{out}");
}

#[test]
fn redefinition_is_rejected() {
    assert_rejected(
        "cfg_redef",
        "FastCgiExternalServer /srv/x -socket /tmp/a.sock\nFastCgiExternalServer /srv/x -socket /tmp/b.sock",
        &["redefinition", "/srv/x"],
    );
}

#[test]
fn options_are_case_insensitive() {
    assert_accepted(
        "cfg_case",
        "FastCgiExternalServer /x -SOCKET /tmp/x.sock -IDLE-TIMEOUT 5 -Pass-Header Authorization",
    );
    assert_accepted("cfg_case2", "FastCgiExternalServer /y -Host 127.0.0.1:9000 -APPCONNTIMEOUT 2");
}

#[test]
fn external_app_class_alias() {
    assert_accepted("cfg_alias", "ExternalAppClass /srv/legacy -socket /tmp/legacy.sock -idle-timeout 10");
    // The alias validates like the real directive.
    assert_rejected("cfg_alias_bad", "ExternalAppClass /srv/legacy -bogus", &["invalid option: -bogus"]);
}

#[test]
fn ipc_dir_directive() {
    let t = TestDir::new("cfg_ipc");
    let dir = t.join("sock");
    let (code, out) = Apache::builder(&t)
        .config(&format!("FastCgiIpcDir {}\nFastCgiExternalServer /srv/r -socket rel.sock", dir.display()))
        .configtest();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Syntax OK"), "{out}");
}
