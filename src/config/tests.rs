//! Unit tests of the directive parsers.

#[cfg(test)] // test code only, like the whole `tests` module
use super::*;

struct FakeHost;

impl Host for FakeHost {
    fn check_executable(&self, path: &str) -> Result<(), String> {
        match path {
            p if p.ends_with(".dir") => Err("is a directory".into()),
            p if p.contains("missing") => Err("stat() failed: No such file or directory".into()),
            _ => Ok(()),
        }
    }
    fn env(&self, name: &str) -> Option<String> {
        (name == "HOME").then(|| "/root".to_string())
    }
}

fn builder() -> Builder {
    Builder::new("/etc/apache2".into(), "/run/apache2/fastcgi".into(), Box::new(FakeHost))
}

#[test]
fn external_server_unix_and_tcp() {
    let mut b = builder();
    b.external_server("FastCgiExternalServer", "/var/www/php-fcgi -socket /run/php.sock -pass-header Authorization")
        .unwrap();
    b.external_server("ExternalAppClass", "rel/app -host 127.0.0.1:9000 -IDLE-TIMEOUT 5 -flush").unwrap();
    b.external_server("FastCgiExternalServer", "/x/y -socket relative.sock").unwrap();
    let c = b.build();
    assert_eq!(c.servers[0].path, "/var/www/php-fcgi");
    assert_eq!(c.servers[0].endpoint, Endpoint::Unix("/run/php.sock".into()));
    assert_eq!(c.servers[0].options.pass_headers, ["Authorization"]);
    assert_eq!(c.servers[0].options.idle_timeout, 30);
    assert_eq!(c.servers[0].options.app_conn_timeout, 0);
    assert_eq!(c.servers[1].path, "/etc/apache2/rel/app");
    assert_eq!(c.servers[1].options.idle_timeout, 5);
    assert!(c.servers[1].options.flush);
    assert_eq!(c.servers[2].endpoint, Endpoint::Unix("/run/apache2/fastcgi/relative.sock".into()));
}

#[test]
fn mapping_by_prefix_at_slash() {
    let mut b = builder();
    b.external_server("E", "/srv/app.fcgi -socket /s").unwrap();
    let c = b.build();
    assert!(c.find("/srv/app.fcgi").is_some());
    assert!(c.find("/srv/app.fcgi/path/info").is_some());
    assert!(c.find("/srv/app.fcgix").is_none());
    assert!(c.find("/srv").is_none());
}

#[test]
fn errors_name_directive_and_option() {
    let mut b = builder();
    let e = |b: &mut Builder, args: &str| b.external_server("FastCgiExternalServer", args).unwrap_err();
    assert_eq!(e(&mut b, "/x -foo"), "FastCgiExternalServer /x: invalid option: -foo");
    assert_eq!(e(&mut b, "/x -socket a -host h:1"), "-host and -socket are mutually exclusive options");
    assert_eq!(e(&mut b, "/x"), "-socket or -host option missing");
    assert_eq!(e(&mut b, ""), "FastCgiExternalServer requires a path and either a -socket or -host option");
    assert!(e(&mut b, "/x -socket s -idle-timeout abc")
        .starts_with("FastCgiExternalServer /x: invalid value for -idle-timeout:"));
    assert!(e(&mut b, "/x -socket s -idle-timeout 0").contains("invalid value for -idle-timeout"));
    assert!(e(&mut b, "/x -socket").contains("invalid value for -socket: missing"));
    assert_eq!(e(&mut b, "/x -host nohostport"), "FastCgiExternalServer /x: missing port specification");
    b.external_server("FastCgiExternalServer", "/a -socket /s").unwrap();
    assert!(e(&mut b, "/a -socket /t").contains("redefinition of previously defined class \"/a\""));
    assert!(e(&mut b, "/a/b -socket /t").contains("redefinition"));
    let long = format!("/x -socket /{}", "s".repeat(200));
    assert!(e(&mut b, &long).contains("is too long for a Domain socket"));
}

