//! FastCgiWrapper with Apache's own suexec (apache2-suexec-custom, installed
//! by `make deps`): a request under SuexecUserGroup for a path whose static
//! definition runs as Apache's user runs as a dynamic application under the
//! request's identity, through the wrapper, and is stopped with Apache.

mod common;

use std::os::unix::fs::chown;
use std::path::PathBuf;
use std::time::Duration;

use common::{util, Apache, TestDir};

/// suexec only runs programs under its document root, /var/www on Debian.
struct SuexecRoot(PathBuf);

impl Drop for SuexecRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const NOBODY: u32 = 65534;

#[test]
fn dynamic_app_runs_as_the_suexec_identity() {
    assert!(util::is_root(), "the wrapper test needs root (suexec, chown)");
    let t = TestDir::new("wrapper");
    let root = SuexecRoot(PathBuf::from(format!("/var/www/fcgirs-wrapper-{}", std::process::id())));
    std::fs::create_dir_all(&root.0).expect("mkdir under /var/www");
    let app = root.0.join("who.fcgi");
    util::write_file(
        &app,
        "#!/usr/bin/python3\n\
         import os\n\
         from flup.server.fcgi import WSGIServer\n\
         def app(environ, start_response):\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [b'uid=%d gid=%d pid=%d\\n' % (os.getuid(), os.getgid(), os.getpid())]\n\
         WSGIServer(app).run()\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&root.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(&app, Some(NOBODY), Some(NOBODY)).unwrap();
    chown(&root.0, Some(NOBODY), Some(NOBODY)).unwrap();

    let mut apache = Apache::builder(&t)
        .config(&format!(
            "LoadModule suexec_module /usr/lib/apache2/modules/mod_suexec.so\n\
             FastCgiWrapper On\n\
             FastCgiServer {app} -init-start-delay 0\n\
             SuexecUserGroup nobody nogroup\n\
             Alias /sx {dir}\n\
             <Directory {dir}>\n  Options +ExecCGI\n  SetHandler fastcgi-script\n  Require all granted\n</Directory>",
            dir = root.0.display(),
            app = app.display()
        ))
        .start();
    let r = apache.get("/sx/who.fcgi");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    let body = r.text();
    assert!(body.starts_with(&format!("uid={NOBODY} gid={NOBODY} ")), "{body}");
    let pid: i32 = body.trim().rsplit("pid=").next().and_then(|p| p.parse().ok()).expect("pid in body");
    // The static definition runs as Apache's user, not as the request's
    // identity: as in the original, the path then runs as a dynamic
    // application under that identity, started through the wrapper.
    let log = apache.error_log();
    assert!(log.contains(&format!("FastCGI: server \"{}\" started", app.display())), "{log}");
    assert!(log.contains(&format!("(dynamic) server \"{}\" started", app.display())), "{log}");
    let again = apache.get("/sx/who.fcgi");
    assert_eq!(again.text(), body, "the same instance serves again");

    // The manager keeps root only to signal it: stopping Apache stops it.
    apache.stop();
    let gone = util::wait_until(Duration::from_secs(8), || !PathBuf::from(format!("/proc/{pid}")).exists());
    assert!(gone, "the suexec'd application (pid {pid}) outlived Apache");
}

#[test]
fn wrapper_directive_rules() {
    let t = TestDir::new("wrapper_cfg");
    let b = Apache::builder(&t).config("FastCgiExternalServer /x -socket /s\nFastCgiWrapper On");
    let (code, err) = b.configtest();
    assert_ne!(code, 0);
    assert!(err.contains("The FastCgiWrapper command must preceed static FastCGI server definitions"), "{err}");
    let b = Apache::builder(&t).config("FastCgiSuexec /nonexistent/suexec");
    let (code, err) = b.configtest();
    assert_ne!(code, 0);
    assert!(err.contains("FastCgiSuexec: \"/nonexistent/suexec\""), "{err}");
    let b = Apache::builder(&t).config("FastCgiWrapper On");
    let (code, err) = b.configtest();
    assert_eq!(code, 0, "{err}");
}