#[test]
fn ipc_dir_rules() {
    let mut b = builder();
    b.ipc_dir("FastCgiIpcDir", "run/fcgi//").unwrap();
    assert!(b.ipc_dir("FastCgiIpcDir", "/other").unwrap_err().contains("already defined as \"/etc/apache2/run/fcgi\""));
    // The same directory again is accepted.
    b.ipc_dir("FastCgiIpcDir", "/etc/apache2/run/fcgi/").unwrap();
    // After server definitions, their sockets in the IPC directory move there.
    let mut b = builder();
    b.external_server("E", "/a -socket s -socket /abs/t -socket u").unwrap();
    b.ipc_dir("FastCgiIpcDir", "/x").unwrap();
    let a = &b.config.servers[0];
    assert_eq!(a.endpoint, Endpoint::unix(PathBuf::from("/x/s")).unwrap());
    assert_eq!(a.fallbacks[0], Endpoint::unix(PathBuf::from("/abs/t")).unwrap());
    assert_eq!(a.fallbacks[1], Endpoint::unix(PathBuf::from("/x/u")).unwrap());
    assert_eq!(builder().ipc_dir("FastCgiIpcDir", "a b").unwrap_err(), "FastCgiIpcDir takes one argument");
}

#[test]
fn paths_are_normalised() {
    let b = builder();
    assert_eq!(b.absolute("/a/./b//c/../d"), "/a/b/d");
    assert_eq!(b.absolute("x/../../y"), "/etc/y");
}

#[test]
fn static_server_defaults_and_options() {
    let mut b = builder();
    b.static_server("FastCgiServer", "/var/www/app.py -processes 4 -socket /tmp/fcgi.sock").unwrap();
    b.static_server(
        "AppClass",
        "/srv/b.fcgi -port 9001 -initial-env PATH=/usr/bin -initial-env HOME -initial-env EMPTY= -Restart-Delay 0",
    )
    .unwrap();
    b.static_server("FastCgiServer", "/srv/c.fcgi -port 9002 -bind ::1 -priority 5 -listen-queue-depth 7").unwrap();
    b.static_server("FastCgiServer", "/srv/d.fcgi").unwrap();
    let c = b.build();
    let a = c.servers[0].spawn.as_ref().unwrap();
    assert_eq!((a.processes, a.init_start_delay, a.restart_delay, a.min_server_life), (4, 1, 5, 30));
    assert_eq!((a.priority, a.listen_queue_depth), (0, 100));
    assert_eq!(c.servers[0].endpoint, Endpoint::Unix("/tmp/fcgi.sock".into()));
    let s = c.servers[1].spawn.as_ref().unwrap();
    assert_eq!(s.initial_env, ["PATH=/usr/bin", "HOME=/root", "EMPTY="]);
    assert_eq!(s.restart_delay, 0);
    assert_eq!(c.servers[1].endpoint, Endpoint::tcp("127.0.0.1:9001").unwrap());
    assert_eq!(c.servers[2].endpoint, Endpoint::tcp("[::1]:9002").unwrap());
    let Endpoint::Unix(p) = &c.servers[3].endpoint else { panic!("unix expected") };
    assert!(p.starts_with("/run/apache2/fastcgi/") && p.extension().is_some_and(|e| e == "sock"));
}

#[test]
fn static_server_errors() {
    let mut b = builder();
    let e = |b: &mut Builder, args: &str| b.static_server("FastCgiServer", args).unwrap_err();
    assert_eq!(e(&mut b, ""), "FastCgiServer requires a pathname!?");
    assert_eq!(e(&mut b, "/a -port 1 -socket s"), "-port and -socket are mutually exclusive options");
    assert!(e(&mut b, "/a -port 0").contains("invalid value for -port"));
    assert!(e(&mut b, "/a -processes 0").contains("invalid value for -processes"));
    assert_eq!(e(&mut b, "/a -host h:1"), "FastCgiServer /a: invalid option: -host");
    assert!(e(&mut b, "/missing.fcgi").contains("stat() failed"));
    assert!(e(&mut b, "/x.dir").contains("is a directory"));
    assert!(e(&mut b, "/a -bind 127.0.0.1").contains("-bind needs -port"));
    b.static_server("FastCgiServer", "/a -user www").unwrap();
    assert_eq!(b.take_warnings(), ["FastCGI: there is no fastcgi wrapper set, user/group options are ignored"]);
    assert!(e(&mut b, "/a").contains("redefinition of a previously defined FastCGI server \"/a\""));
    assert!(b.external_server("E", "/a -socket s").unwrap_err().contains("redefinition"));
    assert!(e(&mut b, "/b -initial-env =x").contains("invalid value for -initial-env"));
}

#[test]
fn dynamic_config_defaults_aliases_and_last_write_wins() {
    let mut b = builder();
    assert_eq!(b.config.dynamic.max_class_processes, 10);
    b.dynamic_config("FastCgiConfig", "-maxClassProcesses 3 -singleThreshhold 7 -gainValue 0.25 -restart").unwrap();
    b.dynamic_config("FCGIConfig", "-multiThreshhold 20 -idle-timeout 9 -initial-env PATH=/bin -priority 2").unwrap();
    b.dynamic_config("FastCgiConfig", "-maxClassProcesses 4 -autoUpdate -flush -pass-header Authorization").unwrap();
    let d = b.build().dynamic;
    assert_eq!((d.max_class_processes, d.single_threshold, d.multi_threshold), (4, 7, 20));
    assert_eq!((d.max_processes, d.min_processes, d.start_delay, d.process_slack), (50, 5, 3, 5));
    assert_eq!((d.kill_interval, d.update_interval), (300, 300));
    assert!(d.gain == 0.25 && d.restart && d.auto_update && d.app.flush);
    assert_eq!(d.app.idle_timeout, 9);
    assert_eq!(d.app.pass_headers, ["Authorization"]);
    assert_eq!(d.spawn.initial_env, ["PATH=/bin"]);
    assert_eq!(d.spawn.priority, 2);
}

#[test]
fn dynamic_config_errors() {
    let mut b = builder();
    let e = |b: &mut Builder, args: &str| b.dynamic_config("FastCgiConfig", args).unwrap_err();
    assert_eq!(e(&mut b, "-foo"), "FastCgiConfig: invalid option: -foo");
    assert_eq!(e(&mut b, "-nph"), "FastCgiConfig: invalid option: -nph");
    assert!(e(&mut b, "-gainValue 2").starts_with("FastCgiConfig: invalid value for -gainValue:"));
    assert!(e(&mut b, "-maxProcesses 0").contains("invalid value for -maxProcesses"));
    assert_eq!(e(&mut b, "-maxProcesses 4 -processSlack 5"), "processSlack (5) must be less than maxProcesses (4) + 1");
}

#[test]
fn wrapper_rules() {
    let mut b = builder();
    b.wrapper("FastCgiWrapper", "Off").unwrap();
    b.wrapper("FastCgiSuexec", "bin/suexec").unwrap();
    assert_eq!(b.config.wrapper.as_deref(), Some(Path::new("/etc/apache2/bin/suexec")));
    assert!(b.wrapper("FastCgiWrapper", "On").unwrap_err().contains("was already set to"));
    b.static_server("FastCgiServer", "/a -user www").unwrap();
    assert!(b.take_warnings().is_empty(), "-user means something with a wrapper");
    let mut b = builder();
    b.external_server("E", "/a -socket s").unwrap();
    assert_eq!(
        b.wrapper("FastCgiWrapper", "On").unwrap_err(),
        "The FastCgiWrapper command must preceed static FastCGI server definitions"
    );
    assert!(builder().wrapper("FastCgiWrapper", "/missing/suexec").unwrap_err().contains("stat() failed"));
}

#[test]
fn authorizer_directives() {
    let mut b = builder();
    b.external_server("E", "/srv/auth -socket /s").unwrap();
    let mut dir = DirConfig::default();
    b.auth_app(&mut dir, 0, "FastCgiAuthenticator", "/srv/auth").unwrap();
    b.auth_app(&mut dir, 2, "FastCgiAccessChecker", "/usr/bin/check -COMPAT").unwrap();
    assert_eq!(dir.apps[0], Some(AuthApp { path: "/srv/auth".into(), compat: false }));
    assert_eq!(dir.apps[2], Some(AuthApp { path: "/usr/bin/check".into(), compat: true }));
    assert_eq!(dir.apps[1], None);
    assert_eq!(
        b.auth_app(&mut dir, 1, "FastCgiAuthorizer", "/srv/auth -x").unwrap_err(),
        "FastCgiAuthorizer: unknown option: \"-x\""
    );
    assert!(b.auth_app(&mut dir, 1, "FastCgiAuthorizer", "/missing/app").unwrap_err().contains("stat() failed"));
    assert_eq!(dir.authoritative, [true; 3]);
    Builder::auth_authoritative(&mut dir, 1, "FastCgiAuthorizerAuthoritative", "off").unwrap();
    assert_eq!(dir.authoritative, [true, false, true]);
    assert!(Builder::auth_authoritative(&mut dir, 1, "X", "maybe").unwrap_err().contains("On or Off"));
}

#[test]
fn external_server_failover_list() {
    let mut b = builder();
    b.external_server("E", "/a -host 127.0.0.1:9001 -host [::1]:9002 -host localhost:9003").unwrap();
    b.external_server("E", "/b -socket one.sock -socket /run/two.sock").unwrap();
    let c = b.build();
    assert_eq!(c.servers[0].endpoint, Endpoint::tcp("127.0.0.1:9001").unwrap());
    // localhost may give ::1 and 127.0.0.1: one endpoint each.
    assert!(c.servers[0].fallbacks.len() >= 2);
    assert!(c.servers[0].options.keep_conn && c.servers[0].options.keep_conn_safe);
    // Unix sockets too: reuse within the capacity by default.
    assert!(c.servers[1].options.keep_conn && c.servers[1].options.keep_conn_safe);
    assert_eq!(c.servers[1].fallbacks, [Endpoint::Unix("/run/two.sock".into())]);
    assert_eq!(
        builder().external_server("E", "/c -host h:1 -socket s").unwrap_err(),
        "-host and -socket are mutually exclusive options"
    );
}

#[test]
fn chunked_body_max() {
    let mut b = builder();
    b.chunked_body_max("FastCgiChunkedBodyMax", "1048576").unwrap();
    assert!(b.chunked_body_max("FastCgiChunkedBodyMax", "lots").unwrap_err().contains("expected a number of bytes"));
    assert_eq!(b.build().chunked_body_max, 1 << 20);
}

#[test]
fn response_buffering_sizes() {
    let mut b = builder();
    assert_eq!(b.config.response_buffer, 1 << 20);
    assert_eq!(b.config.response_spool_max, 64 << 20);
    b.response_buffer("FastCgiResponseBuffer", "256K").unwrap();
    b.scoreboard("FastCgiScoreboard", "Off").unwrap();
    assert_eq!(b.config.scoreboard, None);
    b.scoreboard("FastCgiScoreboard", "200").unwrap();
    assert_eq!(b.config.scoreboard, Some(200));
    b.scoreboard("FastCgiScoreboard", "on").unwrap();
    assert_eq!(b.config.scoreboard, Some(DEFAULT_SCOREBOARD_SLOTS));
    assert!(b.scoreboard("FastCgiScoreboard", "lots").unwrap_err().contains("expected On, Off"));
    b.response_spool_max("FastCgiResponseSpoolMax", "8m").unwrap();
    let err = b.response_spool_max("FastCgiResponseSpoolMax", "99999999999G").unwrap_err();
    assert!(err.starts_with("FastCgiResponseSpoolMax: expected a number of bytes"), "{err}");
    assert!(b.response_buffer("FastCgiResponseBuffer", "1 2").is_err());
    let c = b.build();
    assert_eq!((c.response_buffer, c.response_spool_max), (256 << 10, 8 << 20));
}

#[test]
fn admission_limits() {
    let mut b = builder();
    b.external_server("FastCgiExternalServer", "/a -socket /run/a.sock -max-in-flight 8 -queue-timeout 0.25").unwrap();
    b.external_server(
        "FastCgiExternalServer",
        "/b -socket /run/b.sock -max-in-flight 2 -max-queued 0 -queue-timeout 3",
    )
    .unwrap();
    b.external_server("FastCgiExternalServer", "/c -socket /run/c.sock").unwrap();
    b.dynamic_config("FastCgiConfig", "-max-in-flight 4").unwrap();
    b.dynamic_config("FastCgiConfig", "-queue-timeout 2.5").unwrap();
    assert!(b.check().is_empty());
    let c = b.build();
    let o = |i: usize| &c.servers[i].options;
    assert_eq!((o(0).max_in_flight, o(0).queue_timeout_ms, o(0).queue_bound(), o(0).retry_after()), (8, 250, 8, 1));
    assert_eq!((o(1).queue_bound(), o(1).retry_after()), (0, 3));
    assert_eq!((o(2).max_in_flight, o(2).queue_timeout_ms, o(2).queue_bound()), (0, 1000, 0));
    assert_eq!((c.dynamic.app.max_in_flight, c.dynamic.app.queue_timeout_ms), (4, 2500));
    let mut b = builder();
    for (args, want) in [
        ("/x -socket /s -queue-timeout 1", "FastCgiExternalServer /x: -queue-timeout needs -max-in-flight"),
        ("/x -socket /s -max-queued 1", "FastCgiExternalServer /x: -max-queued needs -max-in-flight"),
        ("/x -socket /s -max-in-flight 0", "FastCgiExternalServer /x: invalid value for -max-in-flight"),
        ("/x -socket /s -max-in-flight 1 -queue-timeout 1.0001", "invalid value for -queue-timeout: expected seconds"),
        ("/x -socket /s -max-in-flight 1 -queue-timeout 3601", "invalid value for -queue-timeout"),
        ("/x -socket /s -max-in-flight 1 -queue-timeout .", "invalid value for -queue-timeout"),
        ("/x -socket /s -max-in-flight 1 -queue-timeout -1", "invalid value for -queue-timeout"),
    ] {
        let e = b.external_server("FastCgiExternalServer", args).unwrap_err();
        assert!(e.starts_with(want) || e.contains(want), "{args}: {e}");
    }
    b.scoreboard("FastCgiScoreboard", "Off").unwrap();
    b.external_server("FastCgiExternalServer", "/y -socket /s -max-in-flight 1").unwrap();
    let errors = b.check();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("/y: -max-in-flight") && errors[0].contains("FastCgiScoreboard Off"), "{errors:?}");
}

#[test]
fn request_buffering_merges_and_authorizers_do_not() {
    let b = builder();
    let mut outer = DirConfig::default();
    b.auth_app(&mut outer, 1, "FastCgiAuthorizer", "/srv/auth").unwrap();
    let mut buffering_only = DirConfig::default();
    Builder::request_buffering(&mut buffering_only, "FastCgiRequestBuffering", "Off").unwrap();
    // A section with only FastCgiRequestBuffering keeps the authorizer.
    let merged = DirConfig::merge(&outer, &buffering_only);
    assert_eq!(merged.apps[1].as_ref().map(|a| a.path.as_str()), Some("/srv/auth"));
    assert!(!merged.buffers_requests());
    // A section with an authorizer directive starts from the defaults for
    // them (as in the original) and inherits the buffering.
    let mut auth_only = DirConfig::default();
    Builder::auth_authoritative(&mut auth_only, 1, "FastCgiAuthorizerAuthoritative", "Off").unwrap();
    let inner = DirConfig::merge(&merged, &auth_only);
    assert_eq!(inner.apps[1], None);
    assert!(!inner.authoritative[1]);
    assert!(!inner.buffers_requests());
    assert!(DirConfig::default().buffers_requests());
    assert!(Builder::request_buffering(&mut auth_only, "FastCgiRequestBuffering", "maybe").is_err());
}

#[test]
fn keep_conn_modes() {
    let mut b = builder();
    b.external_server("E", "/a -socket a.sock -keep-conn").unwrap();
    b.external_server("E", "/b -socket b.sock -keep-conn on").unwrap();
    b.external_server("E", "/c -socket c.sock -keep-conn always").unwrap();
    b.external_server("E", "/d -socket d.sock -keep-conn off").unwrap();
    b.external_server("E", "/e -host 127.0.0.1:9 -keep-conn ALWAYS -idle-timeout 5").unwrap();
    let c = b.build();
    let modes: Vec<(bool, bool)> = c.servers.iter().map(|s| (s.options.keep_conn, s.options.keep_conn_safe)).collect();
    // Bare and `on`: the capacity rule; `always`: unchecked reuse, asked by name.
    assert_eq!(modes, [(true, true), (true, true), (true, false), (false, false), (true, false)]);
    assert_eq!(c.servers[4].options.idle_timeout, 5);
}
